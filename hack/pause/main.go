// Command pause is the local cluster's pod sandbox ("pause") process: it holds the pod's namespaces
// open and does nothing else until it is told to stop. There is no registry here to pull
// registry.k8s.io/pause from, so hack/cluster-up.sh builds this into an image instead.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		// As PID 1 of a shared process namespace, reap orphans so they do not linger as zombies.
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
