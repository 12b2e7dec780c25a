package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
)

// Protocols the generator speaks.
const (
	GRPC = "grpc"
	HTTP = "http"
)

const exportMethod = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

// Options is one run.
type Options struct {
	Protocol string // GRPC or HTTP (protobuf body)
	Endpoint string // host:port
	// Connections is the number of client connections; Workers is the number of requests in
	// flight at once, spread over them.
	Connections int
	Workers     int
	// Rate is the requests per second to send, spread evenly; 0 sends as fast as the server answers.
	Rate float64
	// Warmup is not counted; Duration is the measured window after it.
	Warmup, Duration time.Duration
	// Timeout bounds one request.
	Timeout time.Duration
	// WindowStart and WindowEnd, when set, are called when the measured window opens and closes
	// (for reading the server's CPU time, for example).
	WindowStart, WindowEnd func()
}

// Result is what a run saw.
type Result struct {
	// Requests and spans answered OK inside the measured window, and the window's length.
	Requests, Spans int
	Window          time.Duration
	// Failed counts failed requests (whole run) by gRPC code or HTTP status.
	Failed map[string]int
	// Latencies are the measured window's answered-OK request latencies, from when each request
	// was due (so a late send counts against the server), sorted. Service has the same requests
	// from when each was sent: the difference is the generator's own lateness (a timer that
	// fires late on a busy or virtualised machine).
	Latencies, Service []time.Duration
	// Acked is the first sequence number of every request answered OK, in the whole run;
	// SpansPerRequest numbers follow each.
	Acked           []uint64
	SpansPerRequest int
	// Sent is the number of sequence numbers used (acknowledged or not).
	Sent uint64
}

// SpansPerSecond is the window's acknowledged spans per second.
func (r *Result) SpansPerSecond() float64 {
	if r.Window <= 0 {
		return 0
	}
	return float64(r.Spans) / r.Window.Seconds()
}

// Percentile returns the p-th percentile (0-100) of the window's latencies.
func (r *Result) Percentile(p float64) time.Duration { return percentile(r.Latencies, p) }

// ServicePercentile returns the p-th percentile (0-100) of the window's service times.
func (r *Result) ServicePercentile(p float64) time.Duration { return percentile(r.Service, p) }

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(float64(len(sorted)-1)*p/100)]
}

type sender interface {
	send(ctx context.Context, body []byte) error
	close()
}

// Run sends t's requests to the endpoint as opts say, and returns when the window is over and
// every request in flight has been answered.
func Run(ctx context.Context, t *Template, opts Options) (*Result, error) {
	if opts.Connections < 1 || opts.Workers < 1 {
		return nil, errors.New("connections and workers must be at least 1")
	}
	if opts.Timeout == 0 {
		opts.Timeout = 30 * time.Second
	}
	senders, err := openSenders(opts)
	if err != nil {
		return nil, err
	}
	defer closeSenders(senders)

	start := time.Now()
	g := &generator{t: t, opts: opts, start: start, stop: start.Add(opts.Warmup + opts.Duration),
		res: &Result{Failed: map[string]int{}, SpansPerRequest: t.Spans()}}
	runCtx, cancel := context.WithDeadline(ctx, g.stop)
	defer cancel()
	var wg sync.WaitGroup
	for w := range opts.Workers {
		wg.Go(func() { g.work(ctx, runCtx, w, senders[w%len(senders)]) })
	}
	g.window(ctx)
	wg.Wait()
	g.res.Sent = g.seq.Load()
	slices.Sort(g.res.Latencies)
	slices.Sort(g.res.Service)
	return g.res, ctx.Err()
}

func openSenders(opts Options) ([]sender, error) {
	senders := make([]sender, opts.Connections)
	for i := range senders {
		s, err := newSender(opts)
		if err != nil {
			closeSenders(senders[:i])
			return nil, err
		}
		senders[i] = s
	}
	return senders, nil
}

func closeSenders(senders []sender) {
	for _, s := range senders {
		s.close()
	}
}

// generator is one Run's shared state: the workers record into res under mu.
type generator struct {
	t           *Template
	opts        Options
	start, stop time.Time

	seq      atomic.Uint64
	inWindow atomic.Bool
	// windowEnd is written before inWindow is set and read only after, so it needs no lock.
	windowEnd time.Time

	mu  sync.Mutex
	res *Result
}

