// Command testcluster runs a real Kubernetes control plane (etcd, kube-apiserver and
// a kube-controller-manager with the garbage-collector, namespace, service-account and
// cluster-role aggregation controllers) on 127.0.0.1 for gitseal's tests and demos.
// There are no nodes: nothing runs pods — unless the directory is a node cluster
// (`up --node`): then a kube-scheduler, Debian's containerd, a kubelet and kube-proxy
// run one real node, gitseal-node at 198.18.0.1 (node.go), and the controller manager
// runs its default controllers.
//
// Every component is compiled from the upstream Go modules (k8s.io/kubernetes and
// go.etcd.io/etcd/server/v3) at pinned versions; nothing is mocked. All state (certs,
// ports, etcd data, logs, kubeconfig) lives in one directory given by --dir.
//
//	testcluster up --dir DIR                  etcd + apiserver + controller-manager, supervised
//	testcluster up --node --dir DIR [--sandbox-image PAUSE.tar]
//	                                          ... + scheduler, containerd, kubelet, kube-proxy
//	testcluster scheduler|containerd|kubelet|kube-proxy --dir DIR   one node component
//	testcluster load-image --dir DIR FILE.tar...   import images into the node's containerd
//	testcluster clean-node --dir DIR          remove a killed node cluster's pods and host changes
//	testcluster oci-image ...                 write an OCI image archive (ociimage.go)
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
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"google.golang.org/grpc/grpclog"
)

func usage() {
	fmt.Fprintln(os.Stderr, `usage: testcluster <up|etcd|apiserver|controller-manager> --dir DIR [--stop-on-eof]
       testcluster up --dir DIR [--node [--sandbox-image PAUSE.tar]] [--stop-on-eof] [--rm]
       testcluster <scheduler|containerd|kubelet|kube-proxy|clean-node> --dir DIR
       testcluster load-image --dir DIR FILE.tar...
       testcluster oci-image --out FILE.tar --name REF --entrypoint PATH [--user U:G] HOST:/PATH[:MODE]...
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
	if cmd == "oci-image" {
		if err := runOCIImage(os.Args[2:]); err != nil {
			fatal(err)
		}
		return
	}
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	dir := fs.String("dir", "", "state directory (created if missing)")
	stopOnEOF := fs.Bool("stop-on-eof", false, "shut down when stdin reaches end of file")
	rm := fs.Bool("rm", false, "up: delete DIR after shutting down")
	node := fs.Bool("node", false, "up: a node cluster (only when DIR is created; an existing DIR keeps its kind)")
	sandbox := fs.String("sandbox-image", "", "up --node: pause image archive to import if containerd lacks it")
	_ = fs.Parse(os.Args[2:])
	if *dir == "" {
		usage()
	}
	if cmd == "up" || cmd == "load-image" || cmd == "clean-node" {
		// CRI connection attempts while containerd starts are expected, not news.
		grpclog.SetLoggerV2(grpclog.NewLoggerV2(io.Discard, io.Discard, os.Stderr))
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
	st, err := loadOrInitState(abs, *node && cmd == "up")
	if errors.Is(err, ErrOldLayout) && cmd == "up" && !anyRunning(abs) {
		fmt.Fprintf(os.Stderr, "testcluster: %v; emptying it and starting afresh\n", err)
		if err = emptyDir(abs); err == nil {
			st, err = loadOrInitState(abs, *node)
		}
	}
	if err != nil {
		fatal(err)
	}
	switch cmd {
	case "up":
		err = runUp(st, *sandbox)
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
	case "scheduler":
		err = runScheduler(st)
	case "containerd":
		err = runContainerd(st)
	case "kubelet":
		err = runKubelet(st)
	case "kube-proxy":
		err = runKubeProxy(st)
	case "load-image":
		err = runLoadImage(st, fs.Args())
	case "clean-node":
		if st.Node == nil {
			err = fmt.Errorf("%s is not a node cluster", abs)
		} else if anyRunning(abs) {
			err = fmt.Errorf("%s: the cluster is running; stop it first (scripts/cluster down --node)", abs)
		} else {
			err = cleanNode(st)
		}
	default:
		usage()
	}
	if err != nil {
		fatal(err)
	}
}

// emptyDir deletes everything in dir except what scripts/cluster holds open there.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() == "up.log" || e.Name() == ".up.lock" {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// anyRunning says whether a component recorded in DIR/*.pid is alive.
func anyRunning(dir string) bool {
	pids, _ := filepath.Glob(filepath.Join(dir, "*.pid"))
	for _, p := range pids {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var pid int
		if _, err := fmt.Sscan(string(b), &pid); err == nil && pid > 0 && syscall.Kill(pid, 0) == nil {
			return true
		}
	}
	return false
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "testcluster:", err)
	os.Exit(1)
}
