//! Bitnami Sealed Secrets (`bitnami.com/v1alpha1` SealedSecret): their controller's exported
//! RSA private keys, and opening a SealedSecret's `spec.encryptedData` with them into a
//! [`SecretInput`] (values, template metadata and data, Bitnami's scope mapped to gitseal's).
//!
//! Each value is base64 of `u16 big-endian length of the RSA ciphertext ‖ RSA-OAEP(SHA-256,
//! MGF1-SHA-256) ciphertext of a 32-byte session key ‖ AES-256-GCM ciphertext under that key
//! with a zero nonce and no associated data` (Bitnami's `pkg/crypto/crypto.go`, v0.36.6). The
//! OAEP label binds the value: `namespace/name` (strict), `namespace` (namespace-wide) or empty
//! (cluster-wide), chosen by the SealedSecret's own `sealedsecrets.bitnami.com/*` annotations
//! (`sealedsecret_expansion.go`). A value carries no key id: every key is tried.
//!
//! Crypto is the audited `rsa` and `aes-gcm` crates. RUSTSEC-2023-0071 (the Marvin timing
//! attack on `rsa`'s decryption) needs an attacker who submits chosen ciphertexts and times
//! the decryptions; this is offline decryption of one's own committed files on one's own
//! machine, with no oracle to query (blinded all the same).

use crate::crypto::Plaintext;
use crate::format::Scope;
use crate::manifest::{
    Document, ErrorKind, LAST_APPLIED, Location, ManifestError, SecretInput, base64_value,
    bool_field, check_key, check_len, map_field, parse_documents, str_field, string_map, type_name,
    wrong_kind,
};
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::{Oaep, RsaPrivateKey};
use serde_json::Value;
use sha2::Sha256;
use std::collections::BTreeMap;
use zeroize::Zeroizing;

/// Bitnami's API group and version.
pub const API_VERSION: &str = "bitnami.com/v1alpha1";
/// Prefix of Bitnami's own annotations (scope, managed, patch, ...): not carried over.
const ANNOTATION_PREFIX: &str = "sealedsecrets.bitnami.com/";
const CLUSTER_WIDE: &str = "sealedsecrets.bitnami.com/cluster-wide";
const NAMESPACE_WIDE: &str = "sealedsecrets.bitnami.com/namespace-wide";
/// The AES-256 session key wrapped with RSA-OAEP.
const SESSION_KEY_LEN: usize = 32;
/// Where the key Secrets Bitnami's controller makes hold the PEM private key.
const TLS_KEY: &str = "tls.key";

/// One of the Bitnami controller's RSA private keys. Zeroized on drop (the `rsa` crate's own
/// `ZeroizeOnDrop`); `Debug` shows only where it came from.
pub struct BitnamiKey {
    key: RsaPrivateKey,
    from: String,
}

impl std::fmt::Debug for BitnamiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BitnamiKey")
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

/// Whether a document is a Bitnami SealedSecret.
pub fn is_bitnami(doc: &Value) -> bool {
    doc.get("kind").and_then(Value::as_str) == Some("SealedSecret")
        && doc.get("apiVersion").and_then(Value::as_str) == Some(API_VERSION)
}

/// The private keys of one key file (`file` names it in errors): PEM (PKCS#1 `RSA PRIVATE
/// KEY` or PKCS#8 `PRIVATE KEY` blocks; certificates beside them are ignored), or the backup
/// Bitnami documents: Secrets (a `v1 List` or several documents) each with `data["tls.key"]`
/// the base64 of such a PEM. A file that yields no key is an error.
pub fn parse_keys(file: &str, text: &str) -> Result<Vec<BitnamiKey>, ManifestError> {
    let mut keys = Vec::new();
    if text.trim_start().starts_with("-----BEGIN") {
        pem_keys(&Location::new(file, 0), text, &mut keys)?;
    } else {
        for doc in parse_documents(file, text)? {
            let v = &doc.value;
            match v.get("kind").and_then(Value::as_str) {
                Some("List") => {
                    let items = match v.get("items") {
                        None | Some(Value::Null) => &[][..],
                        Some(Value::Array(a)) => a.as_slice(),
                        Some(other) => {
                            return Err(ManifestError::input(
                                doc.at.field("items"),
                                format!("expected a list, found {}", type_name(other)),
                            ));
                        }
                    };
                    for (i, item) in items.iter().enumerate() {
                        secret_keys(item, &doc.at, &format!("items[{i}]."), &mut keys)?;
                    }
                }
                _ => secret_keys(v, &doc.at, "", &mut keys)?,
            }
        }
    }
    if keys.is_empty() {
        return Err(ManifestError::input(
            Location::new(file, 0),
            "no RSA private key: expected PEM (RSA PRIVATE KEY or PRIVATE KEY) or the key \
             Secrets of `kubectl get secret -n kube-system -l \
             sealedsecrets.bitnami.com/sealed-secrets-key -o yaml`",
        ));
    }
    Ok(keys)
}

