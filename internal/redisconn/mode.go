package redisconn

import (
	"fmt"
	"strings"
)

// Mode is how the servers are deployed, which decides the go-redis client and what the
// addresses name. Its values are those of the exporter's redis.mode and of the
// RedisTraceExporter's spec.redis.mode.
type Mode string

// The modes.
const (
	// ModeStandalone is one server; the default when the mode is empty.
	ModeStandalone Mode = "standalone"
	// ModeCluster is a Redis Cluster: the addresses are seed nodes.
	ModeCluster Mode = "cluster"
	// ModeSentinel is a master that sentinels monitor: the addresses are the sentinels.
	ModeSentinel Mode = "sentinel"
)

var modes = []Mode{ModeStandalone, ModeCluster, ModeSentinel}

// OrDefault is m, or ModeStandalone when m is empty: the one place that says what an empty
// mode means.
func (m Mode) OrDefault() Mode {
	if m == "" {
		return ModeStandalone
	}
	return m
}

func (m Mode) check() error {
	for _, known := range modes {
		if m == known {
			return nil
		}
	}
	names := make([]string, len(modes))
	for i, known := range modes {
		names[i] = string(known)
	}
	return fmt.Errorf("%q is not one of %s", string(m), strings.Join(names, ", "))
}
