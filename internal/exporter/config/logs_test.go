package config

import (
	"log/slog"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func TestTheLogLevelIsOneOfFourNamesAndDefaultsToInfo(t *testing.T) {
	cases := map[string]struct {
		level   string
		want    slog.Level
		wantErr string
	}{
		"unset is info":                 {level: "", want: slog.LevelInfo},
		"debug":                         {level: "debug", want: slog.LevelDebug},
		"warn":                          {level: "warn", want: slog.LevelWarn},
		"error":                         {level: "error", want: slog.LevelError},
		"the Collector's upper case":    {level: "DEBUG", want: slog.LevelDebug},
		"a name slog alone knows fails": {level: "warn+2", wantErr: `"warn+2" is not one of debug, info, warn, error`},
		"a misspelt name fails":         {level: "verbose", wantErr: `"verbose" is not one of debug, info, warn, error`},
	}
	for name, c := range cases {
		got, err := Logs{Level: c.level}.SlogLevel()
		switch {
		case c.wantErr != "" && (err == nil || err.Error() != c.wantErr):
			t.Errorf("%s: error %v, want %q", name, err, c.wantErr)
		case c.wantErr == "" && (err != nil || got != c.want):
			t.Errorf("%s: %v, %v; want %v", name, got, err, c.want)
		}
	}
}

func TestABadLogLevelFailsTheConfigurationNamingTheKey(t *testing.T) {
	_, err := load("", []string{"TRACESTREAM_TELEMETRY_LOGS_LEVEL=verbose"}, nil)
	if err == nil || !strings.Contains(err.Error(), `telemetry.logs.level: "verbose" is not one of debug, info, warn, error`) {
		t.Fatalf("error %v, want one naming telemetry.logs.level", err)
	}
	c, err := load("", []string{"TRACESTREAM_TELEMETRY_LOGS_LEVEL=debug"}, nil)
	if err != nil || c.Telemetry.Logs.Level != "debug" {
		t.Fatalf("%+v, %v; want level debug", c.Telemetry, err)
	}
}

// Configurations rendered before the key existed, and the hashes that roll the exporters out,
// must not change: the section is left out while it holds only defaults.
func TestTheDefaultLogLevelIsNotRendered(t *testing.T) {
	out, err := yaml.Marshal(Default())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "telemetry") {
		t.Fatalf("the default configuration renders a telemetry section:\n%s", out)
	}
}
