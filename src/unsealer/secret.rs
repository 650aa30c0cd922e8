//! The Secret a SealedSecret describes (one builder, for `gitseal unseal` and the controller),
//! the controller's view of a Secret it manages, and whether an existing Secret already says
//! what it should. The comparison is the "content hash" that makes a restart over in-sync
//! objects write nothing: the controller never holds a managed Secret's data, only a digest of
//! it, taken while the API server's answer is read ([`ManagedSecret`]); the digest lives in
//! memory only and is never written anywhere.

use crate::api::SealedSecret;
use crate::crypto::Plaintext;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::{ByteString, NamespaceResourceScope};
use kube::Resource;
use kube::api::ObjectMeta;
use serde::de::{Deserializer, MapAccess, Visitor};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Label on every Secret the controller writes (and the selector of its Secret watch).
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "gitseal");
/// Annotation that lets the controller take over an existing Secret it did not create.
pub const ADOPT_ANNOTATION: &str = "gitseal.dev/adopt";

/// The Secret `sealed` describes, given its opened values: its name and namespace, and the
/// template's type, immutability, labels and annotations. What `gitseal unseal` prints.
pub fn describe(sealed: &SealedSecret, values: BTreeMap<String, Plaintext>) -> Secret {
    let template = sealed.spec.template.clone().unwrap_or_default();
    let meta = template.metadata.unwrap_or_default();
    let non_empty = |m: crate::format::Map<String>| {
        (!m.is_empty()).then(|| m.into_iter().collect::<BTreeMap<_, _>>())
    };
    Secret {
        metadata: ObjectMeta {
            name: sealed.metadata.name.clone(),
            namespace: sealed.metadata.namespace.clone(),
            labels: non_empty(meta.labels),
            annotations: non_empty(meta.annotations),
            ..Default::default()
        },
        data: Some(
            values
                .into_iter()
                .map(|(k, v)| (k, ByteString(v.expose().to_vec())))
                .collect(),
        ),
        type_: template.type_,
        immutable: template.immutable,
        ..Default::default()
    }
}

/// The Secret the controller writes for `sealed`: [`describe`], marked as the controller's
/// (the managed-by label, `sealed` as its controlling owner) and with its type spelled out.
pub fn desired(sealed: &SealedSecret, values: BTreeMap<String, Plaintext>) -> Secret {
    let mut secret = describe(sealed, values);
    mark(&mut secret, sealed);
    secret
}

/// Mark a [`describe`]d Secret as the controller writes it (see [`desired`]).
pub fn mark(secret: &mut Secret, sealed: &SealedSecret) {
    secret
        .metadata
        .labels
        .get_or_insert_default()
        .insert(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string());
    secret.metadata.owner_references = sealed.controller_owner_ref(&()).map(|o| vec![o]);
    secret.type_.get_or_insert_with(|| "Opaque".to_string());
}

/// Overwrite a built Secret's values with zeros once it is written or judged (the values are
/// plain text; the allocator would otherwise hand them on as they are).
pub fn wipe(secret: &mut Secret) {
    use zeroize::Zeroize;
    for v in secret.data.iter_mut().flat_map(|d| d.values_mut()) {
        v.0.zeroize();
    }
}

/// SHA-256 over the length-prefixed keys and values.
pub fn data_digest(data: Option<&BTreeMap<String, ByteString>>) -> Digest {
    let mut h = DataHasher::default();
    for (k, v) in data.into_iter().flatten() {
        h.add(k, &v.0);
    }
    h.finish()
}

/// A [`data_digest`].
pub type Digest = [u8; 32];

#[derive(Default)]
struct DataHasher(sha2::Sha256);

impl DataHasher {
    fn add(&mut self, key: &str, value: &[u8]) {
        use sha2::Digest as _;
        for part in [key.as_bytes(), value] {
            self.0.update((part.len() as u64).to_be_bytes());
            self.0.update(part);
        }
    }

    fn finish(self) -> Digest {
        use sha2::Digest as _;
        self.0.finalize().into()
    }
}

/// A Secret as the controller keeps it: metadata (without managedFields), type,
/// immutability, and the digest of its data instead of the data. Read straight from the
/// API server's answers (watch and get): each value is decoded, hashed and wiped as it is
/// read, so a managed Secret's plain text never stays in the controller's memory, and a cache
/// of many Secrets costs their metadata only.
#[derive(Clone, Debug, PartialEq)]
pub struct ManagedSecret {
    /// Labels without [`MANAGED_BY`]: every cached Secret has it (the watch selects on it),
    /// and a one-entry map costs more than the rest of the metadata of most Secrets.
    pub metadata: ObjectMeta,
    /// Whether the Secret carries the [`MANAGED_BY`] label.
    pub managed_label: bool,
    pub type_: Option<String>,
    pub immutable: Option<bool>,
    pub digest: Digest,
}

