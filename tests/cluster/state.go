// State directory: ports, certificates and the admin kubeconfig shared by all
// components. It is created once and reused, so an apiserver restarted on the same
// directory keeps its port, its CA and its etcd, and the kubeconfig stays valid.
//
//	DIR/ports.json          {"etcd":N,"etcdPeer":N,"apiserver":N}
//	DIR/pki/                ca, apiserver serving cert, admin client cert, service-account keys
//	DIR/kubeconfig          admin (group system:masters), certificates embedded
//	DIR/etcd/               etcd data
//	DIR/logs/               component logs when started by `up`
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
}

// State is an initialised state directory.
type State struct {
	Dir   string
	Ports Ports
}

func (s *State) path(elem ...string) string {
	return filepath.Join(append([]string{s.Dir}, elem...)...)
}

// EtcdURL is the etcd client endpoint the apiserver uses.
func (s *State) EtcdURL() string { return fmt.Sprintf("http://127.0.0.1:%d", s.Ports.Etcd) }

// APIServerURL is the secure endpoint written into the kubeconfig.
func (s *State) APIServerURL() string { return fmt.Sprintf("https://127.0.0.1:%d", s.Ports.APIServer) }

// Kubeconfig is the admin kubeconfig path.
func (s *State) Kubeconfig() string { return s.path("kubeconfig") }

// loadOrInitState creates DIR's ports, PKI and kubeconfig if missing (under a file
// lock, so components started concurrently agree) and loads them.
func loadOrInitState(dir string) (*State, error) {
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
	portsFile := st.path("ports.json")
	if b, err := os.ReadFile(portsFile); err == nil {
		if err := json.Unmarshal(b, &st.Ports); err != nil {
			return nil, fmt.Errorf("%s: %w", portsFile, err)
		}
	} else if errors.Is(err, os.ErrNotExist) {
		ports, err := freePorts(3)
		if err != nil {
			return nil, err
		}
		st.Ports = Ports{Etcd: ports[0], EtcdPeer: ports[1], APIServer: ports[2]}
		b, _ := json.MarshalIndent(st.Ports, "", "  ")
		if err := os.WriteFile(portsFile, append(b, '\n'), 0o600); err != nil {
			return nil, err
		}
	} else {
		return nil, err
	}
	if _, err := os.Stat(st.Kubeconfig()); errors.Is(err, os.ErrNotExist) {
		if err := st.initPKI(); err != nil {
			return nil, fmt.Errorf("creating certificates: %w", err)
		}
	}
	return st, nil
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
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.1")},
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

	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["testcluster"] = &clientcmdapi.Cluster{
		Server:                   s.APIServerURL(),
		CertificateAuthorityData: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caCert.Raw}),
	}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: admCertPEM, ClientKeyData: admKeyPEM}
	cfg.Contexts["testcluster"] = &clientcmdapi.Context{Cluster: "testcluster", AuthInfo: "admin", Namespace: "default"}
	cfg.CurrentContext = "testcluster"
	return clientcmd.WriteToFile(*cfg, s.Kubeconfig())
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
