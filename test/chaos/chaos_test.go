//go:build chaos

// Package chaos is the fault-injection suite (make test-chaos): the real exporter binary, real
// redis-server processes and the OpenTelemetry SDK's retrying OTLP client, with faults injected
// while spans flow. An oracle (spanload) reads every stream back and counts acknowledged spans
// that were lost, duplicates, and the longest time the clients went without an acknowledgement.
// Each case logs its figures; docs/reliability.md collects them.
package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tracestream/tracestream/internal/testing/child"
	"github.com/tracestream/tracestream/internal/testing/redistest"
	"github.com/tracestream/tracestream/internal/testing/spanload"
	"github.com/tracestream/tracestream/internal/testing/wait"
)

var exporterBin, managerBin string

func TestMain(m *testing.M) {
	bins, cleanup, err := child.BuildMains("tracestream-chaos-", "../../cmd/exporter", "../../cmd/manager")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	exporterBin, managerBin = bins[0], bins[1]
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// exporter is the exporter binary as a process; restarts keep its ports.
type exporter struct {
	t                 *testing.T
	args              []string
	grpc, http, admin string
	cmd               *exec.Cmd
	done              chan struct{} // closed when cmd has exited; exitErr is then its Wait error
	exitErr           error
	log               string
	// alive is the admin path start waits for: /readyz (default) needs Redis; /healthz does not.
	alive string
	// prefix, when set, is a command that execs the binary with its arguments (prlimit ...), so
	// that the process, and its pid, are the exporter's.
	prefix []string
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

// startExporter runs the exporter against redisAddr with extra flags, and stops it when the
// test ends.
func startExporter(t *testing.T, redisAddr string, extra ...string) *exporter {
	t.Helper()
	return startExporterUnder(t, nil, redisAddr, extra...)
}

// startExporterUnder is startExporter with the binary run by prefix, a command that execs it
// (prlimit --nofile=N:N --).
func startExporterUnder(t *testing.T, prefix []string, redisAddr string, extra ...string) *exporter {
	t.Helper()
	e := &exporter{t: t, log: filepath.Join(t.TempDir(), "exporter.log"), alive: "/readyz", prefix: prefix}
	t.Cleanup(func() {
		if e.cmd != nil {
			_ = e.cmd.Process.Kill()
			<-e.done
		}
		if t.Failed() {
			b, _ := os.ReadFile(e.log)
			t.Logf("exporter log:\n%s", b)
		}
	})
	// freeAddr's ports are free when it returns, not when the exporter binds them: another
	// process may take one in between. Only that is tried again, with other ports.
	for attempt := 1; ; attempt++ {
		e.grpc, e.http, e.admin = freeAddr(t), freeAddr(t), freeAddr(t)
		e.args = append([]string{
			"--receivers.grpc.endpoint=" + e.grpc, "--receivers.http.endpoint=" + e.http, "--admin.endpoint=" + e.admin,
			"--redis.addresses=" + redisAddr,
		}, extra...)
		err := e.tryStart()
		if err == nil {
			return e
		}
		b, _ := os.ReadFile(e.log)
		if attempt < 3 && e.exited() && strings.Contains(string(b), "address already in use") {
			t.Logf("attempt %d: a port was taken before the exporter bound it; trying other ports", attempt)
			continue
		}
		t.Fatal(err)
	}
}

func (e *exporter) start() {
	e.t.Helper()
	if err := e.tryStart(); err != nil {
		e.t.Fatal(err)
	}
}

// tryStart starts the process and waits until e.alive answers 200; an exporter that exits
// first is reported at once, with its exit status.
func (e *exporter) tryStart() error {
	f, err := os.OpenFile(e.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	argv := slices.Concat(e.prefix, []string{exporterBin}, e.args)
	e.cmd = exec.Command(argv[0], argv[1:]...)
	e.cmd.Stdout, e.cmd.Stderr = f, f
	if err := child.Start(e.cmd); err != nil {
		return err
	}
	e.done = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { e.exitErr = c.Wait(); close(done) }(e.cmd, e.done)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if e.exited() {
			return fmt.Errorf("the exporter exited before %s answered: %w", e.alive, e.exitErr)
		}
		resp, err := http.Get("http://" + e.admin + e.alive)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s: %d", e.alive, resp.StatusCode)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the exporter up: not done within 20s: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// exited reports whether the process has ended by itself.
func (e *exporter) exited() bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (e *exporter) kill() {
	_ = e.cmd.Process.Kill()
	<-e.done
	e.cmd = nil
}

// terminate sends SIGTERM and returns how long the exporter took to exit, and its exit code.
func (e *exporter) terminate(timeout time.Duration) (time.Duration, int) {
	e.t.Helper()
	start := time.Now()
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.done:
		e.cmd = nil
		code := 0
		var exit *exec.ExitError
		if errors.As(e.exitErr, &exit) {
			code = exit.ExitCode()
		}
		return time.Since(start), code
	case <-time.After(timeout):
		e.t.Fatalf("the exporter did not exit within %v of SIGTERM", timeout)
		return 0, -1
	}
}

// waitAcked waits until the sender has n more acknowledged spans than now.
func waitAcked(t *testing.T, s *spanload.Sender, n int, what string) {
	t.Helper()
	base := s.Acked()
	wait.For(t, time.Minute, what, func() error {
		if got := s.Acked() - base; got < n {
			return fmt.Errorf("%d of %d spans acknowledged", got, n)
		}
		return nil
	})
}

func TestRedisRestartedTenTimesLosesNoAcknowledgedSpan(t *testing.T) {
	srv := redistest.Standalone(t)
	e := startExporter(t, srv.Addr())
	s := spanload.Send(t, e.grpc, "restarts", 4, 50, 10*time.Millisecond)
	waitAcked(t, s, 500, "spans flowing before the first restart")
	for i := range 10 {
		srv.Stop() // SIGTERM: Redis writes its AOF before it exits
		time.Sleep(300 * time.Millisecond)
		srv.Start()
		waitAcked(t, s, 200, fmt.Sprintf("spans flowing after restart %d", i+1))
	}
	o := s.Check(t, srv.Client(t), "traces:restarts")
	t.Logf("FIGURES redis restarted 10 times (300 ms down each): %s", o)
	if o.Lost != 0 || len(o.Failed) != 0 {
		t.Fatalf("%d acknowledged spans lost, failures after retries %v", o.Lost, o.Failed)
	}
}

func TestExporterKilledRepeatedlyLosesNoAcknowledgedSpan(t *testing.T) {
	srv := redistest.Standalone(t)
	e := startExporter(t, srv.Addr())
	s := spanload.Send(t, e.grpc, "kills", 4, 50, 10*time.Millisecond)
	waitAcked(t, s, 500, "spans flowing before the first kill")
	for i := range 5 {
		e.kill()
		e.start()
		waitAcked(t, s, 500, fmt.Sprintf("spans flowing after kill -9 number %d", i+1))
	}
	o := s.Check(t, srv.Client(t), "traces:kills")
	t.Logf("FIGURES exporter kill -9 five times under load, no write-ahead log: %s", o)
	if o.Lost != 0 || len(o.Failed) != 0 {
		t.Fatalf("%d acknowledged spans lost, failures after retries %v", o.Lost, o.Failed)
	}
}

// TestExporterKilledRepeatedlyWithThePersistentQueue kills the exporter five times under load
// with delivery.persistentQueue on; in three of the rounds Redis is down before the kill, so the
// spans acknowledged meanwhile exist only in the write-ahead log when the process dies.
func TestExporterKilledRepeatedlyWithThePersistentQueue(t *testing.T) {
	srv := redistest.Standalone(t)
	dir := t.TempDir()
	e := startExporter(t, srv.Addr(), "--delivery.persistentQueue.directory="+dir, "--delivery.persistentQueue.maxBytes=268435456")
	e.alive = "/healthz" // restarted while Redis is down, it serves from the log
	s := spanload.Send(t, e.grpc, "walkills", 4, 50, 10*time.Millisecond)
	waitAcked(t, s, 500, "spans flowing before the first kill")
	var onlyInLog, corrupt int
	var maxRecords float64
	for i := range 5 {
		redisDown := i%2 == 0
		if redisDown {
			srv.Stop() // SIGTERM: what Redis acknowledged is in its AOF
			before := s.Acked()
			waitAcked(t, s, 300, "spans acknowledged into the log while Redis is down")
			onlyInLog += s.Acked() - before
			maxRecords = max(maxRecords, e.metric(t, "tracestream_exporter_queue_records"))
		}
		e.kill()
		e.start()
		corrupt += int(e.metric(t, "tracestream_exporter_queue_corrupt_records_total"))
		if redisDown {
			srv.Start()
		}
		waitAcked(t, s, 500, fmt.Sprintf("spans flowing after kill -9 number %d", i+1))
	}
	// Acknowledged means in the log: let the log reach Redis before reading the stream.
	s.Stop()
	wait.For(t, 30*time.Second, "the write-ahead log drained into Redis", func() error {
		if n := e.metric(t, "tracestream_exporter_queue_records"); n != 0 {
			return fmt.Errorf("%.0f records left", n)
		}
		return nil
	})
	o := s.Check(t, srv.Client(t), "traces:walkills")
	t.Logf("FIGURES exporter kill -9 five times under load, with the write-ahead log (Redis stopped before 3 of the kills): %d spans acknowledged while Redis was down (up to %.0f requests waiting in the log), %d damaged records found at restarts; %s",
		onlyInLog, maxRecords, corrupt, o)
	if o.Lost != 0 || len(o.Failed) != 0 {
		t.Fatalf("%d acknowledged spans lost, failures after retries %v", o.Lost, o.Failed)
	}
}

func TestSIGTERMUnderLoadDrainsWithinTheGracePeriod(t *testing.T) {
	srv := redistest.Standalone(t)
	const grace = 10 * time.Second
	e := startExporter(t, srv.Addr(), "--delivery.drainTimeout="+grace.String())
	s := spanload.Send(t, e.grpc, "drain", 8, 100, 0)
	waitAcked(t, s, 5000, "spans flowing before SIGTERM")
	took, code := e.terminate(grace + 5*time.Second)
	// The clients now fail over to nothing: stop them before they exhaust their retries.
	o := s.Check(t, srv.Client(t), "traces:drain")
	t.Logf("FIGURES SIGTERM under load (8 clients, 100 spans per request): exit %d after %v (drainTimeout %v); %s", code, took.Round(time.Millisecond), grace, o)
	// Exit 0 is the proof of a drain within drainTimeout: when the timeout cuts the drain short,
	// the exporter exits 1. How long it took is a figure, not a threshold.
	if code != 0 || o.Lost != 0 {
		t.Fatalf("exit %d after %v (drainTimeout %v), %d acknowledged spans lost", code, took, grace, o.Lost)
	}
}

// scrape reads a Prometheus /metrics endpoint into its series ("name{labels}") and values.
func scrape(addr string) (map[string]float64, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for line := range strings.SplitSeq(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if f, err := strconv.ParseFloat(line[i+1:], 64); i > 0 && err == nil {
			out[line[:i]] = f
		}
	}
	return out, nil
}

// metric reads one series of the exporter's /metrics, 0 when absent.
func (e *exporter) metric(t *testing.T, series string) float64 {
	t.Helper()
	m, err := scrape(e.admin)
	if err != nil {
		t.Fatal(err)
	}
	return m[series]
}

// rssMB is the exporter's resident memory now.
func (e *exporter) rssMB() float64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", e.cmd.Process.Pid))
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return float64(kb) / 1024
		}
	}
	return 0
}

