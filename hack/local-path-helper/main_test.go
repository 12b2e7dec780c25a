package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestCreateMakesAWorldWritableDirectoryAndDeleteRemovesIt(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "pvc-1_ns_claim")
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)

	if err := run([]string{"-p", dir, "-s", "1048576", "-m", "Filesystem", "-a", "create"}, base, io.Discard); err != nil {
		t.Fatalf("create: %v", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatalf("create left no directory: %v", err)
	}
	if !fi.IsDir() || fi.Mode().Perm() != 0o777 {
		t.Errorf("created %v, want a directory with mode 0777", fi.Mode())
	}
	// A second create (the provisioner retries) succeeds on the existing directory.
	if err := run([]string{"-p", dir, "-a", "create"}, base, io.Discard); err != nil {
		t.Errorf("second create: %v", err)
	}

	if err := os.WriteFile(filepath.Join(dir, "data"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := run([]string{"-p", dir, "-s", "1048576", "-m", "Filesystem", "-a", "delete"}, base, io.Discard); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("after delete, stat %s: %v, want not found", dir, err)
	}
	if _, err := os.Stat(base); err != nil {
		t.Errorf("delete removed the base directory too: %v", err)
	}
}

func TestRefusesWhatIsNotAVolumeDirectory(t *testing.T) {
	base := t.TempDir()
	sibling := base + "-sibling"
	tests := map[string]struct {
		args []string
		base string
		want string
	}{
		"the base directory itself is not a volume": {
			args: []string{"-p", base, "-a", "delete"}, base: base, want: "not inside"},
		"a path that climbs out of the base is refused": {
			args: []string{"-p", base + "/../etc", "-a", "delete"}, base: base, want: "not inside"},
		"a sibling sharing the base's name as a prefix is outside it": {
			args: []string{"-p", sibling + "/v", "-a", "delete"}, base: base, want: "not inside"},
		"a relative path is refused": {
			args: []string{"-p", "pvc-1", "-a", "create"}, base: base, want: "absolute volume directory"},
		"without the base in the environment nothing is touched": {
			args: []string{"-p", base + "/v", "-a", "delete"}, base: "", want: baseEnv},
		"a block volume is refused": {
			args: []string{"-p", base + "/v", "-m", "Block", "-a", "create"}, base: base, want: "only Filesystem"},
		"an unknown action is refused": {
			args: []string{"-p", base + "/v", "-a", "resize"}, base: base, want: "want create or delete"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := run(tc.args, tc.base, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("run(%q) = %v, want an error containing %q", tc.args, err, tc.want)
			}
		})
	}
	if _, err := os.Stat(base); err != nil {
		t.Errorf("the base directory is gone: %v", err)
	}
}
