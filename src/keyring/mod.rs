//! Cluster key material: the Secret that holds a SealingKey's private half (in the
//! controller's namespace, owned by the SealingKey), which key Secrets are trusted, picking
//! private keys by key id, and the pure rules of the key set (see [`lifecycle`]).
//! Knows the API types; knows nothing of reconcile loops or the network.

pub mod backup;
pub mod lifecycle;

pub use lifecycle::{Held, KeyView, Retirement, Verdict, next_key_name};

use crate::api::SealingKey;
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
/// Type of every key Secret (and refused for any Secret written from a SealedSecret).
pub const KEY_SECRET_TYPE: &str = "gitseal.dev/sealing-key";
/// Finalizer on SealingKeys and key Secrets: a key still in use is never deleted, not even
/// by an owner's deletion (an Argo CD prune, a foreground cascade).
pub const KEY_FINALIZER: &str = "gitseal.dev/key-in-use";
/// Field manager of the key manager's writes (key Secrets, SealingKey finalizers).
pub const KEY_FIELD_MANAGER: &str = "gitseal-keys";
/// Field manager, label and owner kind that mark Secrets the unsealer writes: a key Secret
/// carrying any of them came from a SealedSecret and is never trusted.
pub const UNSEALER_FIELD_MANAGER: &str = "gitseal-controller";
pub const UNSEALER_LABEL: (&str, &str) = ("app.kubernetes.io/managed-by", "gitseal");

/// Name of the Secret holding SealingKey `key`'s private half.
pub fn key_secret_name(key: &str) -> String {
    format!("gitseal-key-{key}")
}

/// The key Secret for `key` (as the API server returned it: its uid is the owner reference
/// that makes the Secret trusted). Owned by the SealingKey, and held by [`KEY_FINALIZER`] so
/// that only the key manager deletes it, once nothing uses the key.
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
            finalizers: Some(vec![KEY_FINALIZER.to_string()]),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            IDENTITY_FIELD.to_string(),
            ByteString(identity.to_secret_string().as_bytes().to_vec()),
        )])),
        type_: Some(KEY_SECRET_TYPE.to_string()),
        immutable: Some(true),
        ..Default::default()
    }
}

/// The identity in a key Secret, whoever wrote it: see [`trusted_identity`] before using it.
pub fn identity_of(secret: &Secret) -> Option<Identity> {
    let bytes = secret.data.as_ref()?.get(IDENTITY_FIELD)?;
    let text = Zeroizing::new(String::from_utf8(bytes.0.clone()).ok()?);
    Identity::parse(&text).ok()
}

/// Why a key Secret is not trusted as the private half of a SealingKey.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Untrusted {
    #[error("Secret type is {0:?}, not {KEY_SECRET_TYPE}")]
    WrongType(String),
    #[error("no SealingKey named {0} exists")]
    NoSuchKey(String),
    #[error("is not named after SealingKey {0}")]
    WrongName(String),
    #[error("not owned by SealingKey {0} (owner uid differs)")]
    NotOwned(String),
    #[error("carries the marks of a Secret unsealed from a SealedSecret")]
    FromSealedSecret,
    #[error("holds no valid identity")]
    NoIdentity,
    #[error("its identity ({0}) is not the SealingKey's public key")]
    WrongIdentity(String),
}

/// The SealingKey a key Secret claims to belong to (by its label).
pub fn claimed_key(secret: &Secret) -> Option<&str> {
    secret
        .metadata
        .labels
        .as_ref()?
        .get(KEY_LABEL)
        .map(String::as_str)
}

/// The identity in `secret` if it is trusted as the private half of one of `keys`: its type
/// is [`KEY_SECRET_TYPE`]; it carries none of the unsealer's marks (field manager, label,
/// SealedSecret owner); it is named after the SealingKey its label names and an owner
/// reference names that SealingKey's uid; and, once the SealingKey's status names a public
/// key, the identity is that key's. Never by name alone.
pub fn trusted_identity<'k>(
    secret: &Secret,
    keys: impl IntoIterator<Item = &'k SealingKey>,
) -> Result<(&'k SealingKey, Identity), Untrusted> {
    let type_ = secret.type_.as_deref().unwrap_or("Opaque");
    if type_ != KEY_SECRET_TYPE {
        return Err(Untrusted::WrongType(type_.to_string()));
    }
    let meta = &secret.metadata;
    let from_unsealer = meta
        .managed_fields
        .iter()
        .flatten()
        .any(|m| m.manager.as_deref() == Some(UNSEALER_FIELD_MANAGER))
        || meta
            .labels
            .as_ref()
            .and_then(|l| l.get(UNSEALER_LABEL.0))
            .is_some_and(|v| v == UNSEALER_LABEL.1)
        || meta
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.kind == "SealedSecret");
    if from_unsealer {
        return Err(Untrusted::FromSealedSecret);
    }
    let name = claimed_key(secret).unwrap_or_default();
    let key = keys
        .into_iter()
        .find(|k| k.metadata.name.as_deref() == Some(name))
        .ok_or_else(|| Untrusted::NoSuchKey(name.to_string()))?;
    if meta.name.as_deref() != Some(key_secret_name(name).as_str()) {
        return Err(Untrusted::WrongName(name.to_string()));
    }
    let owned = meta
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "SealingKey" && Some(o.uid.as_str()) == key.metadata.uid.as_deref());
    if !owned {
        return Err(Untrusted::NotOwned(name.to_string()));
    }
    let identity = identity_of(secret).ok_or(Untrusted::NoIdentity)?;
    if let Some(public) = key.status.as_ref().and_then(|s| s.public_key.as_deref())
        && identity.recipient().as_str() != public
    {
        return Err(Untrusted::WrongIdentity(identity.key_id()));
    }
    Ok((key, identity))
}

