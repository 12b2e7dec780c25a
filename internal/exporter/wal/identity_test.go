package wal

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func openAs(t *testing.T, dir, producer string) *Log {
	t.Helper()
	l, err := Open(Options{Dir: dir, MaxBytes: MinBytes, Producer: producer}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestASecondOpenFailsWhileTheFirstIsOpenAndSucceedsAfterClose(t *testing.T) {
	dir := t.TempDir()
	first := openAs(t, dir, "pod-0")
	_, err := Open(Options{Dir: dir, MaxBytes: MinBytes, Producer: "pod-0"}, nil)
	if !errors.Is(err, ErrInUse) || err.Error() != "persistent queue "+dir+" is in use by another process" {
		t.Fatalf("a second Open of an open log: %v, want ErrInUse naming %s", err, dir)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	second := openAs(t, dir, "pod-0")
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestTheLockIsHeldAcrossProcesses opens the log in a child process (this test binary) that
// holds it until told to exit: the parent's Open must fail, and succeed once the child is gone.
func TestTheLockIsHeldAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	child := startChild(t, "WAL_CHILD_HOLD="+dir)
	if _, err := Open(Options{Dir: dir, MaxBytes: MinBytes}, nil); !errors.Is(err, ErrInUse) {
		t.Fatalf("Open while another process holds the log: %v, want ErrInUse", err)
	}
	child.stop(t)
	if err := openAs(t, dir, "pod-0").Close(); err != nil {
		t.Fatal(err)
	}
}

func TestTheProducerIDIsCreatedOnceAndKeptInTheLog(t *testing.T) {
	dir := t.TempDir()
	l := openAs(t, dir, "durable-2")
	id := l.Producer()
	if !regexp.MustCompile(`^durable-2-[0-9a-f]{8}$`).MatchString(id) {
		t.Fatalf("a new log's producer id %q, want durable-2-<8 hex>", id)
	}
	if err := l.Append(context.Background(), record(1)); err != nil {
		t.Fatal(err)
	}
	_ = l.Close()
	b, err := os.ReadFile(filepath.Join(dir, producerFile))
	if err != nil || strings.TrimSpace(string(b)) != id {
		t.Fatalf("producer file holds %q (%v), want %q", b, err, id)
	}
	// Reopened by another pod name (a drain Job), the log keeps the id its records carry.
	again := openAs(t, dir, "durable-drain-2")
	defer func() { _ = again.Close() }()
	if again.Producer() != id {
		t.Fatalf("reopened log's producer id %q, want %q", again.Producer(), id)
	}
}

func TestTwoLogsStartedUnderOneNameGetDifferentIDs(t *testing.T) {
	a := openAs(t, t.TempDir(), "durable-0")
	defer func() { _ = a.Close() }()
	b := openAs(t, t.TempDir(), "durable-0")
	defer func() { _ = b.Close() }()
	if a.Producer() == b.Producer() {
		t.Fatalf("two logs share the producer id %q", a.Producer())
	}
}

// TestALegacyLogKeepsTheBareIDItsRecordsWereWrittenWith: a log with records but no producer
// file was written before the file existed, under the bare hostname; an empty one was not.
func TestALegacyLogKeepsTheBareIDItsRecordsWereWrittenWith(t *testing.T) {
	cases := map[string]struct {
		records int
		want    *regexp.Regexp
	}{
		"a log holding records gets the bare hostname": {records: 3, want: regexp.MustCompile(`^pod-7$`)},
		"an empty log gets a new id":                   {records: 0, want: regexp.MustCompile(`^pod-7-[0-9a-f]{8}$`)},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			l := openAs(t, dir, "old")
			for i := range c.records {
				if err := l.Append(context.Background(), record(i)); err != nil {
					t.Fatal(err)
				}
			}
			_ = l.Close()
			if err := os.Remove(filepath.Join(dir, producerFile)); err != nil {
				t.Fatal(err)
			}
			l = openAs(t, dir, "pod-7")
			defer func() { _ = l.Close() }()
			if !c.want.MatchString(l.Producer()) {
				t.Fatalf("producer id %q, want %v", l.Producer(), c.want)
			}
		})
	}
}

// holder is a child process that has a log open.
type holder struct{ cmd *exec.Cmd }

// startChild runs this test binary with env as a child and waits until it says the log is open.
func startChild(t *testing.T, env string) *holder {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = in.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if line != "open\n" {
		t.Fatalf("the child did not open the log: %q, %v", line, err)
	}
	return &holder{cmd: cmd}
}

// stop kills the child with SIGKILL, as a crash would: the kernel releases its lock.
func (h *holder) stop(t *testing.T) {
	t.Helper()
	_ = h.cmd.Process.Kill()
	_ = h.cmd.Wait()
}

// childHolder is the process TestTheLockIsHeldAcrossProcesses starts: it opens the log, says so,
// and holds it until its stdin closes (or it is killed).
func childHolder(dir string) {
	l, err := Open(Options{Dir: dir, MaxBytes: MinBytes}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("open")
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = l.Close()
}
