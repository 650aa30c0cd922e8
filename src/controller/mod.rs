//! The in-cluster controller: a thin kube-runtime shell around the pure core in
//! [`crate::unsealer`] (and the key rules in [`crate::keyring::lifecycle`]). Caches and
//! their watchers (`caches`), what wakes the reconcilers (`triggers`), the SealedSecret
//! reconcilers, one per watched namespace or one for all (`reconcile`), the SealingKey
//! reconciler and the key set's pass (`keys`), status and Events (`report`, `events`),
//! Lease leader election (`leader`), the standby's read-only preparation (`standby`),
//! /metrics, /healthz and /readyz (`http`), what they share (`context`), all supervised by
//! `tasks`.
//!
//! Every replica keeps its caches warm from the start, and /readyz says they are synced;
//! only the replica holding the lease reconciles and writes. A standby opens every object
//! ahead, read only (`standby`), so it takes over at once: in-sync objects are known by
//! digest and only drifted Secrets are opened and written.

mod caches;
mod context;
mod events;
mod http;
mod keys;
pub mod leader;
mod memo;
pub mod metrics;
#[cfg(test)]
mod mock_tests;
mod reconcile;
mod report;
mod standby;
mod tasks;
mod triggers;
mod written;

pub use crate::unsealer::{policy, secret};
pub use context::{Context, Settings};
pub use leader::LeaseConfig;
pub use reconcile::Error;

use futures::{StreamExt, future};
use kube::Client;
use kube::api::Api;
use kube::runtime::Controller;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Field manager of every write (server-side apply and creates).
pub const FIELD_MANAGER: &str = "gitseal-controller";

/// How the controller runs (flags of `gitseal controller`).
#[derive(Clone, Debug)]
pub struct Config {
    /// Namespace of the key Secrets and the leader Lease.
    pub namespace: String,
    /// Namespaces whose SealedSecrets are reconciled; empty means all.
    pub watch_namespaces: Vec<String>,
    /// Create a new Active key when the current one is this old (zero: never).
    pub key_renew_interval: Duration,
    /// Where /metrics, /healthz and /readyz listen.
    pub metrics_addr: SocketAddr,
    /// Run leader election (off: this replica always leads).
    pub leader_elect: bool,
    pub lease_duration: Duration,
    /// This replica's name (pod name), for the Lease and Events.
    pub identity: String,
    /// SealedSecrets reconciled at once.
    pub concurrency: u16,
    /// What a SealedSecret may make the controller write.
    pub policy: policy::Policy,
    /// Which other controllers' Secrets may be taken over (`--take-over-from`).
    pub take_over: crate::unsealer::TakeOver,
}

impl Config {
    /// The leader Lease `gitseal-controller` in the controller's namespace.
    pub fn lease(&self) -> LeaseConfig {
        LeaseConfig {
            namespace: self.namespace.clone(),
            name: "gitseal-controller".into(),
            holder: self.identity.clone(),
            duration: self.lease_duration,
            retry: self.lease_duration / 5,
        }
    }
}

/// Hand the lease over on shutdown, after `run` (and every writer it spawned) has stopped.
pub async fn release_lease(client: &Client, lease: &LeaseConfig) {
    let api: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), &lease.namespace);
    match leader::release(&api, lease).await {
        Ok(true) => tracing::info!("lease released; the standby takes over"),
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "could not release the lease; it expires instead"),
    }
}

/// Run until the future is dropped (every task is aborted), leadership is lost, or any
/// long-lived task ends; the errors make the Pod restart with clean caches.
pub async fn run(client: Client, config: Config) -> anyhow::Result<()> {
    run_until(client, config, future::pending()).await
}

/// [`run`] until `stop` completes too (then `Ok`); returns only once every task it spawned
/// has stopped, so nothing writes after it (release the lease then).
pub async fn run_until(
    client: Client,
    config: Config,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let mut tasks = tasks::Tasks::default();
    let outcome = tokio::select! {
        ended = phases(&mut tasks, client, config) => match ended {
            Ok(()) => Err(anyhow::anyhow!(
                "lost the leader lease; exiting so a fresh process can stand by"
            )),
            Err(e) => Err(e),
        },
        () = stop => Ok(()),
    };
    tasks.shutdown().await;
    outcome
}

/// Start up, stand by, lead, until the lease is lost (`Ok`) or a task ends.
async fn phases(tasks: &mut tasks::Tasks, client: Client, config: Config) -> anyhow::Result<()> {
    let metrics = Arc::new(metrics::Metrics::default());
    let ready = serve(tasks, config.metrics_addr, &metrics);
    let mut leading = elect(tasks, &client, &config);

    // Caches and their watchers, on every replica; ready once synced.
    let triggers = triggers::Triggers::new();
    let (stores, mut scopes) = caches::start(tasks, &client, &config, &triggers, &leading);
    let synced = caches::standing_by(&mut scopes, stores.synced());
    tasks.supervise(synced).await??;
    ready.send_replace(true);
    tracing::info!(
        leader_election = config.leader_elect,
        "caches synced; waiting for leadership"
    );

    // Waiting for leadership: the caches stay current and every object is opened ahead into
    // the memo (read only); nothing is reconciled or written.
    let ctx = Arc::new(Context::new(client, &config, metrics, stores));
    let wait = async {
        tokio::select! {
            biased;
            () = until(&mut leading, true) => {}
            () = standby::prepare(ctx.clone()) => {}
        }
    };
    tasks
        .supervise(caches::standing_by(&mut scopes, wait))
        .await?;
    ctx.metrics.leader.set(1);
    tracing::info!(identity = %config.identity, "leading");

    // Leading: the controllers and writers.
    for scope in scopes {
        start_controller(tasks, &ctx, scope, &triggers, config.concurrency);
    }
    let (keys_changed, usage_changed) = triggers.key_manager_wakes();
    let all_keys = triggers::All::new(1);
    start_key_controller(tasks, &ctx, &all_keys);
    let key_manager = key_manager(ctx.clone(), keys_changed, usage_changed, all_keys);
    tasks.spawn("the key manager", key_manager);
    tasks.spawn("the status writer", report::run(ctx.clone()));
    // The controllers subscribed after the stores' first lists: look at every object once.
    triggers.all.ask();

    // Until the lease is lost (then stop writing at once and leave) or a task ends.
    let lost = async {
        if config.leader_elect {
            until(&mut leading, false).await
        } else {
            future::pending().await
        }
    };
    let ended = tasks.supervise(lost).await;
    ctx.metrics.leader.set(0);
    ended
}

