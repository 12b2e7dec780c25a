// Command exporter is Tracestream's data plane: it receives OTLP traces over gRPC and HTTP and
// writes every span as a Redis Stream entry, answering a client only once its spans are in Redis.
//
//	exporter --config /etc/tracestream/exporter.yaml [--redis.addresses=host:6379 ...]
//
// Settings come from defaults, then the YAML file, then TRACESTREAM_* environment variables, then
// flags named by their key path (docs/exporter-config.md). An invalid configuration exits with
// status 2 and a message naming each field at fault. SIGTERM drains: readiness flips at once, the
// receivers stop accepting, in-flight writes finish within delivery.drainTimeout, then exit 0.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/exporter/service"
	"github.com/tracestream/tracestream/internal/exporter/sink"
	"github.com/tracestream/tracestream/internal/version"
)

func main() {
	fs := flag.NewFlagSet("exporter", flag.ContinueOnError)
	configPath := fs.String("config", os.Getenv(config.EnvPrefix+"CONFIG"), "path of the YAML configuration file")
	showVersion := fs.Bool("version", false, "print the version and exit")
	config.RegisterFlags(fs)
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2)
	}
	if *showVersion {
		fmt.Println(version.Version)
		return
	}
	cfg, err := config.LoadWithFlags(*configPath, fs)
	if err != nil {
		fmt.Fprintf(os.Stderr, "exporter: %v\n", err)
		os.Exit(2)
	}
	log := newLogger(os.Stderr, cfg.Telemetry.Logs)
	sink.SetLogger(log)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log.Info("Starting exporter", "version", version.Version)
	if err := service.Run(ctx, cfg, log); err != nil {
		log.Error("Exporter failed", "err", err)
		os.Exit(1)
	}
}

// newLogger is the exporter's structured log, in JSON, at telemetry.logs.level.
func newLogger(w io.Writer, cfg config.Logs) *slog.Logger {
	level, _ := cfg.SlogLevel() // never an error: loading the configuration validated it
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}
