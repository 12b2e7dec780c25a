package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tracestream/tracestream/internal/testing/child"
	"github.com/tracestream/tracestream/internal/testing/wait"
)

// Server is one redis-server process (a data node or a sentinel) that keeps its port,
// directory and configuration across Stop and Start, so that a test can take Redis away
// in the middle of a load and bring the same instance back.
type Server struct {
	t        testing.TB
	name     string
	bin      string
	dir      string
	confPath string
	logPath  string
	outPath  string
	sentinel bool
	security
	port    int
	busPort int
	nodeID  string // cluster nodes only; stable because nodes.conf survives restarts
	// standalone is false for the nodes of a topology, whose password must change
	// on every node at once.
	standalone bool

	mu   sync.Mutex
	proc *child.Process
}

type serverSpec struct {
	name     string
	sentinel bool
	busPort  bool
	security
	// config returns the redis.conf lines once the ports are chosen.
	config func(s *Server) ([]string, error)
}

// Standalone starts one redis-server configured by opts, persisting to an AOF so that
// Stop and Start keep the data, and kills it when the test ends.
func Standalone(t testing.TB, opts ...Option) *Server {
	t.Helper()
	bin, cfg := prepare(t, "Standalone", opts)
	s := startServer(t, bin, serverSpec{
		name:     "redis",
		security: newSecurity(t, cfg),
		config: func(s *Server) ([]string, error) {
			return dataConfig(s, cfg, nil)
		},
	})
	s.standalone = true
	return s
}

func startServer(t testing.TB, bin string, spec serverSpec) *Server {
	t.Helper()
	// TempDir before Cleanup: cleanups run last-in first-out, so the process is dead
	// before its directory is removed.
	dir := t.TempDir()
	s := &Server{
		t:        t,
		name:     spec.name,
		bin:      bin,
		dir:      dir,
		confPath: filepath.Join(dir, "redis.conf"),
		logPath:  filepath.Join(dir, "redis.log"),
		outPath:  filepath.Join(dir, "stdout.log"),
		sentinel: spec.sentinel,
		security: spec.security,
	}
	t.Cleanup(s.Kill)
	nports := 1
	if spec.busPort {
		nports = 2
	}
	for attempt := 1; ; attempt++ {
		ports := pickPorts(t, nports)
		s.port = ports[0]
		if spec.busPort {
			s.busPort = ports[1]
		}
		lines, err := spec.config(s)
		if err != nil {
			t.Fatalf("configuring %s: %v", s.name, err)
		}
		if err := os.WriteFile(s.confPath, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatalf("writing %s: %v", s.confPath, err)
		}
		err = s.run()
		if err == nil {
			return s
		}
		if errors.Is(err, errPortInUse) && attempt < startAttempts {
			t.Logf("%v; retrying with other ports", err)
			continue
		}
		t.Fatalf("%v", err)
	}
}

// baseConfig is what data nodes and sentinels share.
func baseConfig(s *Server) []string {
	lines := []string{
		"daemonize no",
		"bind 127.0.0.1",
		confLine("dir", s.dir),
		confLine("logfile", s.logPath),
		"loglevel notice",
	}
	if s.tls == nil {
		return append(lines, "port "+strconv.Itoa(s.port))
	}
	auth := "no"
	if s.tls.Mutual() {
		auth = "yes"
	}
	return append(lines,
		"port 0",
		"tls-port "+strconv.Itoa(s.port),
		confLine("tls-cert-file", s.tls.ServerCertFile()),
		confLine("tls-key-file", s.tls.ServerKeyFile()),
		confLine("tls-ca-cert-file", s.tls.CAFile()),
		"tls-auth-clients "+auth,
		// Replicas and sentinels reach the TLS-only port, so they must speak TLS; they
		// present the server certificate as their client certificate.
		"tls-replication yes",
	)
}

