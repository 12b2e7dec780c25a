package child

import (
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Process is a child started by Run and the goroutine that reaps it. Reaping at once, rather
// than when the caller gets round to stopping it, lets Kill tell whether the process-group ID
// still belongs to this child: the kernel may hand it to another group once the leader is reaped.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd.Wait has reaped the process
	err  error         // cmd.Wait's result, valid once done is closed
}

// Run starts cmd as Start does and reaps it in a goroutine; Done is closed when it has exited.
func Run(cmd *exec.Cmd) (*Process, error) {
	if err := Start(cmd); err != nil {
		return nil, err
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// PID is the process ID, which is also its process-group ID.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited says whether Done is closed.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is cmd.Wait's result once the process has exited (nil for exit status 0), and nil
// while it runs.
func (p *Process) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.err
}

// ExitCode is the exit status, or -1 while the process runs or when a signal ended it.
func (p *Process) ExitCode() int {
	if !p.Exited() {
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

// Signal sends sig to the process alone (not its group), for callers that pause and resume it.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Kill sends SIGKILL to the whole process group, so that whatever the child forked dies with
// it, and returns once the child is reaped. It signals only while the leader is unreaped, so
// that the group ID cannot have been reused.
func (p *Process) Kill() {
	if !p.Exited() {
		_ = syscall.Kill(-p.PID(), syscall.SIGKILL)
	}
	<-p.done
}

// Terminate asks the process to shut down cleanly (SIGTERM to it alone, so that it can stop
// its own children in order), falls back to Kill when it has not exited within grace, and
// returns Err. A process that has already exited is not signalled.
func (p *Process) Terminate(grace time.Duration) error {
	if !p.Exited() {
		_ = p.Signal(syscall.SIGTERM)
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		p.Kill()
	}
	return p.err
}
