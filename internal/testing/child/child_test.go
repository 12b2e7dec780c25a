package child

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tracestream/tracestream/internal/testing/wait"
)

// TestAChildDiesWithItsParent starts a parent process (this test binary, re-run) that starts a
// child through Start and is then killed with SIGKILL, so no cleanup of its runs: the child must
// be gone all the same. It also checks the child's own process group.
func TestAChildDiesWithItsParent(t *testing.T) {
	if os.Getenv("CHILD_TEST_PARENT") == "1" {
		cmd := exec.Command("sleep", "300")
		if err := Start(cmd); err != nil {
			os.Exit(2)
		}
		pgid, _ := syscall.Getpgid(cmd.Process.Pid)
		_, _ = os.Stdout.WriteString(strconv.Itoa(cmd.Process.Pid) + " " + strconv.Itoa(pgid) + "\n")
		time.Sleep(time.Hour)
	}
	parent := exec.Command(os.Args[0], "-test.run", "^TestAChildDiesWithItsParent$")
	parent.Env = append(os.Environ(), "CHILD_TEST_PARENT=1")
	out, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _ := out.Read(buf)
	fields := strings.Fields(string(buf[:n]))
	if len(fields) != 2 {
		_ = parent.Process.Kill()
		t.Fatalf("the parent printed %q", buf[:n])
	}
	pid, _ := strconv.Atoi(fields[0])
	if fields[1] != fields[0] {
		t.Errorf("the child's process group is %s, want its own (%d)", fields[1], pid)
	}
	_ = parent.Process.Kill()
	_ = parent.Wait()
	wait.For(t, 10*time.Second, "the child killed with its parent", func() error { return gone(pid) })
}