// dataConfig is the configuration of a data node; extra comes from the topology and
// the user's directives come last so that they win.
func dataConfig(s *Server, cfg config, extra []string) ([]string, error) {
	lines := append(baseConfig(s),
		// AOF rather than RDB so that Stop/Start keeps every acknowledged write and
		// no background save forks in the middle of a measurement.
		"appendonly yes",
		`save ""`,
		// Redis 7 waits 5 s for more replicas before a full sync; tests want it now.
		"repl-diskless-sync-delay 0",
		// DEBUG SLEEP and friends are how failure tests make Redis slow on purpose.
		"enable-debug-command local",
	)
	if s.acl != nil {
		aclFile := filepath.Join(s.dir, "users.acl")
		if err := os.WriteFile(aclFile, []byte(s.acl.fileContents()), 0o600); err != nil {
			return nil, err
		}
		lines = append(lines,
			confLine("aclfile", aclFile),
			// Replicas authenticate as the same user, and so does a demoted master.
			confLine("masteruser", s.acl.Username()),
			confLine("masterauth", s.acl.Password()),
		)
	}
	lines = append(lines, extra...)
	for _, d := range cfg.directives {
		lines = append(lines, confLine(d...))
	}
	return lines, nil
}

// run starts the process and waits until it answers PING.
func (s *Server) run() error {
	logOffset, outOffset := fileSize(s.logPath), fileSize(s.outPath)
	cmd, out, err := newCommand(s.bin, s.dir, s.confPath, s.outPath, s.sentinel)
	if err != nil {
		return fmt.Errorf("starting %s: %w", s.name, err)
	}
	p, err := child.Run(cmd)
	_ = out.Close() // the child has its own descriptor
	if err != nil {
		return fmt.Errorf("starting %s: %w", s.name, err)
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	if err := s.awaitReady(p); err != nil {
		p.Kill()
		log := readFrom(s.logPath, logOffset)
		stdout := readFrom(s.outPath, outOffset)
		if strings.Contains(log+stdout, "Address already in use") {
			return fmt.Errorf("%s on %s: %w", s.name, s.Addr(), errPortInUse)
		}
		msg := fmt.Sprintf("%s (%s, pid %d) did not answer PING: %v", s.name, s.Addr(), p.PID(), err)
		for _, f := range []struct{ path, text string }{{s.logPath, log}, {s.outPath, stdout}} {
			if strings.TrimSpace(f.text) != "" {
				msg += fmt.Sprintf("\n--- tail of %s ---\n%s", f.path, tail(f.text, logTailLines))
			}
		}
		return errors.New(msg)
	}
	return nil
}

func (s *Server) awaitReady(p *child.Process) error {
	deadline := time.Now().Add(readyTimeout)
	ticker := time.NewTicker(wait.Interval)
	defer ticker.Stop()
	for {
		if p.Exited() {
			return fmt.Errorf("process exited: %w", p.Err())
		}
		// A bare TCP dial first: go-redis logs every refused dial, and a busy
		// machine may need hundreds of polls.
		var pong any
		conn, err := net.DialTimeout("tcp", s.Addr(), time.Second)
		if err == nil {
			_ = conn.Close()
			// A short timeout: Redis answers PING at once, even while loading
			// (LOADING), so silence means someone else holds the port.
			pong, err = s.doTimeout(time.Second, "PING")
			if err == nil && pong != "PONG" {
				err = fmt.Errorf("PING answered %v", pong)
			}
		}
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", readyTimeout, err)
		}
		select {
		case <-ticker.C:
		case <-p.Done():
		}
	}
}

// Addr is the host:port clients dial; with TLS it is the TLS port.
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Dir is the server's working directory (configuration, AOF, nodes.conf), for tests
// that inspect or corrupt what Redis persisted.
func (s *Server) Dir() string { return s.dir }

// LogFile is the server's log, for tests that assert on what Redis logged.
func (s *Server) LogFile() string { return s.logPath }

// Options returns client options for this server alone, with TLS and the ACL user's
// current credentials filled in. Each call returns a new value the caller may change.
func (s *Server) Options() *redis.Options {
	o := &redis.Options{Addr: s.Addr()}
	o.TLSConfig, o.Username, o.Password = s.clientAuth()
	return o
}

// Client returns a client for Options, closed when t ends.
func (s *Server) Client(t testing.TB) *redis.Client {
	t.Helper()
	return closeAtEnd(t, redis.NewClient(s.Options()))
}

