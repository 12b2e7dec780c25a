package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/exporter/encode"
	"github.com/tracestream/tracestream/internal/exporter/entry"
	"github.com/tracestream/tracestream/internal/exporter/otlpwire"
	"github.com/tracestream/tracestream/internal/testing/redistest"

	"github.com/tracestream/tracestream/internal/testing/wait"
)

// lineRE is the line lineExporter prints for each span.
var lineRE = regexp.MustCompile(`^entry (\S+) trace ([0-9a-f]{32}) parent ([0-9a-f]{16}) -> span ([0-9a-f]{16})$`)

// written is an entry a test wrote, with the ids of the span it holds.
type written struct {
	id, traceID, spanID, name, traceState string
}

// testSpans are the spans the tests write: sampled or not, with and without a tracestate.
func testSpans() []*tracepb.Span {
	span := func(i byte, name string, flags uint32, traceState string) *tracepb.Span {
		return &tracepb.Span{
			TraceId:           bytes.Repeat([]byte{0x5b, i}, 8),
			SpanId:            bytes.Repeat([]byte{0xe1, i}, 4),
			ParentSpanId:      bytes.Repeat([]byte{0xe0, i}, 4),
			TraceState:        traceState,
			Flags:             flags,
			Name:              name,
			Kind:              tracepb.Span_SPAN_KIND_SERVER,
			StartTimeUnixNano: 1544712660000000000,
			EndTimeUnixNano:   1544712661000000000,
			Attributes: []*commonpb.KeyValue{
				{Key: "http.route", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "/cart"}}},
			},
		}
	}
	return []*tracepb.Span{
		span(1, "GET /cart", 1, ""),
		span(2, "POST /checkout", 0, ""), // not sampled by the producer: still continued
		span(3, "charge card", 1|1<<8, "vendor=abc,other=1"),
	}
}

// writeEntries writes spans to Redis exactly as Tracestream does: the repository's encoder turns
// an OTLP request into entries of the format, and each entry is XADDed with its fields in order.
func writeEntries(t *testing.T, ctx context.Context, rdb redis.Cmdable, format, stream string, spans []*tracepb.Span) []written {
	t.Helper()
	req := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{
			{Key: "stream", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: stream}}},
		}},
		ScopeSpans: []*tracepb.ScopeSpans{{Scope: &commonpb.InstrumentationScope{Name: "test"}, Spans: spans}},
	}}}
	raw, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := otlpwire.Validate(raw); err != nil {
		t.Fatal(err)
	}
	enc, err := encode.New(config.Stream{KeyTemplate: "{stream}", Format: format})
	if err != nil {
		t.Fatal(err)
	}
	var b entry.Batch
	if r := enc.EncodeTraces(&b, otlpwire.NewTraces(raw), nil, 0); r.Encoded != len(spans) {
		t.Fatalf("encoded %d of %d spans: %v", r.Encoded, len(spans), r.FirstRejection)
	}
	var out []written
	for i := range b.Len() {
		var values []any
		for j := range b.NumFields(i) {
			n, v := b.FieldPair(i, j)
			values = append(values, string(n), string(v))
		}
		key := string(b.Key(i))
		if key != stream {
			t.Fatalf("entry %d has key %q, want %q", i, key, stream)
		}
		id, err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: key, Values: values}).Result()
		if err != nil {
			t.Fatalf("XADD %s: %v", key, err)
		}
		out = append(out, written{
			id:         id,
			traceID:    hex.EncodeToString(spans[i].TraceId),
			spanID:     hex.EncodeToString(spans[i].SpanId),
			name:       spans[i].Name,
			traceState: spans[i].TraceState,
		})
	}
	return out
}

// parseLines returns the printed span lines by entry id, failing on any other line.
func parseLines(t *testing.T, out string) map[string][]string {
	t.Helper()
	lines := map[string][]string{}
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		m := lineRE.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("unexpected output line %q in:\n%s", l, out)
		}
		if _, dup := lines[m[1]]; dup {
			t.Fatalf("entry %s printed twice in:\n%s", m[1], out)
		}
		lines[m[1]] = m[2:]
	}
	return lines
}

