//! Known-answer vectors of docs/format.md: every vector printed in the spec is recomputed
//! from its inputs (fixed identity, data key and nonce) and checked field by field, and its
//! wrapped key (made once by Debian's `age`) opens to the data key.
//! `GITSEAL_PRINT_VECTORS=1 cargo test --test format_vectors -- --nocapture` prints them.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gitseal::crypto::{DataKey, Identity, envelope_id, key_id, seal_with_nonce, unwrap};
use gitseal::format::Map;
use gitseal::format::{Opener, Scope, SealedValue, Target, aad};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Vector {
    vector: u32,
    identity: String,
    recipient: String,
    key_id: String,
    data_key: String,
    envelope_id: String,
    wrapped_key: String,
    scope: Scope,
    namespace: Option<String>,
    name: String,
    key: String,
    plaintext: String,
    nonce: String,
    aad: String,
    value: String,
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn vectors() -> Vec<Vector> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/format.md"))
        .expect("docs/format.md");
    let mut out = Vec::new();
    let mut block: Option<String> = None;
    for line in doc.lines() {
        match (&mut block, line) {
            (None, "```yaml") => block = Some(String::new()),
            (Some(b), "```") => {
                if b.starts_with("vector:") {
                    out.push(gitseal::yaml::from_str(b).expect("vector parses"));
                }
                block = None;
            }
            (Some(b), l) => {
                b.push_str(l);
                b.push('\n');
            }
            _ => {}
        }
    }
    out
}

#[test]
fn spec_has_at_least_three_vectors_one_per_scope() {
    let v = vectors();
    assert!(v.len() >= 3, "docs/format.md has {} vectors", v.len());
    for scope in [Scope::Strict, Scope::Namespace, Scope::Cluster] {
        assert!(v.iter().any(|x| x.scope == scope), "no vector for {scope}");
    }
}

#[test]
fn vectors_recompute() {
    let print = std::env::var_os("GITSEAL_PRINT_VECTORS").is_some();
    for v in vectors() {
        let n = v.vector;
        let identity = Identity::parse(&v.identity).unwrap();
        let data_key = DataKey::from_bytes(unhex(&v.data_key).try_into().unwrap());
        let nonce: [u8; 12] = unhex(&v.nonce).try_into().unwrap();
        let target = Target {
            namespace: v.namespace.as_deref(),
            name: &v.name,
        };
        let computed_aad = aad(v.scope, target, &v.key).unwrap();
        let blob = seal_with_nonce(&data_key, &nonce, &computed_aad, &unhex(&v.plaintext));
        let value = SealedValue {
            scope: v.scope,
            envelope_id: envelope_id(&data_key),
            blob,
        }
        .emit();
        if print {
            println!(
                "vector {n}: recipient {} keyId {} envelopeId {} aad {} value {value}",
                identity.recipient().as_str(),
                key_id(identity.recipient().as_str()),
                envelope_id(&data_key),
                hex(&computed_aad)
            );
            continue;
        }
        assert_eq!(
            identity.recipient().as_str(),
            v.recipient,
            "vector {n}: recipient"
        );
        assert_eq!(key_id(&v.recipient), v.key_id, "vector {n}: keyId");
        assert_eq!(
            envelope_id(&data_key),
            v.envelope_id,
            "vector {n}: envelopeId"
        );
        assert_eq!(hex(&computed_aad), v.aad, "vector {n}: aad");
        assert_eq!(value, v.value, "vector {n}: value");

        // The wrapped key is a standard age file for the identity, holding the data key.
        let wrapped = STANDARD.decode(&v.wrapped_key).unwrap();
        // Within the limits every reader checks (docs/format.md § Limits): one X25519
        // stanza, at most 1,024 bytes.
        gitseal::crypto::check_wrapped(&wrapped)
            .unwrap_or_else(|e| panic!("vector {n}: wrappedKey over the limits: {e}"));
        assert!(
            v.wrapped_key.len() <= gitseal::format::limits::MAX_WRAPPED_KEY_TEXT,
            "vector {n}"
        );
        let unwrapped = unwrap(&wrapped, &[&identity]).unwrap();
        assert_eq!(
            unwrapped.expose(),
            data_key.expose(),
            "vector {n}: wrappedKey"
        );

        // And the whole path a reader takes gives the plain text back.
        let envelopes = Map::from_iter([(
            v.envelope_id.clone(),
            Map::from_iter([(v.key_id.clone(), v.wrapped_key.clone())]),
        )]);
        let plain = Opener::new([&identity])
            .open(&envelopes, v.scope, target, &v.key, &v.value)
            .unwrap();
        assert_eq!(hex(plain.expose()), v.plaintext, "vector {n}: plaintext");
    }
}
