package config

import (
	"fmt"
	"log/slog"
	"strings"
)

// Telemetry configures what the exporter tells about itself besides its metrics, as the
// Collector's service.telemetry does.
type Telemetry struct {
	Logs Logs `json:"logs"`
}

// Logs configures the exporter's log.
type Logs struct {
	// Level is the least severe level logged: debug, info, warn or error (any case), as the
	// Collector's service.telemetry.logs.level; empty is info. Debug adds go-redis's own lines
	// (dial failures, pool events).
	Level string `json:"level,omitempty"`
}

// logLevels are the values of telemetry.logs.level.
var logLevels = []struct {
	name  string
	level slog.Level
}{{"debug", slog.LevelDebug}, {"info", slog.LevelInfo}, {"warn", slog.LevelWarn}, {"error", slog.LevelError}}

// SlogLevel is Level as log/slog knows it, or an error naming the values accepted.
func (l Logs) SlogLevel() (slog.Level, error) {
	if l.Level == "" {
		return slog.LevelInfo, nil
	}
	names := make([]string, 0, len(logLevels))
	for _, ll := range logLevels {
		if strings.EqualFold(l.Level, ll.name) {
			return ll.level, nil
		}
		names = append(names, ll.name)
	}
	return 0, fmt.Errorf("%q is not one of %s", l.Level, strings.Join(names, ", "))
}

func (c Config) validateTelemetry(v *validator) {
	if _, err := c.Telemetry.Logs.SlogLevel(); err != nil {
		v.addf("telemetry.logs.level", "%v", err)
	}
}
