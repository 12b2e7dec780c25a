package controller

import (
	"strings"
	"testing"
	"time"

	"github.com/tracestream/tracestream/internal/exporter/telemetry"
)

// TestLogHeld: a Deployment pod's log keeps its Deployment while Redis is out of reach, while
// the log holds records and the pod has not written for handoverWriteAge or failed after its
// last write (Redis answering PING but refusing or holding writes), and while the backlog is
// larger than what it drains at SIGTERM; not when it has no log, or an empty one.
func TestLogHeld(t *testing.T) {
	now := time.Now()
	at := func(d time.Duration) *time.Time { x := now.Add(-d); return &x }
	q := func(records, bytes int64) *telemetry.QueueStats {
		return &telemetry.QueueStats{Records: records, Bytes: bytes}
	}
	tests := map[string]struct {
		s    telemetry.Status
		want string
	}{
		"no log":                        {telemetry.Status{}, ""},
		"an empty log, Redis reachable": {telemetry.Status{RedisReachable: true, PersistentQueue: q(0, 0)}, ""},
		"writing":                       {telemetry.Status{RedisReachable: true, LastWrite: at(time.Second), PersistentQueue: q(7, 4096)}, ""},
		"Redis not reachable":           {telemetry.Status{PersistentQueue: q(0, 0)}, "writes its log (0 records) to Redis"},
		"records and no write yet":      {telemetry.Status{RedisReachable: true, PersistentQueue: q(3, 100)}, "writes its log (3 records) to Redis"},
		"records and no recent write":   {telemetry.Status{RedisReachable: true, LastWrite: at(time.Minute), PersistentQueue: q(3, 100)}, "writes its log (3 records) to Redis"},
		"an error after the last write": {telemetry.Status{RedisReachable: true, LastWrite: at(2 * time.Second), LastErrorClass: "oom", LastErrorTime: at(time.Second), PersistentQueue: q(3, 100)}, "writes its log (3 records) to Redis"},
		"a backlog past the bound":      {telemetry.Status{RedisReachable: true, LastWrite: at(time.Second), PersistentQueue: q(900, 65<<20)}, "has less than 64 MiB in its log"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := logHeld(&tc.s, now)
			if (tc.want == "") != (got == "") || !strings.HasPrefix(got, tc.want) {
				t.Errorf("logHeld = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestPodMonitorKindMissingIsRememberedForKindRecheck: after a miss the RESTMapper is not asked
// again (each miss is a discovery of the whole API) until KindRecheck has passed.
func TestPodMonitorKindMissingIsRememberedForKindRecheck(t *testing.T) {
	r := &Reconciler{KindRecheck: 50 * time.Millisecond}
	if r.podMonitorKindMissing() {
		t.Fatal("missing before any lookup")
	}
	r.rememberPodMonitorKindMissing()
	if !r.podMonitorKindMissing() {
		t.Fatal("a miss just now is not remembered")
	}
	time.Sleep(60 * time.Millisecond)
	if r.podMonitorKindMissing() {
		t.Fatal("still remembered after KindRecheck")
	}
}
