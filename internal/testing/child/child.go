// Package child starts the processes that tests and benchmarks run (redis-server, the exporter,
// the manager) so that they die with the program that started them, even when it is killed
// without cleaning up.
//
// Each child gets its own process group (a Ctrl-C in the terminal reaches only the parent,
// which then stops its children in order) and Pdeathsig=SIGKILL. Linux sends Pdeathsig when
// the thread that forked the child exits, not the process, and the Go runtime may retire any
// thread; so every child is forked from one goroutine that locks its OS thread and never
// returns.
package child

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

type request struct {
	cmd *exec.Cmd
	err chan error
}

var (
	once     sync.Once
	requests = make(chan request)
)

// Start starts cmd as a child in its own process group that is killed when this program dies.
// It sets cmd.SysProcAttr; everything else about cmd is the caller's.
func Start(cmd *exec.Cmd) error {
	once.Do(func() {
		go func() {
			runtime.LockOSThread()
			for req := range requests {
				req.err <- req.cmd.Start()
			}
		}()
	})
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	req := request{cmd: cmd, err: make(chan error, 1)}
	requests <- req
	return <-req.err
}