// checkContinued asserts that each entry got exactly one line, whose trace is the entry's trace,
// whose parent is the entry's span, and whose span is new.
func checkContinued(t *testing.T, out string, entries []written) {
	t.Helper()
	lines := parseLines(t, out)
	if len(lines) != len(entries) {
		t.Fatalf("%d lines for %d entries:\n%s", len(lines), len(entries), out)
	}
	seen := map[string]bool{}
	for _, e := range entries {
		l, ok := lines[e.id]
		if !ok {
			t.Fatalf("no line for entry %s in:\n%s", e.id, out)
		}
		traceID, parent, span := l[0], l[1], l[2]
		if traceID != e.traceID {
			t.Errorf("entry %s: trace %s, want the entry's trace %s", e.id, traceID, e.traceID)
		}
		if parent != e.spanID {
			t.Errorf("entry %s: parent %s, want the entry's span %s", e.id, parent, e.spanID)
		}
		if span == e.spanID || span == strings.Repeat("0", 16) || seen[span] {
			t.Errorf("entry %s: span %s is not a new span id", e.id, span)
		}
		seen[span] = true
	}
}

// checkGroup asserts that the group has read want entries, none pending, and no lag.
func checkGroup(t *testing.T, ctx context.Context, rdb redis.Cmdable, stream, group string, want int64) {
	t.Helper()
	pending, err := rdb.XPending(ctx, stream, group).Result()
	if err != nil {
		t.Fatalf("XPENDING %s %s: %v", stream, group, err)
	}
	if pending.Count != 0 {
		t.Errorf("XPENDING %s %s: %d entries pending, want 0 (all acknowledged)", stream, group, pending.Count)
	}
	g, err := groupInfo(ctx, rdb, stream, group)
	if err != nil {
		t.Fatal(err)
	}
	if g.EntriesRead != want || g.Lag != 0 || g.Pending != 0 {
		t.Errorf("XINFO GROUPS %s: entries-read %d, lag %d, pending %d; want %d, 0, 0",
			stream, g.EntriesRead, g.Lag, g.Pending, want)
	}
}

