//! Controller benchmark on a fresh real API server (scripts/cluster): 10,000 SealedSecrets
//! across 100 namespaces (BENCH_OBJECTS=100000: 1,000 namespaces), against the floor: the
//! best plain client we could write (benches/floor: Go's standard library, HTTP/2, several
//! in-flight counts) creating the same Secrets directly, byte for byte what the controller
//! writes (labels, owner reference, data); also the kube-rs client doing the same. The
//! controller runs with its default flags. Also: the time until every status is written,
//! memory per object above the empty controller, a restart over in-sync objects, drift
//! repair latency, and failover between two replicas with leader election (kill -9 and
//! SIGTERM of the leader: until the standby holds the Lease, until it repairs an edited
//! Secret, and what it writes at takeover).
//! Floor and cold start are repeated BENCH_RUNS times (default 3) in the same run; medians.
//! Run: `cargo bench --bench controller`. Env: BENCH_OBJECTS (default 10000), BENCH_RUNS,
//! BENCH_FLOOR (the floor's clients, default h2:16,h2:32,h2:64,h2:128,h1:64),
//! BENCH_CONTROLLER_ARGS (extra controller flags), BENCH_FAILOVERS (rounds of each failover
//! kind, default 3), BENCH_WRAP (a profiler command line to run the measured cold starts
//! under; RSS is then not measured).
mod common;
#[path = "../tests/ctrltool/mod.rs"]
#[allow(unused_imports)]
mod ctrltool;

use common::*;
use ctrltool::client_for;
use futures::{StreamExt, stream};
use gitseal::api::SealedSecret;
use gitseal::crypto::Plaintext;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn start_cluster(dir: &Path) -> PathBuf {
    let _ = std::fs::remove_dir_all(dir);
    let out = Command::new("bash")
        .arg(root().join("scripts/cluster"))
        .arg("up")
        .env("GITSEAL_CLUSTER_DIR", dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/cluster up: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .lines()
            .last()
            .unwrap(),
    )
}

fn stop_cluster(dir: &Path) {
    let _ = Command::new("bash")
        .arg(root().join("scripts/cluster"))
        .arg("down")
        .env("GITSEAL_CLUSTER_DIR", dir)
        .status();
}

struct Controller {
    child: Child,
    port: u16,
    /// Started under a BENCH_WRAP profiler (the child is the wrapper).
    wrapped: bool,
}

impl Controller {
    fn start(kubeconfig: &Path) -> Controller {
        Self::start_with(kubeconfig, "")
    }

    /// Start under `wrap` (a profiler command line, e.g. from BENCH_WRAP; empty: none), in
    /// a process group of its own so a wrapper and what it started are stopped together.
    fn start_with(kubeconfig: &Path, wrap: &str) -> Controller {
        Self::spawn(kubeconfig, wrap, &["--leader-elect=false"])
    }

    /// One of two replicas electing a leader with the Lease (failover phase).
    fn replica(kubeconfig: &Path, identity: &str) -> Controller {
        let lease = format!("{LEASE_SECONDS}s");
        Self::spawn(
            kubeconfig,
            "",
            &[
                "--leader-elect=true",
                "--lease-duration",
                &lease,
                "--identity",
                identity,
            ],
        )
    }

    fn spawn(kubeconfig: &Path, wrap: &str, election: &[&str]) -> Controller {
        use std::os::unix::process::CommandExt;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut argv: Vec<std::ffi::OsString> = wrap.split_whitespace().map(Into::into).collect();
        argv.push(root().join("target/release/gitseal").into());
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            // The default flags (issue 14: the defaults must reach the goals), plus any
            // BENCH_CONTROLLER_ARGS to compare settings.
            .args(["controller", "--namespace", "gitseal-system"])
            .args(controller_args())
            .args(election)
            .arg("--metrics-addr")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("target/release/gitseal (cargo build --release)");
        Controller {
            child,
            port,
            wrapped: !wrap.trim().is_empty(),
        }
    }

