package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/tracestream/tracestream/internal/exporter/config"
)

// DefaultTerminationLog is where Kubernetes reads a container's termination message
// (terminationMessagePath's default).
const DefaultTerminationLog = "/dev/termination-log"

// ErrNoQueue is returned by RunDrain when no persistent queue is configured: there is nothing to
// drain, which is a configuration error.
var ErrNoQueue = errors.New("--drain needs delivery.persistentQueue.directory: no persistent queue is configured")

// ErrDrainInterrupted is returned by RunDrain when it was stopped (SIGTERM) before the log was
// empty; what is left stays in the log for the next process that opens it.
var ErrDrainInterrupted = errors.New("stopped before the persistent queue was drained")

// DrainResult is the termination message of a drain: the records left in the log (0 once
// drained) and the producer id they were written with.
type DrainResult struct {
	Records    int64  `json:"records"`
	ProducerID string `json:"producerId"`
}

// RunDrain writes the persistent queue's records to Redis and returns once the log is empty, or
// ErrDrainInterrupted when ctx ends first. It serves only the admin endpoint (/status shows the
// records left and the last Redis error) and writes with the pipeline's writers, retrying every
// retryable error for as long as it runs, as the queue's drain in a running exporter does. This
// is how a log whose pod is gone for good (a scaled-down replica's volume) reaches Redis. The
// result goes to terminationLog when that file exists and is writable (Kubernetes creates it).
func RunDrain(ctx context.Context, cfg config.Config, log *slog.Logger, terminationLog string) error {
	if cfg.Delivery.PersistentQueue.Directory == "" {
		return ErrNoQueue
	}
	s, err := New(cfg, log)
	if err != nil {
		return err
	}
	if err := s.listenAdmin(); err != nil {
		s.closeStores()
		return err
	}
	// Readiness stays false: a drain accepts no work.
	s.startWriting(ctx)
	res := DrainResult{Records: s.wal.Stats().Records, ProducerID: s.wal.Producer()}
	log.Info("Draining the persistent queue", "records", res.Records, "producerId", res.ProducerID,
		"directory", cfg.Delivery.PersistentQueue.Directory, "admin", s.admLn.Addr().String())
	// Shutdown returns once the log is drained, or with an error when ctx ends first: the
	// writers then give up and the records not yet acknowledged stay in the log.
	err = s.pipe.Shutdown(ctx)
	res.Records = s.wal.Stats().Records
	s.stopWriting()
	writeTerminationMessage(terminationLog, res, log)
	if err != nil {
		return fmt.Errorf("%w: %d records kept in the log (%w)", ErrDrainInterrupted, res.Records, err)
	}
	log.Info("Persistent queue drained", "producerId", res.ProducerID)
	return nil
}

// writeTerminationMessage writes res as one line of JSON to path if the file exists and is
// writable; outside Kubernetes there is none, which is not an error.
func writeTerminationMessage(path string, res DrainResult, log *slog.Logger) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		log.Debug("No termination message written", "path", path, "err", err)
		return
	}
	b, _ := json.Marshal(res) // two plain fields: never an error
	if _, err := f.Write(append(b, '\n')); err != nil {
		log.Warn("Writing the termination message failed", "path", path, "err", err)
	}
	_ = f.Close()
}
