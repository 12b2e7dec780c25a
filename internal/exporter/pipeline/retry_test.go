package pipeline

import (
	"testing"
	"time"

	"github.com/tracestream/tracestream/internal/redisconn"
)

func TestTheRetryPolicyFollowsTheClass(t *testing.T) {
	cases := map[string]struct {
		class              redisconn.Class
		durable, abandoned bool
		want               verdict
	}{
		"a connection failure is retried":                             {class: redisconn.ClassConnection, want: retryEntry},
		"a timeout is retried":                                        {class: redisconn.ClassTimeout, want: retryEntry},
		"a failover's READONLY is retried":                            {class: redisconn.ClassReadOnly, want: retryEntry},
		"a TLS failure is retried (a rotated certificate can fix it)": {class: redisconn.ClassTLS, want: retryEntry},
		"WRONGTYPE rejects the entry":                                 {class: redisconn.ClassWrongType, want: rejectEntry},
		"NOPERM rejects the entry, not the connection":                {class: redisconn.ClassNoPerm, want: rejectEntry},
		"an unknown error rejects the entry":                          {class: redisconn.ClassOther, want: rejectEntry},
		"refused credentials fail a client's request at once":         {class: redisconn.ClassAuth, want: failRequest},
		"refused credentials are waited out by a queue record":        {class: redisconn.ClassAuth, durable: true, want: retryEntry},
		"an abandoned request's entry is not retried":                 {class: redisconn.ClassConnection, abandoned: true, want: abandonEntry},
		"an abandoned request's refused entry is still counted":       {class: redisconn.ClassWrongType, abandoned: true, want: rejectEntry},
		"an abandoned request still learns of refused credentials":    {class: redisconn.ClassAuth, abandoned: true, want: failRequest},
		"a queue record is rejected for good like any other":          {class: redisconn.ClassWrongType, durable: true, want: rejectEntry},
	}
	for name, c := range cases {
		if got := decide(c.class, c.durable, c.abandoned); got != c.want {
			t.Errorf("%s: verdict %d, want %d", name, got, c.want)
		}
	}
}

func TestBackoffDoublesUpToItsBoundWithFullJitter(t *testing.T) {
	b := newBackoff(50*time.Millisecond, 300*time.Millisecond)
	var asked []time.Duration
	b.jitter = func(n int64) int64 {
		asked = append(asked, time.Duration(n))
		return n - 1 // the longest wait jitter can give
	}
	var waits []time.Duration
	for range 5 {
		waits = append(waits, b.next())
	}
	wantWaits := []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond}
	for i := range wantWaits {
		if waits[i] != wantWaits[i] {
			t.Fatalf("waits %v, want at most %v", waits, wantWaits)
		}
		// jitter draws from [0, bound]: a wait of 0 is possible, one past the bound is not.
		if asked[i] != wantWaits[i]+1 {
			t.Fatalf("jitter asked for [0, %v), want [0, %v]", asked[i], wantWaits[i])
		}
	}
	b.jitter = func(int64) int64 { return 0 }
	if d := b.next(); d != 0 {
		t.Fatalf("full jitter may wait 0, got %v", d)
	}
}