// PID is the process ID, or 0 when the server is not running (stopped, killed or
// crashed).
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil || s.proc.Exited() {
		return 0
	}
	return s.proc.PID()
}

// Start restarts a stopped server on the same port with the same directory, so that
// clients configured before the outage reconnect to the same address and find the data
// persisted in the AOF. It fails the test if the server is running or does not come up.
func (s *Server) Start() {
	s.t.Helper()
	if pid := s.PID(); pid != 0 {
		s.t.Fatalf("%s (%s) is already running as pid %d", s.name, s.Addr(), pid)
	}
	if err := s.run(); err != nil {
		s.t.Fatalf("restarting %v", err)
	}
}

// Stop shuts the server down the way Kubernetes does (SIGTERM, so Redis flushes its AOF),
// sends SIGKILL if it has not exited within 10 s, and returns once it has been reaped.
func (s *Server) Stop() {
	if p := s.takeProcess(); p != nil {
		_ = p.Terminate(stopGrace)
	}
}

// Kill sends SIGKILL, like a crash or an OOM kill: writes Redis has not yet written to
// the AOF (appendfsync everysec) may be lost. It returns once the process is reaped.
func (s *Server) Kill() {
	if p := s.takeProcess(); p != nil {
		p.Kill()
	}
}

// SetPassword replaces the ACL user's password (ACL SETUSER ... resetpass) on a
// Standalone server and in ACL().PasswordFile(), for credential rotation tests.
// Connections that are already authenticated keep working, as they do in Redis.
func (s *Server) SetPassword(t testing.TB, password string) {
	t.Helper()
	if !s.standalone {
		t.Fatalf("SetPassword on %s: use the topology's SetPassword, which changes every node", s)
	}
	rotatePassword(t, s.acl, []*Server{s}, nil, "", password)
}

func (s *Server) takeProcess() *child.Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	s.proc = nil
	return p
}

// adminOptions are for the harness's own commands: fail fast, never resend.
func (s *Server) adminOptions() *redis.Options {
	o := s.Options()
	o.MaxRetries = -1
	o.DialerRetries = 1
	o.DialTimeout = 2 * time.Second
	o.ReadTimeout = 5 * time.Second
	o.WriteTimeout = 5 * time.Second
	o.PoolSize = 1
	// Redis 7.0 does not know CLIENT SETINFO.
	o.DisableIdentity = true
	return o
}

// do runs one command on a fresh connection, so that a restart or a password change
// between two calls cannot leave it holding a dead or stale connection.
func (s *Server) do(args ...any) (any, error) {
	return s.doTimeout(5*time.Second, args...)
}

func (s *Server) doTimeout(timeout time.Duration, args ...any) (any, error) {
	o := s.adminOptions()
	o.ReadTimeout, o.WriteTimeout = timeout, timeout
	c := redis.NewClient(o)
	defer func() { _ = c.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 2*timeout)
	defer cancel()
	return c.Do(ctx, args...).Result()
}

func (s *Server) mustDo(t testing.TB, args ...any) any {
	t.Helper()
	v, err := s.do(args...)
	if err != nil {
		t.Fatalf("%s (%s): %v: %v", s.name, s.Addr(), args, err)
	}
	return v
}

// doText runs a command whose reply is text (INFO, CLUSTER INFO, CLUSTER NODES).
func (s *Server) doText(args ...any) (string, error) {
	v, err := s.do(args...)
	if err != nil {
		return "", err
	}
	text, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%v on %s: unexpected reply %T", args, s, v)
	}
	return text, nil
}

// info returns one INFO section as a map.
func (s *Server) info(section string) (map[string]string, error) {
	text, err := s.doText("INFO", section)
	if err != nil {
		return nil, err
	}
	return fields(text), nil
}

// fields reads the "key:value" lines of INFO and CLUSTER INFO.
func fields(text string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			m[k] = v
		}
	}
	return m
}

// String names the server by role and address, for failure messages.
func (s *Server) String() string { return s.name + " (" + s.Addr() + ")" }