/// The key of one Secret document (`prefix` locates it inside a List).
fn secret_keys(
    v: &Value,
    at: &Location,
    prefix: &str,
    out: &mut Vec<BitnamiKey>,
) -> Result<(), ManifestError> {
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("none");
    if kind != "Secret" {
        return Err(ManifestError::input(
            at.field(format!("{prefix}kind")),
            format!("expected a key Secret (or a List of them), found kind {kind}"),
        ));
    }
    let field = at.field(format!("{prefix}data.{TLS_KEY}"));
    let Some(encoded) = v.get("data").and_then(|d| d.get(TLS_KEY)) else {
        return Err(ManifestError::input(
            field,
            "no private key here: Bitnami's key Secrets hold it in data[\"tls.key\"]",
        ));
    };
    let pem = Zeroizing::new(base64_value(encoded, &field)?);
    let pem = std::str::from_utf8(&pem)
        .map_err(|_| ManifestError::input(field.clone(), "not PEM text"))?;
    let before = out.len();
    pem_keys(&field, pem, out)?;
    if out.len() == before {
        return Err(ManifestError::input(
            field,
            "no RSA private key in this PEM",
        ));
    }
    Ok(())
}

/// Every private key block of a PEM text; other blocks (certificates) are skipped.
fn pem_keys(at: &Location, text: &str, out: &mut Vec<BitnamiKey>) -> Result<(), ManifestError> {
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let block = &rest[start..];
        let label_end = block["-----BEGIN ".len()..]
            .find("-----")
            .ok_or_else(|| ManifestError::input(at.clone(), "malformed PEM header"))?;
        let label = &block["-----BEGIN ".len()..][..label_end];
        let end_marker = format!("-----END {label}-----");
        let end = block
            .find(&end_marker)
            .ok_or_else(|| ManifestError::input(at.clone(), format!("PEM {label}: no END line")))?
            + end_marker.len();
        let pem = &block[..end];
        let key = match label {
            "RSA PRIVATE KEY" => Some(RsaPrivateKey::from_pkcs1_pem(pem).map_err(|e| {
                ManifestError::input(at.clone(), format!("PKCS#1 RSA private key: {e}"))
            })?),
            "PRIVATE KEY" => Some(RsaPrivateKey::from_pkcs8_pem(pem).map_err(|e| {
                ManifestError::input(at.clone(), format!("PKCS#8 private key (RSA): {e}"))
            })?),
            _ => None,
        };
        if let Some(key) = key {
            out.push(BitnamiKey {
                key,
                from: at.to_string(),
            });
        }
        rest = &block[end..];
    }
    Ok(())
}

/// Bitnami's scope of a SealedSecret (its own annotations, as their controller reads them),
/// as gitseal's: strict, namespace-wide → namespace, cluster-wide → cluster.
fn scope_of(v: &Value) -> Scope {
    let annotation = |key: &str| {
        v.get("metadata")
            .and_then(|m| m.get("annotations"))
            .and_then(|a| a.get(key))
            .and_then(Value::as_str)
            == Some("true")
    };
    if annotation(CLUSTER_WIDE) {
        Scope::Cluster
    } else if annotation(NAMESPACE_WIDE) {
        Scope::Namespace
    } else {
        Scope::Strict
    }
}

/// The OAEP label Bitnami binds a value with.
fn label(scope: Scope, namespace: &str, name: &str) -> String {
    match scope {
        Scope::Strict => format!("{namespace}/{name}"),
        Scope::Namespace => namespace.to_string(),
        Scope::Cluster => String::new(),
    }
}

