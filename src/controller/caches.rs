//! The controller's caches and the watchers that fill them: key Secrets and SealingKeys,
//! and per watched scope the managed Secrets and the SealedSecrets. Every replica runs them
//! from the start (a warm standby); the watchers pull the triggers, and until this replica
//! leads, what the stores hand their subscribers is read and dropped.

use super::{tasks::Tasks, triggers};
use crate::api::{SealedSecret, SealingKey};
use crate::keyring::KEY_LABEL;
use crate::unsealer::secret::ManagedSecret;
use futures::channel::mpsc::{self, UnboundedReceiver};
use futures::stream::BoxStream;
use futures::{SinkExt, StreamExt, future};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use tokio::sync::watch;

/// Changes a store buffers for its controller before its watcher waits.
const SUBSCRIBER_BUFFER: usize = 256;

/// A store's changes for its controller: each object applied (and every object once its
/// list is complete), as the store holds it then.
pub type Changes<K> = BoxStream<'static, std::sync::Arc<K>>;

/// What a watcher hands on after its store took an event: the object's reference, or
/// every reference once the list is complete.
#[derive(Clone)]
struct Feed<K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static> {
    tx: mpsc::Sender<ObjectRef<K>>,
    store: Store<K>,
}

impl<K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static> Feed<K> {
    /// The feed and the changes it produces. Not kube-runtime's `ReflectHandle`: in
    /// kube-runtime 5.0 it returns `Pending` without a wake-up when the object it was told
    /// about is already gone from the store (created and deleted at once), and the
    /// controller then never polls it again: one SealedSecret author could stop the
    /// controller for everyone. Here a reference whose object is gone is skipped.
    fn new(store: &Store<K>) -> (Self, Changes<K>) {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
        let reader = store.clone();
        let changes = rx
            .filter_map(move |r| future::ready(reader.get(&r)))
            .boxed();
        let feed = Feed {
            tx,
            store: store.clone(),
        };
        (feed, changes)
    }

    /// Hand on what `event` changed (waits while the controller's buffer is full).
    async fn send(&mut self, event: &watcher::Event<K>) {
        let refs = match event {
            watcher::Event::Apply(obj) => vec![ObjectRef::from_obj(obj)],
            watcher::Event::InitDone => self
                .store
                .state()
                .iter()
                .map(|o| ObjectRef::from_obj(&**o))
                .collect(),
            _ => return,
        };
        for r in refs {
            // The controller is gone only when the process ends.
            let _ = self.tx.send(r).await;
        }
    }
}

/// Every cache, for reconciles and writers to read.
pub struct Stores {
    /// Managed Secrets (label selector, digests instead of data), one store per watched scope.
    pub secrets: Vec<Store<ManagedSecret>>,
    /// SealedSecrets, one store per watched scope.
    pub sealed: Vec<Store<SealedSecret>>,
    /// Key Secrets in the controller's namespace.
    pub key_secrets: Store<Secret>,
    /// SealingKeys (which key is Active).
    pub sealing_keys: Store<SealingKey>,
}

impl Stores {
    /// Wait until every store holds its first full list.
    pub async fn synced(&self) -> Result<(), reflector::store::WriterDropped> {
        for s in &self.secrets {
            s.wait_until_ready().await?;
        }
        for s in &self.sealed {
            s.wait_until_ready().await?;
        }
        self.key_secrets.wait_until_ready().await?;
        self.sealing_keys.wait_until_ready().await
    }
}

/// What one watched scope's controller is fed: its stores' change streams and the owners
/// of its deleted Secrets.
pub struct Scope {
    /// How the scope is named in logs and errors ("namespace apps", "all namespaces").
    pub place: String,
    pub secrets: Changes<ManagedSecret>,
    pub sealed: Changes<SealedSecret>,
    pub sealed_store: Store<SealedSecret>,
    pub deletions: UnboundedReceiver<ObjectRef<SealedSecret>>,
}

/// Start every watcher under `tasks`; the stores, and per scope what its controller needs.
pub fn start(
    tasks: &mut Tasks,
    client: &Client,
    config: &super::Config,
    triggers: &triggers::Triggers,
    leading: &watch::Receiver<bool>,
) -> (Stores, Vec<Scope>) {
    let (key_secrets, key_writer) = reflector::store();
    let key_api: Api<Secret> = Api::namespaced(client.clone(), &config.namespace);
    let keys_changed = triggers.clone();
    // A new key Secret may open what could not be opened: look at everything again.
    let key_watch = watcher(key_api, watcher::Config::default().labels(KEY_LABEL))
        .default_backoff()
        .reflect(key_writer)
        .touched_objects()
        .for_each(move |_| {
            keys_changed.keys_changed();
            future::ready(())
        });
    tasks.spawn("the key Secret watcher", key_watch);

    let (sealing_keys, sk_writer) = reflector::store();
    let keys_changed = triggers.clone();
    // A state change (rotation) changes which envelopes need re-wrapping.
    let sk_watch = watcher(Api::<SealingKey>::all(client.clone()), Default::default())
        .default_backoff()
        .reflect(sk_writer)
        .touched_objects()
        .for_each(move |_| {
            keys_changed.keys_changed();
            future::ready(())
        });
    tasks.spawn("the SealingKey watcher", sk_watch);

    let mut stores = Stores {
        secrets: Vec::new(),
        sealed: Vec::new(),
        key_secrets,
        sealing_keys,
    };
    let mut scopes = Vec::new();
    for scope in watched(config) {
        let place = match &scope {
            Some(ns) => format!("namespace {ns}"),
            None => "all namespaces".into(),
        };
        let (store, secrets, deletions) = watch_secrets(tasks, client, &scope, &place, leading);
        stores.secrets.push(store);
        let (store, sealed) = watch_sealed(tasks, client, &scope, &place, triggers);
        stores.sealed.push(store.clone());
        scopes.push(Scope {
            place,
            secrets,
            sealed,
            sealed_store: store,
            deletions,
        });
    }
    (stores, scopes)
}

