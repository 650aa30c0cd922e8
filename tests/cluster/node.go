// The node of a node cluster (`up --node`): its fixed addresses, its certificates, the
// checks that say why a machine cannot run it, and the host changes it makes and undoes.
//
// Addresses (198.18.0.0/15 is reserved for network testing; nothing here leaves the machine):
//
//	198.18.0.1/24  bridge gitseal0 made by the cluster: the node's InternalIP, the pods'
//	               gateway, and the API server's serving address (the `kubernetes` Service
//	               endpoint)
//	198.18.0.0/24  pods (CNI bridge + host-local, DIR/node/cni)
//	198.19.0.0/24  Services (ServiceCIDR); 198.19.0.1 is the `kubernetes` Service
//
// Host changes, all undone by teardownHost (`down`, or the next `up` after a crash):
// the bridge; iptables/ip6tables chains named KUBE-* (kube-proxy, kubelet), CNI-* (portmap)
// and GITSEAL-* (ours: drops forwarding between the bridge and any other interface, so pod
// traffic stays on the machine) and the jumps to them; the sysctls the kubelet, kube-proxy
// and CNI set (saved in DIR/node/host-before.json and restored); mounts under DIR/node; and
// the system directories containerd 1.6, the CNI plugins, libmount and the kubelet insist
// on (/run/containerd/s for shim sockets, /run/netns, /var/lib/cni, /run/mount,
// /var/log/containers with the kubelet's links to our pod logs, /var/lib/kubelet/device-plugins
// with the kubelet's socket and checkpoint), removed if they did not exist before and are
// empty then.
package main

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// NodeConfig is DIR/node.json.
type NodeConfig struct {
	Name         string `json:"name"`         // Node object name
	IP           string `json:"ip"`           // bridge address = node InternalIP = API server address
	Bridge       string `json:"bridge"`       // Linux bridge the cluster creates
	PodCIDR      string `json:"podCIDR"`      // pod addresses (host-local range)
	SandboxImage string `json:"sandboxImage"` // containerd's sandbox_image, built locally
}

func defaultNodeConfig() *NodeConfig {
	return &NodeConfig{
		Name:         "gitseal-node",
		IP:           "198.18.0.1",
		Bridge:       "gitseal0",
		PodCIDR:      "198.18.0.0/24",
		SandboxImage: "localhost/gitseal-testcluster/pause:1",
	}
}

// nodeDir is DIR/node/ELEM...
func (s *State) nodeDir(elem ...string) string { return s.path(append([]string{"node"}, elem...)...) }

