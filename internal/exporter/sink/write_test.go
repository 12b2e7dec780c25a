package sink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/redisconn"
)

// fakeRedis is a go-redis hook that answers pipelines itself, so that tests can see the
// commands Write builds and choose their outcomes without a server.
type fakeRedis struct {
	// pipelines are the commands of each pipeline as redis-cli would show them. Write
	// clears its argument buffers when it returns, so they are rendered when sent.
	pipelines [][]string
	reply     func(cmds []redis.Cmder)
	// err is what the pipeline returns, as Exec's error.
	err error
}

func (f *fakeRedis) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (f *fakeRedis) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (f *fakeRedis) ProcessPipelineHook(redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(_ context.Context, cmds []redis.Cmder) error {
		lines := make([]string, len(cmds))
		for i, c := range cmds {
			lines[i] = render(c)
		}
		f.pipelines = append(f.pipelines, lines)
		if f.reply != nil {
			f.reply(cmds)
		} else {
			replyOK(cmds)
		}
		return f.err
	}
}

// replyOK answers every command as Redis would when all goes well.
func replyOK(cmds []redis.Cmder) {
	for i, c := range cmds {
		switch c := c.(type) {
		case *redis.StringCmd:
			c.SetVal(fmt.Sprintf("%d-0", i+1))
		case *redis.BoolCmd:
			c.SetVal(true)
		case *redis.IntCmd:
			c.SetVal(0)
		}
	}
}

func newFakeSink(t *testing.T, st config.Stream) (*Sink, *fakeRedis) {
	t.Helper()
	s := newSink(t, config.Redis{Addresses: []string{"127.0.0.1:1"}}, st)
	f := &fakeRedis{}
	s.client.AddHook(f)
	// The hook sees go-redis's commands: Write builds the same commands for both paths, and
	// the RESP path's own bytes are tested against real servers.
	s.resp = nil
	return s, f
}

// render spells a command the way redis-cli would show it.
func render(c redis.Cmder) string {
	words := make([]string, len(c.Args()))
	for i, a := range c.Args() {
		switch a := a.(type) {
		case string:
			words[i] = a
		case *string:
			words[i] = *a
		case *rawArg:
			words[i] = string(a.b)
		case *bulkArg:
			words[i] = string(a.b)
		default:
			words[i] = fmt.Sprintf("%T(%v)", a, a)
		}
	}
	return strings.Join(words, " ")
}

