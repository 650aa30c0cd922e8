// kube-controller-manager (k8s.io/kubernetes/cmd/kube-controller-manager/app)
// running only the controllers gitseal's tests rely on: garbage collector,
// namespace deletion, service accounts (default account + token secrets), and
// cluster-role aggregation (fills the built-in admin/edit/view ClusterRoles).
// A node cluster runs all default controllers (node lifecycle among them).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	kcmapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

// Controllers run by the controller manager.
const Controllers = "garbage-collector-controller,namespace-controller,serviceaccount-controller," +
	"serviceaccount-token-controller,clusterrole-aggregation-controller"

// NodeControllers are those of a node cluster: every default controller.
const NodeControllers = "*"

func runControllerManager(st *State) error {
	if err := waitFor(context.Background(), 5*time.Minute, func() error { return apiserverReady(st) }); err != nil {
		return fmt.Errorf("apiserver at %s not ready: %w", st.APIServerURL(), err)
	}
	if err := st.writePID("controller-manager"); err != nil {
		return err
	}
	// The controller manager keeps no state of its own, so a signal simply ends
	// the process (its Run loop has no shutdown hook when started from the command).
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "controller-manager: %v, exiting\n", s)
		os.Exit(0)
	}()
	controllers := Controllers
	if st.Node != nil {
		// A node cluster runs workloads: the default controllers (deployments, replica
		// sets, endpoints, node lifecycle, root CA publisher, ...), as a real cluster does.
		controllers = NodeControllers
	}
	args := []string{
		"--kubeconfig=" + st.Kubeconfig(),
		"--controllers=" + controllers,
		"--leader-elect=false",
		"--secure-port=0",
		"--use-service-account-credentials=false",
		"--service-account-private-key-file=" + st.path("pki", "sa.key"),
		"--root-ca-file=" + st.path("pki", "ca.crt"),
	}
	if st.Node != nil {
		// The volume controllers probe (and create) a FlexVolume directory, by default
		// /usr/libexec/kubernetes/kubelet-plugins/volume/exec.
		args = append(args, "--flex-volume-plugin-dir="+st.nodeDir("controller-manager", "volume-plugins"))
	}
	cmd := kcmapp.NewControllerManagerCommand()
	cmd.SetArgs(args)
	fmt.Printf("ready controllers=%s\n", controllers)
	return cmd.Execute()
}