/// The managed Secrets of one scope: their store, its change stream, and the owners of
/// Secrets deleted while this replica leads.
fn watch_secrets(
    tasks: &mut Tasks,
    client: &Client,
    scope: &Option<String>,
    place: &str,
    leading: &watch::Receiver<bool>,
) -> (
    Store<ManagedSecret>,
    Changes<ManagedSecret>,
    UnboundedReceiver<ObjectRef<SealedSecret>>,
) {
    let (deleted, deletions) = triggers::Deletions::channel(leading.clone());
    let (store, writer) = reflector::store();
    let (feed, changes) = Feed::new(&store);
    let selector = format!(
        "{}={}",
        super::secret::MANAGED_BY.0,
        super::secret::MANAGED_BY.1
    );
    let stream = watcher(
        api_in::<ManagedSecret>(client, scope),
        // Streaming lists: the initial state arrives object by object, never as one page
        // of up to 500 Secrets of up to 1 MiB each.
        watcher::Config::default()
            .labels(&selector)
            .streaming_lists(),
    )
    .default_backoff()
    .reflect(writer)
    .for_each(move |event| {
        // Deletions are not changes of a stored object: trigger the owner ourselves.
        if let Ok(watcher::Event::Delete(secret)) = &event
            && let Some(owner) = owner_of(secret)
        {
            deleted.deleted(owner);
        }
        let mut feed = feed.clone();
        async move {
            if let Ok(event) = &event {
                feed.send(event).await;
            }
        }
    });
    tasks.spawn(format!("the managed Secret watcher ({place})"), stream);
    (store, changes, deletions)
}

/// The SealedSecrets of one scope: their store and its change stream; every change wakes
/// the key manager (usage counts).
fn watch_sealed(
    tasks: &mut Tasks,
    client: &Client,
    scope: &Option<String>,
    place: &str,
    triggers: &triggers::Triggers,
) -> (Store<SealedSecret>, Changes<SealedSecret>) {
    let (store, writer) = reflector::store();
    let (feed, changes) = Feed::new(&store);
    let usage_changed = triggers.clone();
    let stream = watcher(
        api_in::<SealedSecret>(client, scope),
        watcher::Config::default().streaming_lists(),
    )
    .default_backoff()
    .modify(slim_sealed)
    .reflect(writer)
    .for_each(move |event| {
        usage_changed.usage_changed();
        let mut feed = feed.clone();
        async move {
            if let Ok(event) = &event {
                feed.send(event).await;
            }
        }
    });
    tasks.spawn(format!("the SealedSecret watcher ({place})"), stream);
    (store, changes)
}

/// Run `work` while reading and dropping what the scopes' stores deliver: a standby's side
/// of the shared stores (a store's watcher waits while a subscriber's buffer is full).
pub async fn standing_by<T>(scopes: &mut [Scope], work: impl Future<Output = T>) -> T {
    let mut drains: Vec<_> = scopes
        .iter_mut()
        .flat_map(|s| {
            [
                s.secrets.by_ref().map(drop).boxed(),
                s.sealed.by_ref().map(drop).boxed(),
            ]
        })
        .collect();
    let mut drain = futures::stream::select_all(drains.iter_mut());
    let mut work = std::pin::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return out,
            Some(()) = drain.next() => {}
        }
    }
}

/// Watched scopes: `None` is all namespaces.
fn watched(config: &super::Config) -> Vec<Option<String>> {
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

/// The SealedSecret that controls a managed Secret.
pub fn owner_of(secret: &ManagedSecret) -> Option<ObjectRef<SealedSecret>> {
    let ns = secret.metadata.namespace.as_deref()?;
    secret
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true) && o.kind == "SealedSecret")
        .map(|o| ObjectRef::new(&o.name).within(ns))
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
pub fn slim_sealed(s: &mut SealedSecret) {
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
pub fn values_cut(s: &SealedSecret) -> bool {
    s.spec
        .encrypted_data
        .values()
        .any(|v| v.len() == value_prefix_len(v))
}

/// Length of `gs1:<scope>:<envelope id>:` in a sealed value (all of it if it has no such prefix).
fn value_prefix_len(v: &str) -> usize {
    v.match_indices(':').nth(2).map_or(v.len(), |(i, _)| i + 1)
}
