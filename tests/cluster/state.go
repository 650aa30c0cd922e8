// State directory: ports, certificates and the admin kubeconfig shared by all
// components. It is created once and reused, so an apiserver restarted on the same
// directory keeps its port, its CA and its etcd, and the kubeconfig stays valid.
//
//	DIR/ports.json          {"etcd":N,"etcdPeer":N,"apiserver":N,...}
//	DIR/node.json           only in a node cluster (`up --node`): node name, IP, bridge
//	DIR/pki/                ca, apiserver serving cert, admin client cert, service-account keys
//	                        (node cluster: kubelet, kube-proxy, scheduler client certs too)
//	DIR/kubeconfig          admin (group system:masters), certificates embedded
//	DIR/etcd/               etcd data
//	DIR/node/               node cluster: containerd, kubelet and CNI state (node.go)
//	DIR/logs/               component logs when started by `up`
//
// Whether a directory is a node cluster is decided when it is created: the API server of
// a node cluster serves on the node's bridge address (pods reach it through the
// `kubernetes` Service), the one of a plain cluster on 127.0.0.1.
package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Ports are the loopback TCP ports, chosen once per state directory.
type Ports struct {
	Etcd      int `json:"etcd"`
	EtcdPeer  int `json:"etcdPeer"`
	APIServer int `json:"apiserver"`
	// Node cluster only (zero otherwise).
	Kubelet        int `json:"kubelet,omitempty"`
	KubeletHealthz int `json:"kubeletHealthz,omitempty"`
	ProxyHealthz   int `json:"proxyHealthz,omitempty"`
	ProxyMetrics   int `json:"proxyMetrics,omitempty"`
}

// ServiceCIDR is the Service ClusterIP range (198.19.0.0/15 is reserved for network
// testing; the first address is the `kubernetes` Service).
const (
	ServiceCIDR     = "198.19.0.0/24"
	KubernetesSvcIP = "198.19.0.1"
)

// State is an initialised state directory.
type State struct {
	Dir   string
	Ports Ports
	Node  *NodeConfig // nil unless a node cluster
}

func (s *State) path(elem ...string) string {
	return filepath.Join(append([]string{s.Dir}, elem...)...)
}

// EtcdURL is the etcd client endpoint the apiserver uses.
func (s *State) EtcdURL() string { return fmt.Sprintf("http://127.0.0.1:%d", s.Ports.Etcd) }

// APIServerHost is the address the API server serves on: 127.0.0.1, or the node's
// bridge address in a node cluster (a local address of this machine too).
func (s *State) APIServerHost() string {
	if s.Node != nil {
		return s.Node.IP
	}
	return "127.0.0.1"
}

// APIServerURL is the secure endpoint written into the kubeconfig.
func (s *State) APIServerURL() string {
	return fmt.Sprintf("https://%s:%d", s.APIServerHost(), s.Ports.APIServer)
}

// Kubeconfig is the admin kubeconfig path.
func (s *State) Kubeconfig() string { return s.path("kubeconfig") }

