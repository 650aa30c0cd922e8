//! Offline checks of a SealedSecret that need no private key: the input limits, every value
//! parses and names an existing envelope, scopes agree, the binding matches the metadata,
//! every envelope is used, every wrapped key is a one-stanza age file wrapped only for known
//! key ids. `gitseal verify` prints these; the controller reports them as `InvalidSpec`.

use super::convert::bound_to;
use super::secret::check_key;
use super::{Location, ManifestError};
use crate::api::SealedSecret;
use crate::crypto::{self, CryptoError};
use crate::format::limits::{
    MAX_ENVELOPES, MAX_KEY_IDS, MAX_SEALED_VALUE_TEXT, MAX_VALUES, MAX_WRAPPED_KEY_TEXT,
    data_len_problem, plain_len_of,
};
use crate::format::{SealedValue, Target};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use std::collections::BTreeSet;

/// The first input limit `sealed` exceeds (docs/format.md § Limits), found with work
/// proportional to the number of entries only: nothing is decoded or decrypted.
pub fn check_limits(sealed: &SealedSecret, at: &Location) -> Option<ManifestError> {
    let spec = &sealed.spec;
    let over =
        |field: String, message: String| Some(ManifestError::over_limit(at.field(field), message));
    if spec.encrypted_data.len() > MAX_VALUES {
        return over(
            "spec.encryptedData".into(),
            format!(
                "{} values, over the limit of {MAX_VALUES} per object",
                spec.encrypted_data.len()
            ),
        );
    }
    if spec.envelopes.len() > MAX_ENVELOPES {
        return over(
            "spec.envelopes".into(),
            format!(
                "{} envelopes, over the limit of {MAX_ENVELOPES} per object (seal the whole Secret again to start with one)",
                spec.envelopes.len()
            ),
        );
    }
    let mut data = 0usize;
    for (key, value) in &spec.encrypted_data {
        if value.len() > MAX_SEALED_VALUE_TEXT {
            return over(
                format!("spec.encryptedData.{key}"),
                format!(
                    "sealed value is {} characters, over the limit of {MAX_SEALED_VALUE_TEXT} (a 1 MiB value)",
                    value.len()
                ),
            );
        }
        data += key.len() + plain_len_of(value).unwrap_or(0);
    }
    if let Some(problem) = data_len_problem(data) {
        return over("spec.encryptedData".into(), problem);
    }
    for (id, wrapped) in &spec.envelopes {
        if wrapped.len() > MAX_KEY_IDS {
            return over(
                format!("spec.envelopes.{id}"),
                format!(
                    "{} wrapped keys, over the limit of {MAX_KEY_IDS} per envelope",
                    wrapped.len()
                ),
            );
        }
        for (kid, w) in wrapped {
            if w.len() > MAX_WRAPPED_KEY_TEXT {
                return over(
                    format!("spec.envelopes.{id}.{kid}"),
                    format!(
                        "wrapped key is {} characters of base64, over the limit of {MAX_WRAPPED_KEY_TEXT} (a gitseal wrapped key is one age X25519 stanza, under 600)",
                        w.len()
                    ),
                );
            }
        }
    }
    None
}

