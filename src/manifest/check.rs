//! Offline checks of a SealedSecret that need no private key: every value parses and names
//! an existing envelope, scopes agree, the binding matches the metadata, every envelope is
//! used and wrapped only for known key ids. `gitseal verify` prints these; the controller
//! reports them as `InvalidSpec`.

use super::convert::bound_to;
use super::{Location, ManifestError};
use crate::api::SealedSecret;
use crate::format::{SealedValue, Target};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use std::collections::BTreeSet;

/// Every structural problem of `sealed`. `known_key_ids`: when given, envelopes naming
/// any other key id are reported (a keyring or recovery key is missing, or a stranger's).
pub fn check_sealed(
    sealed: &SealedSecret,
    at: &Location,
    known_key_ids: Option<&BTreeSet<String>>,
) -> Vec<ManifestError> {
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
            if STANDARD
                .decode(w)
                .map_or(true, |b| !b.starts_with(b"age-encryption.org/v1\n"))
            {
                problem(field.clone(), "wrapped key is not a base64 age file".into());
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
    problems
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