// initNodePKI writes the node's certificates and kubeconfigs: the kubelet's client
// (system:node:NAME, group system:nodes, so the Node authorizer applies) and serving
// certificates, the API server's client certificate for the kubelet, and kube-proxy's and
// the scheduler's identities (bound by the default RBAC roles).
func (s *State) initNodePKI(caKey crypto.Signer, caCert *x509.Certificate) error {
	n := s.Node
	client := func(file, cn string, orgs ...string) error {
		key, cert, err := newCert(caKey, caCert, &x509.Certificate{
			Subject:     pkix.Name{CommonName: cn, Organization: orgs},
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		})
		if err != nil {
			return err
		}
		keyPEM, certPEM, err := s.writePair(file, key, cert)
		if err != nil {
			return err
		}
		return s.writeKubeconfig(s.path("pki", file+".kubeconfig"), cn, caCert, certPEM, keyPEM)
	}
	if err := client("kubelet-client", "system:node:"+n.Name, "system:nodes"); err != nil {
		return err
	}
	if err := client("kube-proxy", "system:kube-proxy"); err != nil {
		return err
	}
	if err := client("kube-scheduler", "system:kube-scheduler"); err != nil {
		return err
	}
	key, cert, err := newCert(caKey, caCert, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return err
	}
	if _, _, err := s.writePair("apiserver-kubelet-client", key, cert); err != nil {
		return err
	}
	key, cert, err = newCert(caKey, caCert, &x509.Certificate{
		Subject:     pkix.Name{CommonName: n.Name},
		DNSNames:    []string{n.Name},
		IPAddresses: []net.IP{net.ParseIP(n.IP)},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return err
	}
	_, _, err = s.writePair("kubelet", key, cert)
	return err
}

// Host binaries the node needs, with the Debian package that has them.
var nodeBinaries = []struct{ path, pkg string }{
	{"containerd", "containerd"},
	{"containerd-shim-runc-v2", "containerd"},
	{"ctr", "containerd"},
	{"runc", "runc"},
	{"iptables", "iptables"},
	{"iptables-save", "iptables"},
	{"iptables-restore", "iptables"},
	{"ip6tables-save", "iptables"},
	{"ip6tables-restore", "iptables"},
	{"ip", "iproute2"},
	{"/usr/lib/cni/bridge", "containernetworking-plugins"},
	{"/usr/lib/cni/host-local", "containernetworking-plugins"},
	{"/usr/lib/cni/loopback", "containernetworking-plugins"},
	{"/usr/lib/cni/portmap", "containernetworking-plugins"},
}

// nodePreflight says which requirement of the node this machine misses, if any.
func nodePreflight(st *State) error {
	var missing []string
	pkgs := map[string]bool{}
	for _, b := range nodeBinaries {
		if _, err := exec.LookPath(b.path); err != nil {
			missing = append(missing, b.path)
			pkgs[b.pkg] = true
		}
	}
	if len(missing) > 0 {
		var p []string
		for k := range pkgs {
			p = append(p, k)
		}
		sort.Strings(p)
		return fmt.Errorf("node check failed: missing %s: run scripts/prereqs or `apt-get install %s`",
			strings.Join(missing, ", "), strings.Join(p, " "))
	}
	if os.Geteuid() != 0 {
		return errors.New("node check failed: the node (containerd, kubelet, bridge, iptables) needs root")
	}
	if err := checkCgroups(); err != nil {
		return fmt.Errorf("node check failed: cgroups: %w", err)
	}
	fs, err := os.ReadFile("/proc/filesystems")
	if err != nil || !bytes.Contains(fs, []byte("\toverlay\n")) {
		return errors.New("node check failed: the kernel has no overlay filesystem (containerd's overlayfs snapshotter needs it; try `modprobe overlay`)")
	}
	if _, err := os.Stat("/proc/sys/net/bridge/bridge-nf-call-iptables"); err != nil {
		return errors.New("node check failed: no br_netfilter (/proc/sys/net/bridge missing): run `modprobe br_netfilter`; Service traffic between pods on the bridge needs it")
	}
	n := st.Node
	ifs, err := net.Interfaces()
	if err != nil {
		return err
	}
	_, podNet, _ := net.ParseCIDR(n.PodCIDR)
	_, svcNet, _ := net.ParseCIDR(ServiceCIDR)
	for _, i := range ifs {
		if i.Name == n.Bridge {
			continue
		}
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && (podNet.Contains(ipn.IP) || svcNet.Contains(ipn.IP) || ipn.Contains(podNet.IP)) {
				return fmt.Errorf("node check failed: interface %s already has %s, which overlaps the node's %s / %s", i.Name, ipn, n.PodCIDR, ServiceCIDR)
			}
		}
	}
	return nil
}

