// Command exporter is Tracestream's data plane: it receives OTLP traces over gRPC and HTTP and
// writes every span as a Redis Stream entry, answering a client only once its spans are in Redis.
//
//	exporter --config /etc/tracestream/exporter.yaml [--redis.addresses=host:6379 ...]
//
// Settings come from defaults, then the YAML file, then TRACESTREAM_* environment variables, then
// flags named by their key path (docs/exporter-config.md). An invalid configuration exits with
// status 2 and a message naming each field at fault. SIGTERM drains: readiness flips at once, the
// receivers stop accepting, in-flight writes finish within delivery.drainTimeout, then exit 0.
//
//	exporter --config ... --drain [--termination-log=/dev/termination-log]
//
// --drain empties the persistent queue (delivery.persistentQueue.directory) of an exporter that
// is gone: it serves only the admin endpoint, writes the log to Redis (retrying for as long as it
// runs), and exits 0 once the log is empty, writing {"records":0,"producerId":"..."} to the
// termination log if that file exists. SIGTERM before that exits 75 (EX_TEMPFAIL) with the rest
// kept in the log (the termination message then gives the records left). Without a persistent
// queue it exits 2; when another process has the queue open, 1.
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
	drain := fs.Bool("drain", false, "write the persistent queue to Redis, serving only the admin endpoint, and exit once it is empty")
	terminationLog := fs.String("termination-log", service.DefaultTerminationLog, "with --drain: where the result is written, if the file exists")
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
	if *drain {
		os.Exit(runDrain(ctx, cfg, log, *terminationLog))
	}
	log.Info("Starting exporter", "version", version.Version)
	if err := service.Run(ctx, cfg, log); err != nil {
		log.Error("Exporter failed", "err", err)
		os.Exit(1)
	}
}

// exitTempFail (EX_TEMPFAIL from sysexits.h) says a drain was stopped before the log was empty:
// try again later, nothing was lost.
const exitTempFail = 75

// runDrain runs exporter --drain and returns its exit status.
func runDrain(ctx context.Context, cfg config.Config, log *slog.Logger, terminationLog string) int {
	log.Info("Starting exporter to drain its persistent queue", "version", version.Version)
	err := service.RunDrain(ctx, cfg, log, terminationLog)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, service.ErrNoQueue):
		fmt.Fprintf(os.Stderr, "exporter: %v\n", err)
		return 2
	case errors.Is(err, service.ErrDrainInterrupted):
		log.Warn("Drain stopped", "err", err)
		return exitTempFail
	default:
		log.Error("Drain failed", "err", err)
		return 1
	}
}

// newLogger is the exporter's structured log, in JSON, at telemetry.logs.level.
func newLogger(w io.Writer, cfg config.Logs) *slog.Logger {
	level, _ := cfg.SlogLevel() // never an error: loading the configuration validated it
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}
