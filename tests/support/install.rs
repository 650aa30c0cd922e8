//! Installing gitseal on the node cluster and looking at it: the image loaded into the
//! node's containerd, the kustomize overlay, rollout and Lease checks, the container's process
//! on the node (from /proc), and a full uninstall. Shared by tests/in_cluster.rs and
//! benches/in_cluster.rs, which declare `cluster`, `deploy` and `node` (tests/support/) at
//! their root.
#![allow(dead_code)]

use crate::{cluster, deploy, node};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

pub const NS: &str = "gitseal-system";
pub const DEPLOYMENT: &str = "gitseal-controller";
/// The lease duration both installs configure (deploy/deployment.yaml, the chart's default).
pub const LEASE: Duration = Duration::from_secs(15);
/// Pods start on a loaded 2-core machine: wait generously.
pub const SLOW: Duration = Duration::from_secs(240);

/// One install at a time (each test has its own runtime; tokio's Mutex works across them).
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The node cluster (tests/support/node.rs: `scripts/cluster up --node`, started or reused)
/// and its state directory (the kubeconfig's directory; containerd's socket is under it).
pub struct Node {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
}

pub fn the_node() -> &'static Node {
    static NODE: OnceLock<Node> = OnceLock::new();
    NODE.get_or_init(|| {
        let kubeconfig = node::kubeconfig();
        let dir = kubeconfig.parent().expect("state directory").to_path_buf();
        Node { dir, kubeconfig }
    })
}

pub async fn client() -> Client {
    the_node();
    node::client().await
}

/// The test cluster's kubectl (same release as the API server) against the node cluster.
pub fn kubectl(args: &[&str]) -> String {
    deploy::run_ok(
        Command::new(cluster::binary())
            .arg("kubectl")
            .args(args)
            .env("KUBECONFIG", &the_node().kubeconfig),
    )
}

pub fn helm(args: &[&str]) -> String {
    deploy::run_ok(
        deploy::helm()
            .args(args)
            .env("KUBECONFIG", &the_node().kubeconfig),
    )
}

/// Load an image archive into the node's containerd (`scripts/cluster load-image`).
pub fn load(archive: &Path) {
    the_node();
    deploy::run_ok(
        Command::new(deploy::root().join("scripts/cluster"))
            .arg("load-image")
            .arg(archive),
    );
}

/// The image of the current sources, loaded into the node (built once per test binary).
pub fn current_image() -> &'static deploy::Image {
    static IMG: OnceLock<deploy::Image> = OnceLock::new();
    IMG.get_or_init(|| {
        let img = deploy::image(None);
        load(&img.archive);
        img
    })
}

/// The same sources under a second tag and image id: what the upgrade starts from.
pub fn previous_image() -> &'static deploy::Image {
    static IMG: OnceLock<deploy::Image> = OnceLock::new();
    IMG.get_or_init(|| {
        let img = deploy::image(Some("previous"));
        load(&img.archive);
        img
    })
}

pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    cluster::eventually(what, timeout, check).await
}

pub fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

pub async fn controller_pods(client: &Client) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), NS)
        .list(&ListParams::default().labels("app.kubernetes.io/name=gitseal"))
        .await
        .unwrap()
        .items
}

/// Wait until the Deployment is rolled out: every replica updated, Ready (its own readiness
/// probe), running `image`, and no other controller Pod left. Returns the Pods.
pub async fn rolled_out(client: &Client, image: &str) -> Vec<Pod> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    eventually(
        &format!("{DEPLOYMENT} rolled out with {image}"),
        SLOW,
        || async {
            let d = deployments.get(DEPLOYMENT).await.ok()?;
            let want = d.spec.as_ref()?.replicas?;
            let st = d.status.as_ref()?;
            (st.observed_generation == d.metadata.generation
                && st.updated_replicas == Some(want)
                && st.ready_replicas == Some(want)
                && st.replicas == Some(want))
            .then_some(())?;
            let pods = controller_pods(client).await;
            let all_new = pods.len() == want as usize
                && pods.iter().all(|p| {
                    is_ready(p)
                        && p.spec.as_ref().unwrap().containers[0].image.as_deref() == Some(image)
                });
            all_new.then_some(pods)
        },
    )
    .await
}

/// The Lease's holder and whether it is current (renewed within its duration).
pub async fn lease(client: &Client) -> Option<(String, bool, Lease)> {
    let lease = Api::<Lease>::namespaced(client.clone(), NS)
        .get_opt("gitseal-controller")
        .await
        .ok()??;
    let spec = lease.spec.clone()?;
    let holder = spec.holder_identity?;
    let renewed = spec.renew_time?.0;
    let duration = i64::from(spec.lease_duration_seconds?);
    let now = jiff::Timestamp::now();
    let current = renewed.as_millisecond() + duration * 1000 > now.as_millisecond();
    Some((holder, current, lease))
}

