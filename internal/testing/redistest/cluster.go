package redistest

import (
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
	clusterSlots   = 16384
	clusterMasters = 3
	// clusterTimeout bounds how long the nodes get to agree; it covers a failover
	// (a few node timeouts) on a busy machine.
	clusterTimeout = 60 * time.Second
)

// ClusterTopology is a Redis Cluster of three masters, each with WithReplicas replicas
// (default one), so that tests see slot routing, MOVED and, after Kill of a master,
// a real failover.
type ClusterTopology struct {
	t testing.TB
	security
	shards []Shard
	nodes  []*Server
}

// Shard is one master's slot range and the nodes started to serve it. The roles are
// those at start: after a failover, a replica here may be the master (see
// CurrentMasters).
type Shard struct {
	// FirstSlot is the first hash slot assigned to Master.
	FirstSlot int
	// LastSlot is the last hash slot assigned to Master, inclusive.
	LastSlot int
	// Master is the node started as the shard's master.
	Master *Server
	// Replicas are the nodes started as Master's replicas.
	Replicas []*Server
}

// Cluster starts a three-master cluster: every node on its own client port and an
// explicit cluster-port (so port+10000 need not be free), slots assigned with CLUSTER
// ADDSLOTSRANGE, nodes joined with CLUSTER MEET and replicas attached with CLUSTER
// REPLICATE. It returns once every node reports cluster_state:ok, all nodes agree on the
// layout and every replica's link is up. cluster-node-timeout is WithNodeTimeout.
func Cluster(t testing.TB, opts ...Option) *ClusterTopology {
	t.Helper()
	bin, cfg := prepare(t, "Cluster", opts)
	c := &ClusterTopology{t: t, security: newSecurity(t, cfg)}
	for i := range clusterMasters {
		shard := Shard{
			FirstSlot: i * clusterSlots / clusterMasters,
			LastSlot:  (i+1)*clusterSlots/clusterMasters - 1,
			Master:    c.startNode(t, bin, cfg, fmt.Sprintf("cluster-master-%d", i)),
		}
		for r := range cfg.replicas {
			shard.Replicas = append(shard.Replicas, c.startNode(t, bin, cfg, fmt.Sprintf("cluster-replica-%d-%d", i, r)))
		}
		c.shards = append(c.shards, shard)
	}
	c.join(t)
	c.await(t, true)
	return c
}

// startNode starts one node of c with cluster mode on, and adds it to c's nodes.
func (c *ClusterTopology) startNode(t testing.TB, bin string, cfg config, name string) *Server {
	t.Helper()
	s := startServer(t, bin, serverSpec{
		name:     name,
		busPort:  true,
		security: c.security,
		config: func(s *Server) ([]string, error) {
			extra := []string{
				"cluster-enabled yes",
				"cluster-config-file nodes.conf",
				"cluster-port " + strconv.Itoa(s.busPort),
				"cluster-node-timeout " + strconv.FormatInt(cfg.nodeTimeout.Milliseconds(), 10),
				// A replica whose link was down for a while on a busy machine must
				// still take over: failover tests want the failover to happen.
				"cluster-replica-validity-factor 0",
				// Replicas stay with the master the test gave them.
				"cluster-allow-replica-migration no",
			}
			if s.tls != nil {
				extra = append(extra, "tls-cluster yes")
			}
			return dataConfig(s, cfg, extra)
		},
	})
	c.nodes = append(c.nodes, s)
	return s
}

// join makes the started nodes one cluster: it learns each node's ID, assigns each master its
// slots, introduces every node to the first, and attaches the replicas once all know each other.
func (c *ClusterTopology) join(t testing.TB) {
	t.Helper()
	for _, n := range c.nodes {
		id, ok := n.mustDo(t, "CLUSTER", "MYID").(string)
		if !ok || id == "" {
			t.Fatalf("CLUSTER MYID on %s: got %q", n, id)
		}
		n.nodeID = id
	}
	for _, sh := range c.shards {
		sh.Master.mustDo(t, "CLUSTER", "ADDSLOTSRANGE", sh.FirstSlot, sh.LastSlot)
	}
	seed := c.nodes[0]
	for _, n := range c.nodes[1:] {
		seed.mustDo(t, "CLUSTER", "MEET", "127.0.0.1", n.port, n.busPort)
	}
	// Every node must know every other by its real ID before CLUSTER REPLICATE can name
	// one: during the handshake a node is listed under a random ID.
	wait.For(t, clusterTimeout, "cluster nodes meeting", c.allMet)
	for _, sh := range c.shards {
		for _, r := range sh.Replicas {
			r.mustDo(t, "CLUSTER", "REPLICATE", sh.Master.nodeID)
		}
	}
}

