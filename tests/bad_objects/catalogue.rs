//! The catalogue: SealedSecrets that are wrong or hostile, each with what must come of it.
//!
//! [`entries`] are admitted by the API server where only the CRD's schema and rules apply
//! (the namespace has no admission policy bound): the controller must give each Ready=False
//! with its own reason and a message naming the field, or, for the hostile but valid ones,
//! Ready=True and exactly the Secret sealed. `policy` says whether the shipped
//! ValidatingAdmissionPolicy (deploy/admission-policy.yaml) refuses the entry too, and with
//! what. [`refused`] are refused by the API server itself wherever they are applied (the
//! CRD's schema and rules, or the storage's request limit). Together they say which layer
//! stops what.

use super::build::*;
use gitseal::api::Reason::{self, *};
use gitseal::crypto::{self, DataKey, Recipient};
use gitseal::format::{Scope, Sealer};
use serde_json::json;

/// What the controller must make of an admitted object.
pub enum Expect {
    /// Ready=True; the Secret holds exactly what was sealed; status names only our key id.
    Unsealed,
    /// Ready=False with `reason`; the message is `field: ...` (just `...` when `field` is
    /// empty) and contains `says`. Both may name placeholders: `{ns}`, `{name}`, `{our}` and
    /// those the builder sets.
    Fails {
        reason: Reason,
        field: &'static str,
        says: &'static str,
    },
}

pub struct Entry {
    /// The object's name, and what it is.
    pub name: &'static str,
    pub expect: Expect,
    /// What the shipped admission policy says when it refuses the entry (`None`: it admits it).
    pub policy: Option<&'static str>,
    pub build: fn(&Kit, &str) -> Built,
}

/// An object the API server refuses wherever it is applied.
pub struct Refused {
    pub name: &'static str,
    pub layer: &'static str,
    /// In the API server's answer.
    pub says: &'static str,
    pub build: fn(&Kit, &str) -> Built,
}

const fn fails(reason: Reason, field: &'static str, says: &'static str) -> Expect {
    Expect::Fails {
        reason,
        field,
        says,
    }
}

fn entry(
    name: &'static str,
    expect: Expect,
    policy: Option<&'static str>,
    build: fn(&Kit, &str) -> Built,
) -> Entry {
    Entry {
        name,
        expect,
        policy,
        build,
    }
}

/// The plain text of object `name`'s value `k`: never to be seen in logs, status, Events or
/// metrics.
pub fn marker(name: &str) -> String {
    format!("plaintext-of-{name}")
}

/// A good strict object holding `k` = its marker.
fn basic(kit: &Kit, name: &str) -> serde_json::Value {
    kit.good(name, &[("k", marker(name).as_str())])
}

/// A good object with `edit` applied; `vars` from the object before the edit: `{env}`.
fn edited(kit: &Kit, name: &str, edit: impl FnOnce(&mut serde_json::Value, &str)) -> Built {
    let mut doc = basic(kit, name);
    let env = envelope_id(&doc);
    edit(&mut doc, &env);
    Built::new(&kit.ns, doc).var("env", env)
}

/// An object whose only value is under `key` (properly sealed for it).
fn keyed(kit: &Kit, name: &str, key: &str) -> Built {
    let doc = kit.raw(
        name,
        std::slice::from_ref(&kit.ours),
        &[(key, marker(name).as_bytes())],
    );
    // The controller names a key too long to be one by its head.
    let named = if key.len() > 253 {
        format!("{}...", &key[..64])
    } else {
        key.to_string()
    };
    Built::new(&kit.ns, doc).var("key", named)
}

/// A good object with template `data` (key → template text).
fn templated(kit: &Kit, name: &str, data: &[(&str, &str)]) -> Built {
    let mut b = edited(kit, name, |_, _| {});
    for (k, t) in data {
        set(&mut b.doc, &["spec", "template", "data", *k], json!(t));
    }
    b
}

/// A good object whose Secret template gets `path` (under `spec.template`) = `v`.
fn with_template(kit: &Kit, name: &str, path: &[&str], v: serde_json::Value) -> Built {
    let mut b = edited(kit, name, |_, _| {});
    let full: Vec<&str> = ["spec", "template"].iter().chain(path).copied().collect();
    set(&mut b.doc, &full, v);
    b
}

/// A good object sealed for `for_ns` in `scope`, placed in `ns`.
fn sealed_in(kit: &Kit, name: &str, for_ns: &str, scope: &str, ns: &str) -> Built {
    let mut doc = kit.sealed(for_ns, name, &[("k", marker(name).as_str())], scope);
    doc["metadata"]["namespace"] = json!(ns);
    Built::new(ns, doc)
}

