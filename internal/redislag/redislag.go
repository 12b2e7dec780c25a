// Package redislag reports the trace streams in Redis and how far behind their consumer
// groups are, for the operator to put in a RedisTraceExporter's status.
//
// Everything comes from XINFO STREAM and XINFO GROUPS (Redis >= 7.0 for entries-read and
// lag). Redis cannot always tell a group's lag: it answers NULL when the group was created
// or moved (XGROUP SETID) to an ID in the middle of the stream, or when an entry after the
// group's last-delivered ID was deleted with XDEL. A NULL lag is reported as unknown (a nil
// Lag), never as 0, which would read as "caught up". Trimming (MAXLEN, MINID) does not make
// the lag NULL on Redis 7.0: the lag then still counts the entries the group never read,
// including those trimmed away, so a Lag larger than the stream's Length means the group
// lost entries to trimming.
//
// Collect opens one client per call and closes it before returning: the operator calls it
// once per reconcile, and a client per call cannot hold a connection authenticated with a
// password that has since been rotated.
package redislag

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// DefaultMaxStreams is the number of streams Collect reports when Query.MaxStreams is 0. A
// status is part of an object that etcd stores whole, so it must stay small whatever the
// number of streams in Redis.
const DefaultMaxStreams = 100

// Query says which streams and groups to report.
type Query struct {
	// Pattern is a SCAN MATCH glob (for example "traces:*"); every key of type stream that
	// matches is reported. Finding them takes one SCAN round trip per 1,000 keys in the
	// database, whatever their type: name the streams in Streams when they are known.
	Pattern string
	// Streams are stream names to report in addition to those matching Pattern. Names that
	// do not exist or hold another type are left out.
	Streams []string
	// Groups, when not empty, are the only consumer groups reported; empty means all.
	Groups []string
	// MaxStreams bounds the number of streams reported: the first MaxStreams by name are
	// kept and Report.Truncated is set. 0 means DefaultMaxStreams.
	MaxStreams int
}

// Report is what Collect found. Collect builds it deterministically (streams and groups
// sorted by name), so that the operator can compare it with the last one and write the
// status only when something changed.
type Report struct {
	// Streams are the streams found, sorted by name.
	Streams []Stream
	// Truncated is set when more streams than Query.MaxStreams were found.
	Truncated bool
	// TotalLag is the sum of the known lags of the reported groups; unknown lags are
	// counted in UnknownLagGroups instead.
	TotalLag int64
	// MaxLag is the largest known lag of a reported group, 0 when none is known.
	MaxLag int64
	// UnknownLagGroups is the number of reported groups whose lag Redis could not tell.
	UnknownLagGroups int
}

// Stream is one stream and its consumer groups.
type Stream struct {
	// Name is the stream's key.
	Name string
	// Length is the number of entries in the stream now (XLEN), after any trimming.
	Length int64
	// LastEntryID is the ID of the last entry added to the stream (XINFO STREAM's
	// last-generated-id). It stays when that entry is trimmed or deleted, so a group whose
	// LastDeliveredID equals it has been handed everything; "0-0" for a stream that never
	// had an entry.
	LastEntryID string
	// Groups are the stream's consumer groups, filtered by Query.Groups, sorted by name.
	Groups []Group
}

// Group is one consumer group of a stream.
type Group struct {
	// Name is the group's name.
	Name string
	// Lag is the number of entries added to the stream that the group has not read yet,
	// nil when Redis cannot tell (see the package documentation) or predates 7.0. On Redis
	// 7.0 it includes entries trimmed before the group read them, so it can exceed the
	// stream's Length.
	Lag *int64
	// Pending is the number of entries delivered to the group's consumers and not yet
	// acknowledged.
	Pending int64
	// Consumers is the number of consumers in the group.
	Consumers int64
	// LastDeliveredID is the ID of the last entry delivered to the group.
	LastDeliveredID string
	// EntriesRead is the number of entries the group has read, nil when Redis does not
	// know it: on Redis 7.0, a group that has read nothing since it was created, and a
	// group created or moved (XGROUP SETID) to an ID in the middle of the stream until it
	// reads the stream's last entry. Lag may be known when EntriesRead is not.
	EntriesRead *int64
}

// Collect connects to the Redis that t describes, finds the streams q asks for and reads
// their consumer groups, in one pipeline of XINFO STREAM and XINFO GROUPS per batch of
// streams. Cluster mode scans every master; sentinel mode asks the sentinels for the
// master. An error is wrapped with what was being done; Classify tells why it failed.
func Collect(ctx context.Context, t Target, q Query) (Report, error) {
	maxStreams, err := q.validate()
	if err != nil {
		return Report{}, err
	}
	c, err := newClient(t)
	if err != nil {
		return Report{}, err
	}
	defer func() { _ = c.close() }()

	// The first maxStreams matches by name are enough: whatever Streams adds, the report
	// keeps at most maxStreams streams, and names in Streams that turn out not to exist
	// take no place in it.
	candidates := slices.Clone(q.Streams)
	truncated := false
	if q.Pattern != "" {
		found := newTopNames(maxStreams)
		if err := c.scanStreams(ctx, q.Pattern, found); err != nil {
			return Report{}, c.explain(fmt.Errorf("scanning %s Redis for streams matching %q: %w", c.mode, q.Pattern, err))
		}
		names, more := found.result()
		candidates = append(candidates, names...)
		truncated = more
	}
	slices.Sort(candidates)
	candidates = slices.Compact(candidates)
	streams, err := c.describe(ctx, candidates, q.Groups)
	if err != nil {
		return Report{}, c.explain(err)
	}
	return finish(streams, maxStreams, truncated), nil
}

func (q Query) validate() (maxStreams int, err error) {
	switch {
	case q.Pattern == "" && len(q.Streams) == 0:
		return 0, errors.New("query: neither a pattern nor stream names to report")
	case q.MaxStreams < 0:
		return 0, fmt.Errorf("query: maxStreams %d must not be negative", q.MaxStreams)
	case slices.Contains(q.Streams, ""):
		return 0, errors.New("query: a stream name is empty")
	}
	if q.MaxStreams == 0 {
		return DefaultMaxStreams, nil
	}
	return q.MaxStreams, nil
}

// finish sorts, applies the bound and computes the totals over what is reported.
func finish(streams []Stream, maxStreams int, truncated bool) Report {
	slices.SortFunc(streams, func(a, b Stream) int { return strings.Compare(a.Name, b.Name) })
	r := Report{Streams: streams, Truncated: truncated}
	if len(r.Streams) > maxStreams {
		r.Streams, r.Truncated = r.Streams[:maxStreams:maxStreams], true
	}
	for _, s := range r.Streams {
		for _, g := range s.Groups {
			if g.Lag == nil {
				r.UnknownLagGroups++
				continue
			}
			r.TotalLag += *g.Lag
			r.MaxLag = max(r.MaxLag, *g.Lag)
		}
	}
	return r
}
