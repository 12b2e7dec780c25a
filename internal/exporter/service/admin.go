package service

import (
	"net"
	"net/http"

	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/exporter/receiver"
)

// adminMaxHeaderBytes bounds a request's headers on the admin endpoint: its clients (the
// kubelet's probes, Prometheus, the operator) send a GET with a few short headers.
const adminMaxHeaderBytes = 16 << 10

// newAdminServer is the admin endpoint's server, with the admin.* timeouts. It serves on a
// listener bounded at admin.maxConnections (listenBounded), so that connections to the admin
// port cannot take the file descriptors the receivers need; at the bound the listener closes the
// connection that has waited longest for a request, as on the receivers (receiver/evict.go), so
// that silent connections cannot starve the kubelet's probes.
func newAdminServer(cfg config.Admin, h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout.Duration,
		ReadTimeout:       cfg.ReadTimeout.Duration,
		WriteTimeout:      cfg.WriteTimeout.Duration,
		IdleTimeout:       cfg.IdleTimeout.Duration,
		MaxHeaderBytes:    adminMaxHeaderBytes,
		ConnState:         receiver.HTTPConnState,
	}
}

// listenBounded binds endpoint, bounded at n connections open at once.
func listenBounded(endpoint string, n int) (*receiver.Listener, error) {
	ln, err := net.Listen("tcp", endpoint)
	if err != nil {
		return nil, err
	}
	return receiver.LimitListener(ln, n), nil
}
