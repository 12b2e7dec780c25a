package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/discovery"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
)

// serviceRange replaces envtest's default 10.0.0.0/24: every RedisTraceExporter gets a ClusterIP
// Service, and a /24 runs out after 253 of them (the Service apply then fails with ApplyFailed).
const serviceRange = "10.0.0.0/16"

// controlPlane is kube-apiserver and etcd from envtest, with the CRD installed. It is
// internal/testing/controlplane with two differences a benchmark needs: a Service range that
// holds thousands of ClusterIPs, and a user of its own for the manager.
type controlPlane struct {
	env *envtest.Environment
	// config, client, scheme and discovery are this program's, as cluster admin.
	config    *rest.Config
	client    client.Client
	scheme    *runtime.Scheme
	discovery *discovery.DiscoveryClient
	version   string
	// managerKubeconfig is a kubeconfig for the user tracestream-manager (system:masters).
	managerKubeconfig []byte
}

// startControlPlane starts envtest with the binaries in KUBEBUILDER_ASSETS (or, when unset, those
// hack/envtest-assets.sh prints). The caller must stop cp.env.
func startControlPlane(root string) (*controlPlane, error) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		cmd := exec.Command(filepath.Join(root, "hack", "envtest-assets.sh"))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("KUBEBUILDER_ASSETS is unset and hack/envtest-assets.sh failed: %w: %s", err, stderr.String())
		}
		assets = strings.TrimSpace(string(out))
	}
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1.AddToScheme(scheme))
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", serviceRange)
	cfg, err := env.Start()
	if err != nil {
		_ = env.Stop() // whatever did start
		return nil, fmt.Errorf("starting envtest with assets %s: %w", assets, err)
	}
	cp := &controlPlane{env: env, config: cfg, scheme: scheme}
	fail := func(err error) (*controlPlane, error) {
		_ = env.Stop()
		return nil, err
	}
	if cp.client, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return fail(fmt.Errorf("creating a client: %w", err))
	}
	if cp.discovery, err = discovery.NewDiscoveryClientForConfig(cfg); err != nil {
		return fail(fmt.Errorf("creating a discovery client: %w", err))
	}
	v, err := cp.discovery.ServerVersion()
	if err != nil {
		return fail(fmt.Errorf("reading the server version: %w", err))
	}
	cp.version = v.GitVersion
	user, err := env.AddUser(envtest.User{Name: "tracestream-manager", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fail(fmt.Errorf("adding the manager's user: %w", err))
	}
	if cp.managerKubeconfig, err = user.KubeConfig(); err != nil {
		return fail(fmt.Errorf("writing the manager's kubeconfig: %w", err))
	}
	return cp, nil
}
