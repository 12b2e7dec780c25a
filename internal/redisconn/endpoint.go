package redisconn

import (
	"errors"
	"fmt"
)

// Endpoint is where to connect, as a configuration gives it. Resolve checks it against the
// rules of its mode; the exporter's configuration, the sink and the operator's lag reader
// all check it there, so the rules have one wording.
type Endpoint struct {
	// Mode is ModeStandalone (the default when empty), ModeCluster or ModeSentinel.
	Mode Mode
	// Addresses are host:port, redis://host:port or rediss://host:port (see ParseAddress):
	// the server, the cluster's seed nodes or the sentinels.
	Addresses []string
	// MasterName is the name the sentinels monitor the master under: sentinel mode only.
	MasterName string
	// DB is the database number; a cluster has only 0.
	DB int
	// SentinelPasswordFile authenticates to the sentinels themselves: sentinel mode only.
	SentinelPasswordFile string
}

// Resolved is an Endpoint that passed Resolve.
type Resolved struct {
	// Mode is the endpoint's mode, ModeStandalone when it was empty.
	Mode Mode
	// Addrs are the addresses as host:port, without their scheme.
	Addrs []string
	// AsksTLS reports whether the addresses use rediss://.
	AsksTLS bool
}

// Resolve checks e and returns its addresses as go-redis dials them. The error joins every
// problem, one per line, each starting with its key after prefix ("redis." for the
// exporter, "" for the operator's spec.redis): "redis.db: must be 0 in cluster mode, got 2".
func (e Endpoint) Resolve(prefix string) (Resolved, error) {
	r := Resolved{Mode: e.Mode.OrDefault()}
	var errs []error
	if err := r.Mode.check(); err != nil {
		errs = append(errs, fieldError(prefix, "mode", err.Error()))
	}
	var addrErrs []error
	r.Addrs, r.AsksTLS, addrErrs = parseAddresses(e.Addresses, prefix)
	errs = append(errs, addrErrs...)
	if r.Mode == ModeStandalone && len(e.Addresses) > 1 {
		errs = append(errs, fieldError(prefix, "addresses",
			fmt.Sprintf("standalone mode takes exactly one address, got %d", len(e.Addresses))))
	}
	errs = append(errs, e.modeRules(r.Mode, prefix)...)
	return r, errors.Join(errs...)
}

// modeRules are the settings that only one mode takes, or that a mode forbids.
func (e Endpoint) modeRules(mode Mode, prefix string) []error {
	var errs []error
	sentinelOnly := "only used when " + prefix + "mode is sentinel"
	switch {
	case mode == ModeSentinel && e.MasterName == "":
		errs = append(errs, fieldError(prefix, "sentinel.masterName", "required when "+prefix+"mode is sentinel"))
	case mode != ModeSentinel && e.MasterName != "":
		errs = append(errs, fieldError(prefix, "sentinel.masterName", sentinelOnly))
	}
	if mode != ModeSentinel && e.SentinelPasswordFile != "" {
		errs = append(errs, fieldError(prefix, "sentinel.passwordFile", sentinelOnly))
	}
	switch {
	case e.DB < 0:
		errs = append(errs, fieldError(prefix, "db", fmt.Sprintf("must not be negative, got %d", e.DB)))
	case e.DB != 0 && mode == ModeCluster:
		errs = append(errs, fieldError(prefix, "db",
			fmt.Sprintf("must be 0 in cluster mode, got %d: Redis Cluster has only database 0", e.DB)))
	}
	return errs
}
