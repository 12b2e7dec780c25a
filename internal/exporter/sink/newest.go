package sink

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Newest returns up to limit of the newest entries of a stream, newest first: the admin
// endpoint's debugging view (GET /spans), so that an operator can see what was written without
// redis-cli access.
func (s *Sink) Newest(ctx context.Context, stream string, limit int64) ([]redis.XMessage, error) {
	msgs, err := s.client.XRevRangeN(ctx, stream, "+", "-", limit).Result()
	if err != nil {
		return nil, fmt.Errorf("reading stream %q: %w", stream, err)
	}
	return msgs, nil
}
