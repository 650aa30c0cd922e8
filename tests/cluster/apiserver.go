// kube-apiserver (k8s.io/kubernetes/cmd/kube-apiserver/app), configured by its
// real command-line flags, serving TLS on the port recorded in DIR/ports.json.
package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	apiserverapp "k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func apiserverArgs(st *State) []string {
	pki := func(name string) string { return st.path("pki", name) }
	args := []string{
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
		"--service-cluster-ip-range=" + ServiceCIDR,
		"--profiling=false",
	}
	// Extra flags for fault drills (e.g. a low --max-requests-inflight), space-separated;
	// later flags override earlier ones.
	args = append(args, strings.Fields(os.Getenv("TESTCLUSTER_APISERVER_EXTRA_ARGS"))...)
	if st.Node == nil {
		// No kubelets or pods here: the "kubernetes" Service endpoint would be a
		// loopback address, which Endpoints validation rejects.
		return append(args, "--endpoint-reconciler-type=none")
	}
	// Node cluster: serve on the node's bridge address, which is the `kubernetes`
	// Service's endpoint; reach the kubelet by its InternalIP with a client certificate
	// and verify its serving certificate.
	for i, a := range args {
		switch {
		case strings.HasPrefix(a, "--bind-address="):
			args[i] = "--bind-address=" + st.Node.IP
		case strings.HasPrefix(a, "--advertise-address="):
			args[i] = "--advertise-address=" + st.Node.IP
		}
	}
	return append(args,
		"--kubelet-preferred-address-types=InternalIP",
		"--kubelet-client-certificate="+pki("apiserver-kubelet-client.crt"),
		"--kubelet-client-key="+pki("apiserver-kubelet-client.key"),
		"--kubelet-certificate-authority="+pki("ca.crt"),
	)
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