/// Open a Bitnami SealedSecret into the Secret it stands for, in memory: name, namespace
/// (`default_namespace` when the document names none), values, the template's labels,
/// annotations (without Bitnami's own), type, immutable and data, and the scope
/// (`SecretInput::scope`). Errors name `file:doc:field`; a value no key opens under its
/// label (a wrong key, or a value moved to another name or namespace) is
/// [`ErrorKind::KeyNotFound`], a damaged one [`ErrorKind::Tampered`].
pub fn open_sealed(
    doc: &Document,
    keys: &[BitnamiKey],
    default_namespace: Option<&str>,
) -> Result<SecretInput, ManifestError> {
    let (v, at) = (&doc.value, &doc.at);
    if !is_bitnami(v) {
        return Err(wrong_kind(
            v,
            at,
            &format!("Bitnami SealedSecret ({API_VERSION})"),
        ));
    }
    let name = str_field(v, at, "metadata.name")?
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ManifestError::input(at.field("metadata.name"), "a SealedSecret needs a name")
        })?
        .to_string();
    let namespace = str_field(v, at, "metadata.namespace")?
        .filter(|n| !n.is_empty())
        .or(default_namespace)
        .map(str::to_string);
    if !matches!(
        v.get("spec").and_then(|s| s.get("data")),
        None | Some(Value::Null)
    ) {
        return Err(ManifestError::input(
            at.field("spec.data"),
            "the deprecated whole-Secret format (spec.data) is not supported: re-seal this \
             Secret with a current kubeseal (it writes spec.encryptedData), then import it",
        ));
    }
    let scope = scope_of(v);
    if scope != Scope::Cluster && namespace.is_none() {
        return Err(ManifestError::input(
            at.field("metadata.namespace"),
            format!(
                "a {scope}-scoped value is bound to its namespace: set metadata.namespace or pass -n"
            ),
        ));
    }
    let label = label(scope, namespace.as_deref().unwrap_or(""), &name);

    let mut data = BTreeMap::new();
    for (key, value) in map_field(v, at, "spec.encryptedData")?
        .into_iter()
        .flatten()
    {
        let field = at.field(format!("spec.encryptedData.{key}"));
        check_key(key, &field)?;
        let blob = base64_value(value, &field)?;
        let plain = decrypt(keys, &blob, &label)
            .map_err(|(kind, message)| ManifestError::new(kind, field.clone(), message))?;
        check_len(plain.len(), &field)?;
        data.insert(key.clone(), plain);
    }

    let template_data = string_map(v, at, "spec.template.data")?
        .into_iter()
        .map(|(k, t)| {
            check_key(&k, &at.field(format!("spec.template.data.{k}")))?;
            Ok((k, t))
        })
        .collect::<Result<_, ManifestError>>()?;
    Ok(SecretInput {
        at: at.clone(),
        labels: string_map(v, at, "spec.template.metadata.labels")?
            .into_iter()
            .collect(),
        annotations: string_map(v, at, "spec.template.metadata.annotations")?
            .into_iter()
            .filter(|(k, _)| !k.starts_with(ANNOTATION_PREFIX) && k != LAST_APPLIED)
            .collect(),
        type_: str_field(v, at, "spec.template.type")?.map(str::to_string),
        immutable: bool_field(v, at, "spec.template.immutable")?,
        scope: Some(scope),
        name,
        namespace,
        data,
        template_data,
    })
}

