package service

import (
	"net"
	"net/http"
	"sync/atomic"

	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/exporter/receiver"
)

// adminMaxHeaderBytes bounds a request's headers on the admin endpoint: its clients (the
// kubelet's probes, Prometheus, the operator) send a GET with a few short headers.
const adminMaxHeaderBytes = 16 << 10

// adminServer is the admin endpoint: an HTTP server with the admin.* timeouts, on a listener
// bounded at admin.maxConnections, so that connections to the admin port cannot take the file
// descriptors the receivers need.
//
// A bound alone would let anyone who opens maxConnections silent connections starve the
// kubelet's probes, so at the bound the listener closes the connection that has waited longest
// for a request to make room, as it does on the receivers (receiver/evict.go).
type adminServer struct {
	*http.Server
	endpoint string
	bound    int
	ln       *receiver.Listener // set by listen
	// evicted counts the connections closed to make room (ln's count); set by listen.
	evicted *atomic.Int64
}

func newAdminServer(cfg config.Admin, h http.Handler) *adminServer {
	a := &adminServer{endpoint: cfg.Endpoint, bound: cfg.MaxConnections}
	a.Server = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout.Duration,
		ReadTimeout:       cfg.ReadTimeout.Duration,
		WriteTimeout:      cfg.WriteTimeout.Duration,
		IdleTimeout:       cfg.IdleTimeout.Duration,
		MaxHeaderBytes:    adminMaxHeaderBytes,
		ConnState:         receiver.HTTPConnState,
	}
	return a
}

// listen binds admin.endpoint, bounded at admin.maxConnections; Open on the bounded listener
// counts the connections.
func (a *adminServer) listen() (net.Listener, *receiver.Listener, error) {
	ln, err := net.Listen("tcp", a.endpoint)
	if err != nil {
		return nil, nil, err
	}
	a.ln = receiver.LimitListener(ln, a.bound)
	a.evicted = &a.ln.Evicted
	return a.ln, a.ln, nil
}