func testOptions(stream string) options {
	return options{stream: stream, group: "example", consumer: "test", block: 100 * time.Millisecond, createGroupAt: "0"}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestConsumeContinuesTheTraceOfEachEntry(t *testing.T) {
	srv := redistest.Standalone(t)
	rdb := srv.Client(t)
	for _, format := range []string{config.FormatJSON, config.FormatFlat, config.FormatOTLP} {
		t.Run(format+" entries", func(t *testing.T) {
			ctx := ctxFor(t)
			stream := "traces:" + format
			entries := writeEntries(t, ctx, rdb, format, stream, testSpans())
			opts := testOptions(stream)
			opts.count = len(entries)

			var out bytes.Buffer
			rec := tracetest.NewSpanRecorder()
			tp := newTracerProvider(&out, sdktrace.WithSpanProcessor(rec))
			n, err := consume(ctx, rdb, opts, tp.Tracer("test"), &out)
			if err != nil || n != len(entries) {
				t.Fatalf("consume = %d, %v; want %d, nil", n, err, len(entries))
			}
			checkContinued(t, out.String(), entries)
			checkGroup(t, ctx, rdb, stream, opts.group, int64(len(entries)))

			spans := rec.Ended()
			if len(spans) != len(entries) {
				t.Fatalf("%d spans ended, want %d", len(spans), len(entries))
			}
			for i, s := range spans {
				e := entries[i]
				if want := "process " + e.name; s.Name() != want {
					t.Errorf("span %d is named %q, want %q", i, s.Name(), want)
				}
				if s.SpanKind() != trace.SpanKindConsumer || !s.Parent().IsRemote() {
					t.Errorf("span %d: kind %s, remote parent %t; want a consumer span with a remote parent", i, s.SpanKind(), s.Parent().IsRemote())
				}
				if got := s.SpanContext().TraceState().String(); got != e.traceState {
					t.Errorf("span %d: tracestate %q, want the entry's %q", i, got, e.traceState)
				}
			}
		})
	}
}

func TestConsumeGroupStartAndRedelivery(t *testing.T) {
	srv := redistest.Standalone(t)
	rdb := srv.Client(t)
	cases := map[string]struct {
		// before runs before consume, and returns the entries consume must process.
		before func(t *testing.T, ctx context.Context, opts options) []written
		// skipped is how many of them have no traceparent.
		skipped int
	}{
		"a group created at $ ignores the entries already in the stream": {
			before: func(t *testing.T, ctx context.Context, opts options) []written {
				writeEntries(t, ctx, rdb, config.FormatJSON, opts.stream, testSpans()[:2])
				if err := createGroup(ctx, rdb, opts.stream, opts.group, "$"); err != nil {
					t.Fatal(err)
				}
				return writeEntries(t, ctx, rdb, config.FormatJSON, opts.stream, testSpans()[2:])
			},
		},
		"an existing group is kept (BUSYGROUP is not an error)": {
			before: func(t *testing.T, ctx context.Context, opts options) []written {
				all := writeEntries(t, ctx, rdb, config.FormatFlat, opts.stream, testSpans())
				if err := createGroup(ctx, rdb, opts.stream, opts.group, "0"); err != nil {
					t.Fatal(err)
				}
				return all
			},
		},
		"entries delivered to this consumer but not acknowledged are processed again": {
			before: func(t *testing.T, ctx context.Context, opts options) []written {
				all := writeEntries(t, ctx, rdb, config.FormatOTLP, opts.stream, testSpans())
				if err := createGroup(ctx, rdb, opts.stream, opts.group, "0"); err != nil {
					t.Fatal(err)
				}
				// A previous run that read two entries and stopped before XACK.
				err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
					Group: opts.group, Consumer: opts.consumer, Streams: []string{opts.stream, ">"}, Count: 2, Block: -1,
				}).Err()
				if err != nil {
					t.Fatal(err)
				}
				return all
			},
		},
		"an entry without a traceparent is acknowledged and skipped": {
			before: func(t *testing.T, ctx context.Context, opts options) []written {
				all := writeEntries(t, ctx, rdb, config.FormatJSON, opts.stream, testSpans()[:1])
				for _, values := range [][]any{
					{"data", `{"name":"no traceparent"}`},
					{"traceparent", "00-00000000000000000000000000000000-eee19b7ec3c1b174-01"},
				} {
					id, err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: opts.stream, Values: values}).Result()
					if err != nil {
						t.Fatal(err)
					}
					all = append(all, written{id: id})
				}
				return all
			},
			skipped: 2,
		},
	}
	i := 0
	for name, tc := range cases {
		i++
		stream := fmt.Sprintf("traces:case%d", i)
		t.Run(name, func(t *testing.T) {
			ctx := ctxFor(t)
			opts := testOptions(stream)
			entries := tc.before(t, ctx, opts)
			opts.count = len(entries)

			var out bytes.Buffer
			tp := newTracerProvider(&out)
			n, err := consume(ctx, rdb, opts, tp.Tracer("test"), &out)
			if err != nil || n != len(entries) {
				t.Fatalf("consume = %d, %v; want %d, nil\n%s", n, err, len(entries), out.String())
			}
			var spanLines strings.Builder
			skipped := 0
			for _, l := range strings.SplitAfter(out.String(), "\n") {
				if strings.HasSuffix(l, " skipped: no valid traceparent\n") {
					skipped++
				} else {
					spanLines.WriteString(l)
				}
			}
			if skipped != tc.skipped {
				t.Errorf("%d entries skipped, want %d:\n%s", skipped, tc.skipped, out.String())
			}
			checkContinued(t, spanLines.String(), entries[:len(entries)-tc.skipped])
			// Whatever the group started at, it has now read the whole stream.
			length, err := rdb.XLen(ctx, stream).Result()
			if err != nil {
				t.Fatal(err)
			}
			checkGroup(t, ctx, rdb, stream, opts.group, length)
			g, err := groupInfo(ctx, rdb, stream, opts.group)
			if err != nil {
				t.Fatal(err)
			}
			if last := entries[len(entries)-1].id; g.LastDeliveredID != last {
				t.Errorf("last delivered id %s, want the last entry %s", g.LastDeliveredID, last)
			}
		})
	}
}

func TestConsumeRunsUntilCancelled(t *testing.T) {
	srv := redistest.Standalone(t)
	rdb := srv.Client(t)
	ctx := ctxFor(t)
	opts := testOptions("traces:live")

	var mu sync.Mutex
	var out bytes.Buffer
	tp := newTracerProvider(&lockedWriter{mu: &mu, w: &out})
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := consume(runCtx, rdb, opts, tp.Tracer("test"), &lockedWriter{mu: &mu, w: &out})
		done <- result{n, err}
	}()

	// Entries written while the consumer waits in XREADGROUP BLOCK.
	entries := writeEntries(t, ctx, rdb, config.FormatJSON, opts.stream, testSpans())
	wait.For(t, 10*time.Second, "all entries processed", func() error {
		g, err := groupInfo(ctx, rdb, opts.stream, opts.group)
		if err != nil {
			return err
		}
		if g.EntriesRead != int64(len(entries)) || g.Pending != 0 {
			return fmt.Errorf("entries-read %d, pending %d", g.EntriesRead, g.Pending)
		}
		return nil
	})
	cancel()
	select {
	case r := <-done:
		if r.err != nil || r.n != len(entries) {
			t.Fatalf("consume = %d, %v; want %d, nil", r.n, r.err, len(entries))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("consume did not return after its context was cancelled")
	}
	mu.Lock()
	defer mu.Unlock()
	checkContinued(t, out.String(), entries)
	checkGroup(t, ctx, rdb, opts.stream, opts.group, int64(len(entries)))
}

