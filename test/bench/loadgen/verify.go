package loadgen

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Delivery is a run's spans checked one by one against what was read back.
type Delivery struct {
	Acked      int // spans answered OK
	Found      int // entries read back carrying one of the run's span ids
	Lost       int // answered OK but not found
	Duplicates int // found more than once (extra copies)
	Unacked    int // found although their request failed (allowed: the client retries them)
	Stray      int // entries whose traceparent is not one of the generator's span ids
}

func (d Delivery) String() string {
	return fmt.Sprintf("%d acked, %d found, %d lost, %d duplicated, %d written unacked, %d stray",
		d.Acked, d.Found, d.Lost, d.Duplicates, d.Unacked, d.Stray)
}

// Verify reads every entry of the streams and checks each acknowledged span of res: exactly once.
// It reads the span id from each entry's traceparent field, which every format writes.
func Verify(ctx context.Context, rdb redis.Cmdable, res *Result, streams ...string) (Delivery, error) {
	seen := make([]uint8, res.Sent)
	var d Delivery
	for _, key := range streams {
		from := "-"
		for {
			msgs, err := rdb.XRangeN(ctx, key, from, "+", 20000).Result()
			if err != nil {
				return d, fmt.Errorf("reading %s: %w", key, err)
			}
			for _, m := range msgs {
				seq, ok := seqOf(m.Values["traceparent"])
				if !ok || seq >= res.Sent {
					d.Stray++
					continue
				}
				if seen[seq] < 255 {
					seen[seq]++
				}
			}
			if len(msgs) < 20000 {
				break
			}
			from = "(" + msgs[len(msgs)-1].ID
		}
	}
	acked := make([]bool, res.Sent)
	for _, first := range res.Acked {
		for s := first; s < first+uint64(res.SpansPerRequest); s++ {
			acked[s] = true
		}
	}
	for s, n := range seen {
		if n > 0 {
			d.Found++
			d.Duplicates += int(n) - 1
		}
		switch {
		case acked[s]:
			d.Acked++
			if n == 0 {
				d.Lost++
			}
		case n > 0:
			d.Unacked++
		}
	}
	return d, nil
}

// seqOf parses "00-<trace id>-<span id>-<flags>" and maps the span id to a sequence number.
func seqOf(v any) (uint64, bool) {
	tp, _ := v.(string)
	parts := strings.Split(tp, "-")
	if len(parts) != 4 || len(parts[2]) != 16 {
		return 0, false
	}
	var b [8]byte
	if _, err := hex.Decode(b[:], []byte(parts[2])); err != nil {
		return 0, false
	}
	var id uint64
	for _, c := range b {
		id = id<<8 | uint64(c)
	}
	return Seq(id)
}
