package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tracestream/tracestream/internal/exporter/config"
)

func TestTheLogKeepsWhatTheLevelAsksFor(t *testing.T) {
	cases := map[string]struct {
		level       string
		debug, warn bool
	}{
		"the default, info, leaves debug out": {level: "", debug: false, warn: true},
		"debug keeps it":                      {level: "debug", debug: true, warn: true},
		"error leaves warnings out":           {level: "error", debug: false, warn: false},
	}
	for name, c := range cases {
		var out bytes.Buffer
		log := newLogger(&out, config.Logs{Level: c.level})
		log.Debug("A debug line")
		log.Warn("A warning")
		if got := strings.Contains(out.String(), "A debug line"); got != c.debug {
			t.Errorf("%s: debug line logged %v, want %v", name, got, c.debug)
		}
		if got := strings.Contains(out.String(), `"level":"WARN"`); got != c.warn {
			t.Errorf("%s: warning logged %v, want %v:\n%s", name, got, c.warn, out.String())
		}
	}
}