func TestReplyStreamCutMidPipelineDuplicatesAreCountedAndBounded(t *testing.T) {
	srv := redistest.Standalone(t)
	px := newProxy(t, srv.Addr())
	e := startExporter(t, px.addr())
	s := spanload.Send(t, e.grpc, "cuts", 8, 100, 0)
	waitAcked(t, s, 2000, "spans flowing before the first cut")
	const cuts = 10
	for i := range cuts {
		px.cut()
		waitAcked(t, s, 1000, fmt.Sprintf("spans flowing after cut %d", i+1))
	}
	o := s.Check(t, srv.Client(t), "traces:cuts")
	// Without idempotent XADD (Redis < 8.6.2; Debian's is 7.0) a cut can duplicate at most the
	// entries of the pipelines in flight: stream.writers (4) pipelines of up to
	// stream.pipelineSize (1000) each.
	bound := cuts * 4 * 1000
	t.Logf("FIGURES reply stream cut %d times under load: %s; duplicate bound %d", cuts, o, bound)
	if o.Lost != 0 || len(o.Failed) != 0 || o.Duplicates > bound {
		t.Fatalf("%d lost, %d duplicated (bound %d), failures after retries %v", o.Lost, o.Duplicates, bound, o.Failed)
	}
}

func TestPartitionBackpressureAndBoundedMemory(t *testing.T) {
	srv := redistest.Standalone(t)
	px := newProxy(t, srv.Addr())
	const maxInFlight = 20000
	e := startExporter(t, px.addr(), fmt.Sprintf("--delivery.maxInFlightSpans=%d", maxInFlight))
	s := spanload.Send(t, e.grpc, "partition", 8, 100, 0)
	waitAcked(t, s, 2000, "spans flowing before the partition")

	// A client without retries sees what the exporter answers during the partition.
	probe := otlptracegrpc.NewClient(otlptracegrpc.WithEndpoint(e.grpc), otlptracegrpc.WithInsecure(),
		otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}), otlptracegrpc.WithTimeout(15*time.Second))
	if err := probe.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = probe.Stop(context.Background()) }()

	baseRSS := e.rssMB()
	px.partition()
	start := time.Now()
	// A new probe request every 100 ms, each on its own: the first ones are admitted and wait;
	// the figure is when the exporter first answers a request with pushback.
	var (
		mu            sync.Mutex
		firstPushback time.Duration
		pushback      *status.Status
		probes        sync.WaitGroup
	)
	maxRSS := 0.0
	for time.Since(start) < 5*time.Second {
		probes.Go(func() {
			rs, _ := spanload.Spans("partition-probe", 100)
			err := probe.UploadTraces(context.Background(), rs)
			st, ok := status.FromError(err)
			if err == nil || !ok || (st.Code() != codes.ResourceExhausted && st.Code() != codes.Unavailable) {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if at := time.Since(start); pushback == nil || at < firstPushback {
				firstPushback, pushback = at, st
			}
		})
		maxRSS = max(maxRSS, e.rssMB())
		time.Sleep(100 * time.Millisecond)
	}
	px.heal()
	probes.Wait()
	waitAcked(t, s, 2000, "spans flowing after the partition healed")
	o := s.Check(t, srv.Client(t), "traces:partition")
	t.Logf("FIGURES partition between exporter and Redis for 5 s, delivery.maxInFlightSpans %d, delivery.stallTimeout 1s: first pushback to a client after %v (%v), max exporter RSS %.1f MB; %s",
		maxInFlight, firstPushback.Round(time.Millisecond), pushback.Err(), maxRSS, o)
	if pushback == nil || !strings.Contains(pushback.Message(), "made no progress") {
		t.Fatalf("no client was refused at once for a stalled Redis during the partition (first pushback: %v)", pushback.Err())
	}
	// Memory is bounded by what is admitted: maxInFlight spans, at a generous 4 KB each (an
	// entry of about 600 bytes, the request's copies and GC headroom).
	if bound := float64(maxInFlight) * 4 / 1024; maxRSS-baseRSS > bound {
		t.Errorf("exporter RSS grew by %.1f MB during the partition (from %.1f), more than the %.0f MB its in-flight bound allows", maxRSS-baseRSS, baseRSS, bound)
	}
	if o.Lost != 0 {
		t.Fatalf("%d acknowledged spans lost", o.Lost)
	}
}