/// Every structural problem of `sealed`. `known_key_ids`: when given, envelopes naming
/// any other key id are reported (a keyring or recovery key is missing, or a stranger's).
/// An object over the input limits gets that one problem and no further checks.
pub fn check_sealed(
    sealed: &SealedSecret,
    at: &Location,
    known_key_ids: Option<&BTreeSet<String>>,
) -> Vec<ManifestError> {
    if let Some(over) = check_limits(sealed, at) {
        return vec![over];
    }
    let mut problems_over = Vec::new();
    let mut problems = Vec::new();
    let mut problem = |field: String, message: String| {
        problems.push(ManifestError::input(at.field(field), message))
    };
    let spec = &sealed.spec;
    let name = sealed.metadata.name.clone().unwrap_or_default();
    let target = Target {
        namespace: sealed.metadata.namespace.as_deref(),
        name: &name,
    };

    if spec.scope.binds_namespace() && target.namespace.is_none() {
        problem(
            "metadata.namespace".into(),
            format!("{} scope needs metadata.namespace", spec.scope),
        );
    } else if spec.bound_to != bound_to(spec.scope, target) {
        let here = bound_to(spec.scope, target).unwrap_or_else(|| "nothing (cluster scope)".into());
        let there = spec.bound_to.clone().unwrap_or_else(|| "nothing".into());
        problem(
            "spec.boundTo".into(),
            format!(
                "sealed for {there}, but the metadata says {here} (values only open where they were sealed)"
            ),
        );
    }
    if spec.encrypted_data.is_empty() {
        problem("spec.encryptedData".into(), "no values".into());
    }
    let mut used = BTreeSet::new();
    for (key, value) in &spec.encrypted_data {
        let field = format!("spec.encryptedData.{key}");
        match SealedValue::parse(value) {
            Err(e) => problem(field, e.to_string()),
            Ok(v) => {
                if v.scope != spec.scope {
                    problem(
                        field.clone(),
                        format!(
                            "value is sealed with scope {} but spec.scope is {}",
                            v.scope, spec.scope
                        ),
                    );
                }
                if !spec.envelopes.contains_key(&v.envelope_id) {
                    problem(
                        field,
                        format!(
                            "references envelope {} which is not in spec.envelopes",
                            v.envelope_id
                        ),
                    );
                }
                used.insert(v.envelope_id);
            }
        }
    }
    for (id, wrapped) in &spec.envelopes {
        let field = format!("spec.envelopes.{id}");
        if !used.contains(id) {
            problem(field.clone(), "envelope is not used by any value".into());
        }
        if wrapped.is_empty() {
            problem(field.clone(), "envelope has no wrapped keys".into());
        }
        for (kid, w) in wrapped {
            let field = format!("{field}.{kid}");
            let shape = STANDARD
                .decode(w)
                .map_err(|_| CryptoError::MalformedWrappedKey("invalid base64".into()))
                .and_then(|b| crypto::check_wrapped(&b));
            match shape {
                Ok(()) => {}
                Err(e @ CryptoError::WrappedKeyStanzas { .. }) => {
                    problems_over.push(ManifestError::over_limit(at.field(&field), e.to_string()))
                }
                Err(_) => problem(field.clone(), "wrapped key is not a base64 age file".into()),
            }
            if let Some(known) = known_key_ids.filter(|k| !k.contains(kid)) {
                let list = known.iter().cloned().collect::<Vec<_>>().join(", ");
                problem(
                    field,
                    format!(
                        "wrapped for key id {kid}, which is not a known recipient (known: [{list}])"
                    ),
                );
            }
        }
    }
    if let Some(t) = &spec.template {
        for p in crate::template::check(&t.data) {
            problem(p.field(), p.message);
        }
    }
    problems.extend(check_secret_keys(sealed, at));
    problems.extend(problems_over);
    problems
}

/// Every key the Secret would get (`spec.encryptedData`, `spec.template.data`) that the API
/// server's rule for Secret keys refuses ([`check_key`], as `gitseal seal` applies it).
pub fn check_secret_keys(sealed: &SealedSecret, at: &Location) -> Vec<ManifestError> {
    let data = sealed
        .spec
        .encrypted_data
        .keys()
        .map(|k| ("spec.encryptedData", k));
    let templates = sealed
        .spec
        .template
        .iter()
        .flat_map(|t| t.data.keys())
        .map(|k| ("spec.template.data", k));
    data.chain(templates)
        .filter_map(|(map, key)| {
            // A key too long to be one is named by its head: status and Event messages are
            // short, and the message must still say what is wrong.
            let named: String = if key.len() > 253 {
                key.chars().take(64).chain("...".chars()).collect()
            } else {
                key.clone()
            };
            check_key(key, &at.field(format!("{map}.{named}"))).err()
        })
        .collect()
}

/// Whether a document is a SOPS-encrypted file (it carries sops' metadata and MAC).
pub fn is_sops_encrypted(doc: &Value) -> bool {
    doc.get("sops").is_some_and(|s| s.get("mac").is_some())
}

/// Whether a document is a plain Secret carrying values (what must never be committed).
pub fn is_plain_secret_with_data(doc: &Value) -> bool {
    let non_empty = |f: &str| {
        doc.get(f)
            .and_then(Value::as_object)
            .is_some_and(|m| !m.is_empty())
    };
    super::is_secret(doc) && (non_empty("data") || non_empty("stringData"))
}