func TestWriteBuildsCommands(t *testing.T) {
	ss := spans(3, "a", "b")
	ss[2].fields = [][2]string{{"span", "2"}, {"bin", "\x00\xff\r\n"}}
	fields := func(s span) string {
		var w []string
		for _, f := range s.fields {
			w = append(w, f[0], f[1])
		}
		return strings.Join(w, " ")
	}
	hour := config.Duration{Duration: time.Hour}
	cases := map[string]struct {
		stream config.Stream
		idmp   bool
		// want uses MINID for the trimming threshold, which depends on the clock.
		want []string
	}{
		"without options each span is one XADD": {
			want: []string{
				"xadd a * " + fields(ss[0]),
				"xadd b * " + fields(ss[1]),
				"xadd a * " + fields(ss[2]),
			},
		},
		"maxLen trims approximately on each XADD": {
			stream: config.Stream{MaxLen: 1000},
			want: []string{
				"xadd a maxlen ~ 1000 * " + fields(ss[0]),
				"xadd b maxlen ~ 1000 * " + fields(ss[1]),
				"xadd a maxlen ~ 1000 * " + fields(ss[2]),
			},
		},
		"minIdAge trims approximately on each XADD": {
			stream: config.Stream{MinIDAge: hour},
			want: []string{
				"xadd a minid ~ MINID * " + fields(ss[0]),
				"xadd b minid ~ MINID * " + fields(ss[1]),
				"xadd a minid ~ MINID * " + fields(ss[2]),
			},
		},
		"maxLen and minIdAge add one XTRIM per key": {
			stream: config.Stream{MaxLen: 10, MinIDAge: hour},
			want: []string{
				"xadd a maxlen ~ 10 * " + fields(ss[0]),
				"xadd b maxlen ~ 10 * " + fields(ss[1]),
				"xadd a maxlen ~ 10 * " + fields(ss[2]),
				"xtrim a minid ~ MINID",
				"xtrim b minid ~ MINID",
			},
		},
		"a TTL adds one EXPIRE per key": {
			stream: config.Stream{TTL: hour},
			want: []string{
				"xadd a * " + fields(ss[0]),
				"xadd b * " + fields(ss[1]),
				"xadd a * " + fields(ss[2]),
				"expire a 3600",
				"expire b 3600",
			},
		},
		"IDMP names the producer and the span": {
			idmp: true, stream: config.Stream{MaxLen: 5, MinIDAge: hour, TTL: hour},
			want: []string{
				"xadd a idmp test-producer " + hexID(ss[0]) + " maxlen ~ 5 * " + fields(ss[0]),
				"xadd b idmp test-producer " + hexID(ss[1]) + " maxlen ~ 5 * " + fields(ss[1]),
				"xadd a idmp test-producer " + hexID(ss[2]) + " maxlen ~ 5 * " + fields(ss[2]),
				"xtrim a minid ~ MINID",
				"expire a 3600",
				"xtrim b minid ~ MINID",
				"expire b 3600",
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s, f := newFakeSink(t, tc.stream)
			s.idmp.Store(tc.idmp)
			// Two writes: the second reuses the pooled buffers and must not see the first's.
			for range 2 {
				before := time.Now().Add(-tc.stream.MinIDAge.Duration).UnixMilli()
				errs := write(t, t.Context(), s, ss)
				after := time.Now().Add(-tc.stream.MinIDAge.Duration).UnixMilli()
				for i, err := range errs {
					if err != nil {
						t.Fatalf("entry %d: %v", i, err)
					}
				}
				var got []string
				for _, line := range f.pipelines[len(f.pipelines)-1] {
					if _, rest, ok := strings.Cut(line, "minid ~ "); ok {
						ms, _, _ := strings.Cut(rest, " ")
						if n, err := strconv.ParseInt(ms, 10, 64); err != nil || n < before || n > after {
							t.Fatalf("%q: MINID %q is not now - minIdAge (%d..%d)", line, ms, before, after)
						}
						line = strings.Replace(line, "minid ~ "+ms, "minid ~ MINID", 1)
					}
					got = append(got, line)
				}
				if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
					t.Fatalf("pipeline:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
				}
			}
		})
	}
}

