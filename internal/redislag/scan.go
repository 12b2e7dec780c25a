package redislag

import (
	"context"
	"slices"
	"sync"

	"github.com/redis/go-redis/v9"
)

// scanCount is SCAN's COUNT: how many keys Redis examines per round trip. Redis examines
// them whatever their type or name, so a large count is what keeps the round trips few.
const scanCount = 1000

// scanNode adds the streams on one server whose names match pattern. SCAN ... TYPE stream
// leaves other keys out on the server, so they cost no bytes on the wire.
func scanNode(ctx context.Context, c *redis.Client, pattern string, found *topNames) error {
	var cursor uint64
	for {
		keys, next, err := c.ScanType(ctx, cursor, pattern, scanCount, "stream").Result()
		if err != nil {
			return err
		}
		found.add(keys)
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// topNames keeps the first max distinct names in sort order out of any number added, in
// memory proportional to max. Which names are kept must not depend on the order SCAN
// returns them in, or the report, and with it the status, would change between calls.
// SCAN may return a name twice; truncated is set only when more than max distinct names
// were added. It is safe for concurrent use, one scan per cluster master.
type topNames struct {
	max int

	mu        sync.Mutex
	names     []string
	truncated bool
}

func newTopNames(maxNames int) *topNames {
	return &topNames{max: maxNames}
}

func (t *topNames) add(names []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.names = append(t.names, names...)
	if len(t.names) > 2*t.max+scanCount {
		t.compactLocked()
	}
}

// result returns the names kept, sorted and without duplicates, and whether others were
// left out.
func (t *topNames) result() (names []string, truncated bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.compactLocked()
	return slices.Clone(t.names), t.truncated
}

func (t *topNames) compactLocked() {
	slices.Sort(t.names)
	t.names = slices.Compact(t.names)
	if len(t.names) > t.max {
		t.names = slices.Delete(t.names, t.max, len(t.names))
		t.truncated = true
	}
}
