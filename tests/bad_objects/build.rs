//! How the catalogue's objects are made: each starts as a good SealedSecret, sealed with the
//! crate's own APIs (`manifest::seal`, `format::Sealer`, the crypto core for what `seal`
//! refuses to make, such as a value over 1 MiB or a wrapped key of another data key), and is
//! then broken by raw JSON edits: what an author with `kubectl apply` can write.

use super::ctrltool::seal_with;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gitseal::crypto::{self, DataKey, Identity, Recipient};
use gitseal::format::{Scope, SealedValue, Sealer, Target, aad};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// What every builder needs: where objects go and whose keys there are.
#[derive(Clone)]
pub struct Kit {
    /// The catalogue's namespace.
    pub ns: String,
    /// The cluster's Active key (the only key the controller holds).
    pub ours: Recipient,
    /// Public keys of strangers (private keys nobody here holds): enough for the fullest
    /// envelope the CRD admits.
    pub strangers: Vec<Recipient>,
}

/// One object, ready to apply, and what its expectation refers to.
pub struct Built {
    /// Namespace it is applied in.
    pub ns: String,
    pub doc: Value,
    /// Values for the placeholders of its expectation (`{env}`, `{key}`, ...).
    pub vars: Vec<(&'static str, String)>,
    /// For objects that unseal: the whole data their Secret must hold.
    pub want: Option<BTreeMap<String, Vec<u8>>>,
    /// A Secret of the object's name created before it (not the controller's).
    pub existing: Option<Value>,
}

impl Built {
    pub fn new(ns: &str, doc: Value) -> Self {
        Self {
            ns: ns.to_string(),
            doc,
            vars: Vec::new(),
            want: None,
            existing: None,
        }
    }

    pub fn var(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.vars.push((name, value.into()));
        self
    }

    /// Expect the Secret to hold exactly `data`.
    pub fn wants<K: Into<String>, V: Into<Vec<u8>>>(
        mut self,
        data: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.want = Some(
            data.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }

    pub fn name(&self) -> &str {
        self.doc["metadata"]["name"].as_str().unwrap()
    }
}

impl Kit {
    pub fn new(ns: &str, ours: Recipient) -> Self {
        Self {
            ns: ns.to_string(),
            ours,
            strangers: strangers(32),
        }
    }

    /// The same keys, objects placed in namespace `ns`.
    pub fn at(&self, ns: &str) -> Self {
        Self {
            ns: ns.to_string(),
            ..self.clone()
        }
    }

    pub fn our_id(&self) -> String {
        self.ours.key_id()
    }

    /// `pairs` sealed by `manifest::seal` (as `gitseal seal` does) as Secret `for_ns/name`,
    /// to our key, and placed in `self.ns`.
    pub fn sealed(&self, for_ns: &str, name: &str, pairs: &[(&str, &str)], scope: &str) -> Value {
        let sealed = seal_with(std::slice::from_ref(&self.ours), for_ns, name, pairs, scope);
        let mut doc = serde_json::to_value(&sealed).unwrap();
        doc["metadata"]["namespace"] = json!(self.ns);
        doc
    }

    /// A good strict object in the catalogue's namespace holding `pairs`.
    pub fn good(&self, name: &str, pairs: &[(&str, &str)]) -> Value {
        self.sealed(&self.ns, name, pairs, "strict")
    }