// allMet says which node does not yet know which other by its ID.
func (c *ClusterTopology) allMet() error {
	for _, n := range c.nodes {
		view, err := n.clusterNodes()
		if err != nil {
			return err
		}
		known := map[string]bool{}
		for _, e := range view {
			if !e.flags["handshake"] && !e.flags["noaddr"] {
				known[e.id] = true
			}
		}
		for _, m := range c.nodes {
			if !known[m.nodeID] {
				return fmt.Errorf("%s does not know %s yet", n, m)
			}
		}
	}
	return nil
}

// AwaitHealthy waits until every running node reports cluster_state:ok with all slots
// served, all running nodes agree on which node serves which slots, none of them sees a
// running node as failing, and every running replica's link is up. Use it after Kill,
// Stop or Start of a node.
func (c *ClusterTopology) AwaitHealthy(t testing.TB) {
	t.Helper()
	c.await(t, false)
}

// await also checks the layout at start when layout is true.
func (c *ClusterTopology) await(t testing.TB, layout bool) {
	t.Helper()
	wait.For(t, clusterTimeout, "cluster agreeing", func() error {
		running := map[string]bool{}
		for _, n := range c.nodes {
			if n.PID() != 0 {
				running[n.nodeID] = true
			}
		}
		var first string
		for _, n := range c.nodes {
			if !running[n.nodeID] {
				continue
			}
			info, err := n.clusterInfo()
			if err != nil {
				return err
			}
			if info["cluster_state"] != "ok" || info["cluster_slots_ok"] != strconv.Itoa(clusterSlots) {
				return fmt.Errorf("%s: cluster_state:%s cluster_slots_ok:%s", n, info["cluster_state"], info["cluster_slots_ok"])
			}
			view, err := n.clusterNodes()
			if err != nil {
				return err
			}
			var owners []string
			for _, e := range view {
				if running[e.id] && (e.flags["fail"] || e.flags["fail?"]) {
					return fmt.Errorf("%s sees running node %s as %v", n, e.addr, e.rawFlags)
				}
				if e.flags["master"] && len(e.slots) > 0 && !e.flags["fail"] {
					owners = append(owners, e.id+"="+strings.Join(e.slots, ","))
				}
			}
			slices.Sort(owners)
			if sig := strings.Join(owners, " "); first == "" {
				first = sig
			} else if sig != first {
				return fmt.Errorf("%s sees slot owners %q, another node sees %q", n, sig, first)
			}
			if layout {
				if err := c.checkLayout(n, view); err != nil {
					return err
				}
			}
			repl, err := n.info("replication")
			if err != nil {
				return err
			}
			if repl["role"] == "slave" && repl["master_link_status"] != "up" {
				return fmt.Errorf("%s: replication link %s", n, repl["master_link_status"])
			}
		}
		return nil
	})
}

func (c *ClusterTopology) checkLayout(n *Server, view []clusterNode) error {
	byID := map[string]clusterNode{}
	for _, e := range view {
		byID[e.id] = e
	}
	for _, sh := range c.shards {
		m, ok := byID[sh.Master.nodeID]
		want := fmt.Sprintf("%d-%d", sh.FirstSlot, sh.LastSlot)
		if !ok || !m.flags["master"] || !slices.Equal(m.slots, []string{want}) {
			return fmt.Errorf("%s sees %s as %v with slots %v, want master of %s", n, sh.Master, m.rawFlags, m.slots, want)
		}
		for _, r := range sh.Replicas {
			e, ok := byID[r.nodeID]
			if !ok || !e.flags["slave"] || e.masterID != sh.Master.nodeID {
				return fmt.Errorf("%s sees %s as %v of %q, want replica of %s", n, r, e.rawFlags, e.masterID, sh.Master)
			}
		}
	}
	return nil
}

// clusterNode is one line of CLUSTER NODES.
type clusterNode struct {
	id       string
	addr     string
	port     int
	rawFlags string
	flags    map[string]bool
	masterID string
	slots    []string
}