/// Exactly one Pod leads: the Lease names one of the Pods and is current.
pub async fn the_leader(client: &Client, pods: &[Pod]) -> String {
    let names: Vec<String> = pods.iter().map(|p| p.name_any()).collect();
    let holder = eventually("a current Lease held by a controller Pod", SLOW, || async {
        let (holder, current, _) = lease(client).await?;
        (current && names.contains(&holder)).then_some(holder)
    })
    .await;
    assert_eq!(names.len(), 2, "two replicas: {names:?}");
    holder
}

/// Wait until the controller has made a sealing key (a SealingKey with a public key).
pub async fn key_published(client: &Client) {
    let keys: Api<gitseal::api::SealingKey> = Api::all(client.clone());
    eventually("a SealingKey with a public key", SLOW, || async {
        let list = keys.list(&ListParams::default()).await.ok()?;
        list.items
            .iter()
            .any(|k| k.status.as_ref().is_some_and(|s| s.public_key.is_some()))
            .then_some(())
    })
    .await;
}

/// Namespace for the test's SealedSecrets (deleted first if a previous run left it).
pub async fn app_namespace(client: &Client, name: &str) -> String {
    let api: Api<Namespace> = Api::all(client.clone());
    if api.get_opt(name).await.unwrap().is_some() {
        let _ = api.delete(name, &DeleteParams::default()).await;
        eventually(&format!("namespace {name} gone"), SLOW, || async {
            api.get_opt(name).await.unwrap().is_none().then_some(())
        })
        .await;
    }
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    api.create(&PostParams::default(), &ns).await.unwrap();
    name.to_string()
}

/// examples/plain/prod/db.yaml, moved to `ns` under `name`, sealed with the cluster's keys
/// (`gitseal keys fetch` + `gitseal seal`, the CLI users run) and applied.
pub fn seal_example(ns: &str, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let kc = the_node().kubeconfig.to_str().unwrap();
    let keyring = dir.path().join("keyring.yaml");
    let gitseal = env!("CARGO_BIN_EXE_gitseal");
    deploy::run_ok(
        Command::new(gitseal)
            .args(["keys", "fetch", "--kubeconfig", kc, "-o"])
            .arg(&keyring),
    );
    let example =
        std::fs::read_to_string(deploy::root().join("examples/plain/prod/db.yaml")).unwrap();
    let plain = dir.path().join("plain.yaml");
    std::fs::write(
        &plain,
        example
            .replace("namespace: shop", &format!("namespace: {ns}"))
            .replace("name: db\n", &format!("name: {name}\n")),
    )
    .unwrap();
    let sealed = dir.path().join("sealed.yaml");
    deploy::run_ok(
        Command::new(gitseal)
            .arg("seal")
            .arg("--keyring")
            .arg(&keyring)
            .arg(&plain)
            .arg("-w")
            .arg(&sealed),
    );
    kubectl(&["apply", "-f", sealed.to_str().unwrap()]);
}

pub async fn unsealed(client: &Client, ns: &str, name: &str) -> Secret {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let secret = eventually(&format!("Secret {ns}/{name} unsealed"), SLOW, || async {
        api.get_opt(name).await.ok()?
    })
    .await;
    let password = secret.data.as_ref().unwrap()["password"].0.clone();
    assert_eq!(password, b"correct-horse-battery-staple");
    secret
}

/// GET `url` from a Pod in `ns` (the node tests' probe image: `probe get URL` prints status
/// and body as JSON) and return the body.
pub async fn get_from_pod(client: &Client, ns: &str, url: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let name = format!("probe-{}", jiff::Timestamp::now().as_millisecond());
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": false,
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532,
                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "get", "image": node::probe_image(), "imagePullPolicy": "Never",
                "args": ["get", url],
                "securityContext": {"allowPrivilegeEscalation": false,
                    "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}}
            }]
        }
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let phase = eventually(&format!("probe pod {name} finished"), SLOW, || async {
        let p = pods.get(&name).await.ok()?;
        let phase = p.status?.phase?;
        matches!(phase.as_str(), "Succeeded" | "Failed").then_some(phase)
    })
    .await;
    let logs = pods
        .logs(&name, &LogParams::default())
        .await
        .unwrap_or_default();
    let _ = pods
        .delete(&name, &DeleteParams::default().grace_period(0))
        .await;
    assert_eq!(phase, "Succeeded", "GET {url} from a pod failed: {logs}");
    let report: Value = serde_json::from_str(logs.trim())
        .unwrap_or_else(|e| panic!("probe output is not JSON ({e}): {logs}"));
    assert_eq!(report["status"], 200, "{report}");
    report["body"].as_str().unwrap().to_string()
}

/// A metric's value from a Prometheus text exposition (sum over label sets).
pub fn metric(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        if series.split('{').next() == Some(name) {
            *found.get_or_insert(0.0) += value.parse::<f64>().unwrap_or(f64::NAN);
        }
    }
    found
}

/// The container's process on the node (pid from containerd), read from /proc: uid/gid,
/// capability sets, whether / is mounted read-only, and its environment variable names.
pub struct Process {
    pub uid: String,
    pub gid: String,
    pub caps: BTreeMap<String, String>,
    pub root_read_only: bool,
    pub env_names: Vec<String>,
    pub mounts: Vec<String>,
}

