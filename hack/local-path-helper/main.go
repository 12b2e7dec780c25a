// Command local-path-helper is the setup and teardown command of the local cluster's
// local-path-provisioner (hack/cluster-up.sh). The provisioner runs it in a helper pod on the node,
// with the volume's parent directory mounted at the same path, as
//
//	/helper -p VOLUME_DIR -s SIZE_BYTES -m Filesystem -a create|delete
//
// create makes VOLUME_DIR world-writable: a hostPath volume gets no fsGroup, and our pods run as
// the non-root user 65532. delete removes it with everything in it. Either refuses a VOLUME_DIR
// that is not strictly inside LOCAL_PATH_BASE (the provisioner's configured base directory, set in
// the helper pod's environment), so a bad path can never remove anything else on the host.
// Upstream runs shell scripts in busybox here; there is no registry to pull busybox from.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// baseEnv names the environment variable holding the provisioner's base directory.
const baseEnv = "LOCAL_PATH_BASE"

func main() {
	if err := run(os.Args[1:], os.Getenv(baseEnv), os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "local-path-helper:", err)
		os.Exit(1)
	}
}

func run(args []string, base string, out io.Writer) error {
	fs := flag.NewFlagSet("local-path-helper", flag.ContinueOnError)
	fs.SetOutput(out)
	path := fs.String("p", "", "volume directory")
	fs.String("s", "", "requested size in bytes (not enforced: a directory has no quota)")
	mode := fs.String("m", "Filesystem", "volume mode")
	action := fs.String("a", "", "create or delete")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, err := volumeDir(*path, base)
	if err != nil {
		return err
	}
	switch *action {
	case "create":
		if *mode != "Filesystem" {
			return fmt.Errorf("volume mode %q: only Filesystem volumes are supported", *mode)
		}
		if err := os.MkdirAll(dir, 0o777); err != nil {
			return err
		}
		// MkdirAll's mode is filtered by the umask.
		if err := os.Chmod(dir, 0o777); err != nil {
			return err
		}
	case "delete":
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	default:
		return fmt.Errorf("-a %q: want create or delete", *action)
	}
	_, _ = fmt.Fprintf(out, "%s %s: done\n", *action, dir) // a log line only: nothing to do if it fails
	return nil
}

// volumeDir returns path cleaned, or an error unless it is strictly inside base.
func volumeDir(path, base string) (string, error) {
	if base == "" || !filepath.IsAbs(base) {
		return "", fmt.Errorf("%s=%q: want the provisioner's absolute base directory", baseEnv, base)
	}
	if path == "" || !filepath.IsAbs(path) {
		return "", fmt.Errorf("-p %q: want an absolute volume directory", path)
	}
	dir := filepath.Clean(path)
	rel, err := filepath.Rel(filepath.Clean(base), dir)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", errors.New("refusing -p " + path + ": not inside " + base)
	}
	return dir, nil
}
