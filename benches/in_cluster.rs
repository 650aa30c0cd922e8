//! The controller as users run it, measured: the image from the Dockerfile on the test
//! cluster's node (tests/support/install.rs), installed with `kubectl apply -k` of the
//! unmodified deploy/ base.
//!
//! 1. `kubectl apply -k` -> both replicas Ready and one leading, and -> the first sealed
//!    example unsealed; BENCH_RUNS installs (default 3), medians.
//! 2. BENCH_OBJECTS SealedSecrets (default 10,000, over 100 namespaces): until every Secret
//!    exists and every status is Ready; then the leader's and the standby's memory (VmHWM and
//!    VmRSS of the container's process on the node, and the container cgroup's memory.peak)
//!    against the Deployment's memory limit.
//! 3. The leader Pod deleted at that size: until the standby holds the Lease, and until it
//!    has reconciled every object (its gitseal_reconciles_total); its memory after that.
//!
//! Run: `cargo bench --bench in_cluster` (the image's profile: GITSEAL_IMAGE_PROFILE, default
//! the shipped release profile). Figures go to docs/performance.md.

#[path = "../tests/support/cluster.rs"]
mod cluster;
mod common;
#[path = "../tests/ctrltool/mod.rs"]
#[allow(unused_imports)]
mod ctrltool;
#[path = "../tests/support/deploy.rs"]
mod deploy;
#[path = "../tests/support/install.rs"]
mod install;
#[path = "../tests/support/node.rs"]
mod node;

use common::*;
use install::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams};
use kube::{Client, ResourceExt};
use std::time::{Duration, Instant};

/// The process's memory on the node: (VmHWM, VmRSS) in MiB, and its cgroup's memory.peak.
fn memory(pod: &Pod) -> (f64, f64, Option<f64>) {
    let pid = container_pid(pod);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib = |k: &str| -> f64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}:")))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap()
            / 1024.0
    };
    // The container's own cgroup (kubelet cgroupfs driver): v2 memory.peak, or v1
    // memory.max_usage_in_bytes (page cache included, as the kernel charges it).
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let v2 = cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| format!("/sys/fs/cgroup{p}/memory.peak"));
    let v1 = cgroup
        .lines()
        .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_string()))
        .map(|p| format!("/sys/fs/cgroup/memory{p}/memory.max_usage_in_bytes"));
    let peak = [v2, v1]
        .into_iter()
        .flatten()
        .find_map(|f| std::fs::read_to_string(f).ok()?.trim().parse::<f64>().ok())
        .map(|b| b / 1024.0 / 1024.0);
    (kib("VmHWM"), kib("VmRSS"), peak)
}

/// `gitseal_reconciles_total` of one Pod, through the API server's Pod proxy.
fn reconciles(pod: &str) -> f64 {
    let text = kubectl(&[
        "get",
        "--raw",
        &format!("/api/v1/namespaces/{NS}/pods/{pod}:8080/proxy/metrics"),
    ]);
    metric(&text, "gitseal_reconciles_total").unwrap_or(0.0)
}

fn show(label: &str, (hwm, rss, peak): (f64, f64, Option<f64>), limit: &str) {
    let peak = peak.map_or("n/a".into(), |p| format!("{p:.1} MiB"));
    println!("{label}: VmHWM {hwm:.1} MiB, VmRSS {rss:.1} MiB, cgroup peak {peak} (limit {limit})");
}