// checkCgroups wants the cgroup controllers the kubelet and runc use.
func checkCgroups() error {
	var st syscall.Statfs_t
	if err := syscall.Statfs("/sys/fs/cgroup", &st); err != nil {
		return fmt.Errorf("/sys/fs/cgroup: %w", err)
	}
	const cgroup2Magic = 0x63677270
	need := []string{"cpu", "cpuset", "memory", "pids"}
	if st.Type == cgroup2Magic {
		b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
		if err != nil {
			return err
		}
		have := strings.Fields(string(b))
		for _, c := range need {
			if !contains(have, c) {
				return fmt.Errorf("cgroup v2 controller %q not enabled at /sys/fs/cgroup (have %v)", c, have)
			}
		}
		return nil
	}
	for _, c := range need {
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", c, "tasks")); err != nil {
			return fmt.Errorf("cgroup v1 controller %q not mounted at /sys/fs/cgroup/%s", c, c)
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Sysctls the node's components change, restored by teardownHost.
var hostSysctls = []string{
	"net/ipv4/ip_forward",                // CNI bridge (isGateway), pod -> Service -> pod
	"net/ipv4/conf/all/route_localnet",   // kube-proxy (off in our config, saved anyway)
	"net/bridge/bridge-nf-call-iptables", // Service traffic between pods on the bridge
	"net/bridge/bridge-nf-call-ip6tables",
	"vm/overcommit_memory", // kubelet's kernel tunables
	"vm/panic_on_oom",
	"kernel/panic",
	"kernel/panic_on_oops",
	"kernel/keys/root_maxkeys",
	"kernel/keys/root_maxbytes",
}

// System directories the node's parts create (see the file comment).
var hostDirs = []string{"/run/containerd/s", "/run/containerd/runc/k8s.io", "/run/containerd/runc", "/run/containerd",
	"/run/netns", "/var/lib/cni/results", "/var/lib/cni", "/var/log/containers", "/run/mount",
	"/var/lib/kubelet/device-plugins", "/var/lib/kubelet"}

// Files in those directories that are the node's when their directory is (the kubelet's
// device-plugin socket and checkpoint have a fixed path; libmount's utab from the
// kubelet's mounts, when empty).
var hostFiles = []string{"/var/lib/kubelet/device-plugins/kubelet.sock",
	"/var/lib/kubelet/device-plugins/kubelet_internal_checkpoint", "/run/mount/utab"}

// hostBefore is DIR/node/host-before.json: the machine as it was before the first `up`.
type hostBefore struct {
	Sysctls map[string]string `json:"sysctls"`
	Existed map[string]bool   `json:"existed"`
}

func (s *State) hostBeforePath() string { return s.nodeDir("host-before.json") }

// saveHostBefore records the sysctls and directories, unless a record from an earlier run
// that was never torn down exists (that one has the real "before").
func saveHostBefore(st *State) error {
	if _, err := os.Stat(st.hostBeforePath()); err == nil {
		return nil
	}
	hb := hostBefore{Sysctls: map[string]string{}, Existed: map[string]bool{}}
	for _, k := range hostSysctls {
		if b, err := os.ReadFile("/proc/sys/" + k); err == nil {
			hb.Sysctls[k] = strings.TrimSpace(string(b))
		}
	}
	for _, d := range hostDirs {
		_, err := os.Stat(d)
		hb.Existed[d] = err == nil
	}
	return writeJSON(st.hostBeforePath(), hb)
}

// run runs a host command, returning its combined output in the error.
func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func writeSysctl(k, v string) error {
	return os.WriteFile("/proc/sys/"+k, []byte(v+"\n"), 0o644)
}

// setupHost creates the bridge, our forwarding guard and the CNI configuration.
func setupHost(st *State) error {
	n := st.Node
	for _, d := range []string{st.nodeDir("cni", "net.d"), st.nodeDir("cni", "ipam"), st.nodeDir("pod-logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := saveHostBefore(st); err != nil {
		return err
	}
	if _, err := net.InterfaceByName(n.Bridge); err != nil {
		if err := run("ip", "link", "add", n.Bridge, "type", "bridge"); err != nil {
			return err
		}
	}
	_, podNet, _ := net.ParseCIDR(n.PodCIDR)
	ones, _ := podNet.Mask.Size()
	if err := run("ip", "addr", "replace", fmt.Sprintf("%s/%d", n.IP, ones), "dev", n.Bridge); err != nil {
		return err
	}
	if err := run("ip", "link", "set", n.Bridge, "up"); err != nil {
		return err
	}
	for k, v := range map[string]string{
		"net/ipv4/ip_forward":                "1",
		"net/bridge/bridge-nf-call-iptables": "1",
	} {
		if err := writeSysctl(k, v); err != nil {
			return fmt.Errorf("setting %s: %w", k, err)
		}
	}
	// Pods talk to each other, to Services and to this machine, nothing else.
	guard := fmt.Sprintf("*filter\n:GITSEAL-NODE-FORWARD - [0:0]\n-F GITSEAL-NODE-FORWARD\n"+
		"-A GITSEAL-NODE-FORWARD -i %[1]s ! -o %[1]s -j DROP\n-A GITSEAL-NODE-FORWARD -o %[1]s ! -i %[1]s -j DROP\nCOMMIT\n", n.Bridge)
	if err := iptablesRestore("iptables-restore", guard); err != nil {
		return err
	}
	if exec.Command("iptables", "-C", "FORWARD", "-j", "GITSEAL-NODE-FORWARD").Run() != nil {
		if err := run("iptables", "-I", "FORWARD", "1", "-j", "GITSEAL-NODE-FORWARD"); err != nil {
			return err
		}
	}
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "gitseal",
		"plugins": []any{
			map[string]any{
				"type": "bridge", "bridge": n.Bridge, "isGateway": true, "ipMasq": false, "hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"dataDir": st.nodeDir("cni", "ipam"),
					"ranges": [][]map[string]string{{{
						"subnet": n.PodCIDR, "gateway": n.IP,
						"rangeStart": strings.TrimSuffix(n.IP, ".1") + ".10",
					}}},
					"routes": []map[string]string{{"dst": "0.0.0.0/0"}},
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}
	b, _ := json.MarshalIndent(conf, "", "  ")
	return os.WriteFile(st.nodeDir("cni", "net.d", "10-gitseal.conflist"), b, 0o644)
}

func iptablesRestore(bin, rules string) error {
	cmd := exec.Command(bin, "--noflush")
	cmd.Stdin = strings.NewReader(rules)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s\ninput:\n%s", bin, err, strings.TrimSpace(string(out)), rules)
	}
	return nil
}

// ourChain says whether an iptables chain belongs to the node's parts.
func ourChain(c string) bool {
	return strings.HasPrefix(c, "KUBE-") || strings.HasPrefix(c, "CNI-") || strings.HasPrefix(c, "GITSEAL-")
}

// removeChains deletes our chains and every rule that jumps to them, in one
// iptables-restore transaction per family.
func removeChains(family string) error {
	out, err := exec.Command(family + "-save").Output()
	if err != nil {
		return fmt.Errorf("%s-save: %w", family, err)
	}
	var b strings.Builder
	var table string
	var dels, chains []string
	flush := func() {
		if table != "" && (len(dels) > 0 || len(chains) > 0) {
			fmt.Fprintf(&b, "*%s\n", table)
			for _, d := range dels {
				b.WriteString(d + "\n")
			}
			for _, c := range chains {
				fmt.Fprintf(&b, "-F %s\n", c)
			}
			for _, c := range chains {
				fmt.Fprintf(&b, "-X %s\n", c)
			}
			b.WriteString("COMMIT\n")
		}
		dels, chains = nil, nil
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "*"):
			flush()
			table = line[1:]
		case strings.HasPrefix(line, ":"):
			if c := strings.Fields(line[1:])[0]; ourChain(c) {
				chains = append(chains, c)
			}
		case strings.HasPrefix(line, "-A "):
			f := strings.Fields(line)
			if len(f) > 1 && !ourChain(f[1]) {
				for i := 2; i+1 < len(f); i++ {
					if (f[i] == "-j" || f[i] == "-g") && ourChain(f[i+1]) {
						dels = append(dels, "-D"+line[2:])
						break
					}
				}
			}
		case line == "COMMIT":
			flush()
			table = ""
		}
	}
	if b.Len() == 0 {
		return nil
	}
	return iptablesRestore(family+"-restore", b.String())
}

// unmountUnder unmounts everything mounted below dir, deepest first.
func unmountUnder(dir string) error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var mps []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 {
			mp := unescapeMount(f[4])
			if mp == dir || strings.HasPrefix(mp, dir+"/") {
				mps = append(mps, mp)
			}
		}
	}
	sort.Slice(mps, func(i, j int) bool { return len(mps[i]) > len(mps[j]) })
	var errs []error
	for _, mp := range mps {
		if err := syscall.Unmount(mp, 0); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			if err2 := syscall.Unmount(mp, syscall.MNT_DETACH); err2 != nil {
				errs = append(errs, fmt.Errorf("unmounting %s: %w", mp, err))
			}
		}
	}
	return errors.Join(errs...)
}

