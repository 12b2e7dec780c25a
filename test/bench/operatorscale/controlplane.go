package main

import (
	"fmt"

	"k8s.io/client-go/discovery"

	"github.com/tracestream/tracestream/internal/testing/controlplane"
)

// serviceRange replaces envtest's default 10.0.0.0/24: every RedisTraceExporter gets a ClusterIP
// Service, and a /24 runs out after 253 of them (the Service apply then fails with ApplyFailed).
const serviceRange = "10.0.0.0/16"

// controlPlane is kube-apiserver and etcd from envtest with the CRD installed, a Service range
// that holds thousands of ClusterIPs, and a user of its own for the manager.
type controlPlane struct {
	*controlplane.Env
	discovery *discovery.DiscoveryClient
	version   string
	// managerKubeconfig is a kubeconfig for the user tracestream-manager (system:masters).
	managerKubeconfig []byte
}

// startControlPlane starts it; the caller must Stop it.
func startControlPlane() (*controlPlane, error) {
	env, err := controlplane.New(controlplane.WithServiceRange(serviceRange))
	if err != nil {
		return nil, err
	}
	cp := &controlPlane{Env: env}
	fail := func(err error) (*controlPlane, error) {
		_ = env.Stop()
		return nil, err
	}
	if cp.discovery, err = discovery.NewDiscoveryClientForConfig(env.Config); err != nil {
		return fail(fmt.Errorf("creating a discovery client: %w", err))
	}
	v, err := cp.discovery.ServerVersion()
	if err != nil {
		return fail(fmt.Errorf("reading the server version: %w", err))
	}
	cp.version = v.GitVersion
	if cp.managerKubeconfig, err = env.KubeconfigFor("tracestream-manager", "system:masters"); err != nil {
		return fail(err)
	}
	return cp, nil
}