async fn pods_by_role(client: &Client, image: &str) -> (Pod, Pod) {
    let pods = rolled_out(client, image).await;
    let leader = the_leader(client, &pods).await;
    let (l, s): (Vec<Pod>, Vec<Pod>) = pods.into_iter().partition(|p| p.name_any() == leader);
    (l.into_iter().next().unwrap(), s.into_iter().next().unwrap())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo test --all-targets` runs bench targets too (without --bench): nothing to do then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("in-cluster benchmark: run it with `cargo bench --bench in_cluster`");
        return;
    }
    let env_num = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(d)
    };
    let objects = env_num("BENCH_OBJECTS", 10_000);
    let runs = env_num("BENCH_RUNS", 3);
    let image = current_image().clone();
    let client = client().await;
    println!(
        "image {} ({} bytes)",
        image.reference,
        std::fs::metadata(&image.archive).unwrap().len()
    );

    // 1. Install -> Ready -> first Secret.
    let (mut ready, mut first) = (Vec::new(), Vec::new());
    let mut overlay_dir = None;
    for run in 1..=runs {
        uninstall(&client, &["bench-first"]).await;
        let overlay = overlay(&image);
        let t = Instant::now();
        kubectl(&[
            "apply",
            "--server-side",
            "-k",
            overlay.path().to_str().unwrap(),
        ]);
        pods_by_role(&client, &image.reference).await;
        let r = t.elapsed().as_secs_f64();
        key_published(&client).await;
        let ns = app_namespace(&client, "bench-first").await;
        seal_example(&ns, "db");
        unsealed(&client, &ns, "db").await;
        let f = t.elapsed().as_secs_f64();
        println!(
            "install run {run}: both replicas Ready and leading {r:.1} s; first Secret unsealed {f:.1} s (includes keys fetch + seal)"
        );
        ready.push(r);
        first.push(f);
        overlay_dir = Some(overlay);
    }
    println!(
        "median over {runs}: apply -k -> Ready {:.1} s; -> first Secret {:.1} s",
        median(ready),
        median(first)
    );

    // 2. Many objects.
    let limit = Api::<Deployment>::namespaced(client.clone(), NS)
        .get(DEPLOYMENT)
        .await
        .unwrap()
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|s| s.containers[0].resources.clone())
        .and_then(|r| r.limits)
        .and_then(|l| l.get("memory").map(|q| q.0.clone()))
        .unwrap_or_else(|| "none".into());
    let keyring = {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.yaml");
        deploy::run_ok(
            std::process::Command::new(env!("CARGO_BIN_EXE_gitseal"))
                .args(["keys", "fetch", "--kubeconfig"])
                .arg(&the_node().kubeconfig)
                .arg("-o")
                .arg(&path),
        );
        gitseal::manifest::KeyringFile::parse("keyring", &std::fs::read_to_string(&path).unwrap())
            .unwrap()
    };
    let (leader, standby) = pods_by_role(&client, &image.reference).await;
    show("leader before", memory(&leader), &limit);
    let namespaces = create_namespaces(&client, "bench-pod", NAMESPACES).await;
    let selector = "app.kubernetes.io/managed-by=gitseal".to_string();
    let counted = count_secrets(&client, &selector, objects + 1).await;
    let t = Instant::now();
    create_sealed(&client, &keyring, &namespaces, objects).await;
    let created = t.elapsed().as_secs_f64();
    counted.await.unwrap();
    let secrets = t.elapsed().as_secs_f64();
    wait_all_ready(&client, objects + 1).await;
    let statuses = t.elapsed().as_secs_f64();
    println!(
        "{objects} SealedSecrets created in {created:.1} s; all Secrets {secrets:.1} s; all statuses Ready {statuses:.1} s"
    );
    show(&format!("leader at {objects}"), memory(&leader), &limit);
    show(&format!("standby at {objects}"), memory(&standby), &limit);

    // 3. Failover at that size.
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let t = Instant::now();
    pods.delete(&leader.name_any(), &DeleteParams::default())
        .await
        .unwrap();
    let new_leader = cluster::eventually("the standby takes the Lease", SLOW, || async {
        let (holder, current, _) = lease(&client).await?;
        (current && holder != leader.name_any()).then_some(holder)
    })
    .await;
    let took_over = t.elapsed().as_secs_f64();
    let want = (objects + 1) as f64;
    let name = new_leader.clone();
    cluster::eventually(
        "the new leader reconciled every object",
        Duration::from_secs(900),
        || {
            let name = name.clone();
            async move { (reconciles(&name) >= want).then_some(()) }
        },
    )
    .await;
    let caught_up = t.elapsed().as_secs_f64();
    println!(
        "leader deleted at {objects}: {new_leader} holds the Lease after {took_over:.1} s, has reconciled all {want} after {caught_up:.1} s"
    );
    let new = pods.get(&new_leader).await.unwrap();
    show("new leader after catching up", memory(&new), &limit);

    uninstall(
        &client,
        &namespaces
            .iter()
            .map(String::as_str)
            .chain(["bench-first"])
            .collect::<Vec<_>>(),
    )
    .await;
    drop(overlay_dir);
}
