//! What the reconcilers and writers share (kube-runtime's `Context`): the client, the
//! settings they read, the caches, and the per-object memory of failures, parsed keys,
//! unseal digests and queued reports.

use super::caches::{self, Stores};
use super::policy::Policy;
use super::{Config, FIELD_MANAGER, events, memo, metrics, reconcile, report};
use crate::api::{SealedSecret, SealingKey};
use crate::keyring::PrivateKeys;
use crate::unsealer::secret::ManagedSecret;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::Api;
use kube::runtime::reflector::{ObjectRef, Store};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the reconcilers, the key manager and the status writer share; built once the caches
/// are synced. A standby reads it only (it fills the memo, `standby.rs`); the writers start
/// with leadership.
pub struct Context {
    pub client: Client,
    pub config: Settings,
    pub recorder: events::Recorder,
    pub metrics: Arc<metrics::Metrics>,
    /// Managed Secrets (label selector), one store per watched scope.
    secret_stores: Vec<Store<ManagedSecret>>,
    /// Key Secrets in the controller's namespace.
    pub(super) key_secrets: Store<Secret>,
    /// SealingKeys (which key is Active).
    pub(super) sealing_keys: Store<SealingKey>,
    /// SealedSecrets, one store per watched scope (for key usage counts).
    sealed_stores: Vec<Store<SealedSecret>>,
    failures: Mutex<HashMap<ObjectRef<SealedSecret>, u32>>,
    /// Parsed private keys and the fingerprint of the key Secrets they were parsed from.
    private_keys: Mutex<Option<(u64, Arc<PrivateKeys>)>>,
    /// Digests of what each object unsealed to last (skips decryption when only checking).
    pub memo: memo::Memo,
    /// Status and Events waiting to be written.
    pub(super) reports: report::Reports,
    /// Whole objects read at once for objects the cache keeps cut (bounds memory).
    whole_reads: tokio::sync::Semaphore,
}

/// What reconciles and the key manager read of the configuration.
pub struct Settings {
    /// Namespace of the key Secrets.
    pub namespace: String,
    /// Create a new Active key when the current one is this old (zero: never).
    pub key_renew_interval: Duration,
    /// What a SealedSecret may make the controller write.
    pub policy: Policy,
    /// Which other controllers' Secrets may be taken over.
    pub take_over: crate::unsealer::TakeOver,
}

impl Context {
    pub fn new(
        client: Client,
        config: &Config,
        metrics: Arc<metrics::Metrics>,
        stores: Stores,
    ) -> Self {
        let recorder = events::Recorder::new(
            client.clone(),
            FIELD_MANAGER,
            &config.identity,
            &config.namespace,
        );
        Context {
            client,
            config: Settings {
                namespace: config.namespace.clone(),
                key_renew_interval: config.key_renew_interval,
                policy: config.policy.clone(),
                take_over: config.take_over.clone(),
            },
            recorder,
            metrics,
            secret_stores: stores.secrets,
            key_secrets: stores.key_secrets,
            sealing_keys: stores.sealing_keys,
            sealed_stores: stores.sealed,
            failures: Mutex::default(),
            private_keys: Mutex::default(),
            memo: memo::Memo::default(),
            reports: report::Reports::default(),
            whole_reads: tokio::sync::Semaphore::new(2),
        }
    }

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
        let fingerprint = super::hash64(&versions);
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
        let objects = self.sealed_objects();
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
    pub fn managed_secret(&self, ns: &str, name: &str) -> Option<Arc<ManagedSecret>> {
        let key = ObjectRef::new(name).within(ns);
        self.secret_stores.iter().find_map(|s| s.get(&key))
    }

    /// `sealed` with all its values when the cache keeps them cut: the object read from the
    /// API server, and one of few permits to hold while using it; `None` if the cached one is whole.
    pub async fn whole(
        &self,
        sealed: &SealedSecret,
    ) -> Result<Option<(SealedSecret, tokio::sync::SemaphorePermit<'_>)>, kube::Error> {
        if !caches::values_cut(sealed) {
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

    /// Every cached SealedSecret.
    pub(super) fn sealed_objects(&self) -> Vec<Arc<SealedSecret>> {
        self.sealed_stores.iter().flat_map(|s| s.state()).collect()
    }

    /// The cached SealedSecret, if any.
    pub fn sealed_object(&self, obj: &ObjectRef<SealedSecret>) -> Option<Arc<SealedSecret>> {
        self.sealed_stores.iter().find_map(|s| s.get(obj))
    }

    pub(super) fn count_failure(&self, obj: ObjectRef<SealedSecret>) -> u32 {
        let mut f = self.failures.lock().expect("failure map lock");
        let n = f.entry(obj).or_insert(0);
        *n += 1;
        *n - 1
    }

    pub(super) fn forget_failures(&self, obj: &ObjectRef<SealedSecret>) {
        self.failures.lock().expect("failure map lock").remove(obj);
    }
}