impl ManagedSecret {
    /// The view of a whole Secret.
    pub fn of(secret: &Secret) -> Self {
        let mut metadata = secret.metadata.clone();
        let managed_label = trim(&mut metadata);
        Self {
            metadata,
            managed_label,
            type_: secret.type_.clone(),
            immutable: secret.immutable,
            digest: data_digest(secret.data.as_ref()),
        }
    }
}

impl Resource for ManagedSecret {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        Secret::kind(&())
    }
    fn group(_: &()) -> Cow<'_, str> {
        Secret::group(&())
    }
    fn version(_: &()) -> Cow<'_, str> {
        Secret::version(&())
    }
    fn plural(_: &()) -> Cow<'_, str> {
        Secret::plural(&())
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl<'de> serde::Deserialize<'de> for ManagedSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        struct Raw {
            #[serde(default)]
            metadata: ObjectMeta,
            #[serde(rename = "type", default)]
            type_: Option<String>,
            #[serde(default)]
            immutable: Option<bool>,
            #[serde(default, deserialize_with = "digest_of_data")]
            data: Option<Digest>,
        }
        let mut raw = Raw::deserialize(d)?;
        let managed_label = trim(&mut raw.metadata);
        Ok(Self {
            metadata: raw.metadata,
            managed_label,
            type_: raw.type_,
            immutable: raw.immutable,
            digest: raw.data.unwrap_or_else(|| data_digest(None)),
        })
    }
}

/// Drop what the controller never reads (managedFields) or knows anyway (the [`MANAGED_BY`]
/// label, returned as whether it was there).
fn trim(meta: &mut ObjectMeta) -> bool {
    meta.managed_fields = None;
    let Some(labels) = &mut meta.labels else {
        return false;
    };
    let managed = labels.get(MANAGED_BY.0).is_some_and(|v| v == MANAGED_BY.1);
    if managed {
        labels.remove(MANAGED_BY.0);
    }
    if labels.is_empty() {
        meta.labels = None;
    }
    managed
}

/// `data` (keys in order, values base64) hashed as [`data_digest`] does, without keeping it.
fn digest_of_data<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Digest>, D::Error> {
    struct Data;
    impl<'de> Visitor<'de> for Data {
        type Value = Option<Digest>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a Secret's data")
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_map(self)
        }
        fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
            // The digest is over keys in order; JSON objects need not be sorted.
            let mut entries: BTreeMap<String, zeroize::Zeroizing<Vec<u8>>> = BTreeMap::new();
            while let Some((k, v)) = map.next_entry::<String, ByteString>()? {
                entries.insert(k, zeroize::Zeroizing::new(v.0));
            }
            let mut h = DataHasher::default();
            for (k, v) in &entries {
                h.add(k, v);
            }
            Ok(Some(h.finish()))
        }
    }
    d.deserialize_option(Data)
}

/// Whether `sealed` is the controller (owner) of `secret`.
pub fn owned_by(secret: &ObjectMeta, sealed: &SealedSecret) -> bool {
    let uid = sealed.meta().uid.as_deref();
    secret
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && Some(o.uid.as_str()) == uid)
}

/// Whether the existing Secret may be taken over although gitseal did not create it.
pub fn adoptable(secret: &ObjectMeta) -> bool {
    secret
        .annotations
        .as_ref()
        .and_then(|a| a.get(ADOPT_ANNOTATION))
        .is_some_and(|v| v == "true")
}

