//! Reading a Secret manifest into validated parts: name, namespace, plain values (kept in
//! zeroizing types), labels, annotations, type, immutable and the scope annotation.

use super::docs::{bool_field, map_field, str_field, string_map, type_name};
use super::{Document, Location, ManifestError, Result};
use crate::crypto::Plaintext;
use crate::format::{MAX_VALUE_LEN, Scope};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use std::collections::BTreeMap;

/// Annotation on an input Secret choosing its scope (overridden by `--scope`).
pub const SCOPE_ANNOTATION: &str = "gitseal.dev/scope";
/// kubectl's bookkeeping annotation, which may hold the plain text: always dropped.
pub(crate) const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A validated Secret document. `Debug` shows no values.
pub struct SecretInput {
    pub at: Location,
    pub name: String,
    pub namespace: Option<String>,
    pub data: BTreeMap<String, Plaintext>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub type_: Option<String>,
    pub immutable: Option<bool>,
    /// Scope asked for by the `gitseal.dev/scope` annotation.
    pub scope: Option<Scope>,
    /// `spec.template.data`: key → Go template rendered over the values in the cluster. Only
    /// importers set it (Bitnami's files carry templates); a Secret manifest has none.
    pub template_data: BTreeMap<String, String>,
}

impl std::fmt::Debug for SecretInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretInput")
            .field("at", &self.at)
            .field("name", &self.name)
            .field("namespace", &self.namespace)
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Whether a document is a `v1 Secret`.
pub fn is_secret(doc: &Value) -> bool {
    doc.get("kind").and_then(Value::as_str) == Some("Secret")
        && doc
            .get("apiVersion")
            .and_then(Value::as_str)
            .is_some_and(|v| v == "v1")
}

/// Validate a document as a Secret. Values are decoded into `Plaintext` right away.
pub fn parse_secret(doc: &Document) -> Result<SecretInput> {
    let (v, at) = (&doc.value, &doc.at);
    if !v.is_object() {
        return Err(ManifestError::input(
            at.clone(),
            format!("expected a Secret manifest, found {}", type_name(v)),
        ));
    }
    let kind = str_field(v, at, "kind")?.unwrap_or("");
    if !is_secret(v) {
        let what = if kind.is_empty() {
            "a document without kind".to_string()
        } else {
            format!("kind {kind}")
        };
        return Err(ManifestError::input(
            at.field("kind"),
            format!("not a Secret (apiVersion v1, kind Secret): found {what}"),
        ));
    }
    let name = str_field(v, at, "metadata.name")?
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ManifestError::input(at.field("metadata.name"), "a Secret needs a name"))?
        .to_string();
    let namespace = str_field(v, at, "metadata.namespace")?
        .filter(|n| !n.is_empty())
        .map(str::to_string);

    let mut data = BTreeMap::new();
    if let Some(map) = map_field(v, at, "data")? {
        for (key, value) in map {
            let field = at.field(format!("data.{key}"));
            check_key(key, &field)?;
            let bytes = base64_value(value, &field)?;
            check_len(bytes.len(), &field)?;
            data.insert(key.clone(), Plaintext::new(bytes));
        }
    }
    for (key, value) in string_map(v, at, "stringData")? {
        let field = at.field(format!("stringData.{key}"));
        check_key(&key, &field)?;
        if data.contains_key(&key) {
            return Err(ManifestError::input(
                field,
                format!("duplicate key {key:?}: present in both data and stringData"),
            ));
        }
        check_len(value.len(), &field)?;
        data.insert(key, Plaintext::new(value.into_bytes()));
    }

    let labels = string_map(v, at, "metadata.labels")?.into_iter().collect();
    let mut annotations: BTreeMap<String, String> = string_map(v, at, "metadata.annotations")?
        .into_iter()
        .collect();
    annotations.remove(LAST_APPLIED);
    let scope = match annotations.remove(SCOPE_ANNOTATION) {
        None => None,
        Some(s) => Some(s.parse().map_err(|e: String| {
            ManifestError::input(
                at.field(format!("metadata.annotations.{SCOPE_ANNOTATION}")),
                e,
            )
        })?),
    };
    let type_ = str_field(v, at, "type")?.map(str::to_string);
    let immutable = bool_field(v, at, "immutable")?;
    Ok(SecretInput {
        at: at.clone(),
        name,
        namespace,
        data,
        labels,
        annotations,
        type_,
        immutable,
        scope,
        template_data: BTreeMap::new(),
    })
}

