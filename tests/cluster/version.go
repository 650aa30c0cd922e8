// Pinned component versions, reported by `testcluster version`.
package main

import (
	"fmt"
	"runtime/debug"
)

// versionString lists the module versions this binary was built from.
func versionString() string {
	k8s, etcd := "unknown", "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			switch m.Path {
			case "k8s.io/kubernetes":
				k8s = m.Version
			case "go.etcd.io/etcd/server/v3":
				etcd = m.Version
			}
		}
	}
	return fmt.Sprintf("kubernetes=%s etcd=%s", k8s, etcd)
}