/// Flip bit 0 of the last byte (the payload's tag) of our wrapping of envelope `env`.
fn flip_payload(doc: &mut serde_json::Value, env: &str, our: &str) {
    let mut bytes = wrapped(doc, env, our);
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    set_wrapped(doc, env, our, &bytes);
}

fn ours_and(kit: &Kit, n: usize) -> Vec<Recipient> {
    std::iter::once(kit.ours.clone())
        .chain(kit.strangers.iter().take(n).cloned())
        .collect()
}

const NOT_A_KEY: &str = "not a valid Secret key";
const API_422: &str = "the API server answered 422 Invalid (retrying)";
const NOT_AUTHENTIC: &str =
    "value does not authenticate: it was tampered with, or moved from another key or object";

pub fn entries() -> Vec<Entry> {
    vec![
        // InvalidSpec: values that pass the CRD's prefix rule but are not gitseal values.
        entry(
            "value-not-base64",
            fails(InvalidSpec, "spec.encryptedData.k", "ciphertext base64"),
            Some("spec.encryptedData.k: not a gitseal value"),
            |k, n| {
                edited(k, n, |d, env| {
                    set_value(d, "k", format!("gs1:strict:{env}:not*base64!"))
                })
            },
        ),
        entry(
            "value-base64-tail-cut",
            fails(InvalidSpec, "spec.encryptedData.k", "ciphertext base64"),
            None,
            |k, n| {
                edited(k, n, |d, _| {
                    let mut v = value(d, "k");
                    v.pop();
                    set_value(d, "k", v)
                })
            },
        ),
        entry(
            "value-base64-tail-junk",
            fails(InvalidSpec, "spec.encryptedData.k", "ciphertext base64"),
            None,
            |k, n| edited(k, n, |d, _| set_value(d, "k", value(d, "k") + "%%%%")),
        ),
        entry(
            "value-shorter-than-nonce-and-tag",
            fails(
                InvalidSpec,
                "spec.encryptedData.k",
                "ciphertext shorter than nonce and tag",
            ),
            Some("spec.encryptedData.k: not a gitseal value"),
            |k, n| {
                edited(k, n, |d, env| {
                    let b64 = base64::Engine::encode(
                        &base64::engine::general_purpose::STANDARD,
                        [7u8; 27],
                    );
                    set_value(d, "k", format!("gs1:strict:{env}:{b64}"))
                })
            },
        ),
        entry(
            "value-envelope-id-short",
            fails(
                InvalidSpec,
                "spec.encryptedData.k",
                "envelope id must be 32 lowercase hex characters",
            ),
            Some("spec.encryptedData.k: not a gitseal value"),
            |k, n| {
                edited(k, n, |d, env| {
                    set_value(d, "k", value(d, "k").replace(env, "abc"))
                })
            },
        ),
        entry(
            "value-three-fields",
            fails(
                InvalidSpec,
                "spec.encryptedData.k",
                "expected 4 colon-separated fields",
            ),
            Some("spec.encryptedData.k: not a gitseal value"),
            |k, n| {
                edited(k, n, |d, env| {
                    set_value(d, "k", format!("gs1:strict:{env}"))
                })
            },
        ),
        entry(
            "value-names-a-missing-envelope",
            fails(
                InvalidSpec,
                "spec.encryptedData.k2",
                "references envelope 00000000000000000000000000000000 which is not in spec.envelopes",
            ),
            Some("spec.encryptedData.k2: names an envelope that spec.envelopes does not hold"),
            |k, n| {
                edited(k, n, |d, env| {
                    let other = value(d, "k").replace(env, &"0".repeat(32));
                    set_value(d, "k2", other)
                })
            },
        ),
        // InvalidSpec: envelopes and wrapped keys.
        entry(
            "envelope-unused",
            fails(
                InvalidSpec,
                "spec.envelopes.{extra}",
                "envelope is not used by any value",
            ),
            Some("no value uses this envelope"),
            |k, n| {
                let extra = "f".repeat(32);
                edited(k, n, |d, env| {
                    let copy = d["spec"]["envelopes"][env].clone();
                    d["spec"]["envelopes"][&extra] = copy;
                })
                .var("extra", "f".repeat(32))
            },
        ),
        entry(
            "envelope-empty",
            fails(
                InvalidSpec,
                "spec.envelopes.{env}",
                "envelope has no wrapped keys",
            ),
            Some("wrappings are keyed by 16 lowercase hex key ids (and there is at least one)"),
            |k, n| edited(k, n, |d, env| d["spec"]["envelopes"][env] = json!({})),
        ),
        entry(
            "wrapped-binary-garbage",
            fails(
                InvalidSpec,
                "spec.envelopes.{env}.{our}",
                "wrapped key is not a base64 age file",
            ),
            None,
            |k, n| {
                let our = k.our_id();
                edited(k, n, |d, env| set_wrapped(d, env, &our, &random_bytes(300)))
            },
        ),
        entry(
            "wrapped-three-stanzas",
            fails(
                InvalidSpec,
                "spec.envelopes.{env}.{our}",
                "3 of them X25519: a gitseal wrapped key has exactly one X25519 stanza",
            ),
            None,
            |k, n| {
                let our = k.our_id();
                let three = ours_and(k, 2);
                edited(k, n, |d, env| {
                    let file = crypto::encrypt_file(&random_bytes(32), &three).unwrap();
                    set_wrapped(d, env, &our, &file)
                })
            },
        ),
        // InvalidSpec: over the 1 MiB of a Secret's data.
        entry(
            "data-over-1mib-by-one-byte",
            fails(
                InvalidSpec,
                "spec.encryptedData",
                "keys and values add up to 1048577 bytes, over the 1048576-byte limit",
            ),
            None,
            |k, n| {
                let big = vec![b'x'; 1024 * 1024 - 3];
                let doc = k.raw(
                    n,
                    std::slice::from_ref(&k.ours),
                    &[("blob", big.as_slice())],
                );
                Built::new(&k.ns, doc)
            },
        ),
        entry(
            "value-over-1mib-within-the-crd-cap",
            fails(
                InvalidSpec,
                "spec.encryptedData",
                "keys and values add up to 1048578 bytes",
            ),
            None,
            |k, n| {
                let mut doc = k.raw(n, std::slice::from_ref(&k.ours), &[]);
                doc["spec"]["envelopes"] = json!({});
                add_hand_sealed(&mut doc, &k.ours, "k", &vec![b'x'; 1024 * 1024 + 1]);
                Built::new(&k.ns, doc)
            },
        ),
        // InvalidSpec: keys the API server refuses in a Secret (IsConfigMapKey).
        entry(
            "key-with-slash",
            fails(
                InvalidSpec,
                "spec.encryptedData.a/b",
                "invalid key name \"a/b\"",
            ),
            Some(NOT_A_KEY),
            |k, n| keyed(k, n, "a/b"),
        ),
        entry(
            "key-dot",
            fails(
                InvalidSpec,
                "spec.encryptedData..",
                "invalid key name \".\"",
            ),
            Some(NOT_A_KEY),
            |k, n| keyed(k, n, "."),
        ),
        entry(
            "key-dotdot",
            fails(
                InvalidSpec,
                "spec.encryptedData...",
                "invalid key name \"..\"",
            ),
            Some(NOT_A_KEY),
            |k, n| keyed(k, n, ".."),
        ),
        entry(
            "key-dotdot-prefix",
            fails(
                InvalidSpec,
                "spec.encryptedData...data",
                "a key may not start with '..'",
            ),
            Some(NOT_A_KEY),
            |k, n| keyed(k, n, "..data"),
        ),
        entry(
            "key-254-characters",
            fails(
                InvalidSpec,
                "spec.encryptedData.{key}",
                "(254 bytes): use 1-253 of [-._a-zA-Z0-9]",
            ),
            Some(NOT_A_KEY),
            |k, n| keyed(k, n, &"k".repeat(254)),
        ),
        entry(
            "key-10000-characters",
            fails(InvalidSpec, "spec.encryptedData.{key}", "(10000 bytes)"),
            // The policy's message would quote the whole key: over what the API server lets a
            // message expression say, so it names the rule instead.
            Some("failed expression: object.spec.encryptedData.all(k, k.size() <= 253"),
            |k, n| keyed(k, n, &"k".repeat(10_000)),
        ),
        entry(
            "key-with-space",
            fails(
                InvalidSpec,
                "spec.encryptedData.a b",
                "invalid key name \"a b\"",
            ),
            Some(NOT_A_KEY),
            |k, n| keyed(k, n, "a b"),
        ),
        entry(
            "key-not-ascii",
            fails(
                InvalidSpec,
                "spec.encryptedData.p\u{e4}ssword",
                "invalid key name",
            ),
            Some(NOT_A_KEY),
            |k, n| keyed(k, n, "p\u{e4}ssword"),
        ),
        entry(
            "key-empty",
            fails(InvalidSpec, "spec.encryptedData.", "invalid key name \"\""),
            Some(NOT_A_KEY),
            |k, n| keyed(k, n, ""),
        ),
        entry(
            "template-key-with-slash",
            fails(
                InvalidSpec,
                "spec.template.data.a/b",
                "invalid key name \"a/b\"",
            ),
            Some("spec.template.data.a/b: not a valid Secret key"),
            |k, n| templated(k, n, &[("a/b", "{{ .k }}")]),
        ),
        // InvalidSpec: templates.
        entry(
            "template-forbidden-function",
            fails(InvalidSpec, "spec.template.data.out", "function \"env\""),
            None,
            |k, n| templated(k, n, &[("out", "{{ env \"HOME\" }}")]),
        ),
        entry(
            "template-does-not-parse",
            fails(InvalidSpec, "spec.template.data.out", "does not parse"),
            None,
            |k, n| templated(k, n, &[("out", "{{ .k ")]),
        ),
        entry(
            "template-output-over-1mib",
            fails(
                InvalidSpec,
                "spec.template.data.out",
                "over the 1048576-byte limit",
            ),
            None,
            |k, n| templated(k, n, &[("out", "{{ repeat 2000000 \"x\" }}")]),
        ),
        entry(
            "template-over-a-binary-value",
            fails(
                InvalidSpec,
                "spec.encryptedData.bin",
                "value is not UTF-8 text",
            ),
            None,
            |k, n| {
                let mut doc = k.raw(
                    n,
                    std::slice::from_ref(&k.ours),
                    &[("bin", &[0xff, 0xfe, 0x00][..])],
                );
                set(
                    &mut doc,
                    &["spec", "template", "data", "out"],
                    json!("{{ .bin }}"),
                );
                Built::new(&k.ns, doc)
            },
        ),
        // KeyNotFound.
        entry(
            "sealed-to-a-stranger",
            fails(
                KeyNotFound,
                "spec.encryptedData.k",
                "is sealed for key ids [{stranger}], the given identities are [{our}]",
            ),
            None,
            |k, n| {
                let doc = k.raw(n, &k.strangers[..1], &[("k", marker(n).as_bytes())]);
                Built::new(&k.ns, doc).var("stranger", k.strangers[0].key_id())
            },
        ),
        entry(
            "wrapped-for-32-strangers",
            fails(
                KeyNotFound,
                "spec.encryptedData.k",
                "is sealed for key ids [",
            ),
            None,
            |k, n| {
                let doc = k.raw(n, &k.strangers[..32], &[("k", marker(n).as_bytes())]);
                Built::new(&k.ns, doc)
            },
        ),
        entry(
            "our-wrapping-under-a-strangers-id",
            fails(
                KeyNotFound,
                "spec.encryptedData.k",
                "is sealed for key ids [{stranger}]",
            ),
            None,
            |k, n| {
                let (our, theirs) = (k.our_id(), k.strangers[0].key_id());
                edited(k, n, |d, env| {
                    let w = d["spec"]["envelopes"][env][&our].take();
                    d["spec"]["envelopes"][env] = json!({ theirs: w });
                })
                .var("stranger", k.strangers[0].key_id())
            },
        ),
        entry(
            // age cannot tell a damaged stanza from one for another key under our key id.
            "wrapped-stanza-body-flipped",
            fails(
                KeyNotFound,
                "spec.encryptedData.k",
                "envelope {env}: no identity given matches this wrapped key",
            ),
            None,
            |k, n| {
                let our = k.our_id();
                edited(k, n, |d, env| {
                    // The stanza body is the third line of the header.
                    let mut bytes = wrapped(d, env, &our);
                    let mut ends = bytes.iter().enumerate().filter(|(_, b)| **b == b'\n');
                    let body = ends.nth(1).unwrap().0 + 1;
                    flip_b64_char(&mut bytes, body + 3);
                    set_wrapped(d, env, &our, &bytes)
                })
            },
        ),
        // Tampered.
        entry(
            "ciphertext-flipped",
            fails(Tampered, "spec.encryptedData.k", NOT_AUTHENTIC),
            None,
            |k, n| edited(k, n, |d, _| edit_blob(d, "k", |b| b[12] ^= 1)),
        ),
        entry(
            "tag-flipped",
            fails(Tampered, "spec.encryptedData.k", NOT_AUTHENTIC),
            None,
            |k, n| {
                edited(k, n, |d, _| {
                    edit_blob(d, "k", |b| {
                        let last = b.len() - 1;
                        b[last] ^= 0x80
                    })
                })
            },
        ),
        entry(
            "nonce-flipped",
            fails(Tampered, "spec.encryptedData.k", NOT_AUTHENTIC),
            None,
            |k, n| edited(k, n, |d, _| edit_blob(d, "k", |b| b[0] ^= 1)),
        ),
        entry(
            "values-swapped-between-keys",
            fails(Tampered, "spec.encryptedData.a", NOT_AUTHENTIC),
            None,
            |k, n| {
                let (a, b) = (marker(n), marker(n) + "-b");
                let mut doc = k.good(n, &[("a", a.as_str()), ("b", b.as_str())]);
                let (va, vb) = (value(&doc, "a"), value(&doc, "b"));
                set_value(&mut doc, "a", vb);
                set_value(&mut doc, "b", va);
                Built::new(&k.ns, doc)
            },
        ),
        entry(
            // The CRD makes boundTo name the object, so the copy rewrites it.
            "strict-copied-to-another-name",
            fails(Tampered, "spec.encryptedData.k", NOT_AUTHENTIC),
            None,
            |k, n| {
                let mut doc = k.good("original", &[("k", marker(n).as_str())]);
                doc["metadata"]["name"] = json!(n);
                doc["spec"]["boundTo"] = json!(format!("{}/{n}", k.ns));
                Built::new(&k.ns, doc)
            },
        ),
        entry(
            "wrapped-another-data-key",
            fails(
                Tampered,
                "spec.encryptedData.k",
                "envelope {env}: data key does not match its envelope id (key commitment failed)",
            ),
            None,
            |k, n| {
                let (our, ours) = (k.our_id(), k.ours.clone());
                edited(k, n, |d, env| {
                    let other = crypto::wrap(&DataKey::generate(), &ours).unwrap();
                    set_wrapped(d, env, &our, &other)
                })
            },
        ),
        entry(
            "wrapped-header-mac-flipped",
            fails(
                Tampered,
                "spec.encryptedData.k",
                "envelope {env}: wrapped key is not a valid age file",
            ),
            None,
            |k, n| {
                let our = k.our_id();
                edited(k, n, |d, env| {
                    let mut bytes = wrapped(d, env, &our);
                    let at = mac_offset(&bytes) + 3;
                    flip_b64_char(&mut bytes, at);
                    set_wrapped(d, env, &our, &bytes)
                })
            },
        ),
        entry(
            "wrapped-payload-flipped",
            fails(
                Tampered,
                "spec.encryptedData.k",
                "envelope {env}: wrapped key is not a valid age file",
            ),
            None,
            |k, n| {
                let our = k.our_id();
                edited(k, n, |d, env| flip_payload(d, env, &our))
            },
        ),
        entry(
            "wrapped-31-byte-key",
            fails(
                Tampered,
                "spec.encryptedData.k",
                "envelope {env}: wrapped key does not hold a 32-byte data key",
            ),
            None,
            |k, n| {
                let (our, ours) = (k.our_id(), k.ours.clone());
                edited(k, n, |d, env| {
                    let file = crypto::encrypt_file(&[7; 31], &[ours]).unwrap();
                    set_wrapped(d, env, &our, &file)
                })
            },
        ),
        // BindingMismatch.
        entry(
            "strict-moved-from-another-namespace",
            fails(
                BindingMismatch,
                "spec.encryptedData.k",
                "sealed for prod/strict-moved-from-another-namespace, found in {ns}/strict-moved-from-another-namespace",
            ),
            Some("does not match this object"),
            |k, n| sealed_in(k, n, "prod", "strict", &k.ns),
        ),
        entry(
            "namespace-scope-moved",
            fails(
                BindingMismatch,
                "spec.encryptedData.k",
                "sealed for prod, found in {ns}",
            ),
            Some("does not match this object"),
            |k, n| sealed_in(k, n, "prod", "namespace", &k.ns),
        ),
        // PolicyDenied.
        entry(
            "type-service-account-token",
            fails(
                PolicyDenied,
                "spec.template.type",
                "Secret type kubernetes.io/service-account-token is denied by the template policy",
            ),
            None,
            |k, n| {
                with_template(
                    k,
                    n,
                    &["type"],
                    json!("kubernetes.io/service-account-token"),
                )
            },
        ),
        entry(
            "type-sealing-key",
            fails(
                PolicyDenied,
                "spec.template.type",
                "reserved for the controller's key Secrets",
            ),
            None,
            |k, n| with_template(k, n, &["type"], json!("gitseal.dev/sealing-key")),
        ),
        entry(
            "type-helm-release",
            fails(
                PolicyDenied,
                "spec.template.type",
                "Secret type helm.sh/release.v1 is denied by the template policy",
            ),
            None,
            |k, n| with_template(k, n, &["type"], json!("helm.sh/release.v1")),
        ),
        entry(
            "label-locked",
            fails(
                PolicyDenied,
                "spec.template.metadata.labels.gitseal.dev/key-id",
                "gitseal.dev/ keys are the controller's own",
            ),
            None,
            |k, n| {
                with_template(
                    k,
                    n,
                    &["metadata", "labels", "gitseal.dev/key-id"],
                    json!("x"),
                )
            },
        ),
        entry(
            "annotation-replicator",
            fails(
                PolicyDenied,
                "spec.template.metadata.annotations.replicator.v1.mittwald.de/replicate-to",
                "denied by the template policy (rule replicator.v1.mittwald.de/",
            ),
            None,
            |k, n| {
                with_template(
                    k,
                    n,
                    &[
                        "metadata",
                        "annotations",
                        "replicator.v1.mittwald.de/replicate-to",
                    ],
                    json!(".*"),
                )
            },
        ),
        entry(
            "in-kube-system",
            fails(
                PolicyDenied,
                "metadata.namespace",
                "the controller writes no Secret into namespace kube-system",
            ),
            None,
            |k, n| sealed_in(k, n, "kube-system", "strict", "kube-system"),
        ),
        entry(
            "in-the-controllers-namespace",
            fails(
                PolicyDenied,
                "metadata.namespace",
                "the controller writes no Secret into namespace gitseal-system",
            ),
            None,
            |k, n| sealed_in(k, n, "gitseal-system", "strict", "gitseal-system"),
        ),
        // SecretNotOwned.
        entry(
            "secret-exists",
            fails(
                SecretNotOwned,
                "",
                "Secret {ns}/secret-exists exists and is not managed by this SealedSecret",
            ),
            None,
            |k, n| {
                let mut b = edited(k, n, |_, _| {});
                b.existing = Some(json!({
                    "apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": n},
                    "stringData": {"k": "the owner's own value"},
                }));
                b
            },
        ),
        entry(
            // gitseal's label alone makes no Secret the object's.
            "secret-with-gitseals-label-only",
            fails(
                SecretNotOwned,
                "",
                "Secret {ns}/secret-with-gitseals-label-only exists and is not managed by this SealedSecret",
            ),
            None,
            |k, n| {
                let mut b = edited(k, n, |_, _| {});
                b.existing = Some(json!({
                    "apiVersion": "v1", "kind": "Secret",
                    "metadata": {
                        "name": n,
                        "labels": {"app.kubernetes.io/managed-by": "gitseal"},
                    },
                    "stringData": {"k": "someone else's value"},
                }));
                b
            },
        ),
        // ApiError: Secrets the API server refuses to store.
        entry(
            "label-value-invalid",
            fails(ApiError, "", API_422),
            None,
            |k, n| with_template(k, n, &["metadata", "labels", "tier"], json!("not valid!")),
        ),
        entry(
            "label-key-invalid",
            fails(ApiError, "", API_422),
            None,
            |k, n| with_template(k, n, &["metadata", "labels", "bad key!"], json!("x")),
        ),
        entry(
            "annotations-over-256kib",
            fails(ApiError, "", API_422),
            None,
            |k, n| {
                let mut b = edited(k, n, |_, _| {});
                for i in 0..5 {
                    let a = format!("a{i}");
                    let path = ["spec", "template", "metadata", "annotations", a.as_str()];
                    set(&mut b.doc, &path, json!("x".repeat(60_000)));
                }
                b
            },
        ),
        entry(
            "type-tls-without-its-keys",
            fails(ApiError, "", API_422),
            None,
            |k, n| with_template(k, n, &["type"], json!("kubernetes.io/tls")),
        ),
        entry(
            "type-dockerconfigjson-not-json",
            fails(ApiError, "", API_422),
            None,
            |k, n| {
                let doc = k.raw(
                    n,
                    std::slice::from_ref(&k.ours),
                    &[(".dockerconfigjson", &b"not json"[..])],
                );
                let mut b = Built::new(&k.ns, doc);
                set(
                    &mut b.doc,
                    &["spec", "template", "type"],
                    json!("kubernetes.io/dockerconfigjson"),
                );
                b
            },
        ),
        // Hostile but valid: unsealed, exactly.
        entry(
            "value-of-1mib-at-the-limit",
            Expect::Unsealed,
            None,
            |k, n| {
                // Key and value add up to exactly the 1 MiB of a Secret's data.
                let big = vec![b'x'; 1024 * 1024 - 3];
                let doc = k.raw(n, std::slice::from_ref(&k.ours), &[("big", big.as_slice())]);
                Built::new(&k.ns, doc).wants([("big", big)])
            },
        ),
        entry("keys-4096", Expect::Unsealed, None, |k, n| {
            let pairs: Vec<(String, String)> = (0..4096)
                .map(|i| (format!("key-{i:04}"), format!("{}-{i}", marker(n))))
                .collect();
            let refs: Vec<(&str, &str)> = pairs
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            Built::new(&k.ns, k.good(n, &refs)).wants(pairs)
        }),
        entry("envelopes-256", Expect::Unsealed, None, |k, n| {
            let mut doc = k.raw(n, std::slice::from_ref(&k.ours), &[]);
            doc["spec"]["envelopes"] = json!({});
            let mut want = Vec::new();
            for i in 0..256 {
                let sealer = Sealer::new(std::slice::from_ref(&k.ours), Scope::Strict).unwrap();
                let (key, plain) = (format!("e{i:03}"), format!("{}-{i}", marker(n)));
                add_values(&mut doc, &sealer, &[(key.as_str(), plain.as_bytes())]);
                want.push((key, plain));
            }
            Built::new(&k.ns, doc).wants(want)
        }),
        entry(
            "envelope-for-32-recipients",
            Expect::Unsealed,
            None,
            |k, n| {
                let doc = k.raw(n, &ours_and(k, 31), &[("k", marker(n).as_bytes())]);
                Built::new(&k.ns, doc).wants([("k", marker(n))])
            },
        ),
        entry(
            "duplicate-key-ids-across-envelopes",
            Expect::Unsealed,
            None,
            |k, n| {
                // Eight envelopes, each wrapped for the same two key ids (ours and a stranger's).
                let mut doc = k.raw(n, std::slice::from_ref(&k.ours), &[]);
                doc["spec"]["envelopes"] = json!({});
                let mut want = Vec::new();
                for i in 0..8 {
                    let sealer = Sealer::new(&ours_and(k, 1), Scope::Strict).unwrap();
                    let (key, plain) = (format!("d{i}"), format!("{}-{i}", marker(n)));
                    add_values(&mut doc, &sealer, &[(key.as_str(), plain.as_bytes())]);
                    want.push((key, plain));
                }
                Built::new(&k.ns, doc).wants(want)
            },
        ),
        entry("binary-values", Expect::Unsealed, None, |k, n| {
            let random = random_bytes(64);
            let values: [(&str, &[u8]); 3] = [
                ("random", &random),
                ("nul", &[0, 0, 0]),
                ("latin1", &[0xe9]),
            ];
            let doc = k.raw(n, std::slice::from_ref(&k.ours), &values);
            Built::new(&k.ns, doc).wants(values.map(|(a, b)| (a, b.to_vec())))
        }),
        entry("empty-value", Expect::Unsealed, None, |k, n| {
            let doc = k.good(n, &[("empty", ""), ("k", marker(n).as_str())]);
            Built::new(&k.ns, doc).wants([("empty", String::new()), ("k", marker(n))])
        }),
        entry(
            // The binding is in each value; boundTo only helps error messages.
            "bound-to-says-another-namespace",
            Expect::Unsealed,
            Some("does not match this object"),
            |k, n| {
                edited(k, n, |d, _| {
                    d["spec"]["boundTo"] = json!(format!("prod/{n}"))
                })
                .wants([("k", marker(n))])
            },
        ),
        entry("cluster-scope-moved", Expect::Unsealed, None, |k, n| {
            sealed_in(k, n, "prod", "cluster", &k.ns).wants([("k", marker(n))])
        }),
        entry("template-rendered", Expect::Unsealed, None, |k, n| {
            let mut doc = k.good(n, &[("user", "admin"), ("password", marker(n).as_str())]);
            let dsn = "postgres://{{ .user }}:{{ .password }}@db";
            set(&mut doc, &["spec", "template", "data", "dsn"], json!(dsn));
            Built::new(&k.ns, doc).wants([
                ("user", "admin".to_string()),
                ("password", marker(n)),
                ("dsn", format!("postgres://admin:{}@db", marker(n))),
            ])
        }),
        entry(
            "keys-at-the-edges-of-the-rule",
            Expect::Unsealed,
            None,
            |k, n| {
                let longest = "k".repeat(253);
                let keys = [".a", "a..b", "-", "_.", "x.", longest.as_str()];
                let values: Vec<(&str, &[u8])> =
                    keys.iter().map(|key| (*key, key.as_bytes())).collect();
                let doc = k.raw(n, std::slice::from_ref(&k.ours), &values);
                Built::new(&k.ns, doc).wants(keys.map(|key| (key, key)))
            },
        ),
    ]
}

