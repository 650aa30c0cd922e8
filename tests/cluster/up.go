// `up`: runs etcd, kube-apiserver and kube-controller-manager as child processes
// of this binary (separate processes keep the components' global state apart),
// waits until the API server is ready, and stops them in reverse order on
// SIGTERM/SIGINT or as soon as one of them exits.
package main

import (
	"context"
	"fmt"
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

func runUp(st *State) error {
	start := time.Now()
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	if err := st.writePID("up"); err != nil {
		return err
	}
	defer os.Remove(st.path("up.pid"))

	var children []*child
	stopAll := func() {
		for i := len(children) - 1; i >= 0; i-- {
			children[i].stop()
		}
	}
	steps := []struct {
		name  string
		ready func() error
	}{
		{"etcd", func() error { return etcdHealthy(st) }},
		{"apiserver", func() error { return apiserverReady(st) }},
		{"controller-manager", func() error { return nil }},
	}
	for _, step := range steps {
		c, err := startChild(st, step.name)
		if err != nil {
			stopAll()
			return err
		}
		children = append(children, c)
		readyCtx, readyCancel := context.WithCancel(ctx)
		go func() { // an exiting child cancels the wait
			select {
			case <-c.exited:
				readyCancel()
			case <-readyCtx.Done():
			}
		}()
		err = waitFor(readyCtx, 5*time.Minute, step.ready)
		readyCancel()
		if err == nil && ctx.Err() != nil {
			err = ctx.Err()
		}
		if err != nil {
			stopAll()
			return fmt.Errorf("%s did not become ready (see %s): %w", step.name, st.path("logs", step.name+".log"), err)
		}
	}
	fmt.Printf("ready kubeconfig=%s (%.1fs)\n", st.Kubeconfig(), time.Since(start).Seconds())

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
