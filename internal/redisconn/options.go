package redisconn

import (
	"time"

	"github.com/redis/go-redis/v9"
)

// Options are the go-redis settings for every mode in one place. go-redis's own
// UniversalOptions copies them into the options of the client each mode needs (Simple,
// Cluster, Failover), so a new setting is one field here, not one per mode and per caller.
// Mode decides the client; go-redis's NewUniversalClient would guess it from the addresses.
type Options struct {
	redis.UniversalOptions
	// Mode is the client to build; Resolve gives it.
	Mode Mode
	// ClusterStateReloadInterval is how often a ClusterClient reloads its slot map (cluster
	// mode); UniversalOptions does not carry it. Zero keeps go-redis's default.
	ClusterStateReloadInterval time.Duration
}

// StandaloneOptions are the options of a standalone client: the first address.
func (o *Options) StandaloneOptions() *redis.Options { return o.Simple() }

// ClusterOptions are the options of a cluster client: the addresses are seed nodes.
func (o *Options) ClusterOptions() *redis.ClusterOptions {
	c := o.Cluster()
	if o.ClusterStateReloadInterval > 0 {
		c.ClusterStateReloadInterval = o.ClusterStateReloadInterval
	}
	return c
}

// FailoverOptions are the options of a sentinel client: the addresses are the sentinels.
func (o *Options) FailoverOptions() *redis.FailoverOptions { return o.Failover() }

// NewClient builds the client for o.Mode: a *redis.Client for standalone and sentinel (a
// failover client), a *redis.ClusterClient for cluster.
func (o *Options) NewClient() redis.UniversalClient {
	switch o.Mode.OrDefault() {
	case ModeCluster:
		return redis.NewClusterClient(o.ClusterOptions())
	case ModeSentinel:
		return redis.NewFailoverClient(o.FailoverOptions())
	}
	return redis.NewClient(o.StandaloneOptions())
}
