package child

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tracestream/tracestream/internal/testing/wait"
)

// exitSignal is the signal that ended the process, or -1 when it exited on its own.
func exitSignal(t *testing.T, err error) syscall.Signal {
	t.Helper()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("Err() = %v, want an *exec.ExitError", err)
	}
	ws := exit.Sys().(syscall.WaitStatus)
	if !ws.Signaled() {
		return -1
	}
	return ws.Signal()
}

// gone says whether pid has exited. A zombie still answers signal 0, so it reads /proc: the
// state is Z until whoever adopted it reaps it.
func gone(pid int) error {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil || strings.Contains(string(b), ") Z ") {
		return nil
	}
	return fmt.Errorf("pid %d is still running", pid)
}

func TestTerminateEndsAProcessThatObeysSIGTERMWithoutKillingIt(t *testing.T) {
	p, err := Run(exec.Command("sleep", "300"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Exited() || p.Err() != nil || p.ExitCode() != -1 {
		t.Fatalf("a running process: Exited %v, Err %v, ExitCode %d", p.Exited(), p.Err(), p.ExitCode())
	}
	err = p.Terminate(time.Minute)
	if sig := exitSignal(t, err); sig != syscall.SIGTERM {
		t.Errorf("ended by %v, want SIGTERM", sig)
	}
	if !p.Exited() || !errors.Is(p.Err(), err) {
		t.Errorf("after Terminate: Exited %v, Err %v, want true and %v", p.Exited(), p.Err(), err)
	}
	if again := p.Terminate(time.Minute); !errors.Is(again, err) {
		t.Errorf("a second Terminate returned %v, want %v", again, err)
	}
}

// TestTerminateKillsTheGroupWhenSIGTERMIsIgnored runs a shell that traps SIGTERM (it logs it and
// carries on) and has a child of its own: Terminate must send SIGTERM first, then SIGKILL to the
// whole group once grace has passed, so the shell's child dies too.
func TestTerminateKillsTheGroupWhenSIGTERMIsIgnored(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "sh.log")
	out, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = out.Close() }()
	// A trapped signal interrupts the wait builtin at once (POSIX), so the trap runs well within
	// grace; the loop then waits again.
	cmd := exec.Command("sh", "-c", `trap 'echo term' TERM; sleep 300 & echo "ready $!"; while :; do wait; done`)
	cmd.Stdout = out
	p, err := Run(cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	var grandchild int
	wait.For(t, 10*time.Second, "the shell's trap and child", func() error {
		b, _ := os.ReadFile(logPath)
		_, err := fmt.Sscanf(string(b), "ready %d", &grandchild)
		return err
	})

	err = p.Terminate(2 * time.Second)
	if sig := exitSignal(t, err); sig != syscall.SIGKILL {
		t.Errorf("ended by %v, want SIGKILL", sig)
	}
	if b, _ := os.ReadFile(logPath); !strings.Contains(string(b), "term") {
		t.Errorf("the shell did not log SIGTERM before it was killed; its output: %q", b)
	}
	wait.For(t, 10*time.Second, "the shell's child killed with its group", func() error { return gone(grandchild) })
}

func TestKillEndsTheProcessAndIsHarmlessOnceItHasExited(t *testing.T) {
	p, err := Run(exec.Command("sleep", "300"))
	if err != nil {
		t.Fatal(err)
	}
	p.Kill()
	if sig := exitSignal(t, p.Err()); sig != syscall.SIGKILL {
		t.Errorf("ended by %v, want SIGKILL", sig)
	}
	select {
	case <-p.Done():
	default:
		t.Error("Done is not closed after Kill")
	}
	p.Kill() // must not block or signal a reused group ID
}

func TestAProcessThatExitsOnItsOwnReportsItsStatus(t *testing.T) {
	p, err := Run(exec.Command("sh", "-c", "exit 3"))
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	if sig := exitSignal(t, p.Err()); sig != -1 || p.ExitCode() != 3 {
		t.Errorf("signal %v, exit code %d, want none and 3", sig, p.ExitCode())
	}
	if err := p.Terminate(time.Minute); exitSignal(t, err) != -1 {
		t.Errorf("Terminate after exit returned %v, want the exit status 3 unchanged", err)
	}
}
