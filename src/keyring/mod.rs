//! Cluster key material: the Secret that holds a SealingKey's private half (in the
//! controller's namespace, owned by the SealingKey), picking private keys by key id, and the
//! pure rules of the key set — exactly one Active key, renewal, names of new keys.
//! Knows the API types; knows nothing of reconcile loops or the network.

pub mod backup;

use crate::api::{KeyState, SealingKey};
use crate::crypto::Identity;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};
use std::collections::{BTreeMap, BTreeSet};
use zeroize::Zeroizing;

/// Label on key Secrets: the SealingKey name.
pub const KEY_LABEL: &str = "gitseal.dev/sealing-key";
/// Label on key Secrets: the key id.
pub const KEY_ID_LABEL: &str = "gitseal.dev/key-id";
/// Data field of a key Secret holding the `AGE-SECRET-KEY-1…` identity.
pub const IDENTITY_FIELD: &str = "identity";
/// Prefix of SealingKeys the controller creates: `gitseal-1`, `gitseal-2`, …
pub const KEY_NAME_PREFIX: &str = "gitseal-";

/// Name of the Secret holding SealingKey `key`'s private half.
pub fn key_secret_name(key: &str) -> String {
    format!("gitseal-key-{key}")
}

/// The key Secret for `key`: owned by the SealingKey, so deleting the key deletes it.
pub fn key_secret(key: &SealingKey, identity: &Identity, namespace: &str) -> Secret {
    let name = key.name_any();
    let owner = key.controller_owner_ref(&()).map(|mut o| {
        o.controller = Some(false);
        o
    });
    Secret {
        metadata: ObjectMeta {
            name: Some(key_secret_name(&name)),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([
                (KEY_LABEL.to_string(), name),
                (KEY_ID_LABEL.to_string(), identity.key_id()),
            ])),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            IDENTITY_FIELD.to_string(),
            ByteString(identity.to_secret_string().as_bytes().to_vec()),
        )])),
        type_: Some("gitseal.dev/sealing-key".to_string()),
        immutable: Some(true),
        ..Default::default()
    }
}

/// The identity in a key Secret.
pub fn identity_of(secret: &Secret) -> Option<Identity> {
    let bytes = secret.data.as_ref()?.get(IDENTITY_FIELD)?;
    let text = Zeroizing::new(String::from_utf8(bytes.0.clone()).ok()?);
    Identity::parse(&text).ok()
}

/// The cluster's private keys, by key id.
#[derive(Default)]
pub struct PrivateKeys {
    by_id: BTreeMap<String, Identity>,
}

impl PrivateKeys {
    pub fn from_secrets<'a>(secrets: impl IntoIterator<Item = &'a Secret>) -> Self {
        let by_id = secrets
            .into_iter()
            .filter_map(identity_of)
            .map(|i| (i.key_id(), i))
            .collect();
        Self { by_id }
    }

    /// The identities among `wanted` key ids (no trial decryption: ids pick keys).
    pub fn pick(&self, wanted: &BTreeSet<String>) -> Vec<&Identity> {
        wanted.iter().filter_map(|id| self.by_id.get(id)).collect()
    }

    pub fn get(&self, key_id: &str) -> Option<&Identity> {
        self.by_id.get(key_id)
    }

    pub fn ids(&self) -> Vec<String> {
        self.by_id.keys().cloned().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// What the key rules need to know of one SealingKey.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyView {
    pub name: String,
    pub state: KeyState,
    /// Creation time, seconds since the epoch.
    pub created: i64,
}

impl KeyView {
    pub fn of(key: &SealingKey) -> Self {
        let created = key
            .status
            .as_ref()
            .and_then(|s| s.created.as_ref())
            .or(key.meta().creation_timestamp.as_ref())
            .map_or(0, |t| t.0.as_second());
        Self {
            name: key.name_any(),
            state: key.spec.state,
            created,
        }
    }
}

/// State changes that leave exactly one Active key: the newest Active key (by creation
/// time, then name) stays Active, every other Active key becomes DecryptOnly.
pub fn demotions(keys: &[KeyView]) -> Vec<String> {
    let newest = keys
        .iter()
        .filter(|k| k.state == KeyState::Active)
        .max_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)));
    let Some(newest) = newest else {
        return Vec::new();
    };
    keys.iter()
        .filter(|k| k.state == KeyState::Active && k.name != newest.name)
        .map(|k| k.name.clone())
        .collect()
}

/// Whether a new key must be created: none is Active, or the Active one is older than
/// `renew_after` seconds (0 disables renewal).
pub fn needs_new_key(keys: &[KeyView], now: i64, renew_after: i64) -> bool {
    match keys
        .iter()
        .filter(|k| k.state == KeyState::Active)
        .map(|k| k.created)
        .max()
    {
        None => true,
        Some(created) => renew_after > 0 && now - created >= renew_after,
    }
}

/// Name for the next key the controller creates: one past the highest `gitseal-N`. Two
/// replicas racing pick the same name, so only one creation succeeds.
pub fn next_key_name(keys: &[KeyView]) -> String {
    let n = keys
        .iter()
        .filter_map(|k| k.name.strip_prefix(KEY_NAME_PREFIX)?.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    format!("{KEY_NAME_PREFIX}{}", n + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(name: &str, state: KeyState, created: i64) -> KeyView {
        KeyView {
            name: name.into(),
            state,
            created,
        }
    }

    #[test]
    fn exactly_one_active() {
        let keys = [
            k("gitseal-1", KeyState::Active, 10),
            k("gitseal-2", KeyState::Active, 20),
            k("old", KeyState::DecryptOnly, 1),
        ];
        assert_eq!(demotions(&keys), ["gitseal-1"]);
        let tie = [k("a", KeyState::Active, 5), k("b", KeyState::Active, 5)];
        assert_eq!(demotions(&tie), ["a"]);
        assert!(demotions(&[k("a", KeyState::Retired, 1)]).is_empty());
    }

    #[test]
    fn renewal_and_names() {
        assert!(needs_new_key(&[], 100, 0));
        let keys = [
            k("gitseal-1", KeyState::DecryptOnly, 0),
            k("gitseal-7", KeyState::Active, 50),
            k("mine", KeyState::Active, 10),
        ];
        assert!(!needs_new_key(&keys, 100, 0));
        assert!(!needs_new_key(&keys, 100, 60));
        assert!(needs_new_key(&keys, 110, 60));
        assert_eq!(next_key_name(&keys), "gitseal-8");
        assert_eq!(next_key_name(&[]), "gitseal-1");
    }

    #[test]
    fn key_secret_round_trip() {
        let mut key = SealingKey::new("gitseal-1", Default::default());
        key.metadata.uid = Some("u1".into());
        let id = Identity::generate();
        let secret = key_secret(&key, &id, "gitseal-system");
        assert_eq!(
            secret.metadata.name.as_deref(),
            Some("gitseal-key-gitseal-1")
        );
        assert_eq!(
            secret.metadata.owner_references.as_ref().unwrap()[0].uid,
            "u1"
        );
        let keys = PrivateKeys::from_secrets([&secret]);
        assert_eq!(keys.ids(), [id.key_id()]);
        assert_eq!(
            keys.pick(&BTreeSet::from([id.key_id(), "other".into()]))
                .len(),
            1
        );
    }
}
