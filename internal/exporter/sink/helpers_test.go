package sink

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/exporter/entry"
	"github.com/tracestream/tracestream/internal/redisconn"
	"github.com/tracestream/tracestream/internal/testing/redistest"

	"github.com/tracestream/tracestream/internal/testing/wait"
)

func ctxFor(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// span is what a test puts into a batch and expects back from XRANGE.
type span struct {
	key    string
	trace  [16]byte
	spanID [8]byte
	fields [][2]string
}

// spans returns n spans spread round-robin over keys, each with a unique "span" field so
// that a test can tell which ones landed.
func spans(n int, keys ...string) []span { return spansFrom(0, n, keys...) }

// spansFrom is spans numbered from first, for a test that writes several batches.
func spansFrom(first, n int, keys ...string) []span {
	out := make([]span, n)
	for j := range out {
		i := first + j
		var tid [16]byte
		var sid [8]byte
		copy(tid[:], fmt.Sprintf("trace-%010d", i))
		copy(sid[:], strconv.Itoa(i))
		out[j] = span{
			key:    keys[j%len(keys)],
			trace:  tid,
			spanID: sid,
			fields: [][2]string{
				{"span", strconv.Itoa(i)},
				{"json", `{"name":"GET /users/{id}","kind":2,"attributes":{"http.status_code":200}}`},
			},
		}
	}
	return out
}

func batchOf(ss []span) *entry.Batch {
	b := &entry.Batch{}
	for _, s := range ss {
		start := len(b.Buf)
		b.Buf = append(b.Buf, s.key...)
		b.Begin(start, s.trace, s.spanID)
		for _, f := range s.fields {
			b.AddField(f[0], []byte(f[1]))
		}
	}
	return b
}

// write runs one Write and returns the per-entry errors.
func write(t testing.TB, ctx context.Context, s *Sink, ss []span) []error {
	t.Helper()
	errs := make([]error, len(ss))
	s.Write(ctx, batchOf(ss), errs)
	return errs
}

// mustWrite fails the test unless every entry landed.
func mustWrite(t testing.TB, ctx context.Context, s *Sink, ss []span) {
	t.Helper()
	for i, err := range write(t, ctx, s, ss) {
		if err != nil {
			t.Fatalf("entry %d (%s): %v (class %s)", i, ss[i].key, err, redisconn.Classify(err))
		}
	}
}

// tryWrite returns the first entry error, for polling until writes work again.
func tryWrite(ctx context.Context, s *Sink, ss []span) error {
	errs := make([]error, len(ss))
	s.Write(ctx, batchOf(ss), errs)
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("entry %d of %d (%s): %w (class %s)", i, len(errs), ss[i].key, err, redisconn.Classify(err))
		}
	}
	return nil
}

// checkLanded reads every stream of ss and fails unless each span is there exactly once with
// exactly its fields. Other entries (from earlier writes) may be there too.
func checkLanded(t testing.TB, ctx context.Context, c redis.Cmdable, ss []span) {
	t.Helper()
	byKey := map[string]map[string]map[string]any{} // key -> span field -> entry values
	for _, s := range ss {
		if byKey[s.key] != nil {
			continue
		}
		msgs, err := c.XRange(ctx, s.key, "-", "+").Result()
		if err != nil {
			t.Fatalf("XRANGE %s: %v", s.key, err)
		}
		byKey[s.key] = map[string]map[string]any{}
		for _, m := range msgs {
			id, _ := m.Values["span"].(string)
			if _, dup := byKey[s.key][id]; dup {
				t.Fatalf("stream %s holds span %q twice", s.key, id)
			}
			byKey[s.key][id] = m.Values
		}
	}
	for _, s := range ss {
		got, ok := byKey[s.key][s.fields[0][1]]
		if !ok {
			t.Fatalf("span %s is not in stream %s", s.fields[0][1], s.key)
		}
		if len(got) != len(s.fields) {
			t.Fatalf("span %s in %s has fields %v, want %v", s.fields[0][1], s.key, got, s.fields)
		}
		for _, f := range s.fields {
			if got[f[0]] != f[1] {
				t.Fatalf("span %s in %s: field %s = %q, want %q", s.fields[0][1], s.key, f[0], got[f[0]], f[1])
			}
		}
	}
}

