// Package service assembles the exporter from its configuration (receivers, pipeline, Redis sink,
// admin endpoint) and owns its lifecycle: start, readiness, and the drain on shutdown.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync"
	"time"

	"github.com/tracestream/tracestream/internal/exporter/admission"
	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/exporter/pipeline"
	"github.com/tracestream/tracestream/internal/exporter/receiver"
	"github.com/tracestream/tracestream/internal/exporter/sink"
	"github.com/tracestream/tracestream/internal/exporter/telemetry"
	"github.com/tracestream/tracestream/internal/exporter/wal"
	"github.com/tracestream/tracestream/internal/redisconn"
)

// probeInterval is how often Redis is pinged for readiness while no writes prove it reachable.
const probeInterval = 2 * time.Second

// Service is a running exporter.
type Service struct {
	cfg  config.Config
	log  *slog.Logger
	tel  *telemetry.Telemetry
	sink *sink.Sink
	wal  *wal.Log // the persistent queue, when configured
	pipe *pipeline.Pipeline
	grpc *receiver.GRPC
	http *receiver.HTTP
	adm  *http.Server

	grpcLn, httpLn, admLn net.Listener
	errc                  chan error
	stopProbe             context.CancelFunc
	wg                    sync.WaitGroup
}

// New builds the exporter from a validated configuration. Nothing listens until Start.
func New(cfg config.Config, log *slog.Logger) (*Service, error) {
	s := &Service{cfg: cfg, log: log, tel: telemetry.New(), errc: make(chan error, 3)}
	if err := s.openStores(); err != nil {
		return nil, err
	}
	enc, err := pipeline.NewSpanEncoder(cfg.Stream, cfg.Filter, int(cfg.Receivers.MaxRequestBytes)*pipeline.MaxEntryBytesPerRequestByte, log)
	if err != nil {
		s.closeStores()
		return nil, err
	}
	s.pipe = pipeline.New(pipeline.Options{
		PipelineSize:         cfg.Stream.PipelineSize,
		FlushInterval:        cfg.Stream.FlushInterval.Duration,
		Writers:              cfg.Stream.Writers,
		MaxInFlightSpans:     cfg.Delivery.MaxInFlightSpans,
		RetryInitialInterval: cfg.Delivery.RetryInitialInterval.Duration,
		RetryMaxInterval:     cfg.Delivery.RetryMaxInterval.Duration,
		RequestTimeout:       cfg.Delivery.RequestTimeout.Duration,
		StallTimeout:         cfg.Delivery.StallTimeout.Duration,
		PersistentQueue:      s.wal,
	}, enc, s.sink, s.tel, log)
	s.tel.WatchStreamKeys(enc.KeyStats, cfg.Stream.MaxKeys)
	mem := admission.New(cfg.Delivery.MaxInFlightBytes)
	s.tel.WatchMemory(mem)
	if s.grpc, err = receiver.NewGRPC(cfg.Receivers, s.pipe, mem); err != nil {
		s.closeStores()
		return nil, err
	}
	if s.http, err = receiver.NewHTTP(cfg.Receivers, s.pipe, mem); err != nil {
		s.closeStores()
		return nil, err
	}
	s.grpc.Refusals, s.http.Refusals = s.tel, s.tel
	s.tel.WatchGRPCBuffered(s.grpc.BufferedBytes, cfg.Receivers.GRPC.MaxBufferedBytes, s.grpc.BufferEvictions)
	var extra map[string]http.Handler
	if cfg.Admin.Debug {
		extra = map[string]http.Handler{
			"GET /spans": spansHandler(s.sink),
			// The Go profiler, as the Collector's pprof extension offers it: CPU profiles of a
			// running exporter under its real load (make bench's analysis uses them).
			"GET /debug/pprof/":        http.HandlerFunc(pprof.Index),
			"GET /debug/pprof/profile": http.HandlerFunc(pprof.Profile),
			"GET /debug/pprof/trace":   http.HandlerFunc(pprof.Trace),
		}
	}
	s.adm = newAdminServer(cfg.Admin, s.tel.Handler(extra))
	return s, nil
}

