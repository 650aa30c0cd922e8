// Readiness probes shared by the components and the `up` supervisor.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// waitFor polls check every 200ms until it succeeds, ctx ends, or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func get(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return string(body), nil
}

func etcdHealthy(st *State) error {
	body, err := get(&http.Client{Timeout: 2 * time.Second}, st.EtcdURL()+"/health")
	if err == nil && !strings.Contains(body, `"health":"true"`) {
		err = fmt.Errorf("etcd unhealthy: %s", body)
	}
	return err
}

// apiserverReady is GET /readyz as the admin user, verifying the serving cert.
func apiserverReady(st *State) error {
	c, err := adminHTTPClient(st)
	if err != nil {
		return err
	}
	_, err = get(c, st.APIServerURL()+"/readyz")
	return err
}

func adminHTTPClient(st *State) (*http.Client, error) {
	caPEM, err := os.ReadFile(st.path("pki", "ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	pair, err := tls.LoadX509KeyPair(st.path("pki", "admin.crt"), st.path("pki", "admin.key"))
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}}
	return &http.Client{Timeout: 5 * time.Second, Transport: tr}, nil
}
