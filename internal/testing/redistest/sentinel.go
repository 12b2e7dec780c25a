package redistest

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tracestream/tracestream/internal/testing/wait"
)

const (
	// SentinelMasterName is the name the sentinels monitor the master under.
	SentinelMasterName = "redistest"
	sentinelCount      = 3
	sentinelQuorum     = 2
	// sentinelTimeout covers sentinels discovering each other (hello messages every
	// 2 s) and a failover on a busy machine.
	sentinelTimeout = 60 * time.Second
)

// SentinelTopology is one master with WithReplicas replicas (default one) monitored by
// three sentinels with quorum 2, the smallest setup in which a failover is decided the
// way production decides it.
type SentinelTopology struct {
	t testing.TB
	security
	servers   []*Server
	sentinels []*Server
}

// Sentinel starts the master, its replicas and three sentinels, and returns once every
// sentinel knows the master, every replica (with its link up) and the other sentinels.
// down-after-milliseconds is WithNodeTimeout and failover-timeout three times that, so
// that failovers take seconds.
func Sentinel(t testing.TB, opts ...Option) *SentinelTopology {
	t.Helper()
	bin, cfg := prepare(t, "Sentinel", opts)
	if cfg.replicas < 1 {
		t.Fatalf("redistest.Sentinel: WithReplicas(%d): a failover needs at least one replica", cfg.replicas)
	}
	st := &SentinelTopology{t: t, security: newSecurity(t, cfg)}
	acl := st.acl

	master := startServer(t, bin, serverSpec{
		name:     "redis-0",
		security: st.security,
		config: func(s *Server) ([]string, error) {
			return dataConfig(s, cfg, nil)
		},
	})
	st.servers = append(st.servers, master)
	for i := 1; i <= cfg.replicas; i++ {
		st.servers = append(st.servers, startServer(t, bin, serverSpec{
			name:     "redis-" + strconv.Itoa(i),
			security: st.security,
			config: func(s *Server) ([]string, error) {
				return dataConfig(s, cfg, []string{"replicaof 127.0.0.1 " + strconv.Itoa(master.port)})
			},
		}))
	}

	downAfter := cfg.nodeTimeout.Milliseconds()
	for i := range sentinelCount {
		st.sentinels = append(st.sentinels, startServer(t, bin, serverSpec{
			name:     "sentinel-" + strconv.Itoa(i),
			sentinel: true,
			// Sentinels speak TLS like the data servers but have no ACL user.
			security: security{tls: st.tls},
			config: func(s *Server) ([]string, error) {
				lines := append(baseConfig(s),
					fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d %d", SentinelMasterName, master.port, sentinelQuorum),
					fmt.Sprintf("sentinel down-after-milliseconds %s %d", SentinelMasterName, downAfter),
					fmt.Sprintf("sentinel failover-timeout %s %d", SentinelMasterName, 3*downAfter),
					fmt.Sprintf("sentinel parallel-syncs %s 1", SentinelMasterName),
				)
				if acl != nil {
					lines = append(lines,
						confLine("sentinel", "auth-user", SentinelMasterName, acl.Username()),
						confLine("sentinel", "auth-pass", SentinelMasterName, acl.Password()),
					)
				}
				return lines, nil
			},
		}))
	}
	st.await(t, master)
	return st
}

// AwaitHealthy waits until every running sentinel agrees on the master, sees every other
// running data server as its replica with a working link, and knows the other sentinels,
// which is what the next failover needs. After a Failover this takes about 20 s: the
// sentinels demote the old master only after their fixed 10 s INFO period and an 8 s
// grace, and see its new link up at the next INFO.
func (st *SentinelTopology) AwaitHealthy(t testing.TB) {
	t.Helper()
	st.await(t, st.Master(t))
}

