// Command probe is the node cluster's test workload (tests/node.rs): a static binary in a
// FROM-scratch image that reports, as one JSON line on stdout, how the Pod it runs in
// sees the cluster — whether it reached the API server through the `kubernetes` Service
// (in-cluster config: KUBERNETES_SERVICE_HOST/PORT, the service account token and CA,
// the serving certificate verified for the ClusterIP), who the API server says it is,
// its uid/gid, whether its root filesystem is writable, and its capabilities.
// It exits 1 if the API server could not be reached.
//
//	probe             the report above
//	probe serve ADDR  an HTTP server answering every request with "probe-ok HOSTNAME\n"
//	probe get URL     GET URL (retrying for 60 s) and report status, body and addresses as
//	                  JSON; exits 1 on failure (for traffic from a pod through a Service)
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

const saDir = "/var/run/secrets/kubernetes.io/serviceaccount"

type report struct {
	ServiceHost   string `json:"serviceHost"`
	ServicePort   string `json:"servicePort"`
	LocalAddr     string `json:"localAddr,omitempty"`
	RemoteAddr    string `json:"remoteAddr,omitempty"`
	ServerVersion string `json:"serverVersion,omitempty"`
	User          string `json:"user,omitempty"`
	Error         string `json:"error,omitempty"`
	UID           int    `json:"uid"`
	GID           int    `json:"gid"`
	RootWritable  bool   `json:"rootWritable"`
	RootWriteErr  string `json:"rootWriteError,omitempty"`
	CapEff        string `json:"capEff"`
	CapPrm        string `json:"capPrm"`
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "serve" {
		serve(os.Args[2])
	}
	if len(os.Args) == 3 && os.Args[1] == "get" {
		getURL(os.Args[2])
	}
	if len(os.Args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: probe | probe serve ADDR | probe get URL")
		os.Exit(2)
	}
	r := report{
		ServiceHost: os.Getenv("KUBERNETES_SERVICE_HOST"),
		ServicePort: os.Getenv("KUBERNETES_SERVICE_PORT"),
		UID:         os.Getuid(),
		GID:         os.Getgid(),
	}
	if err := os.WriteFile("/probe-write-test", []byte("x"), 0o600); err == nil {
		r.RootWritable = true
		_ = os.Remove("/probe-write-test")
	} else {
		r.RootWriteErr = err.Error()
	}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
				r.CapEff = strings.TrimSpace(v)
			}
			if v, ok := strings.CutPrefix(l, "CapPrm:"); ok {
				r.CapPrm = strings.TrimSpace(v)
			}
		}
	}
	err := callAPI(&r)
	if err != nil {
		r.Error = err.Error()
	}
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
	if err != nil {
		os.Exit(1)
	}
	os.Exit(0)
}

func callAPI(r *report) error {
	if r.ServiceHost == "" || r.ServicePort == "" {
		return fmt.Errorf("KUBERNETES_SERVICE_HOST/PORT not set")
	}
	caPEM, err := os.ReadFile(saDir + "/ca.crt")
	if err != nil {
		return err
	}
	token, err := os.ReadFile(saDir + "/token")
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("no certificate in %s/ca.crt", saDir)
	}
	addr := net.JoinHostPort(r.ServiceHost, r.ServicePort)
	tr := &http.Transport{
		// ServerName defaults to the host: the serving certificate must name the ClusterIP.
		TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			c, err := (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, network, a)
			if err == nil && r.LocalAddr == "" {
				r.LocalAddr, r.RemoteAddr = c.LocalAddr().String(), c.RemoteAddr().String()
			}
			return c, err
		},
	}
	client := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	do := func(method, path string, body []byte, out any) error {
		req, err := http.NewRequest(method, "https://"+addr+path, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
		}
		return json.Unmarshal(b, out)
	}
	var lastErr error
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		var v struct{ GitVersion string }
		if lastErr = do("GET", "/version", nil, &v); lastErr == nil {
			r.ServerVersion = v.GitVersion
			break
		}
	}
	if lastErr != nil {
		return lastErr
	}
	var ssr struct {
		Status struct {
			UserInfo struct{ Username string }
		}
	}
	body := []byte(`{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`)
	if err := do("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", body, &ssr); err != nil {
		return err
	}
	r.User = ssr.Status.UserInfo.Username
	return nil
}

func serve(addr string) {
	host, _ := os.Hostname()
	err := http.ListenAndServe(addr, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "probe-ok %s\n", host)
	}))
	fmt.Fprintln(os.Stderr, "probe serve:", err)
	os.Exit(1)
}

func getURL(url string) {
	var r struct {
		URL        string `json:"url"`
		Status     int    `json:"status"`
		Body       string `json:"body"`
		LocalAddr  string `json:"localAddr,omitempty"`
		RemoteAddr string `json:"remoteAddr,omitempty"`
		Error      string `json:"error,omitempty"`
	}
	r.URL = url
	tr := &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			c, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, a)
			if err == nil {
				r.LocalAddr, r.RemoteAddr = c.LocalAddr().String(), c.RemoteAddr().String()
			}
			return c, err
		},
	}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var err error
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(time.Second) {
		var resp *http.Response
		if resp, err = client.Get(url); err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
			r.Status, r.Body = resp.StatusCode, string(b)
			if resp.StatusCode == http.StatusOK {
				break
			}
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		if time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		r.Error = err.Error()
	}
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
	if err != nil {
		os.Exit(1)
	}
	os.Exit(0)
}
