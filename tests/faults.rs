//! Fault drills (issue 14): 1,000 SealedSecrets on a private real etcd + kube-apiserver each,
//! the controller as its own supervised process, and one fault per drill: the API server
//! SIGKILLed mid cold start and restarted; etcd SIGKILLed and restarted; a watch resumed from
//! compacted history (410 Gone, relist); a throttling API server (429); a network that
//! refuses, delays and cuts connections (Toxiproxy); the controller SIGKILLed five times at
//! seeded random points of a cold start. After each, every object converges to the right
//! Secret and status, none is lost or written twice for nothing, and the controller runs.
//! `FIGURES faults …` lines carry the measurements (docs/performance.md); FAULTS_SEED
//! replays a drill's random schedule, FAULTS_OBJECTS shrinks the drills for a quick look.

mod ctrltool;

#[path = "support/cluster.rs"]
mod cluster;

#[path = "support/faults/mod.rs"]
mod faults;

use faults::{Drill, objects, secs};
use rand::{Rng, SeedableRng, rngs::StdRng};
use rustix::process::Signal;
use serde_json::json;
use std::time::{Duration, Instant};

/// The random schedule's seed: FAULTS_SEED, or a fresh one; printed so a failure replays.
fn seed(drill: &str) -> u64 {
    let seed = std::env::var("FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("faults: drill {drill}: FAULTS_SEED={seed} (set it to replay this schedule)");
    seed
}

/// A quarter (or another share) of the objects, as a Secret count to wait for.
fn share(part: usize) -> u64 {
    (objects() / part).max(1) as u64
}

/// A control-plane component a drill SIGKILLs.
#[derive(Clone, Copy)]
enum Component {
    ApiServer,
    Etcd,
}

/// SIGKILL `component` once a `1/part` share of the Secrets exists, start it again after
/// `down`, and wait for convergence.
async fn killed_mid_cold_start(name: &'static str, component: Component, part: usize, down: u64) {
    let mut d = Drill::new(name, "").await;
    d.prepare().await;
    let started = d.start_controller(&[]);
    let at = d.wait_secrets(share(part)).await;
    let killed = Instant::now();
    match component {
        Component::ApiServer => d.plane.kill_apiserver(),
        Component::Etcd => d.plane.kill_etcd(),
    }
    tokio::time::sleep(Duration::from_secs(down)).await;
    match component {
        Component::ApiServer => d.plane.start_apiserver(),
        Component::Etcd => d.plane.start_etcd(),
    }
    let back = killed.elapsed();
    let converged = d.wait_converged().await;
    let v = d.verdict().await;
    d.figures(
        &v,
        &[
            ("secrets_at_kill", at.to_string()),
            ("down_until_ready_s", secs(back)),
            ("converge_after_restart_s", secs(converged)),
            ("total_s", secs(started.elapsed())),
        ],
    );
}

/// kube-apiserver SIGKILLed once a quarter of the Secrets exists, started again 3 s later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiserver_killed_mid_cold_start_and_restarted() {
    killed_mid_cold_start("apiserver-kill", Component::ApiServer, 4, 3).await;
}

/// etcd SIGKILLed once half the Secrets exists, started again 5 s later (the API server
/// keeps running and reconnects).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_killed_mid_cold_start_and_restarted() {
    killed_mid_cold_start("etcd-kill", Component::Etcd, 2, 5).await;
}

