//! The controller as users run it: the image built from the Dockerfile (`scripts/image`),
//! loaded into the test cluster's node (a real kubelet + containerd, `scripts/cluster up
//! --node`), installed with the unmodified kustomize base (only the image overridden by an
//! overlay) and, separately, with the Helm chart and the real helm.
//!
//! Checked: both replicas Ready through their own probes; exactly one leads (the Lease
//! holder); a sealed example becomes a Secret; the controller authenticates with its service
//! account token through the in-cluster config only; /metrics through the Service from a pod;
//! leader Pod deleted -> the standby leads within the lease duration and repairs drift right
//! after; `kubectl rollout restart` under the PDB never leaves the cluster without a leader
//! for longer than the lease duration; the container process runs as 65532, with a read-only
//! root filesystem and no capabilities (read from /proc on the node); upgrading from the
//! previous image tag keeps every Secret's resourceVersion.
//!
//! The installs are cluster-wide (CRDs, ClusterRoles, the gitseal-system namespace), so the
//! tests run one at a time. Figures (handover, leaderless gaps) are printed with `figure:`.

#[path = "support/cluster.rs"]
mod cluster;
#[path = "support/deploy.rs"]
mod deploy;
#[path = "support/node.rs"]
mod node;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, Service};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::{Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const NS: &str = "gitseal-system";
const DEPLOYMENT: &str = "gitseal-controller";
/// The lease duration both installs configure (deploy/deployment.yaml, the chart's default).
const LEASE: Duration = Duration::from_secs(15);
/// Pods start on a loaded 2-core machine: wait generously.
const SLOW: Duration = Duration::from_secs(240);

/// One install at a time (each test has its own runtime; tokio's Mutex works across them).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The node cluster (tests/support/node.rs: `scripts/cluster up --node`, started or reused)
/// and its state directory (the kubeconfig's directory; containerd's socket is under it).
struct Node {
    dir: PathBuf,
    kubeconfig: PathBuf,
}

fn node() -> &'static Node {
    static NODE: OnceLock<Node> = OnceLock::new();
    NODE.get_or_init(|| {
        let kubeconfig = node::kubeconfig();
        let dir = kubeconfig.parent().expect("state directory").to_path_buf();
        Node { dir, kubeconfig }
    })
}

async fn client() -> Client {
    node();
    node::client().await
}

/// The test cluster's kubectl (same release as the API server) against the node cluster.
fn kubectl(args: &[&str]) -> String {
    deploy::run_ok(
        Command::new(cluster::binary())
            .arg("kubectl")
            .args(args)
            .env("KUBECONFIG", &node().kubeconfig),
    )
}

fn helm(args: &[&str]) -> String {
    deploy::run_ok(
        deploy::helm()
            .args(args)
            .env("KUBECONFIG", &node().kubeconfig),
    )
}

/// Load an image archive into the node's containerd (`scripts/cluster load-image`).
fn load(archive: &Path) {
    node();
    deploy::run_ok(
        Command::new(deploy::root().join("scripts/cluster"))
            .arg("load-image")
            .arg(archive),
    );
}

/// The image of the current sources, loaded into the node (built once per test binary).
fn current_image() -> &'static deploy::Image {
    static IMG: OnceLock<deploy::Image> = OnceLock::new();
    IMG.get_or_init(|| {
        let img = deploy::image(None);
        load(&img.archive);
        img
    })
}

/// The same sources under a second tag and image id: what the upgrade starts from.
fn previous_image() -> &'static deploy::Image {
    static IMG: OnceLock<deploy::Image> = OnceLock::new();
    IMG.get_or_init(|| {
        let img = deploy::image(Some("previous"));
        load(&img.archive);
        img
    })
}

async fn eventually<T, F, Fut>(what: &str, timeout: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    cluster::eventually(what, timeout, check).await
}

fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn controller_pods(client: &Client) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), NS)
        .list(&ListParams::default().labels("app.kubernetes.io/name=gitseal"))
        .await
        .unwrap()
        .items
}