func TestRunAuthenticatesWithThePasswordFile(t *testing.T) {
	srv := redistest.Standalone(t, redistest.WithACL(""))
	ctx := ctxFor(t)
	rdb := srv.Client(t)
	entries := writeEntries(t, ctx, rdb, config.FormatJSON, "traces:checkout", testSpans())
	wrongPassword := filepath.Join(t.TempDir(), "wrong")
	if err := os.WriteFile(wrongPassword, []byte("not-the-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	cases := map[string]struct {
		passwordFile string
		wantErr      string
	}{
		"the password file of the ACL user is accepted": {passwordFile: srv.ACL().PasswordFile()},
		"a wrong password fails without showing it":     {passwordFile: wrongPassword, wantErr: "WRONGPASS"},
		"a missing password file is named":              {passwordFile: "/nonexistent/password", wantErr: "--password-file: open /nonexistent/password"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			opts := testOptions("traces:checkout")
			opts.redisAddr, opts.username, opts.passwordFile = srv.Addr(), srv.ACL().Username(), tc.passwordFile
			opts.count = len(entries)
			var out bytes.Buffer
			err := run(ctx, opts, &out)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("run error = %v; want one containing %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error()+out.String(), "not-the-password") {
					t.Errorf("the password appears in the error or the output: %v\n%s", err, out.String())
				}
				return
			}
			if err != nil {
				t.Fatalf("run: %v\n%s", err, out.String())
			}
			text := out.String()
			lines := strings.SplitAfter(text, "\n")
			summary := lines[len(lines)-2]
			want := "consumed 3 entries from traces:checkout as example/test; group entries-read 3, lag 0, pending 0\n"
			if summary != want {
				t.Errorf("summary %q, want %q", summary, want)
			}
			checkContinued(t, strings.TrimSuffix(text, summary), entries)
		})
	}
}

func TestParseFlags(t *testing.T) {
	host, _ := os.Hostname()
	cases := map[string]struct {
		args    []string
		want    options
		wantErr string
	}{
		"no flags gives the documented defaults": {
			want: options{redisAddr: "127.0.0.1:6379", stream: "traces:checkout", group: "example", consumer: host, block: 2 * time.Second, createGroupAt: "0"},
		},
		"every flag is read": {
			args: []string{"--redis", "10.0.0.1:7000", "--username", "u", "--password-file", "/p", "--stream", "s", "--group", "g",
				"--consumer", "c", "--count", "5", "--block", "250ms", "--create-group-at", "$"},
			want: options{redisAddr: "10.0.0.1:7000", username: "u", passwordFile: "/p", stream: "s", group: "g", consumer: "c",
				count: 5, block: 250 * time.Millisecond, createGroupAt: "$"},
		},
		"a group start other than 0 or $ is refused": {args: []string{"--create-group-at", "1-0"}, wantErr: `--create-group-at: "1-0" is neither "0" nor "$"`},
		"a negative count is refused":                {args: []string{"--count", "-1"}, wantErr: "--count: -1 is negative"},
		"a block of 0 (wait forever) is refused":     {args: []string{"--block", "0"}, wantErr: "--block: 0s is too short"},
		"an empty stream is refused":                 {args: []string{"--stream", ""}, wantErr: "--stream: required"},
		"there is no password flag":                  {args: []string{"--password", "secret"}, wantErr: "flag provided but not defined: -password"},
		"arguments are refused":                      {args: []string{"extra"}, wantErr: `unexpected argument "extra"`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var stderr bytes.Buffer
			got, err := parseFlags(tc.args, &stderr)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseFlags error = %v; want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseFlags = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestDescribeEntryIgnoresWhatItCannotRead(t *testing.T) {
	cases := map[string]struct {
		values map[string]any
		want   entryInfo
	}{
		"json data that does not parse":   {values: map[string]any{"data": "{"}, want: entryInfo{}},
		"otlp bytes that do not parse":    {values: map[string]any{"otlp": "\xff\xff"}, want: entryInfo{}},
		"flat fields with a name":         {values: map[string]any{"name": "n", "trace_state": "a=b"}, want: entryInfo{name: "n", traceState: "a=b"}},
		"an entry of a deleted id (nil)":  {values: nil, want: entryInfo{}},
		"otlp data that holds no span":    {values: map[string]any{"otlp": ""}, want: entryInfo{}},
		"json data with only a span name": {values: map[string]any{"data": `{"name":"x"}`}, want: entryInfo{name: "x"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := describeEntry(tc.values); got != tc.want {
				t.Errorf("describeEntry = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// lockedWriter serialises writes to a buffer that the test reads while a consumer writes.
type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
