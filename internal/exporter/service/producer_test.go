package service_test

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tracestream/tracestream/internal/exporter/service"
	"github.com/tracestream/tracestream/internal/testing/redistest"
)

// statusProducer reads producerId from the exporter's /status.
func statusProducer(t *testing.T, e *exporter) string {
	t.Helper()
	code, body, err := get("http://" + e.admin + "/status")
	if err != nil || code != 200 {
		t.Fatalf("/status: %d %v", code, err)
	}
	var st struct {
		ProducerID string `json:"producerId"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	return st.ProducerID
}

// TestThePersistentQueueOwnsTheProducerID: with a queue, the id the sink writes with is the
// log's (delivery.producerId is its prefix), kept across restarts under another name, and a
// second exporter on the same directory is refused at start-up, naming the field.
func TestThePersistentQueueOwnsTheProducerID(t *testing.T) {
	s := redistest.Standalone(t)
	dir := t.TempDir()
	cfg := queueConfig(s, dir)
	cfg.Delivery.ProducerID = "durable-1"
	first := start(t, cfg)
	id := statusProducer(t, first)
	if !regexp.MustCompile(`^durable-1-[0-9a-f]{8}$`).MatchString(id) {
		t.Fatalf("/status producerId %q, want durable-1-<8 hex>", id)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "producer")); err != nil || strings.TrimSpace(string(b)) != id {
		t.Fatalf("the log's producer file holds %q (%v), want %q", b, err, id)
	}
	_, err := service.New(cfg, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "delivery.persistentQueue.directory") || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("a second exporter on the same queue: %v, want an error naming delivery.persistentQueue.directory and the lock", err)
	}
	first.shutdown(t)

	cfg.Delivery.ProducerID = "another-pod"
	second := start(t, cfg)
	if got := statusProducer(t, second); got != id {
		t.Fatalf("after a restart under another name, producerId %q, want the log's %q", got, id)
	}
}

func TestWithoutAQueueTheProducerIDIsTheConfiguredOne(t *testing.T) {
	cfg := standaloneConfig(redistest.Standalone(t))
	cfg.Delivery.ProducerID = "plain-pod"
	if got := statusProducer(t, start(t, cfg)); got != "plain-pod" {
		t.Fatalf("/status producerId %q, want plain-pod", got)
	}
}