// openStores opens the persistent queue, when configured, and the Redis sink. The queue comes
// first: it owns the producer id its records are written with (delivery.producerId, or the
// hostname, is only its prefix), so that a replay by another process keeps the id. Without a
// queue the id is delivery.producerId or the hostname.
func (s *Service) openStores() error {
	producer := s.cfg.Delivery.ProducerID
	if producer == "" {
		producer, _ = os.Hostname()
	}
	if q := s.cfg.Delivery.PersistentQueue; q.Directory != "" {
		l, err := openQueue(q, producer, s.log, s.tel)
		if err != nil {
			return err
		}
		s.wal, producer = l, l.Producer()
	}
	snk, err := sink.New(s.cfg.Redis, s.cfg.Stream, producer)
	if err != nil {
		if s.wal != nil {
			_ = s.wal.Close()
		}
		return err
	}
	s.sink = snk
	s.tel.SetProducer(producer)
	return nil
}

// openQueue opens the persistent queue, reporting damaged records it finds in the log and its
// size in the metrics and /status.
func openQueue(q config.PersistentQueue, producer string, log *slog.Logger, tel *telemetry.Telemetry) (*wal.Log, error) {
	l, err := wal.Open(wal.Options{Dir: q.Directory, MaxBytes: q.Bound(), Producer: producer}, func(c wal.Corruption) {
		log.Warn("Skipping a damaged stretch of the persistent queue", "segment", c.Segment, "offset", c.Offset, "bytes", c.Bytes, "reason", c.Reason)
	})
	if err != nil {
		return nil, fmt.Errorf("delivery.persistentQueue.directory %q: %w", q.Directory, err)
	}
	tel.WatchQueue(func() telemetry.QueueStats {
		st := l.Stats()
		return telemetry.QueueStats{Bytes: st.Bytes, CapacityBytes: q.Bound(), Records: st.Records, CorruptRecords: st.CorruptRecords, CorruptBytes: st.CorruptBytes}
	})
	if st := l.Stats(); st.Records > 0 {
		log.Info("Persistent queue holds records from before; writing them to Redis", "records", st.Records, "bytes", st.Bytes)
	}
	return l, nil
}

// closeStores closes the Redis connections and the persistent queue.
func (s *Service) closeStores() {
	_ = s.sink.Close()
	if s.wal != nil {
		if err := s.wal.Close(); err != nil {
			s.log.Warn("Closing the persistent queue failed", "err", err)
		}
	}
}

// Start binds the endpoints, probes Redis once (a failure is logged, not fatal: the exporter
// stays not-ready and keeps probing, as Redis may come up later) and starts serving.
func (s *Service) Start(ctx context.Context) error {
	if err := s.listenAdmin(); err != nil {
		return err
	}
	var err error
	if s.grpcLn, err = s.listenReceiver("grpc", s.cfg.Receivers.GRPC.Endpoint); err != nil {
		_ = s.admLn.Close()
		return fmt.Errorf("receivers.grpc.endpoint %q: %w", s.cfg.Receivers.GRPC.Endpoint, err)
	}
	if s.httpLn, err = s.listenReceiver("http", s.cfg.Receivers.HTTP.Endpoint); err != nil {
		_ = s.admLn.Close()
		_ = s.grpcLn.Close()
		return fmt.Errorf("receivers.http.endpoint %q: %w", s.cfg.Receivers.HTTP.Endpoint, err)
	}
	s.startWriting(ctx)
	s.serve("grpc", func() error { return s.grpc.Serve(s.grpcLn) })
	s.serve("http", func() error { return s.http.Serve(s.httpLn) })
	s.tel.SetReady(true)
	s.log.Info("Exporter started", "grpc", s.grpcLn.Addr().String(), "http", s.httpLn.Addr().String(),
		"admin", s.admLn.Addr().String(), "format", s.cfg.Stream.Format, "keyTemplate", s.cfg.Stream.KeyTemplate,
		"producerId", s.tel.Snapshot().ProducerID)
	return nil
}

// listenAdmin binds the admin endpoint, bounded at admin.maxConnections.
func (s *Service) listenAdmin() error {
	adm, err := listenBounded(s.cfg.Admin.Endpoint, s.cfg.Admin.MaxConnections)
	if err != nil {
		return fmt.Errorf("admin.endpoint %q: %w", s.cfg.Admin.Endpoint, err)
	}
	s.admLn = adm
	s.tel.WatchAdminConnections(adm.Open, adm.Evicted.Load)
	return nil
}