// loadOrInitState creates DIR's ports, PKI and kubeconfig if missing (under a file
// lock, so components started concurrently agree) and loads them. node asks for a node
// cluster; it only matters when DIR is created (an existing directory keeps its kind).
func loadOrInitState(dir string, node bool) (*State, error) {
	for _, d := range []string{dir, filepath.Join(dir, "pki"), filepath.Join(dir, "logs")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return nil, err
	}
	st := &State{Dir: dir}
	_, statErr := os.Stat(st.Kubeconfig())
	fresh := errors.Is(statErr, os.ErrNotExist)
	if fresh && node {
		if err := writeJSON(st.path("node.json"), defaultNodeConfig()); err != nil {
			return nil, err
		}
	}
	if b, err := os.ReadFile(st.path("node.json")); err == nil {
		st.Node = new(NodeConfig)
		if err := json.Unmarshal(b, st.Node); err != nil {
			return nil, fmt.Errorf("%s: %w", st.path("node.json"), err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if node && st.Node == nil {
		return nil, fmt.Errorf("%s is a cluster without a node (made by `up` without --node); use another directory for `up --node`", dir)
	}
	portsFile := st.path("ports.json")
	if b, err := os.ReadFile(portsFile); err == nil {
		if err := json.Unmarshal(b, &st.Ports); err != nil {
			return nil, fmt.Errorf("%s: %w", portsFile, err)
		}
	} else if errors.Is(err, os.ErrNotExist) {
		ports, err := freePorts(7)
		if err != nil {
			return nil, err
		}
		st.Ports = Ports{Etcd: ports[0], EtcdPeer: ports[1], APIServer: ports[2]}
		if st.Node != nil {
			st.Ports.Kubelet, st.Ports.KubeletHealthz = ports[3], ports[4]
			st.Ports.ProxyHealthz, st.Ports.ProxyMetrics = ports[5], ports[6]
		}
		if err := writeJSON(portsFile, st.Ports); err != nil {
			return nil, err
		}
	} else {
		return nil, err
	}
	if fresh {
		if err := st.initPKI(); err != nil {
			return nil, fmt.Errorf("creating certificates: %w", err)
		}
	} else if err := st.checkLayout(); err != nil {
		return nil, err
	}
	return st, nil
}

// ErrOldLayout marks a state directory made by an older testcluster.
var ErrOldLayout = errors.New("old state directory layout")

// checkLayout rejects directories from before the 198.19.0.0/24 Service range (their
// `kubernetes` Service in etcd has a 10.0.0.0/24 address the API server cannot repair).
func (s *State) checkLayout() error {
	b, err := os.ReadFile(s.path("pki", "apiserver.crt"))
	if err != nil {
		return err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return fmt.Errorf("%s: no PEM certificate", s.path("pki", "apiserver.crt"))
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return err
	}
	for _, ip := range c.IPAddresses {
		if ip.Equal(net.ParseIP(KubernetesSvcIP)) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s was made by an older testcluster (Service range 10.0.0.0/24, now %s): delete it", ErrOldLayout, s.Dir, ServiceCIDR)
}

func writeJSON(path string, v any) error {
	b, _ := json.MarshalIndent(v, "", "  ")
	return os.WriteFile(path, append(b, '\n'), 0o600)
}

// freePorts asks the kernel for n distinct free loopback ports.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// initPKI writes a CA, the apiserver serving cert, the admin client cert, the
// service-account signing key pair, and the admin kubeconfig. The kubeconfig is
// written last: its presence marks a complete directory.
func (s *State) initPKI() error {
	caKey, caCert, err := newCert(nil, nil, &x509.Certificate{
		Subject:               pkix.Name{CommonName: "gitseal-testcluster-ca"},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	})
	if err != nil {
		return err
	}
	_, _, err = s.writePair("ca", caKey, caCert)
	if err != nil {
		return err
	}
	srvKey, srvCert, err := newCert(caKey, caCert, &x509.Certificate{
		Subject: pkix.Name{CommonName: "kube-apiserver"},
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local"},
		// 127.0.0.1 (plain cluster), the `kubernetes` Service ClusterIP, and the node's
		// bridge address (the Service's endpoint in a node cluster).
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(KubernetesSvcIP), net.ParseIP(defaultNodeConfig().IP)},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return err
	}
	if _, _, err := s.writePair("apiserver", srvKey, srvCert); err != nil {
		return err
	}
	admKey, admCert, err := newCert(caKey, caCert, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "gitseal-admin", Organization: []string{"system:masters"}},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return err
	}
	admKeyPEM, admCertPEM, err := s.writePair("admin", admKey, admCert)
	if err != nil {
		return err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	saKeyDER, _ := x509.MarshalPKCS8PrivateKey(saKey)
	saPubDER, _ := x509.MarshalPKIXPublicKey(saKey.Public())
	if err := writePEM(s.path("pki", "sa.key"), "PRIVATE KEY", saKeyDER); err != nil {
		return err
	}
	if err := writePEM(s.path("pki", "sa.pub"), "PUBLIC KEY", saPubDER); err != nil {
		return err
	}

	if s.Node != nil {
		if err := s.initNodePKI(caKey, caCert); err != nil {
			return err
		}
	}
	return s.writeKubeconfig(s.Kubeconfig(), "admin", caCert, admCertPEM, admKeyPEM)
}

// writeKubeconfig writes a kubeconfig for the client certificate certPEM/keyPEM.
func (s *State) writeKubeconfig(path, user string, caCert *x509.Certificate, certPEM, keyPEM []byte) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["testcluster"] = &clientcmdapi.Cluster{
		Server:                   s.APIServerURL(),
		CertificateAuthorityData: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caCert.Raw}),
	}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: certPEM, ClientKeyData: keyPEM}
	cfg.Contexts["testcluster"] = &clientcmdapi.Context{Cluster: "testcluster", AuthInfo: user, Namespace: "default"}
	cfg.CurrentContext = "testcluster"
	return clientcmd.WriteToFile(*cfg, path)
}

// newCert makes an ECDSA P-256 key and a certificate from tmpl, self-signed when
// parent is nil. Certificates are valid for ten years.
func newCert(parentKey crypto.Signer, parent *x509.Certificate, tmpl *x509.Certificate) (crypto.Signer, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(10 * 365 * 24 * time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, nil, err
	}
	c, err := x509.ParseCertificate(der)
	return key, c, err
}

// writePair writes DIR/pki/NAME.key (PKCS#8) and NAME.crt and returns their PEM.
func (s *State) writePair(name string, key crypto.Signer, cert *x509.Certificate) (keyPEM, certPEM []byte, err error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	if err := os.WriteFile(s.path("pki", name+".key"), keyPEM, 0o600); err != nil {
		return nil, nil, err
	}
	return keyPEM, certPEM, os.WriteFile(s.path("pki", name+".crt"), certPEM, 0o644)
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

// writePID records the current process id as DIR/NAME.pid.
func (s *State) writePID(name string) error {
	return os.WriteFile(s.path(name+".pid"), []byte(fmt.Sprintf("%d\n", os.Getpid())), 0o644)
}