/// Kubernetes data keys, as the API server checks Secret and ConfigMap keys
/// (`IsConfigMapKey`): 1-253 of `[-._a-zA-Z0-9]`, neither `.` nor `..`, and not starting
/// with `..`. `gitseal seal` refuses other keys, and the controller reports them as the
/// object's fault (InvalidSpec) before opening anything, rather than as the API server's
/// refusal of the Secret.
pub fn check_key(key: &str, at: &Location) -> Result<()> {
    let problem = if key.is_empty()
        || key.len() > 253
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        "use 1-253 of [-._a-zA-Z0-9]"
    } else if key == "." || key == ".." {
        "'.' and '..' are not keys (use 1-253 of [-._a-zA-Z0-9])"
    } else if key.starts_with("..") {
        "a key may not start with '..'"
    } else {
        return Ok(());
    };
    Err(ManifestError::input(
        at.clone(),
        format!("invalid key name {}: {problem}", shown_key(key)),
    ))
}

/// `key` quoted, its first 64 characters only when it is longer (a message stays short).
fn shown_key(key: &str) -> String {
    const SHOWN: usize = 64;
    if key.chars().count() <= SHOWN {
        return format!("{key:?}");
    }
    let head: String = key.chars().take(SHOWN).collect();
    format!("{head:?}... ({} bytes)", key.len())
}

/// A base64 field's bytes (`null`: none). The bytes may be plain text: callers wrap them.
pub(crate) fn base64_value(value: &Value, field: &Location) -> Result<Vec<u8>> {
    let encoded = match value {
        Value::String(s) => s.as_str(),
        Value::Null => "",
        other => {
            return Err(ManifestError::input(
                field.clone(),
                format!("expected base64 text, found {}", type_name(other)),
            ));
        }
    };
    STANDARD
        .decode(encoded.trim())
        .map_err(|e| ManifestError::input(field.clone(), format!("invalid base64: {e}")))
}

pub(crate) fn check_len(len: usize, at: &Location) -> Result<()> {
    if len > MAX_VALUE_LEN {
        return Err(ManifestError::input(
            at.clone(),
            format!("value is {len} bytes, over the 1 MiB limit of a Kubernetes Secret"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_keys_not_values() {
        let docs = super::super::parse_documents(
            "s.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata: {name: a, namespace: b}\nstringData: {password: hunter2}\n",
        )
        .unwrap();
        let shown = format!("{:?}", parse_secret(&docs[0]).unwrap());
        assert!(
            shown.contains("password") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn keys_follow_the_api_servers_rule() {
        let at = Location::new("s.yaml", 1).field("data.k");
        for ok in "a A-b_c.d .a a. a..b .dockerconfigjson - _ .-.".split(' ') {
            assert!(check_key(ok, &at).is_ok(), "{ok:?} refused");
        }
        assert!(check_key(&"k".repeat(253), &at).is_ok());
        // The empty key first.
        for bad in ",.,..,..a,...,a/b,a b,p\u{e4}ss,a\0b,a:b".split(',') {
            let e = check_key(bad, &at).expect_err(bad);
            assert_eq!(e.at.field, "data.k");
            assert!(e.message.starts_with("invalid key name "), "{}", e.message);
        }
        let long = "k".repeat(10_000);
        let e = check_key(&long, &at).unwrap_err();
        assert!(e.message.contains("(10000 bytes)"), "{}", e.message);
        assert!(e.message.len() < 200, "{}", e.message);
        assert!(check_key(&"k".repeat(254), &at).is_err());
    }
}
