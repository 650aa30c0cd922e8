// Embedded etcd (go.etcd.io/etcd/server/v3/embed), single member, plain HTTP on
// loopback, data in DIR/etcd.
package main

import (
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

func runEtcd(st *State) error {
	cfg := embed.NewConfig()
	cfg.Name = "testcluster"
	cfg.Dir = st.path("etcd")
	client, _ := url.Parse(st.EtcdURL())
	peer, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", st.Ports.EtcdPeer))
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*client}, []url.URL{*client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*peer}, []url.URL{*peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "error" // "warn" logs a line per request
	// Test data only: skipping fsync makes writes much faster. A clean shutdown
	// (SIGTERM) still leaves a consistent data directory for the next start.
	cfg.UnsafeNoFsync = true

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("starting etcd: %w", err)
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		e.Server.Stop()
		return fmt.Errorf("etcd did not become ready within 60s")
	}
	if err := st.writePID("etcd"); err != nil {
		return err
	}
	fmt.Printf("ready etcd=%s\n", st.EtcdURL())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case s := <-sig:
		fmt.Fprintf(os.Stderr, "etcd: %v, shutting down\n", s)
		return nil
	case err := <-e.Err():
		return fmt.Errorf("etcd: %w", err)
	}
}