func TestWriteOutcomes(t *testing.T) {
	eof := func(cmds []redis.Cmder, read int) {
		// What go-redis does when the connection drops after read replies: the read
		// commands carry their values, and then every command gets the error.
		replyOK(cmds[:read])
		for _, c := range cmds {
			if c.Err() == nil {
				c.SetErr(io.EOF)
			}
		}
	}
	cases := map[string]struct {
		stream    config.Stream
		idmp      bool
		reply     func(cmds []redis.Cmder)
		execErr   error
		want      []redisconn.Class
		wantIDMP  bool
		wantInErr string
	}{
		"all replies read: every entry landed": {
			reply: replyOK,
			want:  []redisconn.Class{redisconn.ClassNone, redisconn.ClassNone, redisconn.ClassNone, redisconn.ClassNone},
		},
		"a connection lost after two replies fails the other entries": {
			reply: func(cmds []redis.Cmder) { eof(cmds, 2) },
			want:  []redisconn.Class{redisconn.ClassNone, redisconn.ClassNone, redisconn.ClassConnection, redisconn.ClassConnection},
		},
		"an error reply fails only its entry": {
			reply: func(cmds []redis.Cmder) {
				replyOK(cmds)
				cmds[1].SetErr(replyError("WRONGTYPE Operation against a key holding the wrong kind of value"))
				cmds[1].(*redis.StringCmd).SetVal("")
			},
			want:      []redisconn.Class{redisconn.ClassNone, redisconn.ClassWrongType, redisconn.ClassNone, redisconn.ClassNone},
			wantInErr: `stream "b"`,
		},
		"a failed EXPIRE fails the last entry of its key": {
			stream: config.Stream{TTL: config.Duration{Duration: time.Minute}},
			reply: func(cmds []redis.Cmder) {
				// XADD a, b, a, b, then EXPIRE a, EXPIRE b: the cut comes before the
				// second EXPIRE's reply.
				eof(cmds, 5)
			},
			want:      []redisconn.Class{redisconn.ClassNone, redisconn.ClassNone, redisconn.ClassNone, redisconn.ClassConnection},
			wantInErr: `setting the TTL of stream "b"`,
		},
		"a handshake that failed before sending fails every entry with Exec's error": {
			// go-redis v9.23 returns WRONGPASS from Exec and sets no command's error.
			reply:   func([]redis.Cmder) {},
			execErr: replyError("WRONGPASS invalid username-password pair or user is disabled."),
			want:    []redisconn.Class{redisconn.ClassAuth, redisconn.ClassAuth, redisconn.ClassAuth, redisconn.ClassAuth},
		},
		"no reply and no error is a connection failure": {
			reply: func([]redis.Cmder) {},
			want:  []redisconn.Class{redisconn.ClassConnection, redisconn.ClassConnection, redisconn.ClassConnection, redisconn.ClassConnection},
		},
		"a server without IDMP turns it off and asks for a retry": {
			idmp: true,
			reply: func(cmds []redis.Cmder) {
				for _, c := range cmds {
					c.SetErr(replyError("ERR Invalid stream ID specified as stream command argument"))
				}
			},
			want:     []redisconn.Class{redisconn.ClassTryAgain, redisconn.ClassTryAgain, redisconn.ClassTryAgain, redisconn.ClassTryAgain},
			wantIDMP: false,
		},
		"IDMP stays on when the server accepts it": {
			idmp:     true,
			reply:    replyOK,
			want:     []redisconn.Class{redisconn.ClassNone, redisconn.ClassNone, redisconn.ClassNone, redisconn.ClassNone},
			wantIDMP: true,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s, f := newFakeSink(t, tc.stream)
			s.idmp.Store(tc.idmp)
			f.reply, f.err = tc.reply, tc.execErr
			errs := write(t, t.Context(), s, spans(4, "a", "b"))
			for i, err := range errs {
				if got := redisconn.Classify(err); got != tc.want[i] {
					t.Errorf("entry %d: %v (class %s), want class %s", i, err, got, tc.want[i])
				}
				if err != nil && tc.wantInErr != "" && !strings.Contains(err.Error(), tc.wantInErr) {
					t.Errorf("entry %d: %q does not say %q", i, err, tc.wantInErr)
				}
			}
			if s.idmp.Load() != tc.wantIDMP {
				t.Errorf("IDMP on = %v after the write, want %v", s.idmp.Load(), tc.wantIDMP)
			}
		})
	}
}

func TestWriteOfAnEmptyBatchSendsNothing(t *testing.T) {
	s, f := newFakeSink(t, config.Stream{})
	s.Write(t.Context(), batchOf(nil), nil)
	if len(f.pipelines) != 0 {
		t.Fatalf("sent %d pipelines for an empty batch", len(f.pipelines))
	}
}

func TestWriteReplacesStaleErrors(t *testing.T) {
	s, _ := newFakeSink(t, config.Stream{})
	errs := []error{errors.New("stale"), errors.New("stale")}
	s.Write(t.Context(), batchOf(spans(2, "a")), errs)
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("errs = %v, want the stale errors replaced by nil", errs)
	}
}