/// Objects the API server refuses wherever they are applied.
pub fn refused() -> Vec<Refused> {
    let schema = "CRD schema";
    vec![
        Refused {
            name: "envelope-for-500-recipients",
            layer: schema,
            says: "must have at most 32 items",
            build: |k, n| {
                let many: Vec<Recipient> = std::iter::once(k.ours.clone())
                    .chain(strangers(499))
                    .collect();
                Built::new(&k.ns, k.raw(n, &many, &[("k", &b"v"[..])]))
            },
        },
        Refused {
            name: "wrapped-key-for-500-recipients",
            layer: schema,
            says: "may not be more than 1368 bytes",
            build: |k, n| {
                let our = k.our_id();
                edited(k, n, |d, env| {
                    let file = crypto::encrypt_file(&random_bytes(32), &strangers(500)).unwrap();
                    set_wrapped(d, env, &our, &file)
                })
            },
        },
        Refused {
            name: "envelopes-257",
            layer: schema,
            says: "must have at most 256 items",
            build: |k, n| {
                let mut doc = k.raw(n, std::slice::from_ref(&k.ours), &[]);
                doc["spec"]["envelopes"] = json!({});
                for i in 0..257 {
                    let sealer = Sealer::new(std::slice::from_ref(&k.ours), Scope::Strict).unwrap();
                    add_values(&mut doc, &sealer, &[(format!("e{i}").as_str(), &b"v"[..])]);
                }
                Built::new(&k.ns, doc)
            },
        },
        Refused {
            name: "values-4097",
            layer: schema,
            says: "must have at most 4096 items",
            build: |k, n| {
                let values: Vec<(String, &[u8])> =
                    (0..4097).map(|i| (format!("k{i}"), &b"v"[..])).collect();
                let refs: Vec<(&str, &[u8])> =
                    values.iter().map(|(a, b)| (a.as_str(), *b)).collect();
                Built::new(&k.ns, k.raw(n, std::slice::from_ref(&k.ours), &refs))
            },
        },
        Refused {
            name: "value-over-the-crd-character-cap",
            layer: schema,
            says: "may not be more than 1398187 bytes",
            build: |k, n| {
                let mut doc = k.raw(n, std::slice::from_ref(&k.ours), &[]);
                doc["spec"]["envelopes"] = json!({});
                add_hand_sealed(&mut doc, &k.ours, "k", &vec![b'x'; 1024 * 1024 + 2]);
                Built::new(&k.ns, doc)
            },
        },
        Refused {
            name: "plain-text-value",
            layer: schema,
            says: "not a gitseal value",
            build: |k, n| edited(k, n, |d, _| set_value(d, "k", "hunter2")),
        },
        Refused {
            name: "unknown-scope",
            layer: schema,
            says: "Unsupported value: \"global\"",
            build: |k, n| edited(k, n, |d, _| d["spec"]["scope"] = json!("global")),
        },
        Refused {
            name: "value-of-another-scope",
            layer: schema,
            says: "not sealed for spec.scope strict",
            build: |k, n| {
                edited(k, n, |d, _| {
                    set_value(
                        d,
                        "k",
                        value(d, "k").replacen("gs1:strict:", "gs1:cluster:", 1),
                    )
                })
            },
        },
        Refused {
            name: "bound-to-another-name",
            layer: schema,
            says: "spec.boundTo must be <namespace>/<metadata.name>",
            build: |k, n| {
                let ns = k.ns.clone();
                edited(k, n, |d, _| {
                    d["spec"]["boundTo"] = json!(format!("{ns}/other"))
                })
            },
        },
        Refused {
            name: "label-value-over-63",
            layer: schema,
            says: "may not be more than 63 bytes",
            build: |k, n| {
                with_template(k, n, &["metadata", "labels", "tier"], json!("x".repeat(64)))
            },
        },
        Refused {
            name: "values-over-the-storage-request-limit",
            layer: "storage (etcd request limit)",
            says: "too large",
            build: |k, n| {
                let big = vec![b'x'; 600_000];
                let doc = k.raw(
                    n,
                    std::slice::from_ref(&k.ours),
                    &[("a", big.as_slice()), ("b", big.as_slice())],
                );
                Built::new(&k.ns, doc)
            },
        },
    ]
}
