package config

import (
	"bytes"
	"testing"

	"sigs.k8s.io/yaml"
)

// FuzzConfigYAML feeds arbitrary YAML to the exporter's configuration loader: it never panics,
// and a configuration it accepts survives the trip the operator makes it take (marshalled into a
// ConfigMap, read back by the exporter) unchanged.
func FuzzConfigYAML(f *testing.F) {
	for _, seed := range []string{
		"",
		"redis:\n  addresses: [\"redis:6379\"]\n",
		"stream:\n  format: flat\n  maxLen: 1000\n  ttl: 24h\n",
		"delivery:\n  stallTimeout: 250ms\n  requestTimeout: 5s\n",
		"receivers:\n  grpc:\n    endpoint: :4317\n  maxRequestBytes: 1048576\n",
		"filter:\n  excludeServices: [a, b]\n",
		"redis:\n  mode: cluster\n  db: 1\n",
		"stream: [1, 2]\n",
		"unknown: true\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := Default()
		if err := decodeYAML(data, &c); err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			return
		}
		out, err := yaml.Marshal(c)
		if err != nil {
			t.Fatalf("an accepted configuration does not marshal: %v", err)
		}
		back := Default()
		if err := decodeYAML(out, &back); err != nil {
			t.Fatalf("the marshalled configuration does not load: %v\n%s", err, out)
		}
		// Compared as the ConfigMap holds it: an empty list and no list are the same setting.
		again, err := yaml.Marshal(back)
		if err != nil || !bytes.Equal(out, again) {
			t.Fatalf("the configuration changed on the way through a ConfigMap (%v):\nfirst:\n%s\nsecond:\n%s", err, out, again)
		}
	})
}
