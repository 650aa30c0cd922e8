// kube-apiserver (k8s.io/kubernetes/cmd/kube-apiserver/app), configured by its
// real command-line flags, serving TLS on the port recorded in DIR/ports.json.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	apiserverapp "k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func apiserverArgs(st *State) []string {
	pki := func(name string) string { return st.path("pki", name) }
	return []string{
		"--etcd-servers=" + st.EtcdURL(),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", st.Ports.APIServer),
		"--tls-cert-file=" + pki("apiserver.crt"),
		"--tls-private-key-file=" + pki("apiserver.key"),
		"--client-ca-file=" + pki("ca.crt"),
		"--authorization-mode=Node,RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + pki("sa.pub"),
		"--service-account-signing-key-file=" + pki("sa.key"),
		"--service-cluster-ip-range=10.0.0.0/24",
		// No kubelets or pods here: the "kubernetes" Service endpoint would be a
		// loopback address, which Endpoints validation rejects.
		"--endpoint-reconciler-type=none",
		"--profiling=false",
	}
}

func runAPIServer(st *State) error {
	if err := waitFor(context.Background(), 60*time.Second, func() error { return etcdHealthy(st) }); err != nil {
		return fmt.Errorf("etcd at %s not reachable: %w", st.EtcdURL(), err)
	}
	if err := st.writePID("apiserver"); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		if waitFor(ctx, 5*time.Minute, func() error { return apiserverReady(st) }) == nil {
			fmt.Printf("ready kubeconfig=%s\n", st.Kubeconfig())
		}
	}()
	cmd := apiserverapp.NewAPIServerCommand()
	cmd.SetArgs(apiserverArgs(st))
	// NewAPIServerCommand installs the SIGTERM/SIGINT handler; Execute returns
	// after a graceful shutdown.
	if err := cmd.Execute(); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "apiserver: stopped")
	return nil
}
