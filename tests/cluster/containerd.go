// containerd for the node: Debian's /usr/bin/containerd (1.6) with a configuration,
// root, state and sockets of its own under DIR/node/containerd (the machine's
// /etc/containerd and /var/lib/containerd are never used), its CRI plugin, and the CRI
// calls the cluster makes itself: readiness, removing every pod sandbox at shutdown, and
// importing images with Debian's ctr.
package main

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// containerdSocket is the CRI and containerd API socket.
func (s *State) containerdSocket() string { return s.nodeDir("containerd", "containerd.sock") }

func (s *State) containerdConfig() string {
	n := s.Node
	d := func(elem ...string) string { return s.nodeDir(append([]string{"containerd"}, elem...)...) }
	// restrict_oom_score_adj: this sandbox forbids lowering OOM scores; without it runc
	// fails with "can't get final child's PID from pipe".
	return fmt.Sprintf(`version = 2
root = %q
state = %q
oom_score = 0
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = %q

[ttrpc]
  address = %q

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = %q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  enable_selinux = false
  disable_apparmor = true
  enable_unprivileged_ports = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "runc"
        Root = %q
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %q
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = %q
`, d("root"), d("state"), s.containerdSocket(), s.containerdSocket()+".ttrpc", d("opt"),
		n.SandboxImage, d("runc"), s.nodeDir("cni", "net.d"), d("certs.d"))
}

// runContainerd writes the configuration and becomes containerd (exec, same pid).
func runContainerd(st *State) error {
	if st.Node == nil {
		return errors.New("containerd: not a node cluster (see `up --node`)")
	}
	for _, d := range []string{"root", "state", "opt", "certs.d"} {
		if err := os.MkdirAll(st.nodeDir("containerd", d), 0o711); err != nil {
			return err
		}
	}
	conf := st.nodeDir("containerd", "config.toml")
	if err := os.WriteFile(conf, []byte(st.containerdConfig()), 0o644); err != nil {
		return err
	}
	bin, err := exec.LookPath("containerd")
	if err != nil {
		return fmt.Errorf("containerd not found: run scripts/prereqs or `apt-get install containerd`")
	}
	if err := st.writePID("containerd"); err != nil {
		return err
	}
	_ = os.Remove(st.containerdSocket())
	// PATH must find Debian's containerd-shim-runc-v2 and runc.
	return syscall.Exec(bin, []string{"containerd", "--config", conf, "--log-level", "warn"}, os.Environ())
}

func criConn(st *State) (*grpc.ClientConn, error) {
	return grpc.NewClient("unix://"+st.containerdSocket(), grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// containerdReady is CRI Status with RuntimeReady and NetworkReady (CNI config loaded).
func containerdReady(st *State) error {
	conn, err := criConn(st)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := runtimeapi.NewRuntimeServiceClient(conn).Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		return err
	}
	for _, c := range resp.GetStatus().GetConditions() {
		if !c.Status {
			return fmt.Errorf("containerd CRI condition %s is false: %s %s", c.Type, c.Reason, c.Message)
		}
	}
	return nil
}

// removeAllPods stops and removes every pod sandbox (and so its containers, its network
// namespace and its CNI interfaces and leases) through CRI.
func removeAllPods(st *State) error {
	conn, err := criConn(st)
	if err != nil {
		return err
	}
	defer conn.Close()
	rs := runtimeapi.NewRuntimeServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	list, err := rs.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return fmt.Errorf("listing pod sandboxes: %w", err)
	}
	var errs []error
	for _, p := range list.Items {
		if _, err := rs.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			errs = append(errs, fmt.Errorf("stopping sandbox %s (%s/%s): %w", p.Id, p.Metadata.Namespace, p.Metadata.Name, err))
			continue
		}
		if _, err := rs.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			errs = append(errs, fmt.Errorf("removing sandbox %s: %w", p.Id, err))
		}
	}
	if len(list.Items) > 0 {
		fmt.Fprintf(os.Stderr, "testcluster: removed %d pod sandbox(es)\n", len(list.Items))
	}
	return errors.Join(errs...)
}

func ctr(st *State, args ...string) *exec.Cmd {
	return exec.Command("ctr", append([]string{"--address", st.containerdSocket(), "--namespace", "k8s.io"}, args...)...)
}

// imagePresent says whether containerd's k8s.io namespace has image ref.
func imagePresent(st *State, ref string) bool {
	out, err := ctr(st, "images", "ls", "-q").Output()
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(l) == ref {
			return true
		}
	}
	return false
}