func TestRedisOOMIsRetriedAndRecoversWithoutRestart(t *testing.T) {
	srv := redistest.Standalone(t, redistest.WithConfig("maxmemory", "4mb"), redistest.WithConfig("maxmemory-policy", "noeviction"))
	e := startExporter(t, srv.Addr())
	s := spanload.Send(t, e.grpc, "oom", 4, 100, 5*time.Millisecond)
	const oom = `tracestream_exporter_redis_errors_total{class="oom"}`
	wait.For(t, time.Minute, "Redis refusing writes with OOM", func() error {
		if n := e.metric(t, oom); n == 0 {
			return fmt.Errorf("%s = 0", oom)
		}
		return nil
	})
	ready := httpStatus(t, "http://"+e.admin+"/readyz")
	ackedAtOOM := s.Acked()
	time.Sleep(time.Second) // let the refusals go on for a while: nothing may be dropped meanwhile
	rdb := srv.Client(t)
	if err := rdb.ConfigSet(context.Background(), "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	waitAcked(t, s, 2000, "spans flowing after maxmemory was raised")
	o := s.Check(t, rdb, "traces:oom")
	t.Logf("FIGURES Redis maxmemory 4mb reached under load, then raised: %s errors %.0f, /readyz during OOM %d, spans acknowledged when OOM began %d; %s; exporter restarted: %v",
		oom, e.metric(t, oom), ready, ackedAtOOM, o, e.exited())
	if e.exited() {
		t.Fatalf("the exporter exited during the OOM (%v): recovery must need no restart", e.exitErr)
	}
	if o.Lost != 0 || len(o.Failed) != 0 || e.metric(t, `tracestream_exporter_spans_dropped_total{reason="rejected"}`) != 0 {
		t.Fatalf("%d lost, failures after retries %v, dropped %v", o.Lost, o.Failed, e.metric(t, `tracestream_exporter_spans_dropped_total{reason="rejected"}`))
	}
}

func httpStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

func TestClusterMasterKilledWritesResume(t *testing.T) {
	cl := redistest.Cluster(t, redistest.WithNodeTimeout(time.Second))
	e := startExporter(t, strings.Join(cl.Addrs(), ","), "--redis.mode=cluster")
	s := spanload.Send(t, e.grpc, "cluster", 4, 50, 10*time.Millisecond)
	waitAcked(t, s, 500, "spans flowing before the kill")
	ctx := context.Background()
	owner, err := cl.Client(t).MasterForKey(ctx, "traces:cluster")
	if err != nil {
		t.Fatal(err)
	}
	var victim *redistest.Server
	for _, n := range cl.Nodes() {
		if n.Addr() == owner.Options().Addr {
			victim = n
		}
	}
	if victim == nil {
		t.Fatalf("no node at %s", owner.Options().Addr)
	}
	killed := time.Now()
	victim.Kill()
	waitAcked(t, s, 1000, "spans flowing after the master was killed")
	resumed := time.Since(killed)
	cl.AwaitHealthy(t)
	o := s.Check(t, cl.Client(t), "traces:cluster")
	t.Logf("FIGURES Redis Cluster master of the stream's slot killed (SIGKILL, cluster-node-timeout 1s): 1000 more spans acknowledged %v after the kill; %s (a span acknowledged by the master and not yet replicated is lost with it: asynchronous replication)",
		resumed.Round(time.Millisecond), o)
	if len(o.Failed) != 0 {
		t.Fatalf("failures after retries %v", o.Failed)
	}
}

// redisStat reads one field of INFO stats through a fresh connection as the ACL user.
func redisStat(t *testing.T, addr, user, password, field string) int64 {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, Username: user, Password: password, DisableIdentity: true})
	defer func() { _ = c.Close() }()
	info, err := c.Info(context.Background(), "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Fatalf("no %s in INFO stats", field)
	return 0
}

