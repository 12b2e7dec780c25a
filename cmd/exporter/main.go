// Command exporter is Tracestream's data plane: it receives OTLP traces and writes every span to a
// Redis Stream.
//
// Today it serves only its admin endpoint (/healthz, /readyz, /version); the OTLP receivers and the
// Redis sink arrive with the exporter issue. The binary exists now so that the image, the local
// cluster and the end-to-end tests have a real process to run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/tracestream/tracestream/internal/version"
)

func main() {
	if err := run(); err != nil {
		slog.Error("Exporter failed", "err", err)
		os.Exit(1)
	}
}

func run() error {
	adminEndpoint := flag.String("admin-endpoint", envOr("TRACESTREAM_ADMIN_ENDPOINT", ":8888"),
		"address of the admin endpoint (health, readiness, version)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { _, _ = fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, _ *http.Request) { _, _ = fmt.Fprintln(w, version.Version) })

	ln, err := net.Listen("tcp", *adminEndpoint)
	if err != nil {
		return fmt.Errorf("admin.endpoint %q: %w", *adminEndpoint, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	slog.Info("Serving admin endpoint", "addr", ln.Addr().String(), "version", version.Version)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutting down admin endpoint: %w", err)
	}
	return nil
}

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}