func (st *SentinelTopology) await(t testing.TB, master *Server) {
	t.Helper()
	wait.For(t, sentinelTimeout, "sentinels settling on "+master.String(), func() error {
		var replicas []string
		for _, s := range st.servers {
			if s != master && s.PID() != 0 {
				replicas = append(replicas, s.Addr())
			}
		}
		slices.Sort(replicas)
		for _, sen := range st.runningSentinels() {
			err := sen.withSentinel(func(ctx context.Context, c *redis.SentinelClient) error {
				m, err := c.Master(ctx, SentinelMasterName).Result()
				if err != nil {
					return err
				}
				if addr := hostPort(m["ip"], m["port"]); addr != master.Addr() || m["flags"] != "master" {
					return fmt.Errorf("%s sees master %s with flags %s, want %s", sen, addr, m["flags"], master)
				}
				if m["num-other-sentinels"] != strconv.Itoa(sentinelCount-1) {
					return fmt.Errorf("%s knows %s other sentinels, want %d", sen, m["num-other-sentinels"], sentinelCount-1)
				}
				rs, err := c.Replicas(ctx, SentinelMasterName).Result()
				if err != nil {
					return err
				}
				var healthy []string
				for _, r := range rs {
					if r["flags"] == "slave" && r["master-link-status"] == "ok" {
						healthy = append(healthy, hostPort(r["ip"], r["port"]))
					}
				}
				slices.Sort(healthy)
				if !slices.Equal(healthy, replicas) {
					return fmt.Errorf("%s sees healthy replicas %v, want %v", sen, healthy, replicas)
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// Master returns the data server the sentinels agree is the master, waiting while they
// disagree (during a failover).
func (st *SentinelTopology) Master(t testing.TB) *Server {
	t.Helper()
	var master *Server
	wait.For(t, sentinelTimeout, "sentinels agreeing on the master", func() error {
		m, err := st.agreedMaster()
		master = m
		return err
	})
	return master
}

func (st *SentinelTopology) agreedMaster() (*Server, error) {
	var addr string
	for _, sen := range st.runningSentinels() {
		var got string
		err := sen.withSentinel(func(ctx context.Context, c *redis.SentinelClient) error {
			a, err := c.GetMasterAddrByName(ctx, SentinelMasterName).Result()
			if err != nil {
				return err
			}
			if len(a) != 2 {
				return fmt.Errorf("%s: GET-MASTER-ADDR-BY-NAME answered %v", sen, a)
			}
			got = hostPort(a[0], a[1])
			return nil
		})
		if err != nil {
			return nil, err
		}
		if addr == "" {
			addr = got
		} else if got != addr {
			return nil, fmt.Errorf("%s reports master %s, another sentinel %s", sen, got, addr)
		}
	}
	if addr == "" {
		return nil, fmt.Errorf("no sentinel is running")
	}
	for _, s := range st.servers {
		if s.Addr() == addr {
			return s, nil
		}
	}
	return nil, fmt.Errorf("the sentinels report %s, which is not one of the data servers", addr)
}

// Replicas returns every data server except the current Master, running or not.
func (st *SentinelTopology) Replicas(t testing.TB) []*Server {
	t.Helper()
	m := st.Master(t)
	var rs []*Server
	for _, s := range st.servers {
		if s != m {
			rs = append(rs, s)
		}
	}
	return rs
}

// Failover runs SENTINEL FAILOVER and returns the new master once every running sentinel
// reports it and it answers role:master. It does not wait for the old master to be
// turned into a replica; AwaitHealthy does.
func (st *SentinelTopology) Failover(t testing.TB) *Server {
	t.Helper()
	old := st.Master(t)
	sentinels := st.runningSentinels()
	if len(sentinels) == 0 {
		t.Fatalf("Failover: no sentinel is running")
	}
	// NOGOODSLAVE while the sentinel's view of the replicas is stale, INPROG while an
	// earlier failover finishes: both pass.
	wait.For(t, sentinelTimeout, "SENTINEL FAILOVER", func() error {
		return sentinels[0].withSentinel(func(ctx context.Context, c *redis.SentinelClient) error {
			err := c.Failover(ctx, SentinelMasterName).Err()
			if err != nil && !strings.Contains(err.Error(), "NOGOODSLAVE") && !strings.Contains(err.Error(), "INPROG") {
				t.Fatalf("SENTINEL FAILOVER on %s: %v", sentinels[0], err)
			}
			return err
		})
	})
	var master *Server
	wait.For(t, sentinelTimeout, "sentinels reporting a new master after failover from "+old.String(), func() error {
		m, err := st.agreedMaster()
		if err != nil {
			return err
		}
		if m == old {
			return fmt.Errorf("the sentinels still report %s", old)
		}
		info, err := m.info("replication")
		if err != nil {
			return err
		}
		if info["role"] != "master" {
			return fmt.Errorf("%s reports role:%s", m, info["role"])
		}
		master = m
		return nil
	})
	return master
}

func (st *SentinelTopology) runningSentinels() []*Server {
	var rs []*Server
	for _, s := range st.sentinels {
		if s.PID() != 0 {
			rs = append(rs, s)
		}
	}
	return rs
}

func (s *Server) withSentinel(f func(context.Context, *redis.SentinelClient) error) error {
	c := redis.NewSentinelClient(s.adminOptions())
	defer func() { _ = c.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return f(ctx, c)
}

func hostPort(host, port string) string { return host + ":" + port }

// MasterName is the name to give redis.FailoverOptions.MasterName.
func (st *SentinelTopology) MasterName() string { return SentinelMasterName }

// Servers returns the data servers in start order: the initial master first.
func (st *SentinelTopology) Servers() []*Server { return slices.Clone(st.servers) }

// Sentinels returns the sentinel processes, for tests that stop one.
func (st *SentinelTopology) Sentinels() []*Server { return slices.Clone(st.sentinels) }

// SentinelAddrs returns the sentinels' addresses.
func (st *SentinelTopology) SentinelAddrs() []string {
	addrs := make([]string, len(st.sentinels))
	for i, s := range st.sentinels {
		addrs[i] = s.Addr()
	}
	return addrs
}

// FailoverOptions returns options for redis.NewFailoverClient: the sentinels, TLS (used
// for sentinels and data servers alike) and the ACL user's current credentials, which
// only the data servers check.
func (st *SentinelTopology) FailoverOptions() *redis.FailoverOptions {
	o := &redis.FailoverOptions{MasterName: SentinelMasterName, SentinelAddrs: st.SentinelAddrs()}
	o.TLSConfig, o.Username, o.Password = st.clientAuth()
	return o
}

// Client returns a failover client for FailoverOptions, closed when t ends.
func (st *SentinelTopology) Client(t testing.TB) *redis.Client {
	t.Helper()
	return closeAtEnd(t, redis.NewFailoverClient(st.FailoverOptions()))
}

// SetPassword replaces the ACL user's password on every data server, in masterauth, in
// the sentinels' auth-pass and in ACL().PasswordFile(). Every data server must be running.
func (st *SentinelTopology) SetPassword(t testing.TB, password string) {
	t.Helper()
	rotatePassword(t, st.acl, st.servers, st.runningSentinels(), SentinelMasterName, password)
}
