package encode

import (
	"fmt"
	"testing"
	"time"

	"github.com/tracestream/tracestream/internal/exporter/config"
)

func TestKeyLimitSendsNewKeysPastTheBoundToOverflow(t *testing.T) {
	k := newKeyLimit(3, "traces:overflow", time.Hour)
	now := time.Unix(0, 0)
	k.now = func() time.Time { return now }
	k.rotateAt = now.Add(time.Hour)
	steps := []struct {
		name    string
		advance time.Duration
		key     string
		admit   bool
		live    int
	}{
		{"the first key is admitted", 0, "a", true, 1},
		{"a second and third are", 0, "b", true, 2},
		{"the third key fills the bound", 0, "c", true, 3},
		{"a fourth new key overflows", 0, "d", false, 3},
		{"a known key is still admitted at the bound", 0, "a", true, 3},
		{"after a window, keys used in it stay live", time.Hour, "a", true, 3},
		{"a new key still overflows while b and c are one window old", 0, "e", false, 3},
		{"after two windows, unused keys are forgotten and a new key is admitted", time.Hour, "f", true, 1},
		{"a long quiet forgets every key", 3 * time.Hour, "g", true, 1},
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		if got := k.admit([]byte(s.key)); got != s.admit {
			t.Fatalf("%s: admit(%q) = %v, want %v", s.name, s.key, got, s.admit)
		}
		if got := k.live(); got != s.live {
			t.Fatalf("%s: %d live keys, want %d", s.name, got, s.live)
		}
	}
	if n := k.overflowed.Load(); n != 2 {
		t.Fatalf("%d spans overflowed, want 2", n)
	}
}

func TestOverflowKeyDefaultsToTheTemplateRenderedAsOverflow(t *testing.T) {
	cases := map[string]struct {
		stream config.Stream
		want   string
	}{
		"the default template":           {config.Stream{KeyTemplate: "traces:{service.name}"}, "traces:overflow"},
		"two placeholders":               {config.Stream{KeyTemplate: "{tenant}:traces:{service.name}"}, "overflow:traces:overflow"},
		"a configured overflow key wins": {config.Stream{KeyTemplate: "traces:{service.name}", OverflowKey: "traces:too-many"}, "traces:too-many"},
		"a hash tag stays a hash tag":    {config.Stream{KeyTemplate: "traces:{{{service.name}}}"}, "traces:{overflow}"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := OverflowKey(tc.stream); got != tc.want {
				t.Fatalf("OverflowKey = %q, want %q", got, tc.want)
			}
		})
	}
}

func BenchmarkKeyLimitKnownKey(b *testing.B) {
	k := newKeyLimit(10_000, "overflow", time.Hour)
	keys := make([][]byte, 100)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "traces:service-%d", i)
		k.admit(keys[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k.admit(keys[i%len(keys)])
	}
}

// Without a TTL Redis never drops a stream, so the bound never forgets a key either.
func TestKeyLimitWithoutATTLNeverForgets(t *testing.T) {
	k := newKeyLimit(2, "overflow", 0)
	now := time.Unix(0, 0)
	k.now = func() time.Time { return now }
	for _, key := range []string{"a", "b"} {
		if !k.admit([]byte(key)) {
			t.Fatalf("%s refused under the bound", key)
		}
	}
	now = now.Add(100 * time.Hour)
	if k.admit([]byte("c")) {
		t.Fatal("a new key was admitted past the bound after a long quiet, with no TTL to drop the old streams")
	}
	if !k.admit([]byte("a")) {
		t.Fatal("a known key was refused")
	}
}
