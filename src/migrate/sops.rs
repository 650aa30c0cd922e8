//! SOPS-encrypted Kubernetes Secret manifests (YAML, multi-document YAML, JSON) read into
//! [`SecretInput`]s, checked as sops 3.11 checks them: the data key from an age recipient, every
//! encrypted value authenticated with its key path as associated data, then the file's MAC
//! (SHA-512 over the values in file order, itself encrypted under the data key with
//! `lastmodified` as associated data). Pure: no printing, no files, no environment; the caller
//! hands over the text and the age identities.
//!
//! What sops does and where (getsops/sops v3.11.0): the walk and the MAC in `sops.go`
//! (`Tree.Decrypt`, `walkBranch`, `shouldBeEncrypted`, `ToBytes`,
//! `MACOnlyEncryptedInitialization`); value strings and their types in `aes/cipher.go`; the MAC
//! check in `cmd/sops/common/common.go` (`DecryptTree`); the metadata and its default rule in
//! `stores/stores.go` (`ToInternal`); documents, comments and the per-document `sops` key in
//! `stores/yaml/store.go`. Comments never enter the MAC, so a YAML reader that drops them
//! computes the same MAC; files whose rules depend on comments (`encrypted_comment_regex`,
//! `unencrypted_comment_regex`) are refused.

use crate::crypto::{DataKey, Identity, unwrap};
use crate::manifest::{
    Document, ErrorKind, Location, MAX_DOCUMENTS, MAX_INPUT_LEN, MAX_NODES, ManifestError, Result,
    SecretInput, parse_error, parse_one, parse_secret, split_yaml,
};
use aes_gcm::aead::consts::U32;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use regex::Regex;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use sha2::{Digest, Sha512};
use std::fmt;
use std::io::Read;
use zeroize::{Zeroize, Zeroizing};

/// sops' AES-256-GCM: 32-byte nonces (`aes/cipher.go`, `nonceSize`).
type SopsGcm = AesGcm<Aes256, U32>;
const NONCE_LEN: usize = 32;
const TAG_LEN: usize = 16;
/// `sops.DefaultUnencryptedSuffix`, the rule of a file that names none.
const DEFAULT_UNENCRYPTED_SUFFIX: &str = "_unencrypted";
/// `sops.MACOnlyEncryptedInitialization`: SHA-256 of "sops", hashed first when
/// `mac_only_encrypted` is set.
const MAC_ONLY_ENCRYPTED_INIT: [u8; 32] = [
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b,
    0x0b, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69,
];

/// Read a SOPS-encrypted file holding Kubernetes Secrets and return them, decrypted, after
/// every sops check passed. `file` names the input in errors.
pub fn open(file: &str, text: &str, identities: &[&Identity]) -> Result<Vec<SecretInput>> {
    let whole = Location::new(file, 0);
    if text.len() > MAX_INPUT_LEN {
        return Err(ManifestError::over_limit(
            whole,
            format!("{} bytes, over the manifest file limit", text.len()),
        ));
    }
    refuse_other_stores(text, &whole)?;
    let docs = parse_nodes(file, text)?;
    let Some((first_at, first)) = docs.first() else {
        return Err(ManifestError::input(
            whole,
            "empty file: not a SOPS-encrypted Secret",
        ));
    };
    let Some(meta) = first.get("sops") else {
        return Err(ManifestError::input(
            first_at.clone(),
            "not SOPS-encrypted (no `sops` metadata): give `gitseal seal` plain Secrets",
        ));
    };
    if is_binary_store(first) {
        return Err(ManifestError::input(
            first_at.clone(),
            "a SOPS file in the binary format (the whole file is one encrypted blob under \
             `data`), not a Kubernetes Secret manifest",
        ));
    }
    let meta_at = first_at.field("sops");
    let meta = Metadata::parse(meta, &meta_at)?;
    let key = meta.data_key(identities, &meta_at)?;

    // Tree.Decrypt: every document in order, then the MAC.
    let mut hash = Sha512::new();
    if meta.mac_only_encrypted {
        hash.update(MAC_ONLY_ENCRYPTED_INIT);
    }
    let mut plain_docs = Vec::with_capacity(docs.len());
    for (at, node) in &docs {
        let Node::Map(items) = node else {
            return Err(ManifestError::input(
                at.clone(),
                format!("expected a mapping, found {}", node.kind()),
            ));
        };
        let mut walk = Walk {
            meta: &meta,
            key: &key,
            hash: &mut hash,
            at,
        };
        let items = items.iter().filter(|(k, _)| k != "sops");
        let value = walk.branch(items, &mut Vec::new(), &mut String::new())?;
        plain_docs.push(Scrubbed(Document {
            at: at.clone(),
            value,
        }));
    }
    meta.check_mac(&key, &hex_upper(&hash.finalize()), first_at)?;

    plain_docs
        .iter()
        .map(|doc| {
            parse_secret(&doc.0).map_err(|mut e| {
                if e.at.field == "kind" {
                    e.message = format!("a SOPS-encrypted file, but {}", e.message);
                }
                e
            })
        })
        .collect()
}