    /// A strict object in the catalogue's namespace whose values are sealed with one
    /// [`Sealer`] (one envelope) to `to`, under any keys and bytes (what `seal` refuses too).
    pub fn raw(&self, name: &str, to: &[Recipient], values: &[(&str, &[u8])]) -> Value {
        let sealer = Sealer::new(to, Scope::Strict).unwrap();
        let mut doc = self.good(name, &[("k", "v")]);
        doc["spec"]["encryptedData"] = json!({});
        doc["spec"]["envelopes"] = json!({});
        add_values(&mut doc, &sealer, values);
        doc
    }
}

/// The target a document's values are bound to where it stands.
fn target_of(doc: &Value) -> (String, String) {
    let m = &doc["metadata"];
    (
        m["namespace"].as_str().unwrap().to_string(),
        m["name"].as_str().unwrap().to_string(),
    )
}

/// Seal `values` with `sealer` for where `doc` stands and add them and the sealer's envelope.
pub fn add_values(doc: &mut Value, sealer: &Sealer, values: &[(&str, &[u8])]) {
    let (ns, name) = target_of(doc);
    let target = Target {
        namespace: Some(&ns),
        name: &name,
    };
    for (key, plain) in values {
        let v = sealer.seal(target, key, plain).unwrap();
        doc["spec"]["encryptedData"][*key] = json!(v);
    }
    let e = sealer.envelope();
    for (kid, w) in e.wrapped.iter() {
        doc["spec"]["envelopes"][&e.id][kid] = json!(w);
    }
}

/// A value sealed by hand with the crypto core (a fresh data key wrapped to `to`), for
/// what `Sealer` refuses (over 1 MiB). Adds the value and its envelope to `doc`.
pub fn add_hand_sealed(doc: &mut Value, to: &Recipient, key: &str, plain: &[u8]) {
    let (ns, name) = target_of(doc);
    let target = Target {
        namespace: Some(&ns),
        name: &name,
    };
    let data_key = DataKey::generate();
    let id = crypto::envelope_id(&data_key);
    let blob = crypto::seal(&data_key, &aad(Scope::Strict, target, key).unwrap(), plain);
    let value = SealedValue {
        scope: Scope::Strict,
        envelope_id: id.clone(),
        blob,
    };
    doc["spec"]["encryptedData"][key] = json!(value.emit());
    let wrapped = STANDARD.encode(crypto::wrap(&data_key, to).unwrap());
    doc["spec"]["envelopes"][&id] = json!({ to.key_id(): wrapped });
}

/// The id of the (first) envelope.
pub fn envelope_id(doc: &Value) -> String {
    doc["spec"]["envelopes"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone()
}

pub fn value(doc: &Value, key: &str) -> String {
    doc["spec"]["encryptedData"][key]
        .as_str()
        .unwrap()
        .to_string()
}

pub fn set_value(doc: &mut Value, key: &str, v: impl Into<String>) {
    doc["spec"]["encryptedData"][key] = json!(v.into());
}

/// Change the bytes (nonce ‖ ciphertext ‖ tag) of value `key`.
pub fn edit_blob(doc: &mut Value, key: &str, edit: impl FnOnce(&mut Vec<u8>)) {
    let mut v = SealedValue::parse(&value(doc, key)).unwrap();
    edit(&mut v.blob);
    set_value(doc, key, v.emit());
}

/// The bytes of the wrapping of envelope `env` for key id `kid`.
pub fn wrapped(doc: &Value, env: &str, kid: &str) -> Vec<u8> {
    let text = doc["spec"]["envelopes"][env][kid].as_str().unwrap();
    STANDARD.decode(text).unwrap()
}

pub fn set_wrapped(doc: &mut Value, env: &str, kid: &str, bytes: &[u8]) {
    doc["spec"]["envelopes"][env][kid] = json!(STANDARD.encode(bytes));
}

/// Set `path` in `doc` (serde_json's indexing makes the objects on the way).
pub fn set(doc: &mut Value, path: &[&str], v: Value) {
    let at = path.iter().fold(doc, |at, p| &mut at[*p]);
    *at = v;
}

/// The byte offset of the header MAC in a binary age file (after `--- `).
pub fn mac_offset(age_file: &[u8]) -> usize {
    let at = age_file
        .windows(4)
        .position(|w| w == b"--- ")
        .expect("an age header ends with its MAC line");
    at + 4
}

/// Replace one base64 character of a text at `at` with another valid one.
pub fn flip_b64_char(bytes: &mut [u8], at: usize) {
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
}

/// Public keys of `n` fresh identities whose private keys are dropped at once.
pub fn strangers(n: usize) -> Vec<Recipient> {
    (0..n).map(|_| Identity::generate().recipient()).collect()
}

/// `n` bytes of OS randomness.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    b
}
