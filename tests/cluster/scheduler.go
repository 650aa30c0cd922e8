// kube-scheduler (k8s.io/kubernetes/cmd/kube-scheduler/app) of the node cluster: the
// default profile, as system:kube-scheduler, no leader election, no serving port.
package main

import (
	"errors"
	"os"

	"k8s.io/component-base/cli"
	schedulerapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

func runScheduler(st *State) error {
	if st.Node == nil {
		return errors.New("scheduler: not a node cluster (see `up --node`)")
	}
	if err := st.writePID("scheduler"); err != nil {
		return err
	}
	kc := st.path("pki", "kube-scheduler.kubeconfig")
	cmd := schedulerapp.NewSchedulerCommand()
	cmd.SetArgs([]string{
		"--kubeconfig=" + kc,
		"--authentication-kubeconfig=" + kc,
		"--authorization-kubeconfig=" + kc,
		"--leader-elect=false",
		"--secure-port=0",
	})
	os.Exit(cli.Run(cmd))
	return nil
}