/// The API server without its watch cache, so a watch resumes from etcd itself: the
/// controller is frozen (its connections through the proxy drop every byte, the process
/// SIGSTOPped), objects change, etcd compacts its history past what the controller saw, the
/// connections are cut and the controller resumes. Its watches come back at compacted
/// revisions: 410 Gone, and it lists again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumed_from_compacted_history_relists() {
    let mut d = Drill::new("compacted", "--watch-cache=false").await;
    d.start_proxy().await;
    d.prepare().await;
    // A long lease: the SIGSTOPped leader must not have stepped down when it resumes.
    let started = d.start_controller(&["--lease-duration=60s"]);
    let cold = d.wait_converged().await;
    let clean = d.verdict().await.writes;
    let proxy = d.proxy.as_ref().expect("proxy");
    for stream in ["upstream", "downstream"] {
        let freeze = json!({"timeout": 0});
        proxy.add(stream, "timeout", stream, 1.0, freeze).await;
    }
    d.controller().signal(Signal::STOP);
    let n = objects();
    let resealed: Vec<usize> = (0..n).step_by(10).collect();
    let added: Vec<usize> = (n..n + n / 10).collect();
    d.create(&resealed).await;
    d.create(&added).await;
    let revision = d.plane.compact().await.expect("compacting etcd");
    let proxy = d.proxy.as_ref().expect("proxy");
    proxy.set_enabled(false).await;
    for stream in ["upstream", "downstream"] {
        proxy.remove(stream).await;
    }
    proxy.set_enabled(true).await;
    d.controller().signal(Signal::CONT);
    let converged = d.wait_converged().await;
    let v = d.verdict().await;
    let log = d.controller().log_text();
    let gone = log
        .lines()
        .filter(|l| l.contains("watchevent error") && l.contains("410"))
        .count();
    let compacted = d
        .plane
        .apiserver_logs()
        .matches("required revision has been compacted")
        .count();
    assert!(
        gone > 0,
        "no watch of the controller got 410 Gone after the compaction; log {}",
        d.controller().log_path().display()
    );
    assert!(
        compacted > 0,
        "the API server never found a watch's revision compacted"
    );
    d.figures(
        &v,
        &[
            ("cold_start_s", secs(cold)),
            ("cold_start_secret_writes", clean.secrets.to_string()),
            ("cold_start_status_writes", clean.status.to_string()),
            ("resealed", resealed.len().to_string()),
            ("added", added.len().to_string()),
            ("compacted_at_revision", revision.to_string()),
            ("watch_410s", gone.to_string()),
            ("converge_after_resume_s", secs(converged)),
            ("total_s", secs(started.elapsed())),
        ],
    );
}

