package child

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// BuildMains builds the main packages (paths as `go build` takes them, relative to the test's
// package) into a new temporary directory, once per test binary, and returns their paths in
// the same order and a function that removes them. Tests that run the real binaries call it
// from TestMain.
func BuildMains(prefix string, pkgs ...string) (bins []string, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, nil, err
	}
	cleanup = func() { _ = os.RemoveAll(dir) }
	for _, pkg := range pkgs {
		bin := filepath.Join(dir, filepath.Base(pkg))
		build := exec.Command("go", "build", "-o", bin, pkg)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			cleanup()
			return nil, nil, fmt.Errorf("building %s: %w", pkg, err)
		}
		bins = append(bins, bin)
	}
	return bins, cleanup, nil
}