func (s *Server) clusterNodes() ([]clusterNode, error) {
	text, err := s.doText("CLUSTER", "NODES")
	if err != nil {
		return nil, err
	}
	var nodes []clusterNode
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			return nil, fmt.Errorf("CLUSTER NODES on %s: malformed line %q", s, line)
		}
		// ip:port@cport[,hostname]
		addr, _, _ := strings.Cut(f[1], "@")
		_, portText, _ := strings.Cut(addr, ":")
		port, _ := strconv.Atoi(portText)
		n := clusterNode{id: f[0], addr: addr, port: port, rawFlags: f[2], flags: map[string]bool{}, slots: f[8:]}
		for _, fl := range strings.Split(f[2], ",") {
			n.flags[fl] = true
		}
		if f[3] != "-" {
			n.masterID = f[3]
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

func (s *Server) clusterInfo() (map[string]string, error) {
	text, err := s.doText("CLUSTER", "INFO")
	if err != nil {
		return nil, err
	}
	return fields(text), nil
}

// Shards returns the slot ranges and the nodes started for them, in slot order.
func (c *ClusterTopology) Shards() []Shard { return slices.Clone(c.shards) }

// Nodes returns every node, masters and replicas, in start order.
func (c *ClusterTopology) Nodes() []*Server { return slices.Clone(c.nodes) }

// Masters returns the nodes started as masters, in slot order.
func (c *ClusterTopology) Masters() []*Server {
	var m []*Server
	for _, sh := range c.shards {
		m = append(m, sh.Master)
	}
	return m
}

// CurrentMasters returns the nodes that serve slots now, in slot order, as the first
// running node sees it; call AwaitHealthy first when the answer must be one all nodes agree on.
func (c *ClusterTopology) CurrentMasters(t testing.TB) []*Server {
	t.Helper()
	for _, n := range c.nodes {
		if n.PID() == 0 {
			continue
		}
		view, err := n.clusterNodes()
		if err != nil {
			t.Fatalf("reading the cluster layout: %v", err)
		}
		type owner struct {
			firstSlot int
			node      *Server
		}
		var owners []owner
		for _, e := range view {
			if !e.flags["master"] || len(e.slots) == 0 || e.flags["fail"] {
				continue
			}
			i := slices.IndexFunc(c.nodes, func(s *Server) bool { return s.nodeID == e.id })
			if i < 0 {
				t.Fatalf("%s reports unknown node %s %s", n, e.id, e.addr)
			}
			first, _, _ := strings.Cut(e.slots[0], "-")
			slot, err := strconv.Atoi(first)
			if err != nil {
				t.Fatalf("%s reports slots %v for %s", n, e.slots, e.addr)
			}
			owners = append(owners, owner{slot, c.nodes[i]})
		}
		slices.SortFunc(owners, func(a, b owner) int { return a.firstSlot - b.firstSlot })
		masters := make([]*Server, len(owners))
		for i, o := range owners {
			masters[i] = o.node
		}
		return masters
	}
	t.Fatalf("CurrentMasters: no cluster node is running")
	return nil
}

// Addrs returns the address of every node, masters and replicas.
func (c *ClusterTopology) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// ClusterOptions returns options for redis.NewClusterClient with every node as a seed,
// TLS and the ACL user's current credentials. go-redis refreshes the slot map only
// every 60 s unless it sees MOVED; failover tests will want ClusterStateReloadInterval.
func (c *ClusterTopology) ClusterOptions() *redis.ClusterOptions {
	o := &redis.ClusterOptions{Addrs: c.Addrs()}
	o.TLSConfig, o.Username, o.Password = c.clientAuth()
	return o
}

// Client returns a cluster client for ClusterOptions, closed when t ends.
func (c *ClusterTopology) Client(t testing.TB) *redis.ClusterClient {
	t.Helper()
	return closeAtEnd(t, redis.NewClusterClient(c.ClusterOptions()))
}

// SetPassword replaces the ACL user's password on every node (ACL is per node in Redis
// Cluster), in masterauth, and in ACL().PasswordFile(). Every node must be running.
func (c *ClusterTopology) SetPassword(t testing.TB, password string) {
	t.Helper()
	rotatePassword(t, c.acl, c.nodes, nil, "", password)
}