// window opens and closes the measured window. Its end is fixed before it opens, so that a
// worker never counts a request answered after it.
func (g *generator) window(ctx context.Context) {
	windowStart := g.start.Add(g.opts.Warmup)
	g.windowEnd = g.stop
	select {
	case <-time.After(time.Until(windowStart)):
	case <-ctx.Done():
	}
	if g.opts.WindowStart != nil {
		g.opts.WindowStart()
	}
	g.inWindow.Store(true)
	select {
	case <-time.After(time.Until(g.stop)):
	case <-ctx.Done():
	}
	if g.opts.WindowEnd != nil {
		g.opts.WindowEnd()
	}
	g.res.Window = time.Since(windowStart)
}

// work is worker w: it sends on s until runCtx ends, each request due interval after the last
// one (at once when no Rate is set); each request has its own timeout under ctx, so that the
// run's end does not cut off a request in flight.
func (g *generator) work(ctx, runCtx context.Context, w int, s sender) {
	buf := make([]byte, 0, g.t.Size())
	var interval time.Duration
	if g.opts.Rate > 0 {
		interval = time.Duration(float64(g.opts.Workers) / g.opts.Rate * float64(time.Second))
	}
	due := g.start.Add(time.Duration(w) * interval / time.Duration(g.opts.Workers))
	for runCtx.Err() == nil {
		if interval > 0 {
			if d := time.Until(due); d > 0 {
				select {
				case <-runCtx.Done():
					return
				case <-time.After(d):
				}
			}
		} else {
			due = time.Now()
		}
		first := g.seq.Add(uint64(g.t.Spans())) - uint64(g.t.Spans())
		buf = g.t.Fill(buf, first)
		sent := time.Now()
		rctx, rcancel := context.WithTimeout(ctx, g.opts.Timeout)
		err := s.send(rctx, buf)
		rcancel()
		g.record(first, due, sent, time.Now(), err)
		due = due.Add(interval)
	}
}

// record counts one answered request; its latency counts only when it was answered inside the
// window.
func (g *generator) record(first uint64, due, sent, done time.Time, err error) {
	counted := g.inWindow.Load() && done.Before(g.windowEnd)
	g.mu.Lock()
	defer g.mu.Unlock()
	if err != nil {
		g.res.Failed[errorCode(err)]++
		return
	}
	g.res.Acked = append(g.res.Acked, first)
	if counted {
		g.res.Requests++
		g.res.Spans += g.t.Spans()
		g.res.Latencies = append(g.res.Latencies, done.Sub(due))
		g.res.Service = append(g.res.Service, done.Sub(sent))
	}
}

// errorCode names a failure: the gRPC code, the HTTP status, or "transport".
func errorCode(err error) string {
	var he *httpError
	if errors.As(err, &he) {
		return fmt.Sprintf("HTTP %d", he.status)
	}
	if st, ok := status.FromError(err); ok {
		return st.Code().String()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	return "transport"
}

func newSender(opts Options) (sender, error) {
	switch opts.Protocol {
	case GRPC:
		cc, err := grpc.NewClient(opts.Endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})))
		if err != nil {
			return nil, err
		}
		return &grpcSender{cc: cc}, nil
	case HTTP:
		tr := &http.Transport{MaxIdleConnsPerHost: opts.Workers, DisableCompression: true}
		return &httpSender{url: "http://" + opts.Endpoint + "/v1/traces", c: &http.Client{Transport: tr}}, nil
	}
	return nil, fmt.Errorf("unknown protocol %q", opts.Protocol)
}

type grpcSender struct{ cc *grpc.ClientConn }

func (g *grpcSender) send(ctx context.Context, body []byte) error {
	var reply []byte
	return g.cc.Invoke(ctx, exportMethod, &body, &reply)
}

func (g *grpcSender) close() { _ = g.cc.Close() }

// rawCodec sends the request bytes as they are and keeps the reply's bytes undecoded.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }

type httpSender struct {
	url string
	c   *http.Client
}

type httpError struct{ status int }

func (e *httpError) Error() string { return fmt.Sprintf("HTTP %d", e.status) }

func (h *httpSender) send(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	resp, err := h.c.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &httpError{status: resp.StatusCode}
	}
	return nil
}

func (h *httpSender) close() { h.c.CloseIdleConnections() }