/// The host pid of the Pod's first container (containerd's task list on the node).
pub fn container_pid(pod: &Pod) -> String {
    let id = pod
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0]
        .container_id
        .clone()
        .expect("container id");
    let id = id.trim_start_matches("containerd://");
    let socket = the_node().dir.join("node/containerd/containerd.sock");
    let tasks = deploy::run_ok(
        Command::new("ctr")
            .arg("--address")
            .arg(&socket)
            .args(["-n", "k8s.io", "tasks", "ls"]),
    );
    tasks
        .lines()
        .find(|l| l.starts_with(id))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("task {id} not in `ctr tasks ls`:\n{tasks}"))
        .to_string()
}

pub fn process_of(pod: &Pod) -> Process {
    let pid = container_pid(pod);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}:")))
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let caps = ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]
        .iter()
        .map(|k| (k.to_string(), field(k)))
        .collect();
    let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    // mountinfo: id parent major:minor root mountpoint options ...
    let root_read_only = mountinfo.lines().any(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        f.len() > 5 && f[4] == "/" && f[5].split(',').any(|o| o == "ro")
    });
    let mounts = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .collect();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let env_names = environ
        .split(|b| *b == 0)
        .filter(|e| !e.is_empty())
        .map(|e| {
            String::from_utf8_lossy(e)
                .split('=')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    Process {
        uid: field("Uid"),
        gid: field("Gid"),
        caps,
        root_read_only,
        env_names,
        mounts,
    }
}

/// Remove everything an install left: app namespaces, SealingKeys, the CRDs, cluster-wide
/// RBAC and the gitseal-system namespace (finalizers stripped once the controller is gone).
pub async fn uninstall(client: &Client, apps: &[&str]) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in apps {
        let _ = namespaces.delete(ns, &DeleteParams::default()).await;
    }
    let _ = Api::<Deployment>::namespaced(client.clone(), NS)
        .delete(DEPLOYMENT, &DeleteParams::foreground())
        .await;
    // A controller still running would put its finalizers back after we strip them.
    eventually("the controller Pods gone", SLOW, || async {
        controller_pods(client).await.is_empty().then_some(())
    })
    .await;
    let strip = json!({"metadata": {"finalizers": null}});
    let keys: Api<gitseal::api::SealingKey> = Api::all(client.clone());
    if let Ok(list) = keys.list(&ListParams::default()).await {
        for k in list {
            let _ = keys
                .patch(
                    &k.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&strip),
                )
                .await;
            let _ = keys.delete(&k.name_any(), &DeleteParams::default()).await;
        }
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    if let Ok(list) = secrets.list(&ListParams::default()).await {
        for s in list {
            let _ = secrets
                .patch(
                    &s.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&strip),
                )
                .await;
        }
    }
    let _ = Command::new(cluster::binary())
        .args([
            "kubectl",
            "delete",
            "--ignore-not-found",
            "--wait=false",
            "-f",
        ])
        .arg(deploy::root().join("deploy/crds.yaml"))
        .env("KUBECONFIG", &the_node().kubeconfig)
        .output();
    for (kind, name) in [
        ("clusterrole", "gitseal-controller"),
        ("clusterrole", "gitseal-view"),
        ("clusterrole", "gitseal-edit"),
        ("clusterrolebinding", "gitseal-controller"),
        ("validatingadmissionpolicy", "gitseal-sealedsecrets"),
        ("validatingadmissionpolicybinding", "gitseal-sealedsecrets"),
    ] {
        let _ = Command::new(cluster::binary())
            .args(["kubectl", "delete", "--ignore-not-found", kind, name])
            .env("KUBECONFIG", &the_node().kubeconfig)
            .output();
    }
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in ["sealedsecrets.gitseal.dev", "sealingkeys.gitseal.dev"] {
        eventually(&format!("CRD {crd} deleted"), SLOW, || async {
            crds.get_opt(crd).await.unwrap().is_none().then_some(())
        })
        .await;
    }
    let _ = namespaces.delete(NS, &DeleteParams::default()).await;
    for ns in apps.iter().chain([&NS]) {
        eventually(&format!("namespace {ns} deleted"), SLOW, || async {
            namespaces
                .get_opt(ns)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        })
        .await;
    }
}

/// A kustomization in a temp dir: the unmodified deploy/ base, only the image replaced.
pub fn overlay(image: &deploy::Image) -> tempfile::TempDir {
    // kustomize takes bases by relative path only: the overlay lives in target/.
    let dir = tempfile::Builder::new()
        .prefix("in-cluster-overlay-")
        .tempdir_in(deploy::root().join("target"))
        .unwrap();
    let (name, tag) = image.reference.split_once(':').unwrap();
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
             resources:\n  - ../../deploy\nimages:\n  - name: gitseal\n    newName: {name}\n    newTag: \"{tag}\"\n"
        ),
    )
    .unwrap();
    dir
}
