// Package controlplane starts a real kube-apiserver and etcd (controller-runtime's envtest) with the
// project's CRDs installed, for tests of the API and the controllers.
//
// The binaries come from hack/envtest-assets.sh, which builds them from Go modules once and caches
// them by version. KUBEBUILDER_ASSETS wins when set (the Makefile sets it); otherwise the script is
// run here, so that a plain `go test ./...` works too.
package controlplane

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	tracestreamv1alpha1 "github.com/tracestream/tracestream/api/v1alpha1"
)

// Env is a running control plane and a client for it.
type Env struct {
	// Config reaches the API server as a cluster admin.
	Config *rest.Config
	// Client is a non-caching client with the project's scheme.
	Client client.Client
	// Scheme knows the built-in types and tracestream.io/v1alpha1.
	Scheme *runtime.Scheme

	env *envtest.Environment
}

// Start starts a control plane for the test and stops it when the test ends.
func Start(t testing.TB) *Env {
	t.Helper()
	e, err := New()
	if err != nil {
		t.Fatalf("starting envtest control plane: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Stop(); err != nil {
			t.Errorf("stopping envtest control plane: %v", err)
		}
	})
	return e
}

// Option changes the control plane that New starts.
type Option func(*envtest.Environment)

// WithServiceRange sets the kube-apiserver's Service ClusterIP range. envtest's default /24 holds
// 253 ClusterIPs, fewer than a scale test's Services.
func WithServiceRange(cidr string) Option {
	return func(env *envtest.Environment) {
		env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", cidr)
	}
}

// New starts a control plane; the caller must Stop it. Use it from TestMain, where a package's
// tests share one API server, or from a program.
func New(opts ...Option) (*Env, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	assets, err := assetsDir(root)
	if err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(tracestreamv1alpha1.AddToScheme(scheme))

	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	for _, o := range opts {
		o(env)
	}
	cfg, err := env.Start()
	if err != nil {
		_ = env.Stop() // whatever did start
		return nil, fmt.Errorf("envtest with assets %s: %w", assets, err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("creating client: %w", err)
	}
	return &Env{Config: cfg, Client: c, Scheme: scheme, env: env}, nil
}

// Stop stops the API server and etcd.
func (e *Env) Stop() error { return e.env.Stop() }

// KubeconfigFor adds a user in the given groups and returns a kubeconfig that authenticates as
// it, for a process of its own (a manager binary) to use.
func (e *Env) KubeconfigFor(name string, groups ...string) ([]byte, error) {
	user, err := e.env.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		return nil, fmt.Errorf("adding user %s: %w", name, err)
	}
	return user.KubeConfig()
}

func assetsDir(root string) (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	cmd := exec.Command(filepath.Join(root, "hack", "envtest-assets.sh"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("hack/envtest-assets.sh: %w: %s", err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

// RepoRoot walks up from the working directory (a package dir under `go test`, the repository
// under `go run`) to go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}