/// One value: the first key whose OAEP opens the session key under `label`, then AES-GCM.
/// The error never holds key or value bytes.
fn decrypt(
    keys: &[BitnamiKey],
    blob: &[u8],
    label: &str,
) -> Result<Plaintext, (ErrorKind, String)> {
    let truncated = || {
        (
            ErrorKind::Tampered,
            format!(
                "truncated: {} bytes, shorter than its RSA part says",
                blob.len()
            ),
        )
    };
    let (len, rest) = blob.split_first_chunk::<2>().ok_or_else(truncated)?;
    let rsa_len = usize::from(u16::from_be_bytes(*len));
    if rest.len() < rsa_len {
        return Err(truncated());
    }
    let (wrapped, sealed) = rest.split_at(rsa_len);
    for key in keys {
        let opened = key.key.decrypt_blinded(
            &mut rand::rngs::OsRng,
            Oaep::new_with_label::<Sha256, _>(label),
            wrapped,
        );
        let Ok(session) = opened.map(Zeroizing::new) else {
            continue;
        };
        if session.len() != SESSION_KEY_LEN {
            return Err((
                ErrorKind::Tampered,
                "the session key is not 32 bytes".into(),
            ));
        }
        let cipher = Aes256Gcm::new_from_slice(&session).expect("32-byte key");
        // Bitnami uses each session key once, with the all-zero nonce.
        return cipher
            .decrypt(&Nonce::from([0u8; 12]), sealed)
            .map(Plaintext::new)
            .map_err(|_| {
                (
                    ErrorKind::Tampered,
                    "the value fails AES-GCM authentication (damaged or truncated)".into(),
                )
            });
    }
    let bound = match label {
        "" => "cluster-wide".to_string(),
        l => format!("bound to {l:?}"),
    };
    Err((
        ErrorKind::KeyNotFound,
        format!(
            "none of the {} key(s) given opens this value ({bound}): a key of another \
             controller, or a value moved here from another name or namespace",
            keys.len()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parse_documents;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use rand::RngCore;
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};

    /// Bitnami's `HybridEncrypt`, for the tests.
    fn hybrid_encrypt(key: &RsaPrivateKey, plain: &[u8], label: &str) -> String {
        let mut session = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut session);
        let wrapped = key
            .to_public_key()
            .encrypt(
                &mut rand::rngs::OsRng,
                Oaep::new_with_label::<Sha256, _>(label),
                &session,
            )
            .unwrap();
        let mut out = (wrapped.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(&wrapped);
        let cipher = Aes256Gcm::new_from_slice(&session).unwrap();
        out.extend(cipher.encrypt(&Nonce::from([0u8; 12]), plain).unwrap());
        STANDARD.encode(out)
    }

    fn new_key() -> RsaPrivateKey {
        RsaPrivateKey::new(&mut rand::rngs::OsRng, 1024).unwrap()
    }

    fn keys_of(pem: &str) -> Vec<BitnamiKey> {
        parse_keys("k.pem", pem).unwrap()
    }

    fn pkcs1(key: &RsaPrivateKey) -> String {
        key.to_pkcs1_pem(LineEnding::LF).unwrap().to_string()
    }

    /// A Bitnami SealedSecret `ns/name` with scope annotation `scope_anno` and `values`.
    fn sealed(name: &str, scope_anno: Option<&str>, values: &[(&str, String)]) -> Document {
        let mut annotations = serde_json::Map::new();
        if let Some(a) = scope_anno {
            annotations.insert(a.into(), "true".into());
        }
        let data: serde_json::Map<String, Value> = values
            .iter()
            .map(|(k, v)| (k.to_string(), Value::from(v.as_str())))
            .collect();
        Document {
            at: Location::new("s.yaml", 1),
            value: serde_json::json!({
                "apiVersion": "bitnami.com/v1alpha1",
                "kind": "SealedSecret",
                "metadata": {"name": name, "namespace": "ns", "annotations": annotations},
                "spec": {
                    "encryptedData": data,
                    "template": {
                        "type": "kubernetes.io/basic-auth",
                        "immutable": true,
                        "metadata": {
                            "labels": {"app": "db"},
                            "annotations": {"sealedsecrets.bitnami.com/managed": "true", "note": "hi"}
                        },
                        "data": {"url": "{{ .user }}"}
                    }
                }
            }),
        }
    }

    #[test]
    fn each_scope_opens_with_its_label_and_maps_to_gitseal() {
        let key = new_key();
        let keys = keys_of(&pkcs1(&key));
        for (anno, scope, label) in [
            (None, Scope::Strict, "ns/db"),
            (Some(NAMESPACE_WIDE), Scope::Namespace, "ns"),
            (Some(CLUSTER_WIDE), Scope::Cluster, ""),
        ] {
            let doc = sealed(
                "db",
                anno,
                &[("user", hybrid_encrypt(&key, b"admin", label))],
            );
            let input = open_sealed(&doc, &keys, None).unwrap();
            assert_eq!(input.scope, Some(scope));
            assert_eq!(input.data["user"].expose(), b"admin");
            assert_eq!(input.namespace.as_deref(), Some("ns"));
            assert_eq!(input.type_.as_deref(), Some("kubernetes.io/basic-auth"));
            assert_eq!(input.immutable, Some(true));
            assert_eq!(input.labels["app"], "db");
            // Bitnami's own annotations stay behind; the user's carry over.
            assert_eq!(
                input.annotations.keys().collect::<Vec<_>>(),
                ["note"],
                "{anno:?}"
            );
            assert_eq!(input.template_data["url"], "{{ .user }}");
        }
    }

    #[test]
    fn a_wrong_label_fails_as_bitnami_refuses_a_moved_value() {
        let key = new_key();
        let keys = keys_of(&pkcs1(&key));
        // Sealed for ns/other, found at ns/db; and namespace-wide for another namespace.
        for (anno, label) in [
            (None, "ns/other"),
            (Some(NAMESPACE_WIDE), "prod"),
            (None, ""),
        ] {
            let doc = sealed("db", anno, &[("user", hybrid_encrypt(&key, b"x", label))]);
            let err = open_sealed(&doc, &keys, None).unwrap_err();
            assert_eq!(err.kind, ErrorKind::KeyNotFound, "{err}");
            assert_eq!(err.at.to_string(), "s.yaml:1:spec.encryptedData.user");
        }
    }

    #[test]
    fn the_key_is_found_among_several_and_a_wrong_key_fails() {
        let (a, b, c) = (new_key(), new_key(), new_key());
        let keys = keys_of(&format!("{}{}", pkcs1(&a), pkcs1(&b)));
        assert_eq!(keys.len(), 2);
        let doc = sealed(
            "db",
            None,
            &[
                ("one", hybrid_encrypt(&a, b"1", "ns/db")),
                ("two", hybrid_encrypt(&b, b"2", "ns/db")),
            ],
        );
        let input = open_sealed(&doc, &keys, None).unwrap();
        assert_eq!(input.data["one"].expose(), b"1");
        assert_eq!(input.data["two"].expose(), b"2");
        let doc = sealed("db", None, &[("k", hybrid_encrypt(&c, b"3", "ns/db"))]);
        let err = open_sealed(&doc, &keys, None).unwrap_err();
        assert_eq!(err.kind, ErrorKind::KeyNotFound);
        assert!(err.message.contains("2 key(s)"), "{err}");
    }

    #[test]
    fn truncated_or_damaged_values_fail_as_tampered() {
        let key = new_key();
        let keys = keys_of(&pkcs1(&key));
        let good = STANDARD
            .decode(hybrid_encrypt(&key, b"secret", "ns/db"))
            .unwrap();
        for cut in [1, 2, 100, good.len() - 1] {
            let doc = sealed("db", None, &[("k", STANDARD.encode(&good[..cut]))]);
            let err = open_sealed(&doc, &keys, None).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Tampered, "cut {cut}: {err}");
            assert!(!err.to_string().contains("secret"));
        }
        let mut flipped = good.clone();
        *flipped.last_mut().unwrap() ^= 1;
        let doc = sealed("db", None, &[("k", STANDARD.encode(&flipped))]);
        assert_eq!(
            open_sealed(&doc, &keys, None).unwrap_err().kind,
            ErrorKind::Tampered
        );
    }

    #[test]
    fn keys_parse_from_pkcs1_pkcs8_and_key_secret_lists() {
        let key = new_key();
        let p1 = pkcs1(&key);
        let p8 = key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
        let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert_eq!(keys_of(&format!("{cert}{p8}")).len(), 1);
        let secret = |pem: &str| {
            format!(
                "{{apiVersion: v1, kind: Secret, type: kubernetes.io/tls, data: {{tls.crt: \"\", tls.key: {}}}}}",
                STANDARD.encode(pem)
            )
        };
        let list = format!(
            "apiVersion: v1\nkind: List\nitems: [{}, {}]\n",
            secret(&p1),
            secret(&p8)
        );
        let keys = parse_keys("keys.yaml", &list).unwrap();
        assert_eq!(keys.len(), 2);
        let docs = format!("---\n{}\n---\n{}\n", secret(&p1), secret(&p8));
        assert_eq!(parse_keys("keys.yaml", &docs).unwrap().len(), 2);
        // Debug names the origin only.
        let shown = format!("{:?}", keys[1]);
        assert!(
            shown.contains("items[1].data.tls.key") && !shown.contains("BEGIN"),
            "{shown}"
        );
        let doc = sealed("db", None, &[("k", hybrid_encrypt(&key, b"v", "ns/db"))]);
        assert_eq!(
            open_sealed(&doc, &keys[1..], None).unwrap().data["k"].expose(),
            b"v"
        );

        let err = parse_keys(
            "keys.yaml",
            "apiVersion: v1\nkind: List\nitems: [{kind: Secret, data: {}}]\n",
        )
        .unwrap_err();
        assert_eq!(err.at.to_string(), "keys.yaml:1:items[0].data.tls.key");
        let err = parse_keys("k.pem", cert).unwrap_err();
        assert!(err.message.contains("no RSA private key"), "{err}");
        let bad = p1.replace(&p1[40..60], &"A".repeat(20));
        assert!(parse_keys("k.pem", &bad).is_err());
    }

    #[test]
    fn other_kinds_and_the_deprecated_format_are_input_errors() {
        let keys = keys_of(&pkcs1(&new_key()));
        let open = |text: &str| {
            let doc = parse_documents("s.yaml", text).unwrap().remove(0);
            open_sealed(&doc, &keys, None).unwrap_err()
        };
        let err = open(
            "apiVersion: gitseal.dev/v1\nkind: SealedSecret\nmetadata: {name: a, namespace: b}\n",
        );
        assert_eq!(
            (err.kind, err.at.field.as_str()),
            (ErrorKind::Input, "kind")
        );
        let err = open(
            "apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nmetadata: {name: a, namespace: b}\nspec: {data: AAAA}\n",
        );
        assert_eq!(err.at.field, "spec.data");
        assert!(err.message.contains("kubeseal"), "{err}");
    }
}