// TestCredentialRotationAndWrongCredentials rotates the ACL user's password under load the way a
// Secret rotation does (Redis accepts both, the file changes, connections are re-made, the old
// password is removed), then puts a wrong password in the file: the exporter says so, does not
// storm Redis with reconnects, and recovers when the file is right again.
func TestCredentialRotationAndWrongCredentials(t *testing.T) {
	srv := redistest.Standalone(t, redistest.WithACL(""))
	acl := srv.ACL()
	user, old := acl.Username(), acl.Password()
	e := startExporter(t, srv.Addr(), "--redis.usernameFile="+acl.UsernameFile(), "--redis.passwordFile="+acl.PasswordFile())
	s := spanload.Send(t, e.grpc, "rotation", 4, 50, 10*time.Millisecond)
	waitAcked(t, s, 500, "spans flowing before the rotation")
	ctx := context.Background()
	admin := func(password string) *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: user, Password: password, DisableIdentity: true})
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	const auth = `tracestream_exporter_redis_errors_total{class="auth"}`

	next := redistest.RandomPassword(t)
	if err := admin(old).Do(ctx, "ACL", "SETUSER", user, ">"+next).Err(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(acl.PasswordFile(), []byte(next), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = admin(next).Do(ctx, "CLIENT", "KILL", "USER", user, "SKIPME", "yes").Err()
	waitAcked(t, s, 500, "spans flowing after the connections were re-made with the new password")
	if err := admin(next).Do(ctx, "ACL", "SETUSER", user, "<"+old).Err(); err != nil {
		t.Fatal(err)
	}
	_ = admin(next).Do(ctx, "CLIENT", "KILL", "USER", user, "SKIPME", "yes").Err()
	waitAcked(t, s, 500, "spans flowing with only the new password")
	authDuringRotation := e.metric(t, auth)

	// A wrong password in the file: every new connection is refused.
	if err := os.WriteFile(acl.PasswordFile(), []byte("wrong-"+next), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = admin(next).Do(ctx, "CLIENT", "KILL", "USER", user, "SKIPME", "yes").Err()
	wait.For(t, 30*time.Second, "the exporter reporting the refused credentials", func() error {
		if e.metric(t, auth) == authDuringRotation {
			return errors.New("no auth error counted yet")
		}
		return nil
	})
	// Readiness follows the exporter's own probe of Redis (every 2 s).
	var ready int
	wait.For(t, 15*time.Second, "/readyz turning not ready", func() error {
		if ready = httpStatus(t, "http://"+e.admin+"/readyz"); ready == http.StatusOK {
			return errors.New("/readyz 200")
		}
		return nil
	})
	before := redisStat(t, srv.Addr(), user, next, "total_connections_received")
	const window = 5 * time.Second
	time.Sleep(window)                                                                       // counting connection attempts over a fixed window while clients keep sending
	dials := redisStat(t, srv.Addr(), user, next, "total_connections_received") - before - 1 // the stat's own connection
	if err := os.WriteFile(acl.PasswordFile(), []byte(next), 0o600); err != nil {
		t.Fatal(err)
	}
	waitAcked(t, s, 500, "spans flowing once the file holds the right password again")
	o := s.Check(t, admin(next), "traces:rotation")
	t.Logf("FIGURES credential rotation under load: %s errors during the rotation %.0f; wrong password: /readyz %d, %d connections to Redis in %v (%.1f/s) while 4 clients kept sending; %s",
		auth, authDuringRotation, ready, dials, window, float64(dials)/window.Seconds(), o)
	if authDuringRotation != 0 || o.Lost != 0 {
		t.Fatalf("%v auth errors during the rotation, %d acknowledged spans lost", authDuringRotation, o.Lost)
	}
	// A storm is thousands of connections; a slow machine only makes fewer.
	if dials > 100 {
		t.Fatalf("%d connections to Redis in %v with a wrong password: a reconnect storm", dials, window)
	}
}
