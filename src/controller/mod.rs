//! The in-cluster controller: SealedSecret → Secret reconcilers (one per watched namespace,
//! or one for all), the leader-only key manager, Lease leader election, and the HTTP
//! endpoints (/metrics, /healthz, /readyz). Only the leader writes; a standby replica keeps
//! its caches warm and takes over when the lease expires.

mod events;
mod http;
mod keys;
pub mod leader;
mod memo;
pub mod metrics;
pub mod policy;
mod reconcile;
mod report;
pub mod secret;
mod tasks;
mod triggers;

pub use leader::LeaseConfig;
pub use reconcile::Error;

use crate::api::{SealedSecret, SealingKey};
use crate::keyring::{KEY_LABEL, PrivateKeys};
use futures::{StreamExt, future};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Client, Resource};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
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

/// What reconcilers share.
pub struct Context {
    pub client: Client,
    pub config: Config,
    pub recorder: events::Recorder,
    pub metrics: Arc<metrics::Metrics>,
    /// Managed Secrets (label selector), one store per watched scope.
    secret_stores: Vec<Store<Secret>>,
    /// Key Secrets in the controller's namespace.
    key_secrets: Store<Secret>,
    /// SealingKeys (which key is Active).
    sealing_keys: Store<SealingKey>,
    /// SealedSecrets, one store per watched scope (for key usage counts).
    pub sealed_stores: Vec<Store<SealedSecret>>,
    failures: Mutex<HashMap<ObjectRef<SealedSecret>, u32>>,
    /// Parsed private keys and the fingerprint of the key Secrets they were parsed from.
    private_keys: Mutex<Option<(u64, Arc<PrivateKeys>)>>,
    /// Digests of what each object unsealed to last (skips decryption when only checking).
    pub memo: memo::Memo,
    /// Status and Events waiting to be written.
    reports: report::Reports,
    /// Whole objects read at once for objects the cache keeps cut (bounds memory).
    whole_reads: tokio::sync::Semaphore,
}

impl Context {
    /// The cluster's trusted private keys, from the key Secret and SealingKey caches, parsed
    /// again only when one of those changed (every reconcile needs them); and a fingerprint
    /// of what they were judged from.
    pub fn private_keys(&self) -> (Arc<PrivateKeys>, u64) {
        let secrets = self.key_secrets.state();
        let keys = self.sealing_keys.state();
        let mut versions: Vec<_> = secrets
            .iter()
            .map(|s| (s.metadata.uid.clone(), s.metadata.resource_version.clone()))
            .chain(keys.iter().map(|k| {
                let public = k.status.as_ref().and_then(|s| s.public_key.clone());
                (k.metadata.uid.clone(), public)
            }))
            .collect();
        versions.sort();
        let fingerprint = hash64(&versions);
        let mut cached = self.private_keys.lock().expect("key cache lock");
        match &*cached {
            Some((fp, keys)) if *fp == fingerprint => (keys.clone(), fingerprint),
            _ => {
                let keys: Vec<&SealingKey> = keys.iter().map(|k| k.as_ref()).collect();
                let parsed = Arc::new(PrivateKeys::trusted(
                    secrets.iter().map(|s| s.as_ref()),
                    &keys,
                ));
                *cached = Some((fingerprint, parsed.clone()));
                (parsed, fingerprint)
            }
        }
    }