func xlen(t testing.TB, ctx context.Context, c redis.Cmdable, key string) int64 {
	t.Helper()
	n, err := c.XLen(ctx, key).Result()
	if err != nil {
		t.Fatalf("XLEN %s: %v", key, err)
	}
	return n
}

// newSink builds a sink and closes it when the test ends.
func newSink(t testing.TB, cfg config.Redis, st config.Stream) *Sink {
	t.Helper()
	s, err := New(cfg, st, "test-producer")
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// redisConfig is the configuration the operator would render for a redistest topology.
func redisConfig(mode string, addrs []string, tlsFiles *redistest.TLS, acl *redistest.ACL) config.Redis {
	c := config.Redis{
		Mode:        mode,
		Addresses:   addrs,
		DialTimeout: config.Duration{Duration: 2 * time.Second},
		ReadTimeout: config.Duration{Duration: 10 * time.Second},
	}
	if tlsFiles != nil {
		c.TLS = config.ClientTLS{Enabled: true, CAFile: tlsFiles.CAFile()}
		if tlsFiles.Mutual() {
			c.TLS.CertFile, c.TLS.KeyFile = tlsFiles.ClientCertFile(), tlsFiles.ClientKeyFile()
		}
	}
	if acl != nil {
		c.UsernameFile, c.PasswordFile = acl.UsernameFile(), acl.PasswordFile()
	}
	return c
}

func standaloneConfig(srv *redistest.Server) config.Redis {
	return redisConfig(config.ModeStandalone, []string{srv.Addr()}, srv.TLS(), srv.ACL())
}

// infoField reads one field of an INFO section.
func infoField(t testing.TB, ctx context.Context, c redis.Cmdable, section, field string) string {
	t.Helper()
	text, err := c.Info(ctx, section).Result()
	if err != nil {
		t.Fatalf("INFO %s: %v", section, err)
	}
	for line := range strings.Lines(text) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && k == field {
			return v
		}
	}
	return ""
}

// commandCalls is calls= of cmdstat_<cmd> in INFO commandstats (0 when never called).
func commandCalls(t testing.TB, ctx context.Context, c redis.Cmdable, cmd string) int {
	t.Helper()
	return commandStat(t, ctx, c, cmd, "calls")
}

// commandStat is one integer of cmdstat_<cmd> in INFO commandstats (0 when never called).
func commandStat(t testing.TB, ctx context.Context, c redis.Cmdable, cmd, stat string) int {
	t.Helper()
	v := infoField(t, ctx, c, "commandstats", "cmdstat_"+cmd)
	for kv := range strings.SplitSeq(v, ",") {
		if k, n, ok := strings.Cut(kv, "="); ok && k == stat {
			calls, err := strconv.Atoi(n)
			if err != nil {
				t.Fatalf("cmdstat_%s: %q", cmd, v)
			}
			return calls
		}
	}
	return 0
}

// writeSecret replaces a mounted-Secret file by rename, as kubelet does.
func writeSecret(t testing.TB, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func hexID(s span) string {
	return hex.EncodeToString(s.trace[:]) + hex.EncodeToString(s.spanID[:])
}

// writeUntilLanded retries the entries of ss that failed, as the pipeline would, until all
// have landed, and counts the classes of the errors it saw on the way.
func writeUntilLanded(t testing.TB, ctx context.Context, s *Sink, timeout time.Duration, what string, ss []span) map[string]int {
	t.Helper()
	seen := map[string]int{}
	pending := ss
	wait.For(t, timeout, what, func() error {
		errs := write(t, ctx, s, pending)
		var failed []span
		var first error
		for i, err := range errs {
			if err == nil {
				continue
			}
			c := redisconn.Classify(err)
			seen[c.String()]++
			if !c.Retryable() {
				t.Fatalf("%s: %v (class %s) is not retryable", what, err, c)
			}
			if first == nil {
				first = err
			}
			failed = append(failed, pending[i])
		}
		pending = failed
		if first != nil {
			return fmt.Errorf("%d entries still failing, the first with %w", len(failed), first)
		}
		return nil
	})
	return seen
}
