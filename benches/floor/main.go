// The benchmark's floor: the fastest plain client we could write for creating Secrets on a
// kube-apiserver. Go's standard library only (net/http over TLS with HTTP/2, one
// connection multiplexing every request), N requests in flight, the request bodies made
// beforehand so the clock runs on the server's work alone.
//
// Input (-in): JSON lines {"namespace": NS, "object": SECRET}. Output: "created N in S s".
// Any non-201 answer fails the run with the server's message.
package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"
)

type item struct {
	Namespace string          `json:"namespace"`
	Object    json.RawMessage `json:"object"`
}

func main() {
	server := flag.String("server", "", "API server URL (https://127.0.0.1:PORT)")
	ca := flag.String("ca", "", "CA certificate (PEM)")
	cert := flag.String("cert", "", "client certificate (PEM)")
	key := flag.String("key", "", "client key (PEM)")
	in := flag.String("in", "", "JSON lines of {namespace, object}")
	inFlight := flag.Int("in-flight", 32, "requests in flight")
	http1 := flag.Bool("http1", false, "HTTP/1.1 (a connection per request in flight) instead of HTTP/2")
	fieldManager := flag.String("field-manager", "", "fieldManager query parameter")
	flag.Parse()

	items, err := read(*in)
	check(err)
	client, err := newClient(*ca, *cert, *key, *http1, *inFlight)
	check(err)

	work := make(chan item)
	errs := make(chan error, *inFlight)
	var wg sync.WaitGroup
	start := time.Now()
	for range *inFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range work {
				if err := create(client, *server, *fieldManager, it); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	go func() {
		defer close(work)
		for _, it := range items {
			select {
			case work <- it:
			case err := <-errs:
				check(err)
			}
		}
	}()
	wg.Wait()
	select {
	case err := <-errs:
		check(err)
	default:
	}
	fmt.Printf("created %d in %.3f s\n", len(items), time.Since(start).Seconds())
}

func create(c *http.Client, server, fieldManager string, it item) error {
	url := fmt.Sprintf("%s/api/v1/namespaces/%s/secrets", server, it.Namespace)
	if fieldManager != "" {
		url += "?fieldManager=" + fieldManager
	}
	resp, err := c.Post(url, "application/json", bytes.NewReader(it.Object))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("POST %s: %s: %s", url, resp.Status, body)
	}
	return nil
}

func newClient(ca, cert, key string, http1 bool, inFlight int) (*http.Client, error) {
	pool := x509.NewCertPool()
	caPEM, err := os.ReadFile(ca)
	if err != nil {
		return nil, err
	}
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s: no certificate", ca)
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, err
	}
	t := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}},
		ForceAttemptHTTP2:   !http1,
		MaxIdleConnsPerHost: inFlight,
	}
	if http1 {
		t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: t, Timeout: 60 * time.Second}, nil
}

func read(path string) ([]item, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var items []item
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 1<<20), 1<<24)
	for s.Scan() {
		var it item
		if err := json.Unmarshal(s.Bytes(), &it); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, len(items)+1, err)
		}
		items = append(items, it)
	}
	return items, s.Err()
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}
