// kube-proxy (k8s.io/kubernetes/cmd/kube-proxy/app) of the node cluster in iptables mode:
// it programs Service ClusterIPs (the `kubernetes` Service among them) into this
// machine's netfilter tables. Configured so it changes nothing it need not: no conntrack
// sysctls, no localhost NodePorts (route_localnet), NodePorts only on the bridge address.
package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"k8s.io/component-base/cli"
	proxyapp "k8s.io/kubernetes/cmd/kube-proxy/app"
)

func (s *State) kubeProxyConfig() string {
	n := s.Node
	oom := "0"
	if b, err := os.ReadFile("/proc/self/oom_score_adj"); err == nil {
		oom = strings.TrimSpace(string(b))
	}
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection:
  kubeconfig: %s
hostnameOverride: %s
clusterCIDR: %s
detectLocalMode: ClusterCIDR
nodePortAddresses: ["%s/32"]
healthzBindAddress: 127.0.0.1:%d
metricsBindAddress: 127.0.0.1:%d
oomScoreAdj: %s
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
iptables:
  localhostNodePorts: false
  masqueradeAll: false
  syncPeriod: 30s
  minSyncPeriod: 0s
`, s.path("pki", "kube-proxy.kubeconfig"), n.Name, n.PodCIDR, n.IP, s.Ports.ProxyHealthz, s.Ports.ProxyMetrics, oom)
}

func runKubeProxy(st *State) error {
	if st.Node == nil {
		return errors.New("kube-proxy: not a node cluster (see `up --node`)")
	}
	conf := st.nodeDir("kube-proxy.yaml")
	if err := os.WriteFile(conf, []byte(st.kubeProxyConfig()), 0o644); err != nil {
		return err
	}
	if err := st.writePID("kube-proxy"); err != nil {
		return err
	}
	cmd := proxyapp.NewProxyCommand()
	cmd.SetArgs([]string{"--config=" + conf})
	os.Exit(cli.Run(cmd))
	return nil
}

// kubeProxyHealthy is kube-proxy's /healthz (200 once its rules are synced).
func kubeProxyHealthy(st *State) error {
	_, err := get(&http.Client{Timeout: 2 * time.Second}, fmt.Sprintf("http://127.0.0.1:%d/healthz", st.Ports.ProxyHealthz))
	return err
}

// serviceRouted wants kube-proxy's NAT rule that sends the `kubernetes` Service to the
// API server on the node's address.
func serviceRouted(st *State) error {
	out, err := exec.Command("iptables-save", "-t", "nat").Output()
	if err != nil {
		return fmt.Errorf("iptables-save: %w", err)
	}
	want := fmt.Sprintf("--to-destination %s:%d", st.Node.IP, st.Ports.APIServer)
	if !strings.Contains(string(out), want) {
		return fmt.Errorf("no iptables NAT rule %q for the kubernetes Service yet", want)
	}
	return nil
}