// unescapeMount decodes mountinfo's octal escapes (\040 for a space, ...).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// teardownHost undoes setupHost and what the node's parts did to the machine (see the
// file comment). Containers must be gone already (removeAllPods). Idempotent.
func teardownHost(st *State) error {
	var errs []error
	n := st.Node
	if err := unmountUnder(st.nodeDir()); err != nil {
		errs = append(errs, err)
	}
	for _, fam := range []string{"iptables", "ip6tables"} {
		if err := removeChains(fam); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := net.InterfaceByName(n.Bridge); err == nil {
		if err := run("ip", "link", "del", n.Bridge); err != nil {
			errs = append(errs, err)
		}
	}
	// Leftover pod interfaces would have gone with their netns; host-local's leases too.
	_ = os.RemoveAll(st.nodeDir("cni", "ipam"))
	// The kubelet links container logs into /var/log/containers (a fixed path).
	if links, err := os.ReadDir("/var/log/containers"); err == nil {
		for _, l := range links {
			p := filepath.Join("/var/log/containers", l.Name())
			if t, err := os.Readlink(p); err == nil && strings.HasPrefix(t, st.nodeDir()+"/") {
				_ = os.Remove(p)
			}
		}
	}
	if b, err := os.ReadFile(st.hostBeforePath()); err == nil {
		var hb hostBefore
		if err := json.Unmarshal(b, &hb); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", st.hostBeforePath(), err))
		} else {
			for k, v := range hb.Sysctls {
				if cur, err := os.ReadFile("/proc/sys/" + k); err == nil && strings.TrimSpace(string(cur)) != v {
					if err := writeSysctl(k, v); err != nil {
						errs = append(errs, fmt.Errorf("restoring %s=%s: %w", k, v, err))
					}
				}
			}
			for _, f := range hostFiles {
				if fi, err := os.Lstat(f); err == nil && !hb.Existed[filepath.Dir(f)] &&
					(filepath.Base(f) != "utab" || fi.Size() == 0) {
					_ = os.Remove(f)
				}
			}
			for _, d := range hostDirs { // listed children first
				if !hb.Existed[d] {
					_ = os.Remove(d) // only if empty
				}
			}
			if len(errs) == 0 {
				_ = os.Remove(st.hostBeforePath())
			}
		}
	}
	return errors.Join(errs...)
}
