// Command pause is the Pod sandbox's first process, as upstream's pause image is
// (kubernetes build/pause): it holds the Pod's namespaces open, reaps the children that a
// shared PID namespace re-parents to it, and exits 0 on SIGTERM or SIGINT. make e2e-node builds
// it because no registry, registry.k8s.io included, can be reached from the CI machine.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 16)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		// Signals coalesce, so one SIGCHLD may stand for several exited children.
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
