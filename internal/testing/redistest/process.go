package redistest

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	// stopGrace bounds how long Stop waits for Redis to flush the AOF after SIGTERM
	// before it escalates to SIGKILL.
	stopGrace = 10 * time.Second
	// readyTimeout is generous because the machine running the tests may be busy and
	// a restart may have to load a large AOF first.
	readyTimeout = 30 * time.Second
	// startAttempts bounds the retries when another process takes a chosen port
	// between our probe and Redis's bind.
	startAttempts = 5
	// logTailLines is how much of a server log goes into a failure message.
	logTailLines = 30
)

// errPortInUse marks a failed start that another port may fix.
var errPortInUse = errors.New("port already in use")

// lookPath finds redis-server on every call rather than once, so that a test can take
// it off PATH.
func lookPath(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found: run hack/install-debs.sh redis (%v)", err)
	}
	return path
}

func newCommand(bin, dir, confPath, outPath string, sentinel bool) (*exec.Cmd, *os.File, error) {
	out, err := os.OpenFile(outPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, err
	}
	args := []string{confPath}
	if sentinel {
		args = append(args, "--sentinel")
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	// An *os.File, not a pipe: with a pipe, Wait would also wait for Redis's forked
	// children that inherited it.
	cmd.Stdout, cmd.Stderr = out, out
	// Redis reads nothing from the environment; an empty one keeps the developer's
	// from leaking into what a test observes.
	cmd.Env = []string{}
	return cmd, out, nil
}

var (
	portsMu sync.Mutex
	// handedOut keeps two servers of one test binary from being given the same port
	// when the kernel hands a just-closed port out again.
	handedOut = map[int]bool{}
)

// pickPorts is freePorts, replaceable so that a test can hand out a taken port and
// exercise the retry.
var pickPorts = freePorts

// freePorts returns n loopback ports that were free a moment ago. Another process can
// still take one before Redis binds it; the caller retries on errPortInUse.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for len(ports) < n {
		if len(listeners) > n+100 {
			t.Fatalf("finding %d free loopback ports: only %d after %d tries", n, len(ports), len(listeners))
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("finding a free loopback port: %v", err)
		}
		listeners = append(listeners, l)
		port := l.Addr().(*net.TCPAddr).Port
		if handedOut[port] {
			continue
		}
		handedOut[port] = true
		ports = append(ports, port)
	}
	return ports
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// readFrom returns what was appended to path since offset, so that a restart's failure
// is not blamed on an earlier run's log lines.
func readFrom(path string, offset int64) string {
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) < offset {
		return ""
	}
	return string(b[offset:])
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
