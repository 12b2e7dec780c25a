// Package redistest starts real redis-server processes for tests: a standalone server
// (optionally with TLS, mutual TLS, an ACL user and extra directives), a three-master
// cluster with replicas, and a master/replica pair watched by three sentinels.
//
// The servers are real because what the exporter must get right is what fakes get wrong:
// pipeline replies, MOVED and READONLY during failover, NOAUTH and WRONGPASS, TLS
// handshakes, and what survives a restart.
//
// Every server listens on a free loopback port, keeps its configuration, log and data in
// its own t.TempDir, and is killed by PID and reaped in t.Cleanup, before that directory
// is removed. Nothing is ever killed by name.
//
// A test binary that dies without running its cleanups (a panic in another goroutine, a
// -timeout, SIGKILL) must not leave servers behind either, so every process is started by
// package child: with Pdeathsig=SIGKILL, from a thread that lives as long as the test binary,
// and in its own process group, so that a SIGKILL reaches the children Redis forks for AOF
// rewrites and diskless replication, and a Ctrl-C in the terminal stops the test binary (which
// then cleans up) instead of racing it to Redis.
//
// The helpers fail the test with t.Fatalf instead of returning errors, so the topology
// constructors, Start and the Await and Failover helpers must be called from the
// goroutine running the test, as with any t.FailNow. Stop and Kill never fail and may be
// called from any goroutine, for example while another one is writing.
package redistest