/// Serve /metrics, /healthz and /readyz; the sender says when the caches are synced.
fn serve(
    tasks: &mut tasks::Tasks,
    addr: SocketAddr,
    metrics: &Arc<metrics::Metrics>,
) -> watch::Sender<bool> {
    let (ready, ready_rx) = watch::channel(false);
    let serve = http::serve(addr, metrics.clone(), ready_rx);
    tasks.spawn(format!("the HTTP endpoint on {addr}"), serve);
    ready
}

/// Whether this replica leads: from the Lease, or always without leader election.
fn elect(tasks: &mut tasks::Tasks, client: &Client, config: &Config) -> watch::Receiver<bool> {
    let (leading_tx, leading) = watch::channel(!config.leader_elect);
    if config.leader_elect {
        let election = leader::run(client.clone(), config.lease(), leading_tx);
        tasks.spawn("leader election", election);
    }
    leading
}

/// Wait until `leading` says `wanted`. Never returns once leader election has ended (the
/// supervisor reports that task).
async fn until(leading: &mut watch::Receiver<bool>, wanted: bool) {
    while *leading.borrow_and_update() != wanted {
        if leading.changed().await.is_err() {
            future::pending::<()>().await;
        }
    }
}

/// One scope's SealedSecret controller: its objects' changes, their managed Secrets'
/// changes and deletions, and "reconcile all" requests.
fn start_controller(
    tasks: &mut tasks::Tasks,
    ctx: &Arc<Context>,
    scope: caches::Scope,
    triggers: &triggers::Triggers,
    concurrency: u16,
) {
    // A managed Secret's change wakes its owner, unless it is our own write echoing back.
    let secret_changes = scope.secrets.filter_map({
        let ctx = ctx.clone();
        move |secret| {
            let owner = caches::owner_of(&secret)
                .filter(|owner| reconcile::secret_changed(&ctx, &secret, owner));
            future::ready(owner)
        }
    });
    let controller = Controller::for_shared_stream(scope.sealed, scope.sealed_store)
        .reconcile_on(secret_changes)
        .reconcile_all_on(triggers.all.requests())
        .reconcile_on(scope.deletions)
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .run(reconcile::reconcile, reconcile::error_policy, ctx.clone())
        .for_each(|_| future::ready(()));
    let name = format!("the SealedSecret controller ({})", scope.place);
    tasks.spawn(name, controller);
}

/// The SealingKey controller: every key, whenever the key manager asks (see [`key_manager`]);
/// one at a time, as each is judged with the whole set.
fn start_key_controller(tasks: &mut tasks::Tasks, ctx: &Arc<Context>, all_keys: &triggers::All) {
    let changes = futures::stream::pending::<Result<crate::api::SealingKey, _>>();
    let controller = Controller::for_stream(changes, ctx.sealing_keys.clone())
        .reconcile_all_on(all_keys.requests())
        .with_config(kube::runtime::controller::Config::default().concurrency(1))
        .run(keys::reconcile, keys::error_policy, ctx.clone())
        .for_each(|_| future::ready(()));
    tasks.spawn("the SealingKey controller", controller);
}

/// Run the key set's pass and then have every key reconciled: on every key change (within
/// 200 ms), on SealedSecret changes (at most every 5 s: a pass counts key usage over every
/// SealedSecret, and status writes change them all on a cold start), and every 30 s for renewal.
async fn key_manager(
    ctx: Arc<Context>,
    mut keys: watch::Receiver<()>,
    mut usage: watch::Receiver<()>,
    all_keys: triggers::All,
) {
    loop {
        if let Err(e) = keys::manage_set(&ctx).await {
            tracing::warn!(error = %e, "key manager pass failed; retrying");
        }
        all_keys.ask();
        tokio::select! {
            _ = keys.changed() => tokio::time::sleep(Duration::from_millis(200)).await,
            _ = usage.changed() => {
                tokio::select! {
                    _ = keys.changed() => tokio::time::sleep(Duration::from_millis(200)).await,
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
            }
            _ = tokio::time::sleep(Duration::from_secs(30)) => {}
        }
        usage.mark_unchanged();
    }
}

/// What an API error may say in status and Events: the status code and reason the server
/// gave, or that it could not be reached; never the server's message text, which can quote
/// request bodies or carry whatever a webhook put there.
pub fn scrub(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => {
            let reason: String = s
                .reason
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .take(64)
                .collect();
            format!("the API server answered {} {reason}", s.code)
        }
        _ => "the API server could not be reached".to_string(),
    }
}

/// A 64-bit fingerprint of `value`, for in-memory identity checks (never persisted).
pub(crate) fn hash64(value: &impl std::hash::Hash) -> u64 {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}
