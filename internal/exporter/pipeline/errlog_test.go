package pipeline

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tracestream/tracestream/internal/redisconn"
)

func TestWriteErrorLogIsRateLimitedPerClassAndKey(t *testing.T) {
	var out bytes.Buffer
	l := newWriteErrorLog(slog.New(slog.NewTextHandler(&out, nil)))
	now := time.Unix(0, 0)
	l.now = func() time.Time { return now }
	l.maxKeys = 2
	err := errors.New("NOPERM No permissions to access a key")
	steps := []struct {
		name    string
		advance time.Duration
		log     func()
		logged  bool
	}{
		{"the first refusal of a key is logged", 0, func() { l.rejected(redisconn.ClassNoPerm, []byte("traces:a"), err) }, true},
		{"the same key again is not", time.Second, func() { l.rejected(redisconn.ClassNoPerm, []byte("traces:a"), err) }, false},
		{"another key is logged", 0, func() { l.rejected(redisconn.ClassNoPerm, []byte("traces:b"), err) }, true},
		{"the first key after the interval is logged again", time.Minute, func() { l.rejected(redisconn.ClassNoPerm, []byte("traces:a"), err) }, true},
		{"a third key past maxKeys starts the memory over and is logged", 0, func() { l.rejected(redisconn.ClassNoPerm, []byte("traces:c"), err) }, true},
		{"a connection error is logged", 0, func() { l.failed(redisconn.ClassTimeout, err) }, true},
		{"the same class soon after is not", time.Second, func() { l.failed(redisconn.ClassTimeout, err) }, false},
		{"a new class is logged", 0, func() { l.failed(redisconn.ClassConnection, err) }, true},
		{"the first class again within the interval is not: two classes in turn are not a flood", time.Second, func() { l.failed(redisconn.ClassTimeout, err) }, false},
		{"nor the second", time.Second, func() { l.failed(redisconn.ClassConnection, err) }, false},
		{"the first class after its interval is logged again", time.Minute, func() { l.failed(redisconn.ClassTimeout, err) }, true},
		{"the same class after the interval is logged again", 0, func() { l.failed(redisconn.ClassConnection, err) }, true},
		{"spans past stream.maxKeys are logged", 0, func() { l.overflowed("traces:{service.name}", "traces:overflow", 3) }, true},
		{"and not again within the interval", time.Second, func() { l.overflowed("traces:{service.name}", "traces:overflow", 3) }, false},
		{"but again after it", time.Minute, func() { l.overflowed("traces:{service.name}", "traces:overflow", 3) }, true},
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		before := strings.Count(out.String(), "\n")
		s.log()
		if logged := strings.Count(out.String(), "\n") > before; logged != s.logged {
			t.Fatalf("%s: logged %v, want %v\n%s", s.name, logged, s.logged, out.String())
		}
	}
	if !strings.Contains(out.String(), "stream=traces:b") {
		t.Fatalf("a refused entry's log line does not name its stream:\n%s", out.String())
	}
}
