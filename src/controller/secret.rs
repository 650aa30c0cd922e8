//! The Secret a SealedSecret describes, and whether an existing Secret already says it.
//! Pure: no API calls. The comparison is the "content hash" that makes a restart over
//! in-sync objects write nothing: the controller's cache keeps a digest of each managed
//! Secret's data instead of the data (less memory, and no plain text held for every Secret);
//! the digest lives only in memory and is never written anywhere.

use crate::api::SealedSecret;
use crate::crypto::{Plaintext, hex};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};
use std::collections::BTreeMap;

/// Label on every Secret the controller writes (and the selector of its Secret watch).
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "gitseal");
/// Annotation that lets the controller take over an existing Secret it did not create.
pub const ADOPT_ANNOTATION: &str = "gitseal.dev/adopt";

/// The Secret `sealed` unseals to, given its opened values.
pub fn desired(sealed: &SealedSecret, values: BTreeMap<String, Plaintext>) -> Secret {
    let template = sealed.spec.template.clone().unwrap_or_default();
    let meta = template.metadata.unwrap_or_default();
    let mut labels: BTreeMap<String, String> = meta.labels.into_iter().collect();
    labels.insert(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string());
    Secret {
        metadata: ObjectMeta {
            name: Some(sealed.name_any()),
            namespace: sealed.namespace(),
            labels: Some(labels),
            annotations: (!meta.annotations.is_empty())
                .then(|| meta.annotations.into_iter().collect()),
            owner_references: sealed.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        data: Some(
            values
                .into_iter()
                .map(|(k, v)| (k, ByteString(v.expose().to_vec())))
                .collect(),
        ),
        type_: Some(template.type_.unwrap_or_else(|| "Opaque".to_string())),
        immutable: template.immutable,
        ..Default::default()
    }
}

/// SHA-256 over the length-prefixed keys and values.
pub fn data_digest(data: Option<&BTreeMap<String, ByteString>>) -> Digest {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    for (k, v) in data.into_iter().flatten() {
        for part in [k.as_bytes(), &v.0] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
    }
    h.finalize().into()
}

/// A [`data_digest`].
pub type Digest = [u8; 32];

/// What the controller's Secret cache keeps of a managed Secret: no data, only its digest, and
/// that in `metadata.generateName` (hex), a field that means nothing once a Secret exists and,
/// unlike a map entry, costs one string; no managedFields; no managed-by label (every cached
/// Secret has it: it is the watch's selector). Maps are what a Secret costs in memory.
pub fn for_cache(secret: &mut Secret) {
    let digest = data_digest(secret.data.as_ref());
    if let Some(data) = secret.data.take() {
        for (_, mut v) in data {
            zeroize::Zeroize::zeroize(&mut v.0);
        }
    }
    secret.metadata.managed_fields = None;
    secret.metadata.generate_name = Some(hex(&digest));
    let labels = &mut secret.metadata.labels;
    if let Some(l) = labels {
        if l.get(MANAGED_BY.0).is_some_and(|v| v == MANAGED_BY.1) {
            l.remove(MANAGED_BY.0);
        }
        if l.is_empty() {
            *labels = None;
        }
    }
}

/// Where an existing Secret was read from: the controller's cache (see [`for_cache`]) or
/// the API server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Cache,
    Server,
}

/// Whether `sealed` is the controller (owner) of `secret`.
pub fn owned_by(secret: &Secret, sealed: &SealedSecret) -> bool {
    let uid = sealed.meta().uid.as_deref();
    secret
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && Some(o.uid.as_str()) == uid)
}

/// Whether the existing Secret may be taken over although gitseal did not create it.
pub fn adoptable(secret: &Secret) -> bool {
    secret
        .annotations()
        .get(ADOPT_ANNOTATION)
        .is_some_and(|v| v == "true")
}

/// Whether `actual` already says everything `want` says, `want_digest` being the digest of
/// the data it should hold (extra labels and annotations that others added are left alone).
pub fn in_sync(actual: &Secret, from: Source, want: &Secret, want_digest: &Digest) -> bool {
    let contains = |have: &Option<BTreeMap<String, String>>,
                    need: &Option<BTreeMap<String, String>>| {
        need.iter().flatten().all(|(k, v)| {
            // Cached copies all carry the managed-by label: their watch selects on it.
            (from == Source::Cache && (k.as_str(), v.as_str()) == MANAGED_BY)
                || have.as_ref().and_then(|h| h.get(k)) == Some(v)
        })
    };
    let data_ok = match from {
        Source::Cache => actual.metadata.generate_name.as_deref() == Some(&hex(want_digest)),
        Source::Server => data_digest(actual.data.as_ref()) == *want_digest,
    };
    data_ok
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

    fn check(actual: &Secret, want: &Secret) -> bool {
        in_sync(
            actual,
            Source::Server,
            want,
            &data_digest(want.data.as_ref()),
        )
    }

    fn check_cached(actual: &Secret, want: &Secret) -> bool {
        let mut cached = actual.clone();
        for_cache(&mut cached);
        in_sync(
            &cached,
            Source::Cache,
            want,
            &data_digest(want.data.as_ref()),
        )
    }

    #[test]
    fn sync_detects_every_kind_of_drift() {
        let ss = sealed();
        let want = desired(
            &ss,
            BTreeMap::from([("k".to_string(), Plaintext::new(b"v".to_vec()))]),
        );
        assert!(owned_by(&want, &ss));
        let mut actual = want.clone();
        actual
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("extra".into(), "ok".into());
        assert!(check(&actual, &want) && check_cached(&actual, &want));
        let mut edited = want.clone();
        edited
            .data
            .as_mut()
            .unwrap()
            .insert("k".into(), ByteString(b"changed".to_vec()));
        assert!(!check(&edited, &want) && !check_cached(&edited, &want));
        let mut added = want.clone();
        added
            .data
            .as_mut()
            .unwrap()
            .insert("new".into(), ByteString(b"x".to_vec()));
        assert!(!check(&added, &want) && !check_cached(&added, &want));
        let mut relabelled = want.clone();
        relabelled.metadata.labels = None;
        assert!(!check(&relabelled, &want));
        let mut orphan = want.clone();
        orphan.metadata.owner_references = None;
        assert!(!check(&orphan, &want) && !owned_by(&orphan, &ss));
        assert!(!check_cached(&orphan, &want));
        let mut retyped = want.clone();
        retyped.type_ = Some("kubernetes.io/tls".into());
        assert!(!check(&retyped, &want) && !check_cached(&retyped, &want));

        // The cached form: no data, a digest, no managed-by label; compares the same way.
        let mut cached = want.clone();
        for_cache(&mut cached);
        assert!(cached.data.is_none() && cached.metadata.labels.is_none());
        assert!(check_cached(&want, &want));
        let mut moved = want.clone(); // same bytes, other key: a different digest
        let v = moved.data.as_mut().unwrap().remove("k").unwrap();
        moved.data.as_mut().unwrap().insert("kk".into(), v);
        assert!(!check_cached(&moved, &want));
        // A Secret read from the server must carry the label itself.
        let mut unlabelled = want.clone();
        unlabelled.metadata.labels = Some(BTreeMap::new());
        assert!(!check(&unlabelled, &want));
    }
}