/// 429s the API server answered so far: (max-in-flight rejections, requests counted 429).
async fn throttled(d: &Drill) -> (f64, f64) {
    let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = d
        .env
        .client
        .request_text(request)
        .await
        .expect("the API server's /metrics");
    let code = ["code=\"429\""];
    (
        faults::http::metric_sum(&text, "apiserver_request_terminations_total", &code),
        faults::http::metric_sum(&text, "apiserver_request_total", &code),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_apiserver_429() {
    let flags = "--max-requests-inflight=3 --max-mutating-requests-inflight=1 \
                 --enable-priority-and-fairness=false";
    let mut d = Drill::new("throttled", flags).await;
    d.prepare().await;
    let before = throttled(&d).await;
    let _started = d.start_controller(&[]);
    let converged = d.wait_converged().await;
    let v = d.verdict().await;
    let after = throttled(&d).await;
    let (rejected, counted) = (after.0 - before.0, after.1 - before.1);
    assert!(
        rejected + counted > 0.0,
        "the API server answered no 429 to the controller's cold start"
    );
    d.figures(
        &v,
        &[
            ("apiserver_flags", flags.replace(' ', ",")),
            ("rejected_429", rejected.to_string()),
            ("request_total_429", counted.to_string()),
            ("converge_s", secs(converged)),
        ],
    );
}

/// Toxiproxy between the controller and the API server during the cold start: every
/// connection delayed (0–200 ms downstream), a fifth reset at their first bytes, a fifth
/// cut after 64 KiB, and every open connection cut at seeded intervals of 2–6 s until the
/// objects have converged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flaky_network_refuses_delays_and_cuts() {
    let mut d = Drill::new("flaky-network", "").await;
    d.start_proxy().await;
    d.prepare().await;
    let mut rng = StdRng::seed_from_u64(seed("flaky-network"));
    let proxy = d.proxy.as_ref().expect("proxy");
    let before = proxy.accepted();
    proxy
        .add(
            "delay",
            "latency",
            "downstream",
            1.0,
            json!({"latency": 100, "jitter": 100}),
        )
        .await;
    proxy
        .add(
            "refuse",
            "reset_peer",
            "upstream",
            0.2,
            json!({"timeout": 0}),
        )
        .await;
    proxy
        .add(
            "cut-after",
            "limit_data",
            "downstream",
            0.2,
            json!({"bytes": 65536}),
        )
        .await;
    let started = d.start_controller(&[]);
    let mut cuts = 0u32;
    let converged = {
        let cutting = async {
            loop {
                let pause = Duration::from_millis(rng.gen_range(2000..6000));
                tokio::time::sleep(pause).await;
                d.proxy.as_ref().expect("proxy").cut().await;
                cuts += 1;
            }
        };
        tokio::select! {
            t = d.wait_converged() => t,
            _ = cutting => unreachable!("the cutting loop never ends"),
        }
    };
    let proxy = d.proxy.as_ref().expect("proxy");
    for toxic in ["delay", "refuse", "cut-after"] {
        proxy.remove(toxic).await;
    }
    let connections = proxy.accepted() - before;
    let v = d.verdict().await;
    let log = d.controller().log_text();
    let failures = log
        .lines()
        .filter(|l| l.contains("error") || l.contains("ApiError"))
        .count();
    assert!(
        failures > 0,
        "the controller logged no failed request through the faulty proxy; log {}",
        d.controller().log_path().display()
    );
    d.figures(
        &v,
        &[
            ("cuts", cuts.to_string()),
            ("connections", connections.to_string()),
            ("logged_failures", failures.to_string()),
            ("converge_s", secs(converged)),
            ("total_s", secs(started.elapsed())),
        ],
    );
}

/// The controller SIGKILLed five times during a cold start, at seeded random points of its
/// work (a Secret to create and a status to write per object: 2,000 steps, progress read from
/// etcd), wherever each falls: cache sync of a restarted process, Secret writes, status
/// writes; the supervisor restarts it each time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_sigkilled_five_times_during_cold_start() {
    let mut d = Drill::new("controller-kill", "").await;
    d.prepare().await;
    let mut rng = StdRng::seed_from_u64(seed("controller-kill"));
    let steps = 2 * objects() as u64;
    let mut at: Vec<u64> = (0..5).map(|_| rng.gen_range(1..steps)).collect();
    at.sort_unstable();
    let started = d.start_controller(&[]);
    let mut points = Vec::new();
    for point in at {
        let deadline = Instant::now() + faults::CONVERGE_WITHIN;
        let (secrets, statuses) = loop {
            let (secrets, statuses) = d.cold_start_progress().await;
            if secrets + statuses >= point {
                break (secrets, statuses);
            }
            assert!(
                Instant::now() < deadline,
                "the cold start stopped at {secrets} Secrets + {statuses} statuses, short of \
                 step {point}; log {}",
                d.controller().log_path().display()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let starts = d.controller().starts();
        let into = running_since(&d).await.elapsed();
        d.controller().kill();
        points.push(format!("{point}:{secrets}+{statuses}@{}s", secs(into)));
        while d.controller().starts() == starts {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    running_since(&d).await;
    let converged = d.wait_converged().await;
    let v = d.verdict().await;
    assert_eq!(
        d.controller().planned_exits(),
        5,
        "five SIGKILLs, five exits"
    );
    d.figures(
        &v,
        &[
            (
                "kills_step:secrets+statuses@s_into_process",
                points.join(","),
            ),
            ("converge_after_last_restart_s", secs(converged)),
            ("total_s", secs(started.elapsed())),
        ],
    );
}

/// When the running controller process started (waits for the supervisor's restart).
async fn running_since(d: &Drill) -> Instant {
    loop {
        if let Some(at) = d.controller().started_at() {
            return at;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