/// Refuse the dotenv and INI stores (their metadata are `sops_*` lines or a `[sops]` section).
fn refuse_other_stores(text: &str, at: &Location) -> Result<()> {
    let lines = || text.lines().map(str::trim);
    if lines().any(|l| l.starts_with("sops_mac=") || l.starts_with("sops_version=")) {
        return Err(ManifestError::input(
            at.clone(),
            "a SOPS dotenv file (KEY=value lines), not a Kubernetes Secret manifest",
        ));
    }
    if lines().any(|l| l == "[sops]") {
        return Err(ManifestError::input(
            at.clone(),
            "a SOPS INI file, not a Kubernetes Secret manifest",
        ));
    }
    Ok(())
}

/// The binary store's shape: `{"data": "ENC[…]", "sops": {…}}` and nothing else.
fn is_binary_store(doc: &Node) -> bool {
    matches!(doc, Node::Map(items) if items.len() == 2
        && matches!(doc.get("data"), Some(Node::Str(s)) if s.starts_with("ENC[")))
}

/// Every document, in order, with its location (1-based, counting empty ones, like
/// `parse_documents`). Empty documents are dropped (sops' branch for them is empty).
fn parse_nodes(file: &str, text: &str) -> Result<Vec<(Location, Node)>> {
    let too_many = || {
        ManifestError::over_limit(
            Location::new(file, 0),
            format!("more than {MAX_DOCUMENTS} documents"),
        )
    };
    let parts = if text.trim_start().starts_with('{') {
        vec![text]
    } else {
        split_yaml(text, MAX_DOCUMENTS).ok_or_else(too_many)?
    };
    let mut docs = Vec::new();
    for (i, part) in parts.into_iter().enumerate() {
        let at = Location::new(file, i + 1);
        if part
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            continue;
        }
        let node: Node =
            parse_one(part, MAX_NODES).map_err(|e| parse_error(at.clone(), "YAML", &e))?;
        if !matches!(node, Node::Null) {
            docs.push((at, node));
        }
    }
    Ok(docs)
}

