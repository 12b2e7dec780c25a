package encode

import (
	"math"
	"strconv"
	"testing"
)

func TestDurationAlwaysFitsInt64(t *testing.T) {
	cases := map[string]struct {
		start, end uint64
		want       string
	}{
		"a normal span":                        {100, 350, "250"},
		"an inverted span is negative":         {350, 100, "-250"},
		"an absurdly long span is clamped":     {0, math.MaxUint64, "9223372036854775807"},
		"an absurdly inverted span is clamped": {math.MaxUint64, 0, "-9223372036854775808"},
		"the largest inverted int64 is exact":  {1 << 63, 0, "-9223372036854775808"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := string(appendDuration(nil, tc.start, tc.end))
			if got != tc.want {
				t.Fatalf("appendDuration(%d, %d) = %s, want %s", tc.start, tc.end, got, tc.want)
			}
			if _, err := strconv.ParseInt(got, 10, 64); err != nil {
				t.Fatalf("%s does not fit int64: %v", got, err)
			}
		})
	}
}
