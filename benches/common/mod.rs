//! What both controller benchmarks do at scale: namespaces, many SealedSecrets created at
//! once, counting the Secrets the controller writes from a watch, waiting for every status,
//! medians. `#[path]`-included by benches/controller.rs and benches/in_cluster.rs, next to
//! tests/ctrltool (for `seal_to`).
#![allow(dead_code)]

use crate::ctrltool::{is_ready_now, seal_to};
use futures::{StreamExt, TryStreamExt, stream};
use gitseal::api::SealedSecret;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use std::time::{Duration, Instant};

/// SealedSecrets are spread over this many namespaces by default (10,000 objects: 100 each).
pub const NAMESPACES: usize = 100;
/// Objects per namespace when the count follows the objects (100,000: 1,000 namespaces).
pub const PER_NAMESPACE: usize = 100;
/// Creates in flight at once.
pub const IN_FLIGHT: usize = 64;

pub async fn create_namespaces(client: &Client, prefix: &str, count: usize) -> Vec<String> {
    let api: Api<Namespace> = Api::all(client.clone());
    let mut names = Vec::new();
    for i in 0..count {
        let name = format!("{prefix}-{i}");
        let ns: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
        api.create(&PostParams::default(), &ns).await.unwrap();
        names.push(name);
    }
    names
}

/// Wait until `want` Secrets matching `selector` exist (counted from a watch). Floor and
/// controller are timed the same way, with the same watch adding the same load.
pub async fn wait_secrets(client: Client, selector: String, want: usize, limit: Duration) {
    let start = Instant::now();
    let api: Api<Secret> = Api::all(client.clone());
    let mut seen = std::collections::HashSet::new();
    let mut events = watcher(api, watcher::Config::default().labels(&selector))
        .touched_objects()
        .boxed();
    while seen.len() < want {
        match tokio::time::timeout(limit.saturating_sub(start.elapsed()), events.try_next()).await {
            Ok(Ok(Some(s))) => {
                seen.insert((s.namespace().unwrap_or_default(), s.name_any()));
            }
            _ => panic!("only {} of {want} Secrets after {limit:?}", seen.len()),
        }
    }
}

/// Start counting Secrets matching `selector`; returns once the watch is listening.
pub async fn count_secrets(
    client: &Client,
    selector: &str,
    want: usize,
) -> tokio::task::JoinHandle<()> {
    let watch = tokio::spawn(wait_secrets(
        client.clone(),
        selector.to_string(),
        want,
        Duration::from_secs(900),
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    watch
}

/// Create `objects` SealedSecrets in `namespaces` (no controller running).
pub async fn create_sealed(
    client: &Client,
    keyring: &gitseal::manifest::KeyringFile,
    namespaces: &[String],
    objects: usize,
) {
    stream::iter(0..objects)
        .map(|i| {
            let ns = namespaces[i % namespaces.len()].clone();
            let sealed = seal_to(
                keyring,
                &ns,
                &format!("s{}", i / namespaces.len()),
                &[("password", "p"), ("user", "u")],
                "strict",
            );
            let api: Api<SealedSecret> = Api::namespaced(client.clone(), &ns);
            async move { api.create(&PostParams::default(), &sealed).await.unwrap() }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
}

/// Wait until `want` SealedSecrets report Ready=True for their generation (status written),
/// counted from a watch (a list of 100,000 objects every few seconds would load the server
/// it measures); returns the seconds it took.
pub async fn wait_all_ready(client: &Client, want: usize) -> f64 {
    let api: Api<SealedSecret> = Api::all(client.clone());
    let t = Instant::now();
    let limit = Duration::from_secs(900);
    let mut ready = std::collections::HashSet::new();
    let mut events = watcher(api, watcher::Config::default())
        .touched_objects()
        .boxed();
    while ready.len() < want {
        match tokio::time::timeout(limit.saturating_sub(t.elapsed()), events.try_next()).await {
            Ok(Ok(Some(s))) => {
                let key = (s.namespace().unwrap_or_default(), s.name_any());
                if is_ready_now(&s) {
                    ready.insert(key);
                } else {
                    ready.remove(&key);
                }
            }
            _ => panic!("only {} of {want} Ready after {limit:?}", ready.len()),
        }
    }
    let secs = t.elapsed().as_secs_f64();
    eprintln!("all statuses written {secs:.1} s after the Secrets");
    secs
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}