/// A document's tree in file order (the MAC depends on it), typed as Go's YAML and JSON
/// decoders type scalars into `interface{}`.
enum Node {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

impl Node {
    fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(items) => items.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Node::Str(s) => Some(s),
            _ => None,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool(_) => "a boolean",
            Node::Int(_) | Node::UInt(_) | Node::Float(_) => "a number",
            Node::Str(_) => "a string",
            Node::Seq(_) => "a sequence",
            Node::Map(_) => "a mapping",
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML or JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> std::result::Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<Node, E> {
        Ok(Node::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> std::result::Result<Node, E> {
        Ok(i64::try_from(v).map_or(Node::UInt(v), Node::Int))
    }
    fn visit_f64<E>(self, v: f64) -> std::result::Result<Node, E> {
        Ok(Node::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<Node, E> {
        Ok(Node::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> std::result::Result<Node, E> {
        Ok(Node::Str(v))
    }
    fn visit_unit<E>(self) -> std::result::Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> std::result::Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Node, A::Error> {
        let mut items: Vec<(String, Node)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if items.iter().any(|(k, _)| *k == key) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            let value = map.next_value()?;
            items.push((key, value));
        }
        Ok(Node::Map(items))
    }
}

/// Which values sops encrypted: the one rule of the file (`shouldBeEncrypted`).
enum Rule {
    UnencryptedSuffix(String),
    EncryptedSuffix(String),
    UnencryptedRegex(Regex),
    EncryptedRegex(Regex),
}

impl Rule {
    /// Whether the value at `path` (mapping keys only, no list indices) is encrypted.
    fn encrypts(&self, path: &[String]) -> bool {
        match self {
            Rule::UnencryptedSuffix(s) => !path.iter().any(|p| p.ends_with(s.as_str())),
            Rule::EncryptedSuffix(s) => path.iter().any(|p| p.ends_with(s.as_str())),
            Rule::UnencryptedRegex(r) => !path.iter().any(|p| r.is_match(p)),
            Rule::EncryptedRegex(r) => path.iter().any(|p| r.is_match(p)),
        }
    }
}

/// The parts of the `sops` metadata gitseal reads.
struct Metadata {
    rule: Rule,
    mac_only_encrypted: bool,
    /// `lastmodified` as sops formats it for the MAC's associated data (RFC 3339, seconds).
    last_modified: String,
    mac: String,
    /// (recipient, armored age file of the data key)
    age: Vec<(String, String)>,
}

impl Metadata {
    fn parse(meta: &Node, at: &Location) -> Result<Self> {
        if !matches!(meta, Node::Map(_)) {
            return Err(ManifestError::input(
                at.clone(),
                format!("expected the sops metadata mapping, found {}", meta.kind()),
            ));
        }
        let text = |name: &str| -> Result<Option<&str>> {
            match meta.get(name) {
                None | Some(Node::Null) => Ok(None),
                Some(Node::Str(s)) if s.is_empty() => Ok(None),
                Some(Node::Str(s)) => Ok(Some(s)),
                Some(other) => Err(ManifestError::input(
                    at.field(format!("sops.{name}")),
                    format!("expected a string, found {}", other.kind()),
                )),
            }
        };
        for name in ["encrypted_comment_regex", "unencrypted_comment_regex"] {
            if text(name)?.is_some() {
                return Err(ManifestError::input(
                    at.field(format!("sops.{name}")),
                    format!(
                        "{name} is not supported: which values it encrypts depends on YAML \
                         comments; decrypt with sops and seal with `gitseal seal`"
                    ),
                ));
            }
        }
        let regex = |name: &str, s: &str| {
            Regex::new(s).map_err(|e| {
                ManifestError::input(
                    at.field(format!("sops.{name}")),
                    format!("invalid regular expression: {e}"),
                )
            })
        };
        let mut rules = Vec::new();
        if let Some(s) = text("unencrypted_suffix")? {
            rules.push(Rule::UnencryptedSuffix(s.to_string()));
        }
        if let Some(s) = text("encrypted_suffix")? {
            rules.push(Rule::EncryptedSuffix(s.to_string()));
        }
        if let Some(s) = text("unencrypted_regex")? {
            rules.push(Rule::UnencryptedRegex(regex("unencrypted_regex", s)?));
        }
        if let Some(s) = text("encrypted_regex")? {
            rules.push(Rule::EncryptedRegex(regex("encrypted_regex", s)?));
        }
        if rules.len() > 1 {
            return Err(ManifestError::input(
                at.clone(),
                "more than one of encrypted_suffix, unencrypted_suffix, encrypted_regex, \
                 unencrypted_regex: sops refuses such a file too",
            ));
        }
        let rule = rules
            .pop()
            .unwrap_or_else(|| Rule::UnencryptedSuffix(DEFAULT_UNENCRYPTED_SUFFIX.into()));
        let mac_only_encrypted = match meta.get("mac_only_encrypted") {
            None | Some(Node::Null) => false,
            Some(Node::Bool(b)) => *b,
            Some(other) => {
                return Err(ManifestError::input(
                    at.field("sops.mac_only_encrypted"),
                    format!("expected a boolean, found {}", other.kind()),
                ));
            }
        };
        let lm_at = at.field("sops.lastmodified");
        let raw = text("lastmodified")?
            .ok_or_else(|| ManifestError::input(lm_at.clone(), "missing lastmodified"))?;
        let last_modified = go_rfc3339(raw).ok_or_else(|| {
            ManifestError::input(lm_at, format!("{raw:?} is not an RFC 3339 time"))
        })?;
        let mac = text("mac")?.unwrap_or("").to_string();
        let age = age_keys(meta, at)?;
        Ok(Self {
            rule,
            mac_only_encrypted,
            last_modified,
            mac,
            age,
        })
    }

    /// The data key, from the first age recipient an identity opens.
    fn data_key(&self, identities: &[&Identity], at: &Location) -> Result<DataKey> {
        let at = at.field("sops.age");
        for (n, (recipient, enc)) in self.age.iter().enumerate() {
            if !identities
                .iter()
                .any(|i| i.recipient().as_str() == recipient)
            {
                continue;
            }
            let at = at.field(format!("sops.age[{n}].enc"));
            let mut binary = Vec::new();
            age::armor::ArmoredReader::new(enc.as_bytes())
                .read_to_end(&mut binary)
                .map_err(|e| {
                    ManifestError::new(
                        ErrorKind::Tampered,
                        at.clone(),
                        format!("not an armored age file: {e}"),
                    )
                })?;
            return unwrap(&binary, identities).map_err(|e| {
                ManifestError::new(
                    ErrorKind::Tampered,
                    at,
                    format!("the data key does not open for {recipient}: {e}"),
                )
            });
        }
        let wanted: Vec<&str> = self.age.iter().map(|(r, _)| r.as_str()).collect();
        let held: Vec<String> = identities
            .iter()
            .map(|i| i.recipient().as_str().to_string())
            .collect();
        Err(ManifestError::new(
            ErrorKind::KeyNotFound,
            at,
            format!(
                "no identity given is an age recipient of this file: it is encrypted to {}; \
                 the identities given are for {} (pass one with -i, or set SOPS_AGE_KEY_FILE)",
                wanted.join(", "),
                if held.is_empty() {
                    "none".to_string()
                } else {
                    held.join(", ")
                }
            ),
        ))
    }

    /// `DecryptTree`: the stored MAC opens under `lastmodified` and equals the computed one.
    fn check_mac(&self, key: &DataKey, computed: &str, at: &Location) -> Result<()> {
        let fail = |field: &str, message: String| {
            ManifestError::new(ErrorKind::Tampered, at.field(field), message)
        };
        let stored = if self.mac.is_empty() {
            Zeroizing::new(Vec::new())
        } else {
            let (plain, kind) =
                decrypt_value(key, &self.mac, &self.last_modified).map_err(|why| {
                    fail(
                        "sops.lastmodified",
                        format!(
                            "the MAC does not authenticate with lastmodified {}: lastmodified \
                             or the MAC was changed ({why})",
                            self.last_modified
                        ),
                    )
                })?;
            if kind != "str" {
                return Err(fail(
                    "sops.mac",
                    format!("the MAC has type {kind}, not str"),
                ));
            }
            plain
        };
        if stored.as_slice() != computed.as_bytes() {
            let has = if stored.is_empty() {
                "no MAC"
            } else {
                "another MAC"
            };
            return Err(fail(
                "sops.mac",
                format!(
                    "MAC mismatch (the file has {has}): the file's values are not the ones sops \
                     authenticated; a value (encrypted or plain) was changed, added, removed or \
                     moved"
                ),
            ));
        }
        Ok(())
    }
}

/// Age recipients: `sops.age`, or those of the one key group. Several key groups are Shamir
/// shares, refused; a file with none is refused naming what it has.
fn age_keys(meta: &Node, at: &Location) -> Result<Vec<(String, String)>> {
    let groups = match meta.get("key_groups") {
        Some(Node::Seq(g)) => g.as_slice(),
        _ => &[],
    };
    let source = match groups {
        [] => meta,
        [one] => one,
        many => {
            let threshold = match meta.get("shamir_threshold") {
                Some(Node::Int(t)) => t.to_string(),
                _ => "?".into(),
            };
            return Err(ManifestError::input(
                at.field("sops.key_groups"),
                format!(
                    "Shamir key groups ({} groups, threshold {threshold}) are not supported: \
                     the data key is split into shares; re-encrypt to one key group \
                     (`sops updatekeys` after editing .sops.yaml) and import again",
                    many.len()
                ),
            ));
        }
    };
    let mut keys = Vec::new();
    if let Some(Node::Seq(list)) = source.get("age") {
        for (n, k) in list.iter().enumerate() {
            match (
                k.get("recipient").and_then(Node::as_str),
                k.get("enc").and_then(Node::as_str),
            ) {
                (Some(r), Some(e)) => keys.push((r.trim().to_string(), e.to_string())),
                _ => {
                    return Err(ManifestError::input(
                        at.field(format!("sops.age[{n}]")),
                        "an age entry needs recipient and enc",
                    ));
                }
            }
        }
    }
    if keys.is_empty() {
        let others: Vec<&str> = ["pgp", "kms", "gcp_kms", "azure_kv", "hc_vault"]
            .into_iter()
            .filter(|k| matches!(source.get(k), Some(Node::Seq(l)) if !l.is_empty()))
            .collect();
        let has = if others.is_empty() {
            "no recipients at all".to_string()
        } else {
            format!("only {}", others.join(", "))
        };
        return Err(ManifestError::input(
            at.field("sops"),
            format!(
                "no age recipients ({has}): gitseal imports SOPS files encrypted to age; add an \
                 age recipient (`sops updatekeys` after adding it to .sops.yaml) and import again"
            ),
        ));
    }
    Ok(keys)
}

/// One document's walk: decrypt the encrypted leaves, hash what the MAC covers, build the
/// plain tree for `parse_secret`.
struct Walk<'a> {
    meta: &'a Metadata,
    key: &'a DataKey,
    hash: &'a mut Sha512,
    at: &'a Location,
}

impl Walk<'_> {
    fn branch<'n>(
        &mut self,
        items: impl Iterator<Item = &'n (String, Node)>,
        path: &mut Vec<String>,
        shown: &mut String,
    ) -> Result<Value> {
        let mut out = serde_json::Map::new();
        for (key, value) in items {
            let len = shown.len();
            if !shown.is_empty() {
                shown.push('.');
            }
            shown.push_str(key);
            path.push(key.clone());
            let plain = self.value(value, path, shown)?;
            path.pop();
            shown.truncate(len);
            out.insert(key.clone(), plain);
        }
        Ok(Value::Object(out))
    }

    fn value(&mut self, node: &Node, path: &mut Vec<String>, shown: &mut String) -> Result<Value> {
        let encrypted = self.meta.rule.encrypts(path);
        let (bytes, value): (Zeroizing<Vec<u8>>, Value) = match node {
            Node::Null => return Ok(Value::Null),
            Node::Map(items) => return self.branch(items.iter(), path, shown),
            Node::Seq(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let len = shown.len();
                    shown.push_str(&format!("[{i}]"));
                    out.push(self.value(item, path, shown)?);
                    shown.truncate(len);
                }
                return Ok(Value::Array(out));
            }
            Node::Str(s) if encrypted => {
                let aad = format!("{}:", path.join(":"));
                self.decrypt(s, &aad, shown)?
            }
            _ if encrypted => {
                return Err(self.tampered(
                    shown,
                    format!(
                        "value authentication failed: expected an ENC[AES256_GCM,…] string, \
                         found {} (sops encrypts every value here)",
                        node.kind()
                    ),
                ));
            }
            Node::Str(s) => (
                Zeroizing::new(s.as_bytes().to_vec()),
                Value::String(s.clone()),
            ),
            Node::Bool(b) => (go_bool(*b), Value::Bool(*b)),
            Node::Int(i) => (Zeroizing::new(i.to_string().into_bytes()), Value::from(*i)),
            Node::UInt(u) => (Zeroizing::new(u.to_string().into_bytes()), Value::from(*u)),
            Node::Float(f) => (go_float(*f), Value::from(*f)),
        };
        if !self.meta.mac_only_encrypted || encrypted {
            self.hash.update(bytes.as_slice());
        }
        Ok(value)
    }

    /// One `ENC[…]` value: authenticated with its path, typed as `aes/cipher.go` types it.
    fn decrypt(&self, text: &str, aad: &str, shown: &str) -> Result<(Zeroizing<Vec<u8>>, Value)> {
        if text.is_empty() {
            // Cipher.Decrypt: an empty string stays empty (sops never encrypts "").
            return Ok((Zeroizing::new(Vec::new()), Value::String(String::new())));
        }
        let (mut plain, kind) = decrypt_value(self.key, text, aad)
            .map_err(|why| self.tampered(shown, format!("value authentication failed: {why}")))?;
        let typed = |what: &str| {
            self.tampered(
                shown,
                format!("decrypted value is not a valid {what} (its type says {kind})"),
            )
        };
        Ok(match kind.as_str() {
            "str" | "bytes" => {
                let s = String::from_utf8(std::mem::take(&mut *plain)).map_err(|e| {
                    let mut bad = e.into_bytes();
                    bad.zeroize();
                    ManifestError::input(
                        self.at.field(shown),
                        "decrypted value is not UTF-8 text (a Kubernetes stringData value must be)",
                    )
                })?;
                let bytes = Zeroizing::new(s.as_bytes().to_vec());
                (bytes, Value::String(s))
            }
            "int" => {
                let i: i64 = std::str::from_utf8(&plain)
                    .map_err(|_| typed("UTF-8 text"))?
                    .parse()
                    .map_err(|_| typed("integer"))?;
                (Zeroizing::new(i.to_string().into_bytes()), Value::from(i))
            }
            "float" => {
                let f: f64 = std::str::from_utf8(&plain)
                    .map_err(|_| typed("UTF-8 text"))?
                    .parse()
                    .map_err(|_| typed("number"))?;
                (go_float(f), Value::from(f))
            }
            "bool" => {
                let b =
                    go_parse_bool(std::str::from_utf8(&plain).map_err(|_| typed("UTF-8 text"))?)
                        .ok_or_else(|| typed("boolean"))?;
                (go_bool(b), Value::Bool(b))
            }
            other => {
                return Err(ManifestError::input(
                    self.at.field(shown),
                    format!("values of sops type {other:?} are not supported in a Secret"),
                ));
            }
        })
    }

    fn tampered(&self, shown: &str, message: String) -> ManifestError {
        ManifestError::new(ErrorKind::Tampered, self.at.field(shown), message)
    }
}

/// `aes.Cipher.Decrypt` without the typing: the plain bytes and the type name. The error says
/// why, never with any plain text.
fn decrypt_value(
    key: &DataKey,
    text: &str,
    aad: &str,
) -> std::result::Result<(Zeroizing<Vec<u8>>, String), String> {
    let (data, iv, tag, kind) = parse_enc(text)
        .ok_or_else(|| "not a sops value (ENC[AES256_GCM,data:…,iv:…,tag:…,type:…])".to_string())?;
    let decode = |what: &str, s: &str| {
        STANDARD
            .decode(s)
            .map_err(|e| format!("invalid base64 in {what}: {e}"))
    };
    let mut msg = decode("data", data)?;
    let iv = decode("iv", iv)?;
    let tag = decode("tag", tag)?;
    if iv.len() != NONCE_LEN || tag.len() != TAG_LEN {
        return Err(format!(
            "iv of {} bytes and tag of {} (sops writes {NONCE_LEN} and {TAG_LEN})",
            iv.len(),
            tag.len()
        ));
    }
    msg.extend_from_slice(&tag);
    let cipher = SopsGcm::new_from_slice(key.expose()).expect("32-byte key");
    let nonce = Nonce::<U32>::try_from(iv.as_slice()).expect("32-byte nonce");
    let plain = cipher
        .decrypt(
            &nonce,
            Payload {
                msg: &msg,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| {
            "AES-GCM authentication failed (the value was changed, or moved from another key)"
                .to_string()
        })?;
    Ok((Zeroizing::new(plain), kind.to_string()))
}

/// `^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]` as Go matches it (greedy, not
/// anchored at the end).
fn parse_enc(text: &str) -> Option<(&str, &str, &str, &str)> {
    static ENC: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let re = ENC.get_or_init(|| {
        Regex::new(r"^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]").expect("valid")
    });
    let c = re.captures(text)?;
    let g = |i| c.get(i).map(|m| m.as_str());
    Some((g(1)?, g(2)?, g(3)?, g(4)?))
}

/// `ToBytes(bool)`.
fn go_bool(b: bool) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(if b {
        b"True".to_vec()
    } else {
        b"False".to_vec()
    })
}

/// `strconv.ParseBool`.
fn go_parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// `strconv.FormatFloat(f, 'f', -1, 64)`: shortest digits that round-trip, never an exponent
/// (Rust's `Display` for `f64` is the same, but for the infinities).
fn go_float(f: f64) -> Zeroizing<Vec<u8>> {
    let s = if f.is_infinite() {
        if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        f.to_string()
    };
    Zeroizing::new(s.into_bytes())
}

/// `time.Parse(time.RFC3339, s).Format(time.RFC3339)`: seconds precision, `Z` for UTC.
fn go_rfc3339(s: &str) -> Option<String> {
    static RFC3339: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let re = RFC3339.get_or_init(|| {
        Regex::new(r"^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
            .expect("valid")
    });
    let c = re.captures(s)?;
    let zone = match &c[3] {
        "Z" | "z" | "+00:00" | "-00:00" => "Z",
        other => other,
    };
    Some(format!("{}T{}{zone}", &c[1], &c[2]))
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// A decrypted document whose strings are overwritten with zeros when dropped (the plain
/// values sit in it between decryption and `parse_secret`, which copies them into
/// `Plaintext`).
struct Scrubbed(Document);

impl Drop for Scrubbed {
    fn drop(&mut self) {
        fn scrub(v: &mut Value) {
            match v {
                Value::String(s) => s.zeroize(),
                Value::Array(a) => a.iter_mut().for_each(scrub),
                Value::Object(m) => m.values_mut().for_each(scrub),
                _ => {}
            }
        }
        scrub(&mut self.0.value);
    }
}

#[cfg(test)]
mod tests {
    //! Vectors made by the real sops 3.11.0 (`tests/fixtures/sops/`, to the test key there).
    use super::*;
    use crate::manifest::ErrorKind;

    const KEY: &str = include_str!("../../tests/fixtures/sops/key.txt");

    fn ids() -> Vec<Identity> {
        Identity::parse_file(KEY).unwrap()
    }

    fn open_fixture(name: &str, text: &str) -> Result<Vec<SecretInput>> {
        let ids = ids();
        let refs: Vec<&Identity> = ids.iter().collect();
        open(name, text, &refs)
    }

    fn values(s: &SecretInput) -> Vec<(String, String)> {
        s.data
            .iter()
            .map(|(k, v)| (k.clone(), String::from_utf8(v.expose().to_vec()).unwrap()))
            .collect()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const DEFAULT: &str = include_str!("../../tests/fixtures/sops/default.sops.yaml");
    const REGEX: &str = include_str!("../../tests/fixtures/sops/regex.sops.yaml");
    const MAC_ONLY: &str = include_str!("../../tests/fixtures/sops/maconly.sops.yaml");
    const JSON: &str = include_str!("../../tests/fixtures/sops/secret.sops.json");
    const MULTI: &str = include_str!("../../tests/fixtures/sops/multi.sops.yaml");
    const SUFFIX: &str = include_str!("../../tests/fixtures/sops/suffix.sops.yaml");
    const TYPED: &str = include_str!("../../tests/fixtures/sops/typed.sops.yaml");

    #[test]
    fn files_made_by_sops_open_with_their_mac() {
        let want = pairs(&[("password", "hunter2"), ("port", "5432"), ("user", "admin")]);
        for (name, text) in [
            ("default", DEFAULT),
            ("regex", REGEX),
            ("json", JSON),
            ("suffix", SUFFIX),
        ] {
            let s = open_fixture(name, text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(s.len(), 1, "{name}");
            assert_eq!(s[0].name, "db", "{name}");
            assert_eq!(s[0].namespace.as_deref(), Some("prod"), "{name}");
            assert_eq!(s[0].labels.get("app").map(String::as_str), Some("db"));
            assert_eq!(values(&s[0]), want, "{name}");
        }
    }

    #[test]
    fn mac_only_encrypted_hashes_only_encrypted_values() {
        // stringData.count is an int (type:int): its MAC bytes are strconv.Itoa's.
        let err = open_fixture("m", MAC_ONLY).unwrap_err();
        // A number under stringData is not a Kubernetes Secret: refused after the MAC passed.
        assert_eq!(err.kind, ErrorKind::Input, "{err}");
        assert!(err.at.field.contains("stringData"), "{err}");
        // The plain parts are outside the MAC: editing one still opens.
        let edited = MAC_ONLY.replace("immutable: true", "immutable: false");
        assert_eq!(
            open_fixture("m", &edited).unwrap_err().kind,
            ErrorKind::Input
        );
        // Without mac_only_encrypted the same file fails its MAC.
        let off = MAC_ONLY.replace("    mac_only_encrypted: true\n", "");
        let err = open_fixture("m", &off).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Tampered, "{err}");
        assert!(err.message.contains("MAC mismatch"), "{err}");
    }

    #[test]
    fn typed_values_enter_the_mac_as_go_formats_them() {
        // Plain int, float, bool, null and "" beside encrypted int, float, bool, str and "".
        // The MAC passes; then a number under stringData is no Secret (an input error).
        let err = open_fixture("t", TYPED).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Input, "{err}");
        assert!(err.at.field.starts_with("stringData."), "{err}");
        for (from, to) in [
            ("weight: 1.5", "weight: 1.25"),
            ("generation: 3", "generation: 4"),
            ("immutable: true", "immutable: false"),
            ("flag: \"yes\"", "flag: \"no\""),
        ] {
            let err = open_fixture("t", &TYPED.replace(from, to)).unwrap_err();
            assert_eq!(err.at.field, "sops.mac", "{from}: {err}");
        }
        // Same value, other spelling: Go's MAC bytes are the same (FormatFloat, Itoa).
        let err = open_fixture("t", &TYPED.replace("weight: 1.5", "weight: 1.50")).unwrap_err();
        assert!(err.at.field.starts_with("stringData."), "{err}");
    }

    #[test]
    fn multi_document_files_share_one_mac() {
        let s = open_fixture("multi.yaml", MULTI).unwrap();
        assert_eq!(
            s.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(values(&s[0]), pairs(&[("k", "one")]));
        assert_eq!(values(&s[1]), pairs(&[("k", "two")]));
        assert_eq!(s[1].at.doc, 2);
        // Dropping the second document breaks the MAC of the first.
        let first = MULTI.split("\n---\n").next().unwrap();
        let err = open_fixture("multi.yaml", first).unwrap_err();
        assert!(err.message.contains("MAC mismatch"), "{err}");
    }

    #[test]
    fn the_key_path_is_the_associated_data() {
        // Swap the ciphertexts of stringData.user and stringData.port (keys stay in place).
        let enc = |k: &str| {
            let line = REGEX
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{k}: ENC[")))
                .unwrap();
            (
                line.to_string(),
                line.split_once(": ").unwrap().1.to_string(),
            )
        };
        let ((user_line, user), (port_line, port)) = (enc("user"), enc("port"));
        let swapped = REGEX
            .replace(&user_line, &format!("    user: {port}"))
            .replace(&port_line, &format!("    port: {user}"));
        let err = open_fixture("f.yaml", &swapped).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Tampered, "{err}");
        assert_eq!(err.at.to_string(), "f.yaml:1:stringData.user");
        assert!(err.message.contains("value authentication failed"), "{err}");
    }

    #[test]
    fn tampering_names_the_check_that_failed() {
        let plain_edit = REGEX.replace("namespace: prod", "namespace: staging");
        let err = open_fixture("f", &plain_edit).unwrap_err();
        assert_eq!(
            (err.kind, err.at.field.as_str()),
            (ErrorKind::Tampered, "sops.mac")
        );
        let lm = REGEX.lines().find(|l| l.contains("lastmodified:")).unwrap();
        let err = open_fixture(
            "f",
            &REGEX.replace(lm, "    lastmodified: \"2020-01-01T00:00:00Z\""),
        )
        .unwrap_err();
        assert_eq!(err.at.field, "sops.lastmodified", "{err}");
        assert!(err.message.contains("lastmodified"), "{err}");
        let reordered = REGEX.replace("    user: ENC", "    zzz: ENC");
        let err = open_fixture("f", &reordered).unwrap_err();
        assert_eq!(err.at.field, "stringData.zzz", "{err}");
    }

    #[test]
    fn a_wrong_identity_is_key_not_found() {
        let other = Identity::generate();
        let err = open("f", REGEX, &[&other]).unwrap_err();
        assert_eq!(err.kind, ErrorKind::KeyNotFound);
        assert!(
            err.message
                .contains(&other.recipient().as_str().to_string()),
            "{err}"
        );
        assert!(err.message.contains("age1u66us45"), "{err}");
    }

    #[test]
    fn rules_follow_should_be_encrypted() {
        let p = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let def = Rule::UnencryptedSuffix("_unencrypted".into());
        assert!(def.encrypts(&p(&["data", "a"])));
        assert!(!def.encrypts(&p(&["x_unencrypted", "a"])));
        let re = Rule::EncryptedRegex(Regex::new("^(data|stringData)$").unwrap());
        assert!(re.encrypts(&p(&["stringData", "a"])));
        assert!(!re.encrypts(&p(&["metadata", "name"])));
        let un = Rule::UnencryptedRegex(Regex::new("^meta").unwrap());
        assert!(!un.encrypts(&p(&["metadata", "name"])));
        assert!(un.encrypts(&p(&["data", "k"])));
        let es = Rule::EncryptedSuffix("_enc".into());
        assert!(es.encrypts(&p(&["a_enc", "b"])) && !es.encrypts(&p(&["a", "b"])));
    }

    #[test]
    fn go_formats() {
        assert_eq!(go_float(1.0).as_slice(), b"1");
        assert_eq!(go_float(1.5).as_slice(), b"1.5");
        assert_eq!(go_float(1e21).as_slice(), b"1000000000000000000000");
        assert_eq!(go_float(f64::INFINITY).as_slice(), b"+Inf");
        assert_eq!(go_bool(true).as_slice(), b"True");
        assert_eq!(
            go_rfc3339("2026-12-03T07:51:18.123+00:00").as_deref(),
            Some("2026-12-03T07:51:18Z")
        );
        assert_eq!(
            go_rfc3339("2026-12-03T07:51:18+02:00").as_deref(),
            Some("2026-12-03T07:51:18+02:00")
        );
        assert_eq!(go_rfc3339("yesterday"), None);
    }

    #[test]
    fn other_stores_and_recipients_are_refused_by_name() {
        let err = open(
            "e.env",
            "A=ENC[x]\nsops_version=3.11.0\nsops_mac=ENC[x]\n",
            &[],
        )
        .unwrap_err();
        assert!(err.message.contains("dotenv"), "{err}");
        let err = open("e.ini", "[s]\na=b\n[sops]\nmac=x\n", &[]).unwrap_err();
        assert!(err.message.contains("INI"), "{err}");
        let bin = "{\"data\": \"ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]\", \"sops\": {\"mac\": \"x\"}}";
        let err = open("b.json", bin, &[]).unwrap_err();
        assert!(err.message.contains("binary"), "{err}");
        let pgp = REGEX.replace("    age:\n", "    pgp:\n");
        let err = open_fixture("p", &pgp).unwrap_err();
        assert!(
            err.message.contains("no age recipients (only pgp)"),
            "{err}"
        );
        let err = open_fixture("c", "apiVersion: v1\nkind: Secret\n").unwrap_err();
        assert!(err.message.contains("not SOPS-encrypted"), "{err}");
    }
}
