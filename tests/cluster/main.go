// Command testcluster runs a real Kubernetes control plane (etcd, kube-apiserver and
// a kube-controller-manager with the garbage-collector, namespace, service-account and
// cluster-role aggregation controllers) on 127.0.0.1 for gitseal's tests and demos.
// There are no nodes: nothing runs pods.
//
// Every component is compiled from the upstream Go modules (k8s.io/kubernetes and
// go.etcd.io/etcd/server/v3) at pinned versions; nothing is mocked. All state (certs,
// ports, etcd data, logs, kubeconfig) lives in one directory given by --dir.
//
//	testcluster up --dir DIR                  etcd + apiserver + controller-manager, supervised
//	testcluster etcd --dir DIR                etcd only (data in DIR/etcd)
//	testcluster apiserver --dir DIR           kube-apiserver against the etcd recorded in DIR
//	testcluster controller-manager --dir DIR  kube-controller-manager against DIR/kubeconfig
//	testcluster version                       pinned component versions
//	testcluster kubectl ARGS...               the upstream kubectl of the same release
//
// Each command prints "ready kubeconfig=DIR/kubeconfig" (etcd: "ready etcd=URL") on
// stdout once its component is serving, and shuts down cleanly on SIGTERM/SIGINT.
// With --stop-on-eof it also shuts down when its stdin reaches end of file, so a test
// process that holds the write end of a pipe takes the cluster down when it exits,
// however it exits. `up --rm` deletes DIR after shutting down.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

func usage() {
	fmt.Fprintln(os.Stderr, `usage: testcluster <up|etcd|apiserver|controller-manager> --dir DIR [--stop-on-eof]
       testcluster up --dir DIR [--stop-on-eof] [--rm]
       testcluster version
       testcluster kubectl ARGS...`)
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	cmd := os.Args[1]
	if cmd == "version" {
		fmt.Println(versionString())
		return
	}
	if cmd == "kubectl" {
		runKubectl(os.Args[2:])
	}
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	dir := fs.String("dir", "", "state directory (created if missing)")
	stopOnEOF := fs.Bool("stop-on-eof", false, "shut down when stdin reaches end of file")
	rm := fs.Bool("rm", false, "up: delete DIR after shutting down")
	_ = fs.Parse(os.Args[2:])
	if *dir == "" {
		usage()
	}
	if *stopOnEOF {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			// The same path as `kill -TERM`: every component handles SIGTERM.
			_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
		}()
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		fatal(err)
	}
	st, err := loadOrInitState(abs)
	if err != nil {
		fatal(err)
	}
	switch cmd {
	case "up":
		err = runUp(st)
		if *rm {
			if rmErr := os.RemoveAll(abs); err == nil {
				err = rmErr
			}
		}
	case "etcd":
		err = runEtcd(st)
	case "apiserver":
		err = runAPIServer(st)
	case "controller-manager":
		err = runControllerManager(st)
	default:
		usage()
	}
	if err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "testcluster:", err)
	os.Exit(1)
}
