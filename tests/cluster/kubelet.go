// kubelet (k8s.io/kubernetes/cmd/kubelet/app) of the node cluster, configured by a
// KubeletConfiguration file it writes to DIR/node/kubelet.yaml, against the node's
// containerd, with its root directory in DIR/node/kubelet.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/component-base/cli"
	kubeletapp "k8s.io/kubernetes/cmd/kubelet/app"
)

func (s *State) kubeletConfig() string {
	n := s.Node
	// This machine's OOM score may not be lowered: keep the kubelet's own where it is.
	oom := "0"
	if b, err := os.ReadFile("/proc/self/oom_score_adj"); err == nil {
		oom = strings.TrimSpace(string(b))
	}
	// cgroupfs + no QoS cgroups + no node allocatable enforcement: the kubelet runs inside
	// someone else's cgroup (systemd may be absent) and must not reorganise the hierarchy.
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %[1]s
port: %[2]d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %[3]d
tlsCertFile: %[4]s
tlsPrivateKeyFile: %[5]s
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: %[6]s
authorization:
  mode: Webhook
containerRuntimeEndpoint: unix://%[7]s
imageServiceEndpoint: unix://%[7]s
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
failCgroupV1: false
makeIPTablesUtilChains: false
protectKernelDefaults: false
oomScoreAdj: %[8]s
podLogsDir: %[9]s
volumePluginDir: %[10]s
clusterDomain: cluster.local
maxPods: 50
serializeImagePulls: false
evictionHard:
  memory.available: 50Mi
  nodefs.available: 1%%
  nodefs.inodesFree: 1%%
  imagefs.available: 1%%
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
shutdownGracePeriod: 0s
shutdownGracePeriodCriticalPods: 0s
`, n.IP, s.Ports.Kubelet, s.Ports.KubeletHealthz, s.path("pki", "kubelet.crt"), s.path("pki", "kubelet.key"),
		s.path("pki", "ca.crt"), s.containerdSocket(), oom, s.nodeDir("pod-logs"), s.nodeDir("kubelet", "volume-plugins"))
}

func runKubelet(st *State) error {
	if st.Node == nil {
		return errors.New("kubelet: not a node cluster (see `up --node`)")
	}
	conf := st.nodeDir("kubelet.yaml")
	if err := os.MkdirAll(st.nodeDir("kubelet"), 0o750); err != nil {
		return err
	}
	if err := os.WriteFile(conf, []byte(st.kubeletConfig()), 0o644); err != nil {
		return err
	}
	if err := st.writePID("kubelet"); err != nil {
		return err
	}
	cmd := kubeletapp.NewKubeletCommand(context.Background())
	cmd.SetArgs([]string{
		"--config=" + conf,
		"--kubeconfig=" + st.path("pki", "kubelet-client.kubeconfig"),
		"--root-dir=" + st.nodeDir("kubelet"),
		"--cert-dir=" + st.nodeDir("kubelet", "pki"),
		"--hostname-override=" + st.Node.Name,
		"--node-ip=" + st.Node.IP,
	})
	// The kubelet handles SIGTERM itself (it has no state to save: pods keep running in
	// containerd until `up` removes them).
	os.Exit(cli.Run(cmd))
	return nil
}

// nodeReady wants the Node object Ready and without the node.kubernetes.io/ condition
// taints (not-ready is removed by the controller manager's node-lifecycle controller), so
// pods can be scheduled on it.
func nodeReady(st *State) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", st.Kubeconfig())
	if err != nil {
		return err
	}
	cfg.Timeout = 5 * time.Second
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	node, err := cs.CoreV1().Nodes().Get(context.Background(), st.Node.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	ready := false
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			if c.Status != corev1.ConditionTrue {
				return fmt.Errorf("node %s not Ready: %s: %s", node.Name, c.Reason, c.Message)
			}
			ready = true
		}
	}
	if !ready {
		return fmt.Errorf("node %s has no Ready condition yet", node.Name)
	}
	for _, t := range node.Spec.Taints {
		// The node's own condition taints (not-ready, unreachable, ...); a test's taint is its own.
		if strings.HasPrefix(t.Key, "node.kubernetes.io/") {
			return fmt.Errorf("node %s still has taint %s:%s", node.Name, t.Key, t.Effect)
		}
	}
	return nil
}