    /// The Active key, as the key manager decided it (`status.state`), and only if this
    /// controller holds its trusted private key: key id and recipient. Re-wraps go to it.
    pub fn active_key(&self) -> Option<(String, crate::crypto::Recipient)> {
        let (held, _) = self.private_keys();
        self.sealing_keys
            .state()
            .iter()
            .filter(|k| {
                k.status.as_ref().and_then(|s| s.state) == Some(crate::api::KeyState::Active)
                    && k.metadata.deletion_timestamp.is_none()
            })
            .filter_map(|k| {
                let status = k.status.as_ref()?;
                let recipient =
                    crate::crypto::Recipient::parse(status.public_key.as_deref()?).ok()?;
                let id = recipient.key_id();
                held.get(&id).is_some().then_some((
                    crate::keyring::lifecycle::created(k),
                    k.metadata.name.clone(),
                    id,
                    recipient,
                ))
            })
            .max_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)))
            .map(|(_, _, id, recipient)| (id, recipient))
    }

    /// Which key ids the SealedSecrets in the watched namespaces verifiably use (see
    /// [`memo`]); also forgets what is remembered of objects that no longer exist.
    pub fn key_usage(&self) -> memo::Usage {
        let objects: Vec<_> = self.sealed_stores.iter().flat_map(|s| s.state()).collect();
        let live = || objects.iter().filter_map(|o| o.metadata.uid.as_deref());
        self.memo.retain(live());
        let live_refs: std::collections::HashSet<_> = objects
            .iter()
            .map(|o| ObjectRef::from_obj(o.as_ref()))
            .collect();
        self.failures
            .lock()
            .expect("failure map lock")
            .retain(|k, _| live_refs.contains(k));
        let (_, keys_version) = self.private_keys();
        let active = self.active_key();
        let active = active.as_ref().map(|(id, _)| id.as_str());
        self.memo.usage(objects.iter().filter_map(|o| {
            let uid = o.metadata.uid.as_deref()?;
            Some((uid, reconcile::memo_inputs(o, keys_version, active)))
        }))
    }

    /// The cached managed Secret `ns/name`, if any.
    pub fn managed_secret(&self, ns: &str, name: &str) -> Option<Arc<Secret>> {
        let key = ObjectRef::new(name).within(ns);
        self.secret_stores.iter().find_map(|s| s.get(&key))
    }

    /// `sealed` with all its values when the cache keeps them cut: the object read from the
    /// API server, and one of few permits to hold while using it; `None` if the cached one is whole.
    pub async fn whole(
        &self,
        sealed: &SealedSecret,
    ) -> Result<Option<(SealedSecret, tokio::sync::SemaphorePermit<'_>)>, kube::Error> {
        if !values_cut(sealed) {
            return Ok(None);
        }
        let permit = self
            .whole_reads
            .acquire()
            .await
            .expect("semaphore never closed");
        let ns = sealed.metadata.namespace.as_deref().unwrap_or_default();
        let api: Api<SealedSecret> = Api::namespaced(self.client.clone(), ns);
        let name = sealed.metadata.name.as_deref().unwrap_or_default();
        Ok(Some((api.get(name).await?, permit)))
    }

    /// The cached SealedSecret, if any.
    pub fn sealed_object(&self, obj: &ObjectRef<SealedSecret>) -> Option<Arc<SealedSecret>> {
        self.sealed_stores.iter().find_map(|s| s.get(obj))
    }

    fn count_failure(&self, obj: ObjectRef<SealedSecret>) -> u32 {
        let mut f = self.failures.lock().expect("failure map lock");
        let n = f.entry(obj).or_insert(0);
        *n += 1;
        *n - 1
    }

    fn forget_failures(&self, obj: &ObjectRef<SealedSecret>) {
        self.failures.lock().expect("failure map lock").remove(obj);
    }
}

/// Watched scopes: `None` is all namespaces.
fn scopes(config: &Config) -> Vec<Option<String>> {
    if config.watch_namespaces.is_empty() {
        vec![None]
    } else {
        config.watch_namespaces.iter().cloned().map(Some).collect()
    }
}