    /// GET `path` from the controller's HTTP endpoint: (status code, body).
    fn get(&self, path: &str) -> Option<(u16, String)> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\n\r\n").ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        let (head, body) = text.split_once("\r\n\r\n")?;
        let code = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((code, body.to_string()))
    }

    /// /readyz answers 200 (caches synced, on a standby too).
    fn ready(&self) -> bool {
        self.get("/readyz").is_some_and(|(code, _)| code == 200)
    }

    /// Sum of every sample of metric `name`; -1 while the endpoint does not answer.
    fn metric(&self, name: &str) -> f64 {
        let Some((_, text)) = self.get("/metrics") else {
            return -1.0;
        };
        text.lines()
            .filter(|l| {
                l.starts_with(name)
                    && (l[name.len()..].starts_with(' ') || l[name.len()..].starts_with('{'))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// (current RSS, peak RSS) in MiB.
    fn rss(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        if !status.contains("Name:\tgitseal") {
            return (f64::NAN, f64::NAN); // under a BENCH_WRAP profiler
        }
        let kb = |key: &str| {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (kb("VmRSS:") / 1024.0, kb("VmHWM:") / 1024.0)
    }
}

impl Controller {
    /// CPU seconds (user + system) the controller has used so far.
    fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name (which is in parentheses): utime is the 14th field.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (ticks(11) + ticks(12)) / 100.0
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        // Reaped already (killed in the failover phase): its id may belong to someone else now.
        if !self.wrapped && matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        // The whole group: a wrapper (profiler) and the controller under it. SIGTERM first so
        // a profiler can write its data.
        let group = format!("-{}", self.child.id());
        let kill = |signal: &str| {
            // The group may be gone already (the controller exited): nothing to report.
            let _ = Command::new("kill")
                .args([signal, "--", &group])
                .stderr(Stdio::null())
                .status();
        };
        kill("-TERM");
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        kill("-KILL");
        let _ = self.child.wait();
    }
}

/// The floor: create, as one plain client, exactly the Secrets the controller would write
/// for the SealedSecrets in `namespaces` (same labels, owner reference, data, field manager).
async fn create_same_secrets(client: &Client, namespaces: &[String]) {
    let mut sealed = Vec::new();
    for ns in namespaces {
        let api: Api<SealedSecret> = Api::namespaced(client.clone(), ns);
        sealed.extend(api.list(&ListParams::default()).await.unwrap().items);
    }
    let params = PostParams {
        field_manager: Some(gitseal::controller::FIELD_MANAGER.into()),
        ..Default::default()
    };
    stream::iter(sealed)
        .map(|s| {
            let values = [("password", "p"), ("user", "u")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), Plaintext::new(v.as_bytes().to_vec())))
                .collect();
            let secret = gitseal::controller::secret::desired(&s, values);
            let api: Api<Secret> =
                Api::namespaced(client.clone(), &s.namespace().unwrap_or_default());
            let params = params.clone();
            async move { api.create(&params, &secret).await.unwrap() }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
}

/// Extra controller flags from BENCH_CONTROLLER_ARGS (space-separated; default none).
fn controller_args() -> Vec<String> {
    std::env::var("BENCH_CONTROLLER_ARGS")
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// The floor's clients: (HTTP/1.1?, requests in flight), from BENCH_FLOOR
/// (`h2:32,h1:64,...`; default every one below: the floor is the best of them).
fn floor_variants() -> Vec<(bool, usize)> {
    let spec = std::env::var("BENCH_FLOOR").unwrap_or("h2:16,h2:32,h2:64,h2:128,h1:64".into());
    spec.split(',')
        .map(|v| {
            let (proto, n) = v.split_once(':').expect("BENCH_FLOOR: h1:N or h2:N");
            (
                proto == "h1",
                n.parse().expect("BENCH_FLOOR: in-flight count"),
            )
        })
        .collect()
}

/// Build the Go floor client (benches/floor, standard library only; Go's build cache makes
/// a rebuild instant).
fn build_floor() -> PathBuf {
    let out = root().join("target/bench-floor");
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg(".")
        .current_dir(root().join("benches/floor"))
        .status()
        .expect("go (Go 1.26) builds the floor client benches/floor");
    assert!(status.success(), "go build benches/floor");
    out
}

/// The Secrets the controller will write for the SealedSecrets in `namespaces`, as the Go
/// floor's input lines: `{"namespace": NS, "object": SECRET}`.
async fn floor_input(client: &Client, namespaces: &[String], path: &Path) {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for ns in namespaces {
        let api: Api<SealedSecret> = Api::namespaced(client.clone(), ns);
        for s in api.list(&ListParams::default()).await.unwrap().items {
            let values = [("password", "p"), ("user", "u")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), Plaintext::new(v.as_bytes().to_vec())))
                .collect();
            let secret = gitseal::controller::secret::desired(&s, values);
            let line = serde_json::json!({"namespace": ns, "object": secret});
            writeln!(out, "{line}").unwrap();
        }
    }
    out.flush().unwrap();
}

/// Run the Go floor client over `input` against the cluster in `dir`.
fn run_floor(floor: &Path, dir: &Path, server: &str, input: &Path, (h1, in_flight): (bool, usize)) {
    let pki = dir.join("pki");
    let out = Command::new(floor)
        .arg(format!("-server={server}"))
        .arg(format!("-ca={}", pki.join("ca.crt").display()))
        .arg(format!("-cert={}", pki.join("admin.crt").display()))
        .arg(format!("-key={}", pki.join("admin.key").display()))
        .arg(format!("-in={}", input.display()))
        .arg(format!("-in-flight={in_flight}"))
        .arg(format!("-http1={h1}"))
        .arg(format!(
            "-field-manager={}",
            gitseal::controller::FIELD_MANAGER
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "floor client: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Delete the Secrets of `namespaces` (not the SealedSecrets) and wait until they are gone.
async fn delete_secrets(client: &Client, namespaces: &[String]) {
    for ns in namespaces {
        Api::<Secret>::namespaced(client.clone(), ns)
            .delete_collection(&Default::default(), &ListParams::default())
            .await
            .unwrap();
    }
    for ns in namespaces {
        let api: Api<Secret> = Api::namespaced(client.clone(), ns);
        while !api
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Delete every SealedSecret and Secret of `namespaces` and wait until they are gone.
async fn clear(client: &Client, namespaces: &[String]) {
    for ns in namespaces {
        let lp = ListParams::default();
        Api::<SealedSecret>::namespaced(client.clone(), ns)
            .delete_collection(&Default::default(), &lp)
            .await
            .unwrap();
        Api::<Secret>::namespaced(client.clone(), ns)
            .delete_collection(&Default::default(), &lp)
            .await
            .unwrap();
    }
    for ns in namespaces {
        let api: Api<Secret> = Api::namespaced(client.clone(), ns);
        while !api
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Lease duration of the two replicas in the failover phase.
const LEASE_SECONDS: u64 = 10;
/// The leader Lease (`controller::Config::lease`), in gitseal-system.
const LEASE_NAME: &str = "gitseal-controller";
/// Generous limits for a loaded 2-core machine: exceeding one is reported, never a crash.
const LONG: Duration = Duration::from_secs(600);

/// Poll `check` every `every` until it gives `Some`, or `limit` passes (`None` then).
async fn poll<T, F, Fut>(limit: Duration, every: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let t = Instant::now();
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if t.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

/// The Lease's holderIdentity (`None`: no Lease, released, or the GET failed).
async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt(LEASE_NAME)
        .await
        .ok()??
        .spec?
        .holder_identity
}

/// resourceVersion of every managed Secret, by (namespace, name).
async fn secret_versions(client: &Client) -> HashMap<(String, String), String> {
    let lp = ListParams::default().labels("app.kubernetes.io/managed-by=gitseal");
    Api::<Secret>::all(client.clone())
        .list(&lp)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|s| {
            (
                (s.namespace().unwrap_or_default(), s.name_any()),
                s.resource_version().unwrap_or_default(),
            )
        })
        .collect()
}

/// Secrets whose resourceVersion differs between `before` and `after` (or that appeared or
/// went), not counting `edited`.
fn changed_besides(
    before: &HashMap<(String, String), String>,
    after: &HashMap<(String, String), String>,
    edited: &(String, String),
) -> usize {
    let keys: std::collections::HashSet<_> = before.keys().chain(after.keys()).collect();
    keys.into_iter()
        .filter(|k| *k != edited && before.get(*k) != after.get(*k))
        .count()
}

/// Change one value of a managed Secret (drift), as a user with `kubectl edit` would.
async fn edit(api: &Api<Secret>, name: &str) {
    let edit = serde_json::json!({"data": {"password": "ZWRpdGVk"}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&edit))
        .await
        .unwrap();
}

/// Whether the Secret holds the sealed value again.
async fn repaired(api: &Api<Secret>, name: &str) -> Option<()> {
    let s = api.get(name).await.ok()?;
    (s.data?.get("password")?.0 == b"p").then_some(())
}

/// How the leader goes away in a failover round.
#[derive(Clone, Copy, PartialEq)]
enum Stop {
    Kill,
    Term,
}

/// One failover round's figures (seconds from the kill/SIGTERM unless said otherwise; `None`:
/// not within the limit).
struct Takeover {
    lease: Option<f64>,
    /// kill -9: from the edit (made when the Lease moved); SIGTERM: from the signal.
    repair: Option<f64>,
    /// Until the new leader has reconciled every object (its gitseal_reconciles_total).
    caught_up: Option<f64>,
    /// SIGTERM: until the old leader exited.
    exited: Option<f64>,
    /// The new leader's gitseal_secret_writes_total after catching up (the repair included).
    writes: f64,
    /// ... and its gitseal_drift_repairs_total.
    drift_repairs: f64,
    /// Managed Secrets whose resourceVersion changed during the takeover, besides the edited one.
    changed: usize,
}

/// Two replicas; wait until one holds the Lease, both are ready and the leader has
/// reconciled every object. Returns the leader's index, or `None` past the limits.
async fn settled(
    leases: &Api<Lease>,
    replicas: &[(String, Controller); 2],
    objects: usize,
) -> Option<usize> {
    let leader = poll(LONG, Duration::from_millis(100), || async {
        let h = holder(leases).await?;
        replicas.iter().position(|(id, _)| *id == h)
    })
    .await?;
    poll(LONG, Duration::from_millis(200), || async {
        (replicas.iter().all(|(_, c)| c.ready())
            && replicas[leader].1.metric("gitseal_reconciles_total") >= objects as f64)
            .then_some(())
    })
    .await?;
    Some(leader)
}

/// Stop the leader (`how`), measure the takeover by the standby and its repair of an edited
/// Secret, then start the old leader again as the new standby.
async fn failover(
    client: &Client,
    kubeconfig: &Path,
    replicas: &mut [(String, Controller); 2],
    leader: usize,
    how: Stop,
    secret: (&str, &str),
    objects: usize,
) -> Takeover {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "gitseal-system");
    let standby = 1 - leader;
    let new_id = replicas[standby].0.clone();
    let api: Api<Secret> = Api::namespaced(client.clone(), secret.0);
    let name = secret.1;
    let before = secret_versions(client).await;
    let moved = || async {
        let h = holder(&leases).await?;
        (h == new_id).then_some(())
    };
    let every = Duration::from_millis(5);
    let t = Instant::now();
    let (lease, repair) = match how {
        Stop::Kill => {
            replicas[leader].1.child.kill().unwrap(); // SIGKILL
            let _ = replicas[leader].1.child.wait();
            let lease = poll(LONG, every, moved)
                .await
                .map(|()| t.elapsed().as_secs_f64());
            let t_edit = Instant::now();
            edit(&api, name).await;
            let repair = poll(LONG, every, || repaired(&api, name))
                .await
                .map(|()| t_edit.elapsed().as_secs_f64());
            (lease, repair)
        }
        Stop::Term => {
            let pid = rustix::process::Pid::from_child(&replicas[leader].1.child);
            rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
            edit(&api, name).await;
            let since = |r: Option<()>| r.map(|()| t.elapsed().as_secs_f64());
            let (lease, repair) =
                tokio::join!(async { since(poll(LONG, every, moved).await) }, async {
                    since(poll(LONG, every, || repaired(&api, name)).await)
                },);
            (lease, repair)
        }
    };
    let old = &mut replicas[leader].1.child;
    let exited = poll(Duration::from_secs(60), Duration::from_millis(20), || {
        std::future::ready(matches!(old.try_wait(), Ok(Some(_))).then_some(()))
    })
    .await
    .map(|()| t.elapsed().as_secs_f64());
    let new = &replicas[standby].1;
    let caught_up = poll(LONG, Duration::from_millis(100), || async {
        (new.metric("gitseal_reconciles_total") >= objects as f64).then_some(())
    })
    .await
    .map(|()| t.elapsed().as_secs_f64());
    // Whatever the new leader was going to write at takeover it has written by now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let writes = new.metric("gitseal_secret_writes_total").max(0.0);
    let drift_repairs = new.metric("gitseal_drift_repairs_total").max(0.0);
    let after = secret_versions(client).await;
    let changed = changed_besides(&before, &after, &(secret.0.to_string(), name.to_string()));
    // The old leader comes back as the new standby.
    let old_id = replicas[leader].0.clone();
    replicas[leader].1 = Controller::replica(kubeconfig, &old_id);
    Takeover {
        lease,
        repair,
        caught_up,
        exited: (how == Stop::Term).then_some(exited).flatten(),
        writes,
        drift_repairs,
        changed,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo test --all-targets` runs bench targets too (without --bench): nothing to do then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("controller benchmark: run it with `cargo bench --bench controller`");
        return;
    }
    let objects: usize = std::env::var("BENCH_OBJECTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    // 100 objects per namespace: 10,000 in 100 namespaces, 100,000 in 1,000.
    let ns_count = objects.div_ceil(PER_NAMESPACE).max(1);
    let per_ns = objects / ns_count;
    let floor_bin = build_floor();
    let status = Command::new("cargo")
        .args(["build", "--release", "--quiet"])
        .current_dir(root())
        .status()
        .unwrap();
    assert!(status.success());
    let dir = std::env::temp_dir().join(format!("gitseal-bench-{}", std::process::id()));
    let kubeconfig = start_cluster(&dir);
    let client = client_for(&kubeconfig).await;
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> = Api::all(client.clone());
    for crd in gitseal::api::crds() {
        crds.patch(
            &crd.name_any(),
            &PatchParams::apply("bench"),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let system: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "gitseal-system"}}))
            .unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &system)
        .await
        .unwrap();

    // Keys: a first controller run makes the Active key; its RSS once idle over no
    // SealedSecrets is the empty baseline of the per-object memory figure.
    let (keyring, baseline) = {
        let c = Controller::start(&kubeconfig);
        let env_keys: Api<gitseal::api::SealingKey> = Api::all(client.clone());
        loop {
            let keys = env_keys.list(&ListParams::default()).await.unwrap().items;
            let entries: Vec<_> = keys
                .iter()
                .filter_map(|k| {
                    let r = gitseal::crypto::Recipient::parse(
                        k.status.as_ref()?.public_key.as_deref()?,
                    )
                    .ok()?;
                    Some(gitseal::manifest::KeyringEntry::new(
                        &r,
                        k.status.as_ref()?.state?,
                        None,
                    ))
                })
                .collect();
            if !entries.is_empty() {
                tokio::time::sleep(Duration::from_secs(3)).await;
                break (
                    gitseal::manifest::KeyringFile::new("bench", entries),
                    c.rss().0,
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let server = kube::config::Kubeconfig::read_from(&kubeconfig)
        .unwrap()
        .clusters[0]
        .cluster
        .as_ref()
        .and_then(|c| c.server.clone())
        .unwrap();
    let input = dir.join("floor-input.jsonl");
    let variants = floor_variants();

    // RUNS rounds, each: the floor (plain clients creating exactly the Secrets the
    // controller will write, as fast as the server takes them; then deleted): the Go client
    // in every BENCH_FLOOR setting (the floor is the best) and the kube-rs client the
    // controller is built on; then a cold controller start with the default flags over the
    // same SealedSecrets, and the time until every status is written. All timed by the same
    // kind of watch.
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let bench_ns = create_namespaces(&client, "bench", ns_count).await;
    let (mut floors, mut kube_floors, mut colds, mut lags) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut by_variant = vec![Vec::new(); variants.len()];
    let (mut rss, mut peak) = (0.0, 0.0);
    let mut cpus = Vec::new();
    let wrap = std::env::var("BENCH_WRAP").unwrap_or_default();
    let managed = "app.kubernetes.io/managed-by=gitseal";
    for run in 0..runs {
        clear(&client, &bench_ns).await;
        create_sealed(&client, &keyring, &bench_ns, objects).await;
        floor_input(&client, &bench_ns, &input).await;
        let mut best = f64::INFINITY;
        for (i, &variant) in variants.iter().enumerate() {
            let watch = count_secrets(&client, managed, objects).await;
            let t = Instant::now();
            run_floor(&floor_bin, &dir, &server, &input, variant);
            watch.await.unwrap();
            let secs = t.elapsed().as_secs_f64();
            by_variant[i].push(secs);
            best = best.min(secs);
            delete_secrets(&client, &bench_ns).await;
        }
        floors.push(best);
        let watch = count_secrets(&client, managed, objects).await;
        let t = Instant::now();
        create_same_secrets(&client, &bench_ns).await;
        watch.await.unwrap();
        kube_floors.push(t.elapsed().as_secs_f64());
        delete_secrets(&client, &bench_ns).await;

        let watch = count_secrets(&client, managed, objects).await;
        let t = Instant::now();
        let ctl = Controller::start_with(&kubeconfig, &wrap);
        watch.await.unwrap();
        colds.push(t.elapsed().as_secs_f64());
        cpus.push(ctl.cpu_seconds());
        lags.push(wait_all_ready(&client, objects).await);
        (rss, peak) = ctl.rss();
        eprintln!(
            "run {}: floor {:.1} s (Go: {}), kube-rs client {:.1} s, cold {:.1} s (controller CPU {:.1} s), statuses {:.1} s after, RSS {rss:.0} MiB, peak {peak:.0} MiB",
            run + 1,
            floors[run],
            variants
                .iter()
                .zip(&by_variant)
                .map(|((h1, n), v)| format!("{}:{n} {:.1}", if *h1 { "h1" } else { "h2" }, v[run]))
                .collect::<Vec<_>>()
                .join(", "),
            kube_floors[run],
            colds[run],
            cpus[run],
            lags[run],
        );
        drop(ctl);
    }
    let (floor, kube_floor, cold, lag) = (
        median(floors.clone()),
        median(kube_floors.clone()),
        median(colds.clone()),
        median(lags.clone()),
    );

    // Restart over in-sync objects (status written, Secrets equal): no writes; ready once
    // every object was reconciled.
    let t = Instant::now();
    let ctl = Controller::start(&kubeconfig);
    while ctl.metric("gitseal_reconciles_total") < objects as f64 {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "restart did not reconcile everything in 120 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let restart = t.elapsed();
    let restart_writes = ctl.metric("gitseal_secret_writes_total").max(0.0);

    // Drift repair latency over 100 edits.
    let mut latencies = Vec::new();
    for i in 0..100 {
        let api: Api<Secret> = Api::namespaced(client.clone(), &bench_ns[i % ns_count]);
        let name = format!("s{}", i % per_ns.max(1));
        let t = Instant::now();
        let edit = serde_json::json!({"data": {"password": "ZWRpdGVk"}});
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&edit))
            .await
            .unwrap();
        loop {
            let s = api.get(&name).await.unwrap();
            if s.data.as_ref().unwrap()["password"].0 == b"p" {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "edit {i} not repaired"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    let p99 = latencies[(latencies.len() * 99).div_ceil(100) - 1];
    let p50 = median(latencies.clone());
    drop(ctl);

    // Failover: two replicas with leader election over the same in-sync objects. Rounds
    // alternate kill -9 and SIGTERM of the leader; the old leader comes back as the standby.
    let rounds: usize = std::env::var("BENCH_FAILOVERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let leases: Api<Lease> = Api::namespaced(client.clone(), "gitseal-system");
    let mut replicas = ["a", "b"].map(|id| (id.to_string(), Controller::replica(&kubeconfig, id)));
    let t = Instant::now();
    let mut leader = settled(&leases, &replicas, objects).await;
    let pair_ready = t.elapsed().as_secs_f64();
    let mut pair_rss = None;
    let (mut kills, mut terms) = (Vec::new(), Vec::new());
    for round in 0..2 * rounds {
        let Some(l) = leader else {
            eprintln!(
                "failover: the two replicas did not settle (one leading, both ready, all reconciled) within {LONG:?}"
            );
            break;
        };
        if round == 0 {
            eprintln!(
                "failover: {} leads, both ready and all reconciled {pair_ready:.1} s after both started",
                replicas[l].0
            );
            pair_rss = Some((replicas[l].1.rss(), replicas[1 - l].1.rss()));
        }
        let how = if round % 2 == 0 {
            Stop::Kill
        } else {
            Stop::Term
        };
        let ns = &bench_ns[(round * 7 + 3) % ns_count];
        let name = format!("s{}", (round + 1) % per_ns.max(1));
        let r = failover(
            &client,
            &kubeconfig,
            &mut replicas,
            l,
            how,
            (ns, &name),
            objects,
        )
        .await;
        let opt = |v: Option<f64>| v.map_or("timeout".into(), |v| format!("{v:.2} s"));
        eprintln!(
            "failover round {} ({}, {} -> {}): Lease moved {}, edited Secret repaired {} ({}), new leader reconciled all {}{}; new leader's Secret writes {}, drift repairs {}, other Secrets changed {}",
            round + 1,
            if how == Stop::Kill {
                "kill -9"
            } else {
                "SIGTERM"
            },
            replicas[l].0,
            replicas[1 - l].0,
            opt(r.lease),
            opt(r.repair),
            if how == Stop::Kill {
                "after the Lease moved"
            } else {
                "after the signal"
            },
            opt(r.caught_up),
            r.exited
                .map_or(String::new(), |e| format!(", old leader exited {e:.2} s")),
            r.writes,
            r.drift_repairs,
            r.changed
        );
        if how == Stop::Kill {
            kills.push(r);
        } else {
            terms.push(r);
        }
        leader = settled(&leases, &replicas, objects).await;
    }
    drop(replicas);
    stop_cluster(&dir);

    let ratio = cold / floor;
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let variant_list = variants
        .iter()
        .zip(&by_variant)
        .map(|((h1, n), v)| {
            format!(
                "{}:{n} {:.1}",
                if *h1 { "h1" } else { "h2" },
                median(v.clone())
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    // Statuses: within 10 s after the last Secret at 10,000 objects, 60 s at 100,000.
    let lag_goal = if objects > 10_000 { 60.0 } else { 10.0 };
    let per_object = (peak - baseline) * 1024.0 / objects as f64;
    let mut rows = vec![
        (
            "floor: Go client creates the same Secrets",
            format!("{floor:.1} s"),
            format!(
                "best client per run, median of {runs}: {} s; each client's median: {variant_list} s",
                list(&floors)
            ),
        ),
        (
            "kube-rs client (64 in flight), same Secrets",
            format!("{kube_floor:.1} s"),
            format!(
                "{:.2}x floor; median of {runs}: {} s",
                kube_floor / floor,
                list(&kube_floors)
            ),
        ),
        (
            "controller cold start (default flags)",
            format!("{cold:.1} s"),
            format!(
                "{ratio:.2}x floor (goal <= 1.2x) {}; median of {runs}: {} s",
                verdict(ratio <= 1.2),
                list(&colds)
            ),
        ),
        (
            "all statuses written after the last Secret",
            format!("{lag:.1} s"),
            format!(
                "goal <= {lag_goal:.0} s {}; median of {runs}: {} s",
                verdict(lag <= lag_goal),
                list(&lags)
            ),
        ),
        (
            "controller CPU until all Secrets exist",
            format!("{:.1} s", median(cpus.clone())),
            format!("median of {runs}: {} s", list(&cpus)),
        ),
        (
            "controller RSS: empty / statuses written / peak",
            format!("{baseline:.0} / {rss:.0} / {peak:.0} MiB"),
            format!(
                "peak above empty: {per_object:.2} KiB per object (goal <= 2 KiB) {}",
                verdict(per_object <= 2.0)
            ),
        ),
        (
            "restart over in-sync objects: ready",
            format!("{:.1} s", restart.as_secs_f64()),
            format!("goal <= 10 s {}", verdict(restart.as_secs_f64() <= 10.0)),
        ),
        (
            "restart: Secret writes",
            format!("{restart_writes}"),
            format!("goal 0 {}", verdict(restart_writes == 0.0)),
        ),
        (
            "drift repair latency p50 / p99 (100 edits)",
            format!("{p50:.0} / {p99:.0} ms"),
            format!("goal p99 <= 1000 ms {}", verdict(p99 <= 1000.0)),
        ),
    ];
    rows.extend(failover_rows(&kills, &terms, pair_ready, pair_rss));
    println!(
        "\ncontroller benchmark: {objects} SealedSecrets in {ns_count} namespaces, controller flags: defaults {}, {} cores",
        controller_args().join(" "),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for (what, value, goal) in rows {
        println!("{what:<48} {value:>16}  {goal}");
    }
}

/// Summary rows of the failover rounds: medians, every round, verdicts on the worst round.
fn failover_rows(
    kills: &[Takeover],
    terms: &[Takeover],
    pair_ready: f64,
    pair_rss: Option<((f64, f64), (f64, f64))>,
) -> Vec<(&'static str, String, String)> {
    // (median, "each round" list, worst); a round past its limit counts as infinitely slow.
    let stats = |v: Vec<Option<f64>>| {
        let xs: Vec<f64> = v.iter().map(|x| x.unwrap_or(f64::INFINITY)).collect();
        let each = v
            .iter()
            .map(|x| x.map_or("timeout".into(), |x| format!("{x:.2}")))
            .collect::<Vec<_>>()
            .join(", ");
        let worst = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (median(xs), each, worst)
    };
    let secs = |x: f64| {
        if x.is_finite() {
            format!("{x:.2} s")
        } else {
            "timeout".into()
        }
    };
    let lease_goal = LEASE_SECONDS as f64;
    let mut rows = vec![(
        "failover: 2 replicas started -> one leads, both ready",
        format!("{pair_ready:.1} s"),
        match pair_rss {
            Some(((lr, lp), (sr, sp))) => format!(
                "leader RSS {lr:.0} / peak {lp:.0} MiB, standby RSS {sr:.0} / peak {sp:.0} MiB"
            ),
            None => "FAIL (did not settle)".into(),
        },
    )];
    if kills.is_empty() || terms.is_empty() {
        rows.push(("failover rounds", "none".into(), "FAIL".into()));
        return rows;
    }
    let (n_k, n_t) = (kills.len(), terms.len());
    let (lease, each, worst) = stats(kills.iter().map(|r| r.lease).collect());
    rows.push((
        "kill -9 leader -> standby holds the Lease",
        secs(lease),
        format!(
            "goal <= {lease_goal:.0} s (lease duration) {} (worst); {n_k} rounds: {each} s",
            verdict(worst <= lease_goal)
        ),
    ));
    let (repair, each, worst) = stats(kills.iter().map(|r| r.repair).collect());
    rows.push((
        "kill -9: edit at takeover -> Secret repaired",
        secs(repair),
        format!(
            "goal <= 1 s {} (worst); {n_k} rounds: {each} s",
            verdict(worst <= 1.0)
        ),
    ));
    let (caught, each, _) = stats(kills.iter().map(|r| r.caught_up).collect());
    rows.push((
        "kill -9 -> new leader has reconciled all",
        secs(caught),
        format!("{n_k} rounds: {each} s"),
    ));
    let totals: Vec<Option<f64>> = terms
        .iter()
        .map(|r| Some(r.lease?.max(r.repair?)))
        .collect();
    let (lease, each_l, _) = stats(terms.iter().map(|r| r.lease).collect());
    let (repair, each_r, _) = stats(terms.iter().map(|r| r.repair).collect());
    let (total, each, worst) = stats(totals);
    rows.push((
        "SIGTERM leader + edit -> Lease moved / repaired",
        format!("{} / {}", secs(lease), secs(repair)),
        format!("{n_t} rounds: Lease {each_l} s; repaired {each_r} s"),
    ));
    rows.push((
        "SIGTERM: both done (total)",
        secs(total),
        format!(
            "goal <= 1 s {} (worst); {n_t} rounds: {each} s",
            verdict(worst <= 1.0)
        ),
    ));
    let (exited, each, _) = stats(terms.iter().map(|r| r.exited).collect());
    let (caught, each_c, _) = stats(terms.iter().map(|r| r.caught_up).collect());
    rows.push((
        "SIGTERM: old leader exited / new reconciled all",
        format!("{} / {}", secs(exited), secs(caught)),
        format!("{n_t} rounds: exited {each} s; reconciled all {each_c} s"),
    ));
    // Takeover writes: the new leader's Secret writes besides the one repair, and managed
    // Secrets whose resourceVersion changed besides the edited one.
    let extra = |r: &Takeover| (r.writes - 1.0).max(0.0) as usize + r.changed;
    let list = |v: &[Takeover]| {
        v.iter()
            .map(|r| format!("{}+{}", r.writes, r.changed))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let all: Vec<&Takeover> = kills.iter().chain(terms).collect();
    let worst = all.iter().map(|r| extra(r)).max().unwrap_or(0);
    rows.push((
        "takeover: Secret writes besides the repair",
        format!("{worst}"),
        format!(
            "goal 0 {}; new leader's writes + other Secrets changed, kill -9: {}; SIGTERM: {}",
            verdict(worst == 0),
            list(kills),
            list(terms)
        ),
    ));
    rows
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}