// archiveRefs reads an image archive's names: docker-archive manifest.json RepoTags, or an
// OCI archive's index.json io.containerd.image.name / org.opencontainers.image.ref.name
// annotations.
func archiveRefs(file string) (refs []string, oci bool, err error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, false, fmt.Errorf("%s: not a tar archive: %w", file, err)
		}
		switch strings.TrimPrefix(h.Name, "./") {
		case "manifest.json":
			var m []struct{ RepoTags []string }
			if err := json.NewDecoder(tr).Decode(&m); err != nil {
				return nil, false, fmt.Errorf("%s: manifest.json: %w", file, err)
			}
			for _, e := range m {
				refs = append(refs, e.RepoTags...)
			}
		case "index.json":
			oci = true
			var idx struct {
				Manifests []struct{ Annotations map[string]string }
			}
			if err := json.NewDecoder(tr).Decode(&idx); err != nil {
				return nil, false, fmt.Errorf("%s: index.json: %w", file, err)
			}
			for _, m := range idx.Manifests {
				if n := m.Annotations["io.containerd.image.name"]; n != "" {
					refs = append(refs, n)
				} else if n := m.Annotations["org.opencontainers.image.ref.name"]; n != "" {
					refs = append(refs, n)
				}
			}
		}
	}
	return refs, oci, nil
}

// importImage loads an image archive into the node's containerd (namespace k8s.io, the
// one the kubelet uses) under the names it carries, and returns those names.
func importImage(st *State, file string) ([]string, error) {
	refs, oci, err := archiveRefs(file)
	if err != nil {
		return nil, err
	}
	var full []string
	for _, r := range refs {
		if strings.ContainsAny(r, "/:") {
			full = append(full, r)
		}
	}
	if len(full) == 0 {
		return nil, fmt.Errorf("%s: the archive names no image (docker-archive RepoTags, or an OCI index annotation "+
			"org.opencontainers.image.ref.name / io.containerd.image.name with a full name such as localhost/app:tag)", file)
	}
	args := []string{"images", "import"}
	if oci {
		// ctr keeps an OCI ref.name only when it starts with --base-name.
		base := full[0]
		if i := strings.LastIndex(base, ":"); i > strings.LastIndex(base, "/") {
			base = base[:i]
		}
		args = append(args, "--base-name", base)
	}
	out, err := ctr(st, append(args, file)...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("ctr images import %s: %v: %s", file, err, strings.TrimSpace(string(out)))
	}
	var got []string
	for _, r := range full {
		if r = normalizeRef(r); imagePresent(st, r) {
			got = append(got, r)
		}
	}
	if len(got) == 0 {
		return nil, fmt.Errorf("ctr images import %s imported none of %v: %s", file, full, strings.TrimSpace(string(out)))
	}
	return got, nil
}

// normalizeRef spells a name the way containerd stores it (docker.io/library/ for short
// names, like docker).
func normalizeRef(r string) string {
	first, _, found := strings.Cut(r, "/")
	switch {
	case !found:
		return "docker.io/library/" + r
	case !strings.ContainsAny(first, ".:") && first != "localhost":
		return "docker.io/" + r
	}
	return r
}

// ensureSandboxImage imports the locally built pause image unless containerd has it.
func ensureSandboxImage(st *State, tar string) error {
	if imagePresent(st, st.Node.SandboxImage) {
		return nil
	}
	if tar == "" {
		return fmt.Errorf("containerd has no sandbox image %s: pass --sandbox-image FILE.tar (scripts/cluster up --node builds it from tests/cluster/pause)", st.Node.SandboxImage)
	}
	got, err := importImage(st, tar)
	if err != nil {
		return err
	}
	if !contains(got, st.Node.SandboxImage) {
		return fmt.Errorf("%s holds %v, not the sandbox image %s", tar, got, st.Node.SandboxImage)
	}
	return nil
}

// runLoadImage is `testcluster load-image --dir DIR FILE.tar...`.
func runLoadImage(st *State, files []string) error {
	if st.Node == nil {
		return fmt.Errorf("%s is not a node cluster: load-image needs `up --node`", st.Dir)
	}
	if err := containerdReady(st); err != nil {
		return fmt.Errorf("the node's containerd is not running (scripts/cluster up --node): %w", err)
	}
	if len(files) == 0 {
		return errors.New("usage: testcluster load-image --dir DIR FILE.tar...")
	}
	for _, f := range files {
		got, err := importImage(st, f)
		if err != nil {
			return err
		}
		for _, r := range got {
			fmt.Println(r)
		}
	}
	return nil
}