fn api_in<K>(client: &Client, scope: &Option<String>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match scope {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Run until the process is stopped, or leadership is lost (then return an error so the
/// pod restarts with clean caches).
pub async fn run(client: Client, config: Config) -> anyhow::Result<()> {
    let metrics = Arc::new(metrics::Metrics::default());
    let (ready_tx, ready_rx) = watch::channel(false);
    // Every task this run spawns is supervised: the first to end ends `run`; dropping
    // `run` aborts them all.
    let mut tasks = tasks::Tasks::default();
    let addr = config.metrics_addr;
    tasks.spawn(
        format!("the HTTP endpoint on {addr}"),
        http::serve(addr, metrics.clone(), ready_rx),
    );

    // Leadership.
    let (leading_tx, mut leading) = watch::channel(!config.leader_elect);
    if config.leader_elect {
        let lease = config.lease();
        tasks.spawn(
            "leader election",
            leader::run(client.clone(), lease, leading_tx),
        );
    }

    // Caches: key Secrets, managed Secrets and SealedSecrets per scope, SealingKeys. Every
    // replica keeps them current (a warm standby); only the leader reconciles and writes.
    let selector = format!("{}={}", secret::MANAGED_BY.0, secret::MANAGED_BY.1);
    let key_api: Api<Secret> = Api::namespaced(client.clone(), &config.namespace);
    let (key_secrets, key_writer) = reflector::store();
    let (sealing_keys, sk_writer) = reflector::store::<SealingKey>();
    let key_changes = watcher(key_api, watcher::Config::default().labels(KEY_LABEL))
        .default_backoff()
        .reflect(key_writer)
        .touched_objects();
    let mut secret_stores = Vec::new();
    let mut secret_streams = Vec::new();
    let mut sealed_stores = Vec::new();
    let mut sealed_streams = Vec::new();
    // Wakes the key manager: key changes, and SealedSecret changes (usage counts).
    let (key_tick_tx, key_tick_rx) = watch::channel(());
    let (usage_tick_tx, usage_tick_rx) = watch::channel(());
    for scope in scopes(&config) {
        let (deleted, deletions) = triggers::Deletions::channel(leading.clone());
        let place = place(&scope);
        let (store, writer) = reflector::store_shared(256);
        let subscriber = writer.subscribe().expect("shared store");
        let stream = watcher(
            api_in::<Secret>(&client, &scope),
            // Streaming lists: the initial state arrives object by object, never as one page
            // of up to 500 Secrets of up to 1 MiB each.
            watcher::Config::default()
                .labels(&selector)
                .streaming_lists(),
        )
        .default_backoff()
        .modify(secret::for_cache)
        .reflect_shared(writer)
        .for_each(move |event| {
            // Shared stores do not pass deletions on: trigger the owner ourselves.
            if let Ok(watcher::Event::Delete(secret)) = event
                && let Some(owner) = owner_of(&secret)
            {
                deleted.deleted(owner);
            }
            future::ready(())
        });
        secret_stores.push(store);
        secret_streams.push((stream, subscriber, deletions, place.clone()));
        let (sealed_store, sealed_writer) = reflector::store_shared(256);
        let sealed_sub = sealed_writer.subscribe().expect("shared store");
        let sealed_stream = watcher(
            api_in::<SealedSecret>(&client, &scope),
            watcher::Config::default().streaming_lists(),
        )
        .default_backoff()
        .modify(slim_sealed)
        .reflect_shared(sealed_writer)
        .for_each({
            let usage_changed = usage_tick_tx.clone();
            move |_| {
                let _ = usage_changed.send(());
                future::ready(())
            }
        });
        sealed_stores.push(sealed_store);
        sealed_streams.push((sealed_stream, sealed_sub, place));
    }
    let ctx = Arc::new(Context {
        client: client.clone(),
        config: config.clone(),
        recorder: events::Recorder::new(
            client.clone(),
            FIELD_MANAGER,
            &config.identity,
            &config.namespace,
        ),
        metrics: metrics.clone(),
        secret_stores: secret_stores.clone(),
        key_secrets: key_secrets.clone(),
        sealing_keys: sealing_keys.clone(),
        sealed_stores: sealed_stores.clone(),
        failures: Mutex::default(),
        private_keys: Mutex::default(),
        memo: memo::Memo::default(),
        reports: report::Reports::default(),
        whole_reads: tokio::sync::Semaphore::new(2),
    });

    // Key changes (new key Secrets) re-reconcile everything; SealingKey changes wake the key manager.
    let key_tick = key_tick_tx.clone();
    let all = triggers::All::new(16);
    let all_on_key_change = all.clone();
    let all_on_new_key = all.clone();
    let sk_watch = watcher(
        Api::<SealingKey>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(sk_writer)
    .touched_objects()
    .for_each(move |_| {
        // A state change (rotation) changes which envelopes need re-wrapping.
        all_on_key_change.ask();
        let _ = key_tick.send(());
        future::ready(())
    });
    let key_watch = key_changes.for_each(move |_| {
        all_on_new_key.ask();
        let _ = key_tick_tx.send(());
        future::ready(())
    });

    let mut subscriptions = Vec::new();
    for ((secret_stream, secret_sub, deletions, place), (sealed_stream, sealed_sub, _)) in
        secret_streams.into_iter().zip(sealed_streams)
    {
        tasks.spawn(
            format!("the managed Secret watcher ({place})"),
            secret_stream,
        );
        tasks.spawn(format!("the SealedSecret watcher ({place})"), sealed_stream);
        subscriptions.push((secret_sub, sealed_sub, deletions, place));
    }
    tasks.spawn("the key Secret watcher", key_watch);
    tasks.spawn("the SealingKey watcher", sk_watch);
    // Until this replica leads, the shared stores' events are read and dropped (a shared
    // store's stream stalls when a subscriber's buffer is full).
    let mut drained: Vec<_> = subscriptions
        .iter_mut()
        .flat_map(|(secrets, sealed, _, _)| {
            [
                secrets.by_ref().map(drop).boxed(),
                sealed.by_ref().map(drop).boxed(),
            ]
        })
        .collect();
    let synced = async {
        for s in &secret_stores {
            s.wait_until_ready().await?;
        }
        for s in &sealed_stores {
            s.wait_until_ready().await?;
        }
        key_secrets.wait_until_ready().await?;
        sealing_keys.wait_until_ready().await
    };
    tasks
        .supervise(while_draining(&mut drained, synced))
        .await??;
    // Ready means caches synced, on the leader and the standby alike.
    ready_tx.send_replace(true);
    tracing::info!(
        leader_election = config.leader_elect,
        "caches synced; waiting for leadership"
    );
    let lead = async {
        while !*leading.borrow_and_update() {
            leading.changed().await?;
        }
        Ok::<_, watch::error::RecvError>(())
    };
    tasks
        .supervise(while_draining(&mut drained, lead))
        .await??;
    drop(drained);
    metrics.leader.set(1);
    tracing::info!(identity = %config.identity, "leading");

    for ((secret_sub, sealed_sub, deletions, place), sealed_store) in
        subscriptions.into_iter().zip(sealed_stores.iter().cloned())
    {
        // A managed Secret's change wakes its owner, unless it is our own write echoing back.
        let secret_changes = secret_sub.filter_map({
            let ctx = ctx.clone();
            move |secret| {
                let owner = owner_of(&secret)
                    .filter(|owner| reconcile::secret_changed(&ctx, &secret, owner));
                future::ready(owner)
            }
        });
        let controller = Controller::for_shared_stream(sealed_sub, sealed_store)
            .reconcile_on(secret_changes)
            .reconcile_all_on(all.requests())
            .reconcile_on(deletions)
            .with_config(
                kube::runtime::controller::Config::default().concurrency(config.concurrency),
            )
            .run(reconcile::reconcile, reconcile::error_policy, ctx.clone())
            .for_each(|_| future::ready(()));
        tasks.spawn(format!("the SealedSecret controller ({place})"), controller);
    }
    tasks.spawn(
        "the key manager",
        key_manager(ctx.clone(), key_tick_rx, usage_tick_rx),
    );
    tasks.spawn("the status writer", report::run(ctx.clone()));
    // The controllers subscribed after the stores' first lists: look at every object once.
    all.ask();

    let lost = async {
        if !config.leader_elect {
            return future::pending().await;
        }
        while *leading.borrow_and_update() {
            if leading.changed().await.is_err() {
                break;
            }
        }
    };
    // Lost leadership: stop writing at once and leave.
    let ended = tasks.supervise(lost).await;
    ctx.metrics.leader.set(0);
    drop(tasks);
    ended?;
    anyhow::bail!("lost the leader lease; exiting so a fresh process can stand by")
}

/// Run `work` while reading and dropping what `subscriptions` deliver (a standby's side of
/// the shared stores: the stores stay current, nobody reconciles).
async fn while_draining<T>(
    subscriptions: &mut [futures::stream::BoxStream<'_, ()>],
    work: impl std::future::Future<Output = T>,
) -> T {
    let mut drain = futures::stream::select_all(subscriptions.iter_mut());
    let mut work = std::pin::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return out,
            Some(_) = drain.next() => {}
        }
    }
}

/// How a watched scope is named in logs and errors.
fn place(scope: &Option<String>) -> String {
    match scope {
        Some(ns) => format!("namespace {ns}"),
        None => "all namespaces".into(),
    }
}

/// Sealed values larger than this in all are not kept in the cache (see [`slim_sealed`]).
const CACHE_VALUES_UP_TO: usize = 32 * 1024;

/// What the SealedSecret cache keeps: what reconciles and status writes read (name,
/// namespace, uid, generation, spec, status); not managedFields, labels or annotations, which
/// GitOps tools fill (`kubectl apply` keeps a copy of the whole object in one). An object
/// whose values exceed [`CACHE_VALUES_UP_TO`] keeps only each value's prefix (version, scope,
/// envelope id: what key usage and in-sync checks read); its reconcile reads the whole object
/// from the API server. A cut value cannot be opened, so a cached object is never mistaken
/// for the whole one. This bounds the cache by object count, not by what tenants store.
fn slim_sealed(s: &mut SealedSecret) {
    s.metadata.managed_fields = None;
    s.metadata.labels = None;
    s.metadata.annotations = None;
    let size: usize = s.spec.encrypted_data.values().map(String::len).sum();
    if size > CACHE_VALUES_UP_TO {
        for (_, v) in s.spec.encrypted_data.iter_mut() {
            v.truncate(value_prefix_len(v));
            v.shrink_to_fit();
        }
    }
}

/// Whether the cached `s` had its values cut by [`slim_sealed`].
fn values_cut(s: &SealedSecret) -> bool {
    s.spec
        .encrypted_data
        .values()
        .any(|v| v.len() == value_prefix_len(v))
}

/// Length of `gs1:<scope>:<envelope id>:` in a sealed value (all of it if it has no such prefix).
fn value_prefix_len(v: &str) -> usize {
    v.match_indices(':').nth(2).map_or(v.len(), |(i, _)| i + 1)
}

/// The SealedSecret that controls a managed Secret.
fn owner_of(secret: &Secret) -> Option<ObjectRef<SealedSecret>> {
    let ns = secret.metadata.namespace.as_deref()?;
    secret
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true) && o.kind == "SealedSecret")
        .map(|o| ObjectRef::new(&o.name).within(ns))
}

/// Run the key manager on every key change (within 200 ms), on SealedSecret changes (at most
/// every 5 s: a pass counts key usage over every SealedSecret, and status writes change them
/// all on a cold start), and every 30 s for renewal.
async fn key_manager(
    ctx: Arc<Context>,
    mut keys: watch::Receiver<()>,
    mut usage: watch::Receiver<()>,
) {
    loop {
        if let Err(e) = keys::manage(&ctx).await {
            tracing::warn!(error = %e, "key manager pass failed; retrying");
        }
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