/// The cluster's private keys, by key id: only those of trusted key Secrets.
#[derive(Default)]
pub struct PrivateKeys {
    by_id: BTreeMap<String, Identity>,
}

impl PrivateKeys {
    /// The trusted identities among `secrets` (see [`trusted_identity`]).
    pub fn trusted<'a>(
        secrets: impl IntoIterator<Item = &'a Secret>,
        keys: &[&SealingKey],
    ) -> Self {
        let by_id = secrets
            .into_iter()
            .filter_map(|s| trusted_identity(s, keys.iter().copied()).ok())
            .map(|(_, i)| (i.key_id(), i))
            .collect();
        Self { by_id }
    }

    /// The identities among `wanted` key ids (no trial decryption: ids pick keys).
    pub fn pick(&self, wanted: &BTreeSet<String>) -> Vec<&Identity> {
        wanted.iter().filter_map(|id| self.by_id.get(id)).collect()
    }

    /// Every trusted identity.
    pub fn identities(&self) -> Vec<&Identity> {
        self.by_id.values().collect()
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let keys = PrivateKeys::trusted([&secret], &[&key]);
        assert_eq!(keys.ids(), [id.key_id()]);
        assert_eq!(
            keys.pick(&BTreeSet::from([id.key_id(), "other".into()]))
                .len(),
            1
        );
        assert_eq!(
            secret.metadata.finalizers.as_deref(),
            Some(&[KEY_FINALIZER.to_string()][..])
        );
    }

    /// Every shape of a planted key Secret is refused: what a SealedSecret could make the
    /// unsealer write, a Secret named right but not owned, the wrong type, the wrong name,
    /// the wrong identity.
    #[test]
    fn only_owned_typed_matching_key_secrets_are_trusted() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, OwnerReference};
        let mut key = SealingKey::new("gitseal-2", Default::default());
        key.metadata.uid = Some("u2".into());
        let real = Identity::generate();
        let good = key_secret(&key, &real, "gitseal-system");
        assert!(trusted_identity(&good, [&key]).is_ok());
        let attacker = Identity::generate();
        let planted = key_secret(&key, &attacker, "gitseal-system");
        let refused = |s: &Secret, k: &SealingKey| trusted_identity(s, [k]).err();

        let mut wrong_type = planted.clone();
        wrong_type.type_ = Some("Opaque".into());
        assert!(matches!(
            refused(&wrong_type, &key),
            Some(Untrusted::WrongType(_))
        ));
        let mut unowned = planted.clone();
        unowned.metadata.owner_references.as_mut().unwrap()[0].uid = "other".into();
        assert_eq!(
            refused(&unowned, &key),
            Some(Untrusted::NotOwned("gitseal-2".into()))
        );
        let mut renamed = planted.clone();
        renamed.metadata.name = Some("gitseal-key-other".into());
        assert_eq!(
            refused(&renamed, &key),
            Some(Untrusted::WrongName("gitseal-2".into()))
        );
        let mut by_unsealer = planted.clone();
        let labels = by_unsealer.metadata.labels.as_mut().unwrap();
        labels.insert(UNSEALER_LABEL.0.into(), UNSEALER_LABEL.1.into());
        assert_eq!(
            refused(&by_unsealer, &key),
            Some(Untrusted::FromSealedSecret)
        );
        let mut applied = planted.clone();
        applied.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
            manager: Some(UNSEALER_FIELD_MANAGER.into()),
            operation: Some("Apply".into()),
            ..Default::default()
        }]);
        assert_eq!(refused(&applied, &key), Some(Untrusted::FromSealedSecret));
        let mut sealed_owner = planted.clone();
        sealed_owner
            .metadata
            .owner_references
            .as_mut()
            .unwrap()
            .push(OwnerReference {
                kind: "SealedSecret".into(),
                name: "x".into(),
                uid: "ux".into(),
                api_version: "gitseal.dev/v1alpha1".into(),
                ..Default::default()
            });
        assert_eq!(
            refused(&sealed_owner, &key),
            Some(Untrusted::FromSealedSecret)
        );
        // Once the SealingKey's status names its public key, only that identity is trusted.
        let mut published = key.clone();
        published.status = Some(crate::api::SealingKeyStatus {
            public_key: Some(real.recipient().as_str().to_string()),
            ..Default::default()
        });
        assert!(trusted_identity(&good, [&published]).is_ok());
        assert!(matches!(
            refused(&planted, &published),
            Some(Untrusted::WrongIdentity(_))
        ));
        let other = SealingKey::new("gitseal-9", Default::default());
        assert_eq!(
            refused(&planted, &other),
            Some(Untrusted::NoSuchKey("gitseal-2".into()))
        );
        assert!(PrivateKeys::trusted([&planted, &wrong_type], &[&published]).is_empty());
    }
}
