package main

// The real kubectl (k8s.io/kubectl, same release as the server), so the demo and
// anyone poking at a test cluster need nothing else installed.

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
)

// runKubectl runs kubectl with args (everything after `testcluster kubectl`) and exits.
func runKubectl(args []string) {
	os.Args = append([]string{"kubectl"}, args...)
	os.Exit(cli.Run(cmd.NewDefaultKubectlCommand()))
}
