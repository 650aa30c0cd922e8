// `up`: runs etcd, kube-apiserver and kube-controller-manager (and, in a node cluster,
// kube-scheduler, containerd, the kubelet and kube-proxy) as child processes of this
// binary (separate processes keep the components' global state apart), waits until each
// is ready, and stops them in reverse order on SIGTERM/SIGINT or as soon as one of them
// exits. A node cluster's pods are removed through CRI before containerd stops, and the
// host is put back as it was (node.go: teardownHost).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"
)

type child struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
	err    error         // its exit status, valid after exited is closed
}

func startChild(st *State, name string) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	log, err := os.OpenFile(st.path("logs", name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, name, "--dir", st.Dir)
	cmd.Stdout, cmd.Stderr = log, log
	// Children die with the supervisor even if it is SIGKILLed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	c := &child{name: name, cmd: cmd, exited: make(chan struct{})}
	go func() { c.err = cmd.Wait(); log.Close(); close(c.exited) }()
	return c, nil
}

// stop sends SIGTERM and waits up to 30s before killing.
func (c *child) stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		fmt.Fprintf(os.Stderr, "testcluster: %s did not stop in 30s, killing\n", c.name)
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}

// step is one component: a child process (unless process is empty) and its readiness.
type step struct {
	name    string
	process bool
	ready   func() error
}

func runUp(st *State, sandboxTar string) error {
	start := time.Now()
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	if st.Node != nil { // before anything of a running cluster is touched
		lock, err := lockNode(st)
		if err != nil {
			return err
		}
		defer lock.Close()
	}
	if err := st.writePID("up"); err != nil {
		return err
	}
	defer os.Remove(st.path("up.pid"))

	steps := []step{
		{"etcd", true, func() error { return etcdHealthy(st) }},
		{"apiserver", true, func() error { return apiserverReady(st) }},
		{"controller-manager", true, func() error { return nil }},
	}
	if st.Node != nil {
		if err := nodePreflight(st); err != nil {
			return err
		}
		if _, err := os.Stat(st.hostBeforePath()); err == nil {
			fmt.Fprintln(os.Stderr, "testcluster: the last node run was not torn down; cleaning up first")
			if err := cleanNode(st); err != nil {
				return fmt.Errorf("cleaning up after the last run: %w", err)
			}
		}
		if err := setupHost(st); err != nil {
			_ = teardownHost(st)
			return fmt.Errorf("setting up the node's network: %w", err)
		}
		steps = append(steps,
			step{"scheduler", true, func() error { return nil }},
			step{"containerd", true, func() error { return containerdReady(st) }},
			step{"sandbox-image", false, func() error { return ensureSandboxImage(st, sandboxTar) }},
			step{"kubelet", true, func() error { return nodeReady(st) }},
			step{"kube-proxy", true, func() error { return kubeProxyHealthy(st) }},
			step{"kubernetes-service", false, func() error { return serviceRouted(st) }},
		)
	}

	var children []*child
	stopAll := func() {
		for i := len(children) - 1; i >= 0; i-- {
			if children[i].name == "containerd" {
				if err := removeAllPods(st); err != nil {
					fmt.Fprintf(os.Stderr, "testcluster: removing pods: %v\n", err)
				}
			}
			children[i].stop()
		}
		if st.Node != nil {
			if err := teardownHost(st); err != nil {
				fmt.Fprintf(os.Stderr, "testcluster: restoring the host: %v\n", err)
			}
		}
	}
	for _, s := range steps {
		var c *child
		readyCtx, readyCancel := context.WithCancel(ctx)
		if s.process {
			var err error
			if c, err = startChild(st, s.name); err != nil {
				readyCancel()
				stopAll()
				return err
			}
			children = append(children, c)
			go func() { // an exiting child cancels the wait
				select {
				case <-c.exited:
					readyCancel()
				case <-readyCtx.Done():
				}
			}()
		}
		err := waitFor(readyCtx, 5*time.Minute, s.ready)
		readyCancel()
		if err == nil && ctx.Err() != nil {
			err = ctx.Err()
		}
		if err != nil {
			stopAll()
			if c != nil {
				select {
				case <-c.exited:
					err = fmt.Errorf("exited: %v", c.err)
				default:
				}
				return fmt.Errorf("%s did not become ready (see %s): %w", s.name, st.path("logs", s.name+".log"), err)
			}
			return fmt.Errorf("%s: %w", s.name, err)
		}
		if st.Node != nil {
			fmt.Printf("started %s (%.1fs)\n", s.name, time.Since(start).Seconds())
		}
	}
	if st.Node != nil {
		fmt.Printf("ready kubeconfig=%s node=%s (%.1fs)\n", st.Kubeconfig(), st.Node.Name, time.Since(start).Seconds())
	} else {
		fmt.Printf("ready kubeconfig=%s (%.1fs)\n", st.Kubeconfig(), time.Since(start).Seconds())
	}

	select {
	case <-ctx.Done():
		fmt.Fprintln(os.Stderr, "testcluster: shutting down")
		stopAll()
		return nil
	case err := <-firstExit(children):
		stopAll()
		return err
	}
}

// firstExit reports the first child to exit.
func firstExit(children []*child) <-chan error {
	out := make(chan error, len(children))
	for _, c := range children {
		go func() {
			<-c.exited
			out <- fmt.Errorf("%s exited: %v", c.name, c.err)
		}()
	}
	return out
}

// cleanNode removes what a node cluster left behind when its `up` was killed: pods
// (through a containerd started for the purpose), then the host changes. Idempotent; a
// no-op after a clean shutdown.
func cleanNode(st *State) error {
	lock, err := lockNode(st)
	if err != nil {
		return err
	}
	defer lock.Close()
	var errs []error
	if containerdReady(st) != nil {
		if _, err := os.Stat(st.nodeDir("containerd", "root")); err == nil {
			c, err := startChild(st, "containerd")
			if err != nil {
				return err
			}
			if err := waitFor(context.Background(), time.Minute, func() error { return containerdReady(st) }); err != nil {
				errs = append(errs, fmt.Errorf("containerd for cleanup: %w", err))
			}
			if err := removeAllPods(st); err != nil {
				errs = append(errs, err)
			}
			c.stop()
		}
	} else if err := removeAllPods(st); err != nil {
		errs = append(errs, err)
	}
	if err := teardownHost(st); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// nodeLockName is an abstract unix socket (no file; released when the process dies)
// that the one node cluster of this machine holds: the bridge, the pod and Service ranges
// and the iptables chains can only be one cluster's.
const nodeLockName = "@gitseal-testcluster-node"

// lockNode takes the machine's node lock; whoever holds it answers with its directory.
func lockNode(st *State) (io.Closer, error) {
	l, err := net.Listen("unix", nodeLockName)
	if err != nil {
		owner := "unknown directory"
		if c, err := net.DialTimeout("unix", nodeLockName, 2*time.Second); err == nil {
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			if b, err := io.ReadAll(c); err == nil && len(b) > 0 {
				owner = string(b)
			}
			c.Close()
		}
		if owner == st.Dir {
			return nil, fmt.Errorf("the node cluster in %s is already running", st.Dir)
		}
		return nil, fmt.Errorf("another node cluster runs on this machine (in %s; one per machine: it owns bridge %s and %s): stop it with GITSEAL_NODE_DIR=%s scripts/cluster down --node",
			owner, st.Node.Bridge, st.Node.PodCIDR, owner)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte(st.Dir))
			c.Close()
		}
	}()
	return l, nil
}
