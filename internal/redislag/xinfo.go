package redislag

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
)

// describeBatch is how many streams share one pipeline (two commands each): few round
// trips, and replies that stay small even for streams with many groups.
const describeBatch = 64

// describe reads XINFO STREAM and XINFO GROUPS of every name, leaving out the names that
// are not (or no longer) streams. groups, when not empty, filters the groups.
func (c *client) describe(ctx context.Context, names, groups []string) ([]Stream, error) {
	var streams []Stream
	for batch := range slices.Chunk(names, describeBatch) {
		pipe := c.universal.Pipeline()
		infos := make([]*redis.XInfoStreamCmd, len(batch))
		groupCmds := make([]*redis.Cmd, len(batch))
		for i, name := range batch {
			infos[i] = pipe.XInfoStream(ctx, name)
			// Untyped: go-redis's XInfoGroup turns a NULL entries-read into 0.
			groupCmds[i] = pipe.Do(ctx, "XINFO", "GROUPS", name)
		}
		// Exec returns the first command's error; each command carries its own, and a
		// missing key is not a failure.
		_, _ = pipe.Exec(ctx)
		for i, name := range batch {
			info, err := infos[i].Result()
			if isNotAStream(err) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("reading XINFO STREAM %q from %s Redis: %w", name, c.mode, err)
			}
			reply, err := groupCmds[i].Result()
			if isNotAStream(err) {
				// Deleted between the two commands.
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("reading XINFO GROUPS %q from %s Redis: %w", name, c.mode, err)
			}
			gs, err := parseGroups(reply, groups)
			if err != nil {
				return nil, fmt.Errorf("reading XINFO GROUPS %q from %s Redis: %w", name, c.mode, err)
			}
			streams = append(streams, Stream{
				Name:        name,
				Length:      info.Length,
				LastEntryID: info.LastGeneratedID,
				Groups:      gs,
			})
		}
	}
	return streams, nil
}

// isNotAStream reports the errors XINFO gives for a key that does not exist ("ERR no such
// key") or holds another type (WRONGTYPE): a name in Query.Streams that is not a stream, or
// a stream deleted, or replaced, since SCAN found it.
func isNotAStream(err error) bool {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	msg := rerr.Error()
	return strings.HasPrefix(msg, "WRONGTYPE ") || strings.Contains(strings.ToLower(msg), "no such key")
}

// parseGroups reads an XINFO GROUPS reply: an array with one map per group in RESP3, one
// flat array of field-value pairs in RESP2. entries-read and lag are NULL when Redis cannot
// tell them, and absent before Redis 7.0; both become nil.
func parseGroups(reply any, only []string) ([]Group, error) {
	list, ok := reply.([]any)
	if !ok {
		return nil, fmt.Errorf("unexpected reply %T", reply)
	}
	var groups []Group
	for i, item := range list {
		fields, err := fieldsOf(item)
		if err != nil {
			return nil, fmt.Errorf("group %d: %w", i, err)
		}
		g, err := groupOf(fields)
		if err != nil {
			return nil, fmt.Errorf("group %d: %w", i, err)
		}
		if len(only) > 0 && !slices.Contains(only, g.Name) {
			continue
		}
		groups = append(groups, g)
	}
	slices.SortFunc(groups, func(a, b Group) int { return strings.Compare(a.Name, b.Name) })
	return groups, nil
}

func fieldsOf(item any) (map[string]any, error) {
	fields := map[string]any{}
	switch v := item.(type) {
	case map[any]any:
		for k, val := range v {
			name, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("field name %v is a %T", k, k)
			}
			fields[name] = val
		}
	case []any:
		if len(v)%2 != 0 {
			return nil, fmt.Errorf("%d elements, not field-value pairs", len(v))
		}
		for j := 0; j < len(v); j += 2 {
			name, ok := v[j].(string)
			if !ok {
				return nil, fmt.Errorf("field name %v is a %T", v[j], v[j])
			}
			fields[name] = v[j+1]
		}
	default:
		return nil, fmt.Errorf("unexpected reply %T", item)
	}
	return fields, nil
}

func groupOf(fields map[string]any) (Group, error) {
	var g Group
	var err error
	if g.Name, err = stringField(fields, "name"); err != nil {
		return g, err
	}
	if g.LastDeliveredID, err = stringField(fields, "last-delivered-id"); err != nil {
		return g, err
	}
	if g.Consumers, err = intField(fields, "consumers"); err != nil {
		return g, err
	}
	if g.Pending, err = intField(fields, "pending"); err != nil {
		return g, err
	}
	if g.EntriesRead, err = optionalIntField(fields, "entries-read"); err != nil {
		return g, err
	}
	if g.Lag, err = optionalIntField(fields, "lag"); err != nil {
		return g, err
	}
	return g, nil
}

func stringField(fields map[string]any, name string) (string, error) {
	s, ok := fields[name].(string)
	if !ok {
		return "", fmt.Errorf("%s: %v is not a string", name, fields[name])
	}
	return s, nil
}

func intField(fields map[string]any, name string) (int64, error) {
	n, ok := fields[name].(int64)
	if !ok {
		return 0, fmt.Errorf("%s: %v is not an integer", name, fields[name])
	}
	return n, nil
}

// optionalIntField is nil for a NULL or absent field.
func optionalIntField(fields map[string]any, name string) (*int64, error) {
	v, ok := fields[name]
	if !ok || v == nil {
		return nil, nil
	}
	n, ok := v.(int64)
	if !ok {
		return nil, fmt.Errorf("%s: %v is not an integer", name, v)
	}
	return &n, nil
}