// startWriting probes Redis once, starts the pipeline's writers (and the persistent queue's
// drain), the readiness probe and the admin endpoint: all an exporter runs but its receivers.
func (s *Service) startWriting(ctx context.Context) {
	if info, err := s.sink.Probe(ctx); err != nil {
		class := redisconn.Classify(err)
		s.log.Warn("Redis not reachable at start-up; will keep trying", "class", class.Label(), "err", err)
		s.tel.SetRedisReachable(false)
		s.tel.RedisError(class, 1)
	} else {
		s.log.Info("Connected to Redis", "mode", info.Mode, "masters", len(info.Masters), "idempotentXADD", info.Idempotent)
		s.tel.SetRedisReachable(true)
	}
	s.pipe.Start()
	probeCtx, cancel := context.WithCancel(context.Background())
	s.stopProbe = cancel
	s.wg.Add(1)
	go s.probe(probeCtx)
	s.serve("admin", func() error {
		if err := s.adm.Serve(s.admLn); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("admin endpoint: %w", err)
		}
		return nil
	})
}

// listenReceiver listens for a receiver, bounded at receivers.maxConnections.
func (s *Service) listenReceiver(protocol, endpoint string) (net.Listener, error) {
	lim, err := listenBounded(endpoint, s.cfg.Receivers.MaxConnections)
	if err != nil {
		return nil, err
	}
	s.tel.WatchConnections(protocol, lim.Open)
	s.tel.WatchEvictedConnections(protocol, lim.Evicted.Load)
	return lim, nil
}

func (s *Service) serve(name string, f func() error) {
	go func() {
		if err := f(); err != nil {
			s.errc <- fmt.Errorf("%s: %w", name, err)
		}
	}()
}

// probe keeps readiness true to Redis: a ping every probeInterval.
func (s *Service) probe(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			pctx, cancel := context.WithTimeout(ctx, probeInterval)
			if err := s.pipe.Probe(pctx); err != nil && ctx.Err() == nil {
				s.tel.RedisError(redisconn.Classify(err), 1)
			}
			cancel()
		}
	}
}

// Addrs returns the bound addresses of the gRPC, HTTP and admin endpoints.
func (s *Service) Addrs() (grpcAddr, httpAddr, adminAddr string) {
	return s.grpcLn.Addr().String(), s.httpLn.Addr().String(), s.admLn.Addr().String()
}

// Telemetry exposes the exporter's metrics and health (for tests and the admin endpoint).
func (s *Service) Telemetry() *telemetry.Telemetry { return s.tel }

// Errors reports a server that stopped on its own.
func (s *Service) Errors() <-chan error { return s.errc }

// Shutdown drains: readiness flips to not-ready at once, the receivers stop accepting and finish
// their in-flight requests, the pipeline finishes its writes, all bounded by ctx.
func (s *Service) Shutdown(ctx context.Context) error {
	s.tel.SetReady(false)
	start := time.Now()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.grpc.Stop(ctx) }()
	go func() { defer wg.Done(); s.http.Stop(ctx) }()
	wg.Wait()
	err := s.pipe.Shutdown(ctx)
	s.stopWriting()
	s.log.Info("Exporter drained", "took", time.Since(start).Round(time.Millisecond).String(), "err", err)
	return err
}

// stopWriting ends what startWriting began, once the pipeline has shut down, and closes the
// Redis connections and the persistent queue.
func (s *Service) stopWriting() {
	s.stopProbe()
	s.wg.Wait()
	actx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = s.adm.Shutdown(actx)
	s.closeStores()
}

// Run starts the exporter and drains it when ctx ends (SIGTERM), bounded by the drain timeout.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	s, err := New(cfg, log)
	if err != nil {
		return err
	}
	if err := s.Start(ctx); err != nil {
		return err
	}
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-s.errc:
	}
	dctx, cancel := context.WithTimeout(context.Background(), cfg.Delivery.DrainTimeout.Duration)
	defer cancel()
	if err := s.Shutdown(dctx); err != nil {
		return errors.Join(runErr, err)
	}
	return runErr
}
