//! Controller benchmark on a fresh real API server (scripts/cluster): 10,000 SealedSecrets
//! across 100 namespaces, against the floor of a plain client creating the same 10,000
//! Secrets directly (byte for byte what the controller writes: labels, owner reference,
//! data; also shown: bare two-key Secrets without an owner); controller RSS; a restart over
//! in-sync objects; drift repair latency.
//! Floor and cold start are repeated BENCH_RUNS times (default 3) in the same run; medians.
//! Run: `cargo bench --bench controller`. Env: BENCH_OBJECTS (default 10000), BENCH_RUNS,
//! BENCH_WRAP (a profiler command line to run the measured cold starts under; RSS is then
//! not measured).

mod common;
#[path = "../tests/ctrltool/mod.rs"]
#[allow(unused_imports)]
mod ctrltool;

use common::*;
use ctrltool::client_for;
use futures::{StreamExt, stream};
use gitseal::api::SealedSecret;
use gitseal::crypto::Plaintext;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
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
}

impl Controller {
    fn start(kubeconfig: &Path) -> Controller {
        Self::start_with(kubeconfig, "")
    }

    /// Start under `wrap` (a profiler command line, e.g. from BENCH_WRAP; empty: none), in
    /// a process group of its own so a wrapper and what it started are stopped together.
    fn start_with(kubeconfig: &Path, wrap: &str) -> Controller {
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
            .args([
                "controller",
                "--namespace",
                "gitseal-system",
                "--concurrency",
                &IN_FLIGHT.to_string(),
                "--leader-elect=false",
            ])
            .arg("--metrics-addr")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("target/release/gitseal (cargo build --release)");
        Controller { child, port }
    }

    fn metric(&self, name: &str) -> f64 {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return -1.0;
        };
        let _ = write!(s, "GET /metrics HTTP/1.0\r\n\r\n");
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
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
    let per_ns = objects / NAMESPACES;
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

    // Keys: a first controller run makes the Active key.
    let keyring = {
        let _c = Controller::start(&kubeconfig);
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
                break gitseal::manifest::KeyringFile::new("bench", entries);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };

    // RUNS rounds, each: bare Secrets (a plain client creating as many two-key Secrets,
    // without owner, into fresh namespaces); the floor (the same client creating exactly the
    // Secrets the controller will write, as fast as the server takes them; then deleted); a
    // cold controller start over the same SealedSecrets. All timed by the same kind of watch.
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let bench_ns = create_namespaces(&client, "bench").await;
    let (mut bares, mut floors, mut colds) = (Vec::new(), Vec::new(), Vec::new());
    let (mut rss, mut peak, mut rss_settled) = (0.0, 0.0, 0.0);
    let mut cpus = Vec::new();
    let wrap = std::env::var("BENCH_WRAP").unwrap_or_default();
    for run in 0..runs {
        let floor_ns = create_namespaces(&client, &format!("floor{run}")).await;
        let selector = format!("gitseal-bench=floor{run}");
        let watch = count_secrets(&client, &selector, objects).await;
        let t = Instant::now();
        stream::iter(0..objects)
            .map(|i| {
                let api: Api<Secret> = Api::namespaced(client.clone(), &floor_ns[i % NAMESPACES]);
                let label = format!("floor{run}");
                async move {
                    let s: Secret = serde_json::from_value(serde_json::json!({
                        "metadata": {"name": format!("s{}", i / NAMESPACES), "labels": {"gitseal-bench": label}},
                        "stringData": {"password": "p", "user": "u"}
                    }))
                    .unwrap();
                    api.create(&PostParams::default(), &s).await.unwrap();
                }
            })
            .buffer_unordered(IN_FLIGHT)
            .collect::<Vec<_>>()
            .await;
        watch.await.unwrap();
        bares.push(t.elapsed().as_secs_f64());

        clear(&client, &bench_ns).await;
        create_sealed(&client, &keyring, &bench_ns, objects).await;
        let managed = "app.kubernetes.io/managed-by=gitseal";
        let watch = count_secrets(&client, managed, objects).await;
        let t = Instant::now();
        create_same_secrets(&client, &bench_ns).await;
        watch.await.unwrap();
        floors.push(t.elapsed().as_secs_f64());
        delete_secrets(&client, &bench_ns).await;

        let watch = count_secrets(&client, managed, objects).await;
        let t = Instant::now();
        let ctl = Controller::start_with(&kubeconfig, &wrap);
        watch.await.unwrap();
        colds.push(t.elapsed().as_secs_f64());
        cpus.push(ctl.cpu_seconds());
        tokio::time::sleep(Duration::from_secs(3)).await;
        (rss, peak) = ctl.rss();
        eprintln!(
            "run {}: bare {:.1} s, floor {:.1} s, cold {:.1} s (controller CPU {:.1} s), RSS {rss:.0} MiB",
            run + 1,
            bares[run],
            floors[run],
            colds[run],
            cpus[run]
        );
        if run + 1 == runs {
            // Let the last run finish its status writes before the restart below.
            wait_all_ready(&client, objects).await;
            (rss_settled, peak) = ctl.rss();
        }
        drop(ctl);
    }
    let (bare, floor, cold) = (
        median(bares.clone()),
        median(floors.clone()),
        median(colds.clone()),
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
        let api: Api<Secret> = Api::namespaced(client.clone(), &bench_ns[i % NAMESPACES]);
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
    stop_cluster(&dir);

    let ratio = cold / floor;
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let rows = [
        (
            "bare: plain client creates two-key Secrets",
            format!("{bare:.1} s"),
            format!(
                "median of {runs}: {} s; cold start is {:.2}x this",
                list(&bares),
                cold / bare
            ),
        ),
        (
            "floor: plain client creates the same Secrets",
            format!("{floor:.1} s"),
            format!("median of {runs}: {} s", list(&floors)),
        ),
        (
            "controller cold start until all Secrets exist",
            format!("{cold:.1} s"),
            format!(
                "{ratio:.2}x floor (goal <= 1.5x) {}; median of {runs}: {} s",
                verdict(ratio <= 1.5),
                list(&colds)
            ),
        ),
        (
            "controller CPU until all Secrets exist",
            format!("{:.1} s", median(cpus.clone())),
            format!("median of {runs}: {} s", list(&cpus)),
        ),
        (
            "controller RSS: 3 s after sync / statuses written / peak",
            format!("{rss:.0} / {rss_settled:.0} / {peak:.0} MiB"),
            format!("goal <= 96 MiB {}", verdict(peak <= 96.0)),
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
    println!(
        "\ncontroller benchmark: {objects} SealedSecrets in {NAMESPACES} namespaces, {IN_FLIGHT} in flight, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for (what, value, goal) in rows {
        println!("{what:<48} {value:>16}  {goal}");
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}
