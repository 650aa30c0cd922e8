//! The node cluster for tests that run Pods: a real kubelet, containerd, kube-scheduler and
//! kube-proxy next to the test API server, started (or reused) with `scripts/cluster up
//! --node`. There is one per machine (it owns the bridge gitseal0 and 198.18.0.0/24), shared
//! by every test binary and left running afterwards: `scripts/cluster down --node` stops it
//! (scripts/test does at exit). See docs/testing.md, "The node".
//!
//! A missing part (root, containerd, runc, CNI plugins, iptables, cgroups, Go) makes the tests
//! fail with the check that failed and how to fix it; nothing is skipped.
//!
//! Use from a test file with `#[path = "support/node.rs"] mod node;`.
#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
};

use k8s_openapi::{api::core::v1::Namespace, apimachinery::pkg::apis::meta::v1::ObjectMeta};
use kube::{
    Api, Client, Config,
    api::{DeleteParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
};

/// The node's name, its InternalIP (the bridge address) and the probe image's name.
pub const NODE_NAME: &str = "gitseal-node";
pub const NODE_IP: &str = "198.18.0.1";
pub const PROBE_IMAGE: &str = "localhost/gitseal-test/probe:1";

const HOWTO: &str = "\
The node tests need the test cluster's node: root, Debian's containerd, runc, \
containernetworking-plugins and iptables (`scripts/prereqs` installs them), cgroups, and Go \
>= 1.25 to build the test cluster. Start it by hand with `scripts/cluster up --node`; its logs \
are in ~/.cache/gitseal/node/logs (docs/testing.md, \"The node\").";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster")
}

/// Runs `scripts/cluster ARGS` and returns its stdout's last line; panics with its stderr.
fn cluster_script(args: &[&str]) -> String {
    let out = Command::new(script())
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("running scripts/cluster {args:?}: {e}\n{HOWTO}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "`scripts/cluster {}` failed ({}): {stdout}\n{HOWTO}",
        args.join(" "),
        out.status
    );
    stdout.lines().last().unwrap_or_default().trim().to_owned()
}

/// The node cluster's admin kubeconfig, starting the cluster on first use (blocking).
pub fn kubeconfig() -> PathBuf {
    static KC: OnceLock<PathBuf> = OnceLock::new();
    KC.get_or_init(|| {
        let kc = PathBuf::from(cluster_script(&["up", "--node"]));
        eprintln!("node tests: using {}", kc.display());
        kc
    })
    .clone()
}

/// A new admin client of the node cluster (bound to the calling test's runtime).
pub async fn client() -> Client {
    let path = kubeconfig();
    let kc =
        Kubeconfig::read_from(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("client config from kubeconfig");
    Client::try_from(cfg).expect("client")
}

/// Builds the probe image (tests/cluster/probe) and loads it into the node's containerd;
/// returns its name. Once per test binary.
pub fn probe_image() -> &'static str {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        kubeconfig();
        let tar = cluster_script(&["probe-image"]);
        let loaded = cluster_script(&["load-image", &tar]);
        assert_eq!(loaded, PROBE_IMAGE, "load-image printed the imported name");
    });
    PROBE_IMAGE
}

/// A namespace of the node cluster for one test, deleted when dropped (also on panic).
pub struct NodeNamespace {
    pub name: String,
}

impl NodeNamespace {
    pub async fn create(client: &Client, test: &str) -> NodeNamespace {
        let name = format!("{test}-{:06x}", rand::random::<u32>() & 0xff_ffff);
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([("gitseal.dev/test".to_owned(), "true".to_owned())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        NodeNamespace { name }
    }
}

impl Drop for NodeNamespace {
    fn drop(&mut self) {
        if std::env::var_os("GITSEAL_KEEP_NAMESPACES").is_some() {
            return;
        }
        // Drop can't await and the test's runtime may be gone: delete from a new thread.
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                Api::<Namespace>::all(client().await)
                    .delete(&name, &DeleteParams::background())
                    .await
                    .ok()
            })
        })
        .join();
    }
}