/// Wait until the Deployment is rolled out: every replica updated, Ready (its own readiness
/// probe), running `image`, and no other controller Pod left. Returns the Pods.
async fn rolled_out(client: &Client, image: &str) -> Vec<Pod> {
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
async fn lease(client: &Client) -> Option<(String, bool, Lease)> {
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
async fn the_leader(client: &Client, pods: &[Pod]) -> String {
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
async fn key_published(client: &Client) {
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
async fn app_namespace(client: &Client, name: &str) -> String {
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
fn seal_example(ns: &str, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let kc = node().kubeconfig.to_str().unwrap();
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

async fn unsealed(client: &Client, ns: &str, name: &str) -> Secret {
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
async fn get_from_pod(client: &Client, ns: &str, url: &str) -> String {
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
fn metric(text: &str, name: &str) -> Option<f64> {
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
struct Process {
    uid: String,
    gid: String,
    caps: BTreeMap<String, String>,
    root_read_only: bool,
    env_names: Vec<String>,
    mounts: Vec<String>,
}

fn process_of(pod: &Pod) -> Process {
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
    let socket = node().dir.join("node/containerd/containerd.sock");
    let tasks = deploy::run_ok(
        Command::new("ctr")
            .arg("--address")
            .arg(&socket)
            .args(["-n", "k8s.io", "tasks", "ls"]),
    );
    let pid = tasks
        .lines()
        .find(|l| l.starts_with(id))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("task {id} not in `ctr tasks ls`:\n{tasks}"))
        .to_string();
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
async fn uninstall(client: &Client, apps: &[&str]) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in apps {
        let _ = namespaces.delete(ns, &DeleteParams::default()).await;
    }
    let _ = Api::<Deployment>::namespaced(client.clone(), NS)
        .delete(DEPLOYMENT, &DeleteParams::default())
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
        .env("KUBECONFIG", &node().kubeconfig)
        .output();
    for (kind, name) in [
        ("clusterrole", "gitseal-controller"),
        ("clusterrole", "gitseal-view"),
        ("clusterrole", "gitseal-edit"),
        ("clusterrolebinding", "gitseal-controller"),
    ] {
        let _ = Command::new(cluster::binary())
            .args(["kubectl", "delete", "--ignore-not-found", kind, name])
            .env("KUBECONFIG", &node().kubeconfig)
            .output();
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
fn overlay(image: &deploy::Image) -> tempfile::TempDir {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kustomize_install_runs_hardened_elects_one_leader_and_fails_over() {
    let _serial = SERIAL.lock().await;
    let image = current_image().clone();
    let client = client().await;
    uninstall(&client, &["in-cluster-kustomize"]).await;
    let overlay = overlay(&image);
    let applied = Instant::now();
    kubectl(&[
        "apply",
        "--server-side",
        "-k",
        overlay.path().to_str().unwrap(),
    ]);

    // Both replicas Ready through their own probes; exactly one leads.
    let pods = rolled_out(&client, &image.reference).await;
    let leader = the_leader(&client, &pods).await;
    let ready_after = applied.elapsed();
    // Server-side: each Pod's creation to its Ready condition.
    let pod_ready: Vec<String> = pods
        .iter()
        .map(|p| {
            let created = p.metadata.creation_timestamp.as_ref().unwrap().0;
            let ready = p
                .status
                .as_ref()
                .unwrap()
                .conditions
                .as_ref()
                .unwrap()
                .iter()
                .find(|c| c.type_ == "Ready")
                .and_then(|c| c.last_transition_time.as_ref())
                .unwrap()
                .0;
            format!("{} s", ready.as_second() - created.as_second())
        })
        .collect();
    for p in &pods {
        let c = &p.spec.as_ref().unwrap().containers[0];
        assert_eq!(
            c.readiness_probe
                .as_ref()
                .unwrap()
                .http_get
                .as_ref()
                .unwrap()
                .path
                .as_deref(),
            Some("/readyz")
        );
    }

    // The process as the node runs it: uid/gid 65532, no capabilities in any set, / read-only,
    // in-cluster config (no kubeconfig in env or args; the service account token mounted).
    for p in &pods {
        let proc = process_of(p);
        assert_eq!(proc.uid, "65532 65532 65532 65532", "{}", p.name_any());
        assert_eq!(proc.gid, "65532 65532 65532 65532", "{}", p.name_any());
        for (set, value) in &proc.caps {
            assert_eq!(value, "0000000000000000", "{set} of {}", p.name_any());
        }
        assert!(
            proc.root_read_only,
            "root filesystem of {} is writable",
            p.name_any()
        );
        assert!(
            !proc.env_names.iter().any(|e| e == "KUBECONFIG"),
            "KUBECONFIG in the environment: {:?}",
            proc.env_names
        );
        assert!(
            proc.env_names
                .iter()
                .any(|e| e == "KUBERNETES_SERVICE_HOST")
        );
        assert!(
            proc.mounts
                .iter()
                .any(|m| m == "/var/run/secrets/kubernetes.io/serviceaccount"),
            "service account token mounted: {:?}",
            proc.mounts
        );
        let args = p.spec.as_ref().unwrap().containers[0]
            .args
            .clone()
            .unwrap_or_default();
        assert!(!args.iter().any(|a| a.contains("kubeconfig")), "{args:?}");
    }

    // A sealed example becomes a Secret.
    key_published(&client).await;
    let apps = app_namespace(&client, "in-cluster-kustomize").await;
    seal_example(&apps, "db");
    let secret = unsealed(&client, &apps, "db").await;
    eprintln!(
        "figure: kubectl apply -k -> both replicas Ready and one leading {:.1} s (Pod created -> Ready: {pod_ready:?}); first Secret unsealed {:.1} s (includes the /proc checks, keys fetch and seal)",
        ready_after.as_secs_f64(),
        applied.elapsed().as_secs_f64()
    );

    // Its service account's RBAC is what the controller runs with: without the
    // ClusterRoleBinding a new SealedSecret is not unsealed; with it back, it is.
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    let mut binding = bindings.get("gitseal-controller").await.unwrap();
    bindings
        .delete("gitseal-controller", &DeleteParams::default())
        .await
        .unwrap();
    seal_example(&apps, "db-revoked");
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(
        Api::<Secret>::namespaced(client.clone(), &apps)
            .get_opt("db-revoked")
            .await
            .unwrap()
            .is_none(),
        "unsealed without the service account's ClusterRoleBinding: the controller has other credentials"
    );
    binding.metadata.resource_version = None;
    binding.metadata.uid = None;
    bindings
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    unsealed(&client, &apps, "db-revoked").await;

    // /metrics through the Service, from a Pod.
    let svc = Api::<Service>::namespaced(client.clone(), NS)
        .get("gitseal-controller-metrics")
        .await
        .unwrap();
    let ip = svc.spec.unwrap().cluster_ip.unwrap();
    let text = get_from_pod(&client, &apps, &format!("http://{ip}:8080/metrics")).await;
    assert!(text.contains("# TYPE gitseal_leader gauge"), "{text}");
    assert!(metric(&text, "gitseal_leader").is_some(), "{text}");

    // Leader Pod deleted: the standby leads within the lease duration, and repairs drift.
    let standby = pods
        .iter()
        .map(|p| p.name_any())
        .find(|n| *n != leader)
        .unwrap();
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), NS);
    let deleted = Instant::now();
    pods_api
        .delete(&leader, &DeleteParams::default())
        .await
        .unwrap();
    let (new_leader, lease_after) = eventually("the standby takes the Lease", SLOW, || async {
        let (holder, current, l) = lease(&client).await?;
        (current && holder != leader).then_some((holder, l))
    })
    .await;
    let handover = deleted.elapsed();
    assert_eq!(
        new_leader, standby,
        "the standby, not the replacement Pod, takes over"
    );
    eprintln!(
        "figure: leader Pod deleted -> standby holds the Lease after {:.1} s (lease duration {} s; transitions {:?})",
        handover.as_secs_f64(),
        LEASE.as_secs(),
        lease_after.spec.as_ref().unwrap().lease_transitions
    );
    // The deleted leader releases the Lease on SIGTERM: the standby takes it at its next
    // try (every lease/5), well within one lease duration even on a loaded machine.
    assert!(
        handover <= LEASE,
        "handover took {handover:?}, lease duration {LEASE:?}"
    );
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &apps);
    let repaired_from = Instant::now();
    secrets
        .delete("db", &DeleteParams::default())
        .await
        .unwrap();
    let repaired = eventually(
        "the new leader restores the deleted Secret",
        SLOW,
        || async {
            let s = secrets.get_opt("db").await.ok()??;
            (s.uid() != secret.uid()).then_some(s)
        },
    )
    .await;
    eprintln!(
        "figure: drift repair right after failover: {:.1} s",
        repaired_from.elapsed().as_secs_f64()
    );
    assert_eq!(
        repaired.data.unwrap()["password"].0,
        b"correct-horse-battery-staple"
    );
    rolled_out(&client, &image.reference).await;

    // `kubectl rollout restart` under the PDB: never without a current leader for longer
    // than the lease duration.
    let before: Vec<String> = controller_pods(&client)
        .await
        .iter()
        .map(|p| p.name_any())
        .collect();
    let restarted = Instant::now();
    kubectl(&[
        "-n",
        NS,
        "rollout",
        "restart",
        &format!("deployment/{DEPLOYMENT}"),
    ]);
    let (mut longest, mut gap_start): (Duration, Option<Instant>) = (Duration::ZERO, None);
    let deadline = Instant::now() + SLOW;
    loop {
        let pods = controller_pods(&client).await;
        let names: Vec<String> = pods
            .iter()
            .filter(|p| is_ready(p) || p.metadata.deletion_timestamp.is_some())
            .map(|p| p.name_any())
            .collect();
        let led = match lease(&client).await {
            Some((holder, current, _)) => current && names.contains(&holder),
            None => false,
        };
        match (led, gap_start) {
            (false, None) => gap_start = Some(Instant::now()),
            (true, Some(t)) => {
                longest = longest.max(t.elapsed());
                gap_start = None;
            }
            _ => {}
        }
        let replaced = pods.len() == 2
            && pods
                .iter()
                .all(|p| is_ready(p) && !before.contains(&p.name_any()));
        if replaced && led {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rollout restart did not finish within {SLOW:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!(
        "figure: rollout restart took {:.1} s; longest time without a current leader {:.1} s (lease duration {} s)",
        restarted.elapsed().as_secs_f64(),
        longest.as_secs_f64(),
        LEASE.as_secs()
    );
    assert!(
        longest <= LEASE,
        "no leader for {longest:?} during the rollout (lease duration {LEASE:?})"
    );
    uninstall(&client, &[&apps]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_unseals_and_an_upgrade_rewrites_no_secret() {
    let _serial = SERIAL.lock().await;
    let (previous, current) = (previous_image().clone(), current_image().clone());
    let client = client().await;
    uninstall(&client, &["in-cluster-helm"]).await;
    let chart = deploy::chart_dir();
    let chart = chart.to_str().unwrap();
    let tag = |img: &deploy::Image| img.reference.split_once(':').unwrap().1.to_string();
    let prev_tag = format!("image.tag={}", tag(&previous));
    helm(&[
        "install",
        "gitseal",
        chart,
        "--namespace",
        NS,
        "--create-namespace",
        "--set",
        "image.repository=gitseal",
        "--set",
        &prev_tag,
    ]);
    let pods = rolled_out(&client, &previous.reference).await;
    the_leader(&client, &pods).await;

    key_published(&client).await;
    let apps = app_namespace(&client, "in-cluster-helm").await;
    let names = ["db-1", "db-2", "db-3"];
    for n in names {
        seal_example(&apps, n);
    }
    for n in names {
        unsealed(&client, &apps, n).await;
    }

    // Every Secret (the unsealed ones and the private key Secrets) before the upgrade.
    let versions = |client: Client, apps: String| async move {
        let mut all = BTreeMap::new();
        for ns in [apps.as_str(), NS] {
            for s in Api::<Secret>::namespaced(client.clone(), ns)
                .list(&ListParams::default())
                .await
                .unwrap()
            {
                // helm's own release records change with every upgrade, by design.
                if s.type_.as_deref() == Some("helm.sh/release.v1") {
                    continue;
                }
                all.insert(
                    format!("{ns}/{}", s.name_any()),
                    s.resource_version().unwrap(),
                );
            }
        }
        all
    };
    let before = versions(client.clone(), apps.clone()).await;
    assert!(
        before
            .keys()
            .any(|k| k.starts_with(&format!("{NS}/gitseal-key-"))),
        "{before:?}"
    );

    let cur_tag = format!("image.tag={}", tag(&current));
    helm(&[
        "upgrade",
        "gitseal",
        chart,
        "--namespace",
        NS,
        "--reuse-values",
        "--set",
        &cur_tag,
    ]);
    let pods = rolled_out(&client, &current.reference).await;
    let leader = the_leader(&client, &pods).await;

    // The new leader has gone over every SealedSecret (its reconcile counter covers them) and
    // wrote nothing; a new SealedSecret still unseals.
    let leader_ip = pods
        .iter()
        .find(|p| p.name_any() == leader)
        .unwrap()
        .status
        .as_ref()
        .unwrap()
        .pod_ip
        .clone()
        .unwrap();
    let text = eventually("the new leader reconciled every SealedSecret", SLOW, || {
        let (client, apps, url) = (
            client.clone(),
            apps.clone(),
            format!("http://{leader_ip}:8080/metrics"),
        );
        async move {
            let text = get_from_pod(&client, &apps, &url).await;
            (metric(&text, "gitseal_reconciles_total").unwrap_or(0.0) >= names.len() as f64)
                .then_some(text)
        }
    })
    .await;
    assert_eq!(
        metric(&text, "gitseal_secret_writes_total").unwrap_or(0.0),
        0.0,
        "{text}"
    );
    assert_eq!(
        before,
        versions(client.clone(), apps.clone()).await,
        "the upgrade rewrote Secrets"
    );
    seal_example(&apps, "db-after");
    unsealed(&client, &apps, "db-after").await;

    helm(&["uninstall", "gitseal", "--namespace", NS, "--wait"]);
    uninstall(&client, &[&apps]).await;
}
