package render

import (
	"testing"
	"time"
)

// TestPromDuration writes durations in the form the PodMonitor CRD's pattern accepts
// (^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$).
func TestPromDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		30 * time.Second:                   "30s",
		90 * time.Second:                   "1m30s",
		time.Hour:                          "1h",
		time.Hour + 5*time.Second:          "1h5s",
		26*time.Hour + 3*time.Minute:       "26h3m",
		1500 * time.Millisecond:            "1500ms",
		1500*time.Millisecond + time.Hour:  "3601500ms",
		time.Second + 400*time.Microsecond: "1s",
		0:                                  "0",
	} {
		if got := promDuration(d); got != want {
			t.Errorf("promDuration(%s) = %q, want %q", d, got, want)
		}
	}
}
