package proc

import (
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
)

func TestMemoryReadsThisProcessInBytes(t *testing.T) {
	rss, hwm, err := Memory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// A Go test binary has more than a megabyte resident; a reading in kB would be below that.
	if rss < 1<<20 || hwm < rss {
		t.Errorf("VmRSS %d, VmHWM %d bytes: want RSS over 1 MiB and HWM >= RSS", rss, hwm)
	}
}

// TestCPUSecondsAgreesWithGetrusage checks the fields read are utime and stime: getrusage
// reports the same times in microseconds, so /proc's reading (in clock ticks, rounded down)
// falls between two getrusage calls around it, give or take a tick.
func TestCPUSecondsAgreesWithGetrusage(t *testing.T) {
	burn := 0
	for i := range 50_000_000 { // some CPU time, so that a reading of 0 cannot pass
		burn += i
	}
	_ = burn
	before := rusageSeconds(t)
	got, err := CPUSeconds(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	after := rusageSeconds(t)
	const tick = 1.0 / clockTicks
	if got < before-2*tick || got > after+2*tick || got <= 0 {
		t.Errorf("CPUSeconds = %.3f, want between getrusage's %.3f and %.3f", got, before, after)
	}
}

func rusageSeconds(t *testing.T) float64 {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func TestReadingAProcessThatIsGoneFails(t *testing.T) {
	// Above the kernel's largest pid_max (2^22), so no process can have it.
	const gone = 1 << 23
	if s, err := CPUSeconds(gone); err == nil {
		t.Errorf("CPUSeconds = %v, nil error; want an error", s)
	}
	if rss, hwm, err := Memory(gone); err == nil {
		t.Errorf("Memory = %d, %d, nil error; want an error", rss, hwm)
	}
}

func TestMachineBusySecondsIsPositive(t *testing.T) {
	if s := MachineBusySeconds(); s <= 0 {
		t.Errorf("MachineBusySeconds = %v, want > 0 on a machine that booted", s)
	}
}

func TestFreePortCanBeListenedOn(t *testing.T) {
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("listening on the free port %d: %v", port, err)
	}
	_ = l.Close()
}