/// Whether `actual` already says everything `want` says, `want_digest` being the digest of
/// the data it should hold (extra labels and annotations that others added are left alone).
pub fn in_sync(actual: &ManagedSecret, want: &Secret, want_digest: &Digest) -> bool {
    let contains = |have: &Option<BTreeMap<String, String>>,
                    need: &Option<BTreeMap<String, String>>| {
        need.iter().flatten().all(|(k, v)| {
            ((k.as_str(), v.as_str()) == MANAGED_BY && actual.managed_label)
                || have.as_ref().and_then(|h| h.get(k)) == Some(v)
        })
    };
    actual.digest == *want_digest
        && actual.type_.as_deref().unwrap_or("Opaque") == want.type_.as_deref().unwrap_or("Opaque")
        && actual.immutable.unwrap_or(false) == want.immutable.unwrap_or(false)
        && contains(&actual.metadata.labels, &want.metadata.labels)
        && contains(&actual.metadata.annotations, &want.metadata.annotations)
        && want.metadata.owner_references.iter().flatten().all(|w| {
            actual
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|a| a.uid == w.uid && a.controller == w.controller)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SealedSecretSpec;

    fn sealed() -> SealedSecret {
        let mut s = SealedSecret::new("db", SealedSecretSpec::default());
        s.metadata.namespace = Some("prod".into());
        s.metadata.uid = Some("uid-1".into());
        s
    }

    /// The view the controller gets from the API server's JSON (watch or get).
    fn read(actual: &Secret) -> ManagedSecret {
        serde_json::from_value(serde_json::to_value(actual).unwrap()).unwrap()
    }

    fn check(actual: &Secret, want: &Secret) -> bool {
        let digest = data_digest(want.data.as_ref());
        let (a, b) = (
            in_sync(&ManagedSecret::of(actual), want, &digest),
            in_sync(&read(actual), want, &digest),
        );
        assert_eq!(a, b, "the view of a whole Secret and the one read differ");
        a
    }

    #[test]
    fn sync_detects_every_kind_of_drift() {
        let ss = sealed();
        let want = desired(
            &ss,
            BTreeMap::from([("k".to_string(), Plaintext::new(b"v".to_vec()))]),
        );
        assert!(owned_by(&want.metadata, &ss));
        assert!(check(&want, &want));
        let mut actual = want.clone();
        actual
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("extra".into(), "ok".into());
        assert!(check(&actual, &want));
        let mut edited = want.clone();
        edited
            .data
            .as_mut()
            .unwrap()
            .insert("k".into(), ByteString(b"changed".to_vec()));
        assert!(!check(&edited, &want));
        let mut added = want.clone();
        added
            .data
            .as_mut()
            .unwrap()
            .insert("new".into(), ByteString(b"x".to_vec()));
        assert!(!check(&added, &want));
        let mut relabelled = want.clone();
        relabelled.metadata.labels = None;
        assert!(!check(&relabelled, &want));
        let mut other_manager = want.clone();
        other_manager.metadata.labels = Some(BTreeMap::from([(
            MANAGED_BY.0.to_string(),
            "helm".to_string(),
        )]));
        assert!(!check(&other_manager, &want));
        let mut orphan = want.clone();
        orphan.metadata.owner_references = None;
        assert!(!check(&orphan, &want) && !owned_by(&orphan.metadata, &ss));
        let mut retyped = want.clone();
        retyped.type_ = Some("kubernetes.io/tls".into());
        assert!(!check(&retyped, &want));
        let mut moved = want.clone(); // same bytes, other key: a different digest
        let v = moved.data.as_mut().unwrap().remove("k").unwrap();
        moved.data.as_mut().unwrap().insert("kk".into(), v);
        assert!(!check(&moved, &want));
    }

    #[test]
    fn the_view_keeps_no_data_and_no_managed_by_label() {
        let ss = sealed();
        let want = desired(
            &ss,
            BTreeMap::from([("k".to_string(), Plaintext::new(b"hunter2".to_vec()))]),
        );
        let view = read(&want);
        assert!(view.managed_label && view.metadata.labels.is_none());
        assert!(!format!("{view:?}").contains("hunter2"));
        assert_eq!(view.digest, data_digest(want.data.as_ref()));
        // Unsorted JSON keys hash as the sorted map does; no data is the empty digest.
        let json =
            serde_json::json!({"metadata": {"name": "x"}, "data": {"b": "Yg==", "a": "YQ=="}});
        let unsorted: ManagedSecret = serde_json::from_value(json).unwrap();
        let sorted = BTreeMap::from([
            ("a".to_string(), ByteString(b"a".to_vec())),
            ("b".to_string(), ByteString(b"b".to_vec())),
        ]);
        assert_eq!(unsorted.digest, data_digest(Some(&sorted)));
        let empty: ManagedSecret =
            serde_json::from_value(serde_json::json!({"metadata": {}, "data": null})).unwrap();
        assert_eq!(empty.digest, data_digest(None));
        // Bad base64 is an error, not an empty Secret.
        let bad = serde_json::json!({"metadata": {}, "data": {"a": "%%%"}});
        assert!(serde_json::from_value::<ManagedSecret>(bad).is_err());
    }

    #[test]
    fn unseal_prints_the_template_and_the_controller_marks_it() {
        let mut ss = sealed();
        ss.spec.template = Some(crate::api::SecretTemplate {
            type_: Some("kubernetes.io/tls".into()),
            ..Default::default()
        });
        let values = || BTreeMap::from([("k".to_string(), Plaintext::new(b"v".to_vec()))]);
        let plain = describe(&ss, values());
        assert!(plain.metadata.labels.is_none() && plain.metadata.owner_references.is_none());
        let managed = desired(&ss, values());
        assert_eq!(managed.type_.as_deref(), Some("kubernetes.io/tls"));
        assert_eq!(managed.data, plain.data);
        assert!(owned_by(&managed.metadata, &ss));
        ss.spec.template = None;
        assert_eq!(desired(&ss, values()).type_.as_deref(), Some("Opaque"));
        assert_eq!(describe(&ss, values()).type_, None);
    }
}
