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
use serde_json::{Value, json};

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

/// How an object is made, given the kit and its name.
pub type Build = Box<dyn Fn(&Kit, &str) -> Built>;

pub struct Entry {
    /// The object's name, and what it is.
    pub name: &'static str,
    pub expect: Expect,
    /// What the shipped admission policy says when it refuses the entry (`None`: it admits it).
    pub policy: Option<&'static str>,
    pub build: Build,
}

/// An object the API server refuses wherever it is applied.
pub struct Refused {
    pub name: &'static str,
    pub layer: &'static str,
    /// In the API server's answer.
    pub says: &'static str,
    pub build: Build,
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
    build: impl Fn(&Kit, &str) -> Built + 'static,
) -> Entry {
    Entry {
        name,
        expect,
        policy,
        build: Box::new(build),
    }
}

/// The plain text of object `name`'s value `k`: never to be seen in logs, status, Events or
/// metrics.
pub fn marker(name: &str) -> String {
    format!("plaintext-of-{name}")
}

/// A good strict object holding `k` = its marker.
fn basic(kit: &Kit, name: &str) -> Value {
    kit.good(name, &[("k", marker(name).as_str())])
}

/// A good object with `edit` applied; `vars` from the object before the edit: `{env}`.
fn edited(kit: &Kit, name: &str, edit: impl FnOnce(&mut Value, &str)) -> Built {
    let mut doc = basic(kit, name);
    let env = envelope_id(&doc);
    edit(&mut doc, &env);
    Built::new(&kit.ns, doc).var("env", env)
}

/// Value `k` is not a gitseal value (InvalidSpec naming it) once `edit` has been at it.
fn malformed(
    name: &'static str,
    says: &'static str,
    policy: Option<&'static str>,
    edit: impl Fn(&mut Value, &str) + 'static,
) -> Entry {
    let expect = fails(InvalidSpec, "spec.encryptedData.k", says);
    entry(name, expect, policy, move |k, n| edited(k, n, &edit))
}

/// The object's only value is under `key`, properly sealed for it: InvalidSpec naming the
/// key, and the shipped policy refuses it (`policy` says how).
fn bad_key(name: &'static str, key: String, says: &'static str, policy: &'static str) -> Entry {
    let expect = fails(InvalidSpec, "spec.encryptedData.{key}", says);
    entry(name, expect, Some(policy), move |kit, n| {
        let doc = kit.raw(
            n,
            std::slice::from_ref(&kit.ours),
            &[(key.as_str(), marker(n).as_bytes())],
        );
        // The controller names a key too long to be one by its head.
        let named = if key.len() > 253 {
            format!("{}...", &key[..64])
        } else {
            key.clone()
        };
        Built::new(&kit.ns, doc).var("key", named)
    })
}

/// Our wrapping of the object's envelope replaced by `rewrap(its bytes, our key)`.
fn rewrapped(
    name: &'static str,
    expect: Expect,
    rewrap: impl Fn(Vec<u8>, &Kit) -> Vec<u8> + 'static,
) -> Entry {
    entry(name, expect, None, move |k, n| {
        let our = k.our_id();
        edited(k, n, |d, env| {
            let bytes = rewrap(wrapped(d, env, &our), k);
            set_wrapped(d, env, &our, &bytes)
        })
    })
}

/// A good object with template `data` (key → template text).
fn templated(kit: &Kit, name: &str, data: &[(&str, &str)]) -> Built {
    let mut b = edited(kit, name, |_, _| {});
    for (k, t) in data {
        set(&mut b.doc, &["spec", "template", "data", *k], json!(t));
    }
    b
}

/// A template the controller refuses (InvalidSpec at `field`).
fn bad_template(
    name: &'static str,
    field: &'static str,
    says: &'static str,
    data: &'static [(&'static str, &'static str)],
) -> Entry {
    let expect = fails(InvalidSpec, field, says);
    entry(name, expect, None, move |k, n| templated(k, n, data))
}

/// A good object whose Secret template gets `path` (under `spec.template`) = `v`.
fn with_template(kit: &Kit, name: &str, path: &[&str], v: Value) -> Built {
    let mut b = edited(kit, name, |_, _| {});
    let full: Vec<&str> = ["spec", "template"].iter().chain(path).copied().collect();
    set(&mut b.doc, &full, v);
    b
}

/// A template setting `path` = `v` that makes `expect` of the object.
fn template_sets(
    name: &'static str,
    expect: Expect,
    path: &'static [&'static str],
    v: Value,
) -> Entry {
    entry(name, expect, None, move |k, n| {
        with_template(k, n, path, v.clone())
    })
}

/// A good object sealed for `for_ns` in `scope`, placed in `ns`.
fn sealed_in(kit: &Kit, name: &str, for_ns: &str, scope: &str, ns: &str) -> Built {
    let mut doc = kit.sealed(for_ns, name, &[("k", marker(name).as_str())], scope);
    doc["metadata"]["namespace"] = json!(ns);
    Built::new(ns, doc)
}

/// Bit 0 of byte `at(len)` of value `k`'s nonce ‖ ciphertext ‖ tag flipped: Tampered.
fn flipped(name: &'static str, at: fn(usize) -> usize) -> Entry {
    let expect = fails(Tampered, "spec.encryptedData.k", NOT_AUTHENTIC);
    entry(name, expect, None, move |k, n| {
        edited(k, n, |d, _| {
            edit_blob(d, "k", |b| {
                let i = at(b.len());
                b[i] ^= 1
            })
        })
    })
}

/// A pre-existing Secret of the object's name that is not its own: SecretNotOwned.
fn not_owned(name: &'static str, says: &'static str, existing: Value) -> Entry {
    let expect = fails(SecretNotOwned, "", says);
    entry(name, expect, None, move |k, n| {
        let mut b = edited(k, n, |_, _| {});
        let mut secret = existing.clone();
        secret["metadata"]["name"] = json!(n);
        b.existing = Some(secret);
        b
    })
}

fn ours_and(kit: &Kit, n: usize) -> Vec<Recipient> {
    std::iter::once(kit.ours.clone())
        .chain(kit.strangers.iter().take(n).cloned())
        .collect()
}

/// A strict object holding `k` = its marker, sealed (one envelope) to `to`.
fn sealed_to(kit: &Kit, name: &str, to: &[Recipient]) -> Built {
    let doc = kit.raw(name, to, &[("k", marker(name).as_bytes())]);
    Built::new(&kit.ns, doc)
}

const NOT_A_KEY: &str = "not a valid Secret key";
const NOT_GITSEAL: &str = "spec.encryptedData.k: not a gitseal value";
const API_422: &str = "the API server answered 422 Invalid (retrying)";
const NOT_AUTHENTIC: &str =
    "value does not authenticate: it was tampered with, or moved from another key or object";
const NOT_AGE: &str = "envelope {env}: wrapped key is not a valid age file";

pub fn entries() -> Vec<Entry> {
    let at_k = |reason, says| fails(reason, "spec.encryptedData.k", says);
    let at_wrapping = |says| fails(InvalidSpec, "spec.envelopes.{env}.{our}", says);
    vec![
        // InvalidSpec: values that pass the CRD's prefix rule but are not gitseal values.
        malformed(
            "value-not-base64",
            "ciphertext base64",
            Some(NOT_GITSEAL),
            |d, env| set_value(d, "k", format!("gs1:strict:{env}:not*base64!")),
        ),
        malformed(
            "value-base64-tail-cut",
            "ciphertext base64",
            None,
            |d, _| {
                let mut v = value(d, "k");
                v.pop();
                set_value(d, "k", v)
            },
        ),
        malformed(
            "value-base64-tail-junk",
            "ciphertext base64",
            None,
            |d, _| set_value(d, "k", value(d, "k") + "%%%%"),
        ),
        malformed(
            "value-shorter-than-nonce-and-tag",
            "ciphertext shorter than nonce and tag",
            Some(NOT_GITSEAL),
            |d, env| {
                use base64::Engine;
                let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 27]);
                set_value(d, "k", format!("gs1:strict:{env}:{b64}"))
            },
        ),
        malformed(
            "value-envelope-id-short",
            "envelope id must be 32 lowercase hex characters",
            Some(NOT_GITSEAL),
            |d, env| set_value(d, "k", value(d, "k").replace(env, "abc")),
        ),
        malformed(
            "value-three-fields",
            "expected 4 colon-separated fields",
            Some(NOT_GITSEAL),
            |d, env| set_value(d, "k", format!("gs1:strict:{env}")),
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
        rewrapped(
            "wrapped-binary-garbage",
            at_wrapping("wrapped key is not a base64 age file"),
            |_, _| random_bytes(300),
        ),
        rewrapped(
            // age adds a stanza of its own (grease): four in all.
            "wrapped-three-stanzas",
            at_wrapping("3 of them X25519: a gitseal wrapped key has exactly one X25519 stanza"),
            |_, k| crypto::encrypt_file(&random_bytes(32), &ours_and(k, 2)).unwrap(),
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
        bad_key(
            "key-with-slash",
            "a/b".into(),
            "invalid key name \"a/b\"",
            NOT_A_KEY,
        ),
        bad_key("key-dot", ".".into(), "invalid key name \".\"", NOT_A_KEY),
        bad_key(
            "key-dotdot",
            "..".into(),
            "invalid key name \"..\"",
            NOT_A_KEY,
        ),
        bad_key(
            "key-dotdot-prefix",
            "..data".into(),
            "may not start with '..'",
            NOT_A_KEY,
        ),
        bad_key(
            "key-254-characters",
            "k".repeat(254),
            "(254 bytes): use 1-253 of [-._a-zA-Z0-9]",
            NOT_A_KEY,
        ),
        bad_key(
            "key-10000-characters",
            "k".repeat(10_000),
            "(10000 bytes)",
            // The policy's message would quote the whole key: over what the API server lets a
            // message expression say, so it names the rule instead.
            "failed expression: object.spec.encryptedData.all(k, k.size() <= 253",
        ),
        bad_key(
            "key-with-space",
            "a b".into(),
            "invalid key name \"a b\"",
            NOT_A_KEY,
        ),
        bad_key(
            "key-not-ascii",
            "p\u{e4}ssword".into(),
            "invalid key name",
            NOT_A_KEY,
        ),
        bad_key(
            "key-empty",
            String::new(),
            "invalid key name \"\"",
            NOT_A_KEY,
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
        bad_template(
            "template-forbidden-function",
            "spec.template.data.out",
            "function \"env\"",
            &[("out", "{{ env \"HOME\" }}")],
        ),
        bad_template(
            "template-does-not-parse",
            "spec.template.data.out",
            "does not parse",
            &[("out", "{{ .k ")],
        ),
        bad_template(
            "template-output-over-1mib",
            "spec.template.data.out",
            "over the 1048576-byte limit",
            &[("out", "{{ repeat 2000000 \"x\" }}")],
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
                let bin: &[u8] = &[0xff, 0xfe, 0x00];
                let mut doc = k.raw(n, std::slice::from_ref(&k.ours), &[("bin", bin)]);
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
            at_k(
                KeyNotFound,
                "is sealed for key ids [{stranger}], the given identities are [{our}]",
            ),
            None,
            |k, n| sealed_to(k, n, &k.strangers[..1]).var("stranger", k.strangers[0].key_id()),
        ),
        entry(
            "wrapped-for-32-strangers",
            at_k(KeyNotFound, "is sealed for key ids ["),
            None,
            |k, n| sealed_to(k, n, &k.strangers[..32]),
        ),
        entry(
            "our-wrapping-under-a-strangers-id",
            at_k(KeyNotFound, "is sealed for key ids [{stranger}]"),
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
        rewrapped(
            // age cannot tell a damaged stanza from one for another key under our key id.
            "wrapped-stanza-body-flipped",
            at_k(
                KeyNotFound,
                "envelope {env}: no identity given matches this wrapped key",
            ),
            |mut bytes, _| {
                // The stanza body is the third line of the header.
                let mut ends = bytes.iter().enumerate().filter(|(_, b)| **b == b'\n');
                let body = ends.nth(1).unwrap().0 + 1;
                flip_b64_char(&mut bytes, body + 3);
                bytes
            },
        ),
        // Tampered.
        flipped("nonce-flipped", |_| 0),
        flipped("ciphertext-flipped", |_| 12),
        flipped("tag-flipped", |len| len - 1),
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
            at_k(Tampered, NOT_AUTHENTIC),
            None,
            |k, n| {
                let mut doc = k.good("original", &[("k", marker(n).as_str())]);
                doc["metadata"]["name"] = json!(n);
                doc["spec"]["boundTo"] = json!(format!("{}/{n}", k.ns));
                Built::new(&k.ns, doc)
            },
        ),
        rewrapped(
            "wrapped-another-data-key",
            at_k(
                Tampered,
                "envelope {env}: data key does not match its envelope id (key commitment failed)",
            ),
            |_, k| crypto::wrap(&DataKey::generate(), &k.ours).unwrap(),
        ),
        rewrapped(
            "wrapped-header-mac-flipped",
            at_k(Tampered, NOT_AGE),
            |mut bytes, _| {
                let at = mac_offset(&bytes) + 3;
                flip_b64_char(&mut bytes, at);
                bytes
            },
        ),
        rewrapped(
            "wrapped-payload-flipped",
            at_k(Tampered, NOT_AGE),
            |mut bytes, _| {
                let last = bytes.len() - 1;
                bytes[last] ^= 1;
                bytes
            },
        ),
        rewrapped(
            "wrapped-31-byte-key",
            at_k(
                Tampered,
                "envelope {env}: wrapped key does not hold a 32-byte data key",
            ),
            |_, k| crypto::encrypt_file(&[7; 31], std::slice::from_ref(&k.ours)).unwrap(),
        ),
        // BindingMismatch.
        entry(
            "strict-moved-from-another-namespace",
            at_k(
                BindingMismatch,
                "sealed for prod/strict-moved-from-another-namespace, found in {ns}/strict-moved-from-another-namespace",
            ),
            Some("does not match this object"),
            |k, n| sealed_in(k, n, "prod", "strict", &k.ns),
        ),
        entry(
            "namespace-scope-moved",
            at_k(BindingMismatch, "sealed for prod, found in {ns}"),
            Some("does not match this object"),
            |k, n| sealed_in(k, n, "prod", "namespace", &k.ns),
        ),
        // PolicyDenied.
        template_sets(
            "type-service-account-token",
            fails(
                PolicyDenied,
                "spec.template.type",
                "Secret type kubernetes.io/service-account-token is denied by the template policy",
            ),
            &["type"],
            json!("kubernetes.io/service-account-token"),
        ),
        template_sets(
            "type-sealing-key",
            fails(
                PolicyDenied,
                "spec.template.type",
                "reserved for the controller's key Secrets",
            ),
            &["type"],
            json!("gitseal.dev/sealing-key"),
        ),
        template_sets(
            "type-helm-release",
            fails(
                PolicyDenied,
                "spec.template.type",
                "Secret type helm.sh/release.v1 is denied by the template policy",
            ),
            &["type"],
            json!("helm.sh/release.v1"),
        ),
        template_sets(
            "label-locked",
            fails(
                PolicyDenied,
                "spec.template.metadata.labels.gitseal.dev/key-id",
                "gitseal.dev/ keys are the controller's own",
            ),
            &["metadata", "labels", "gitseal.dev/key-id"],
            json!("x"),
        ),
        template_sets(
            "annotation-replicator",
            fails(
                PolicyDenied,
                "spec.template.metadata.annotations.replicator.v1.mittwald.de/replicate-to",
                "denied by the template policy (rule replicator.v1.mittwald.de/",
            ),
            &[
                "metadata",
                "annotations",
                "replicator.v1.mittwald.de/replicate-to",
            ],
            json!(".*"),
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
        not_owned(
            "secret-exists",
            "Secret {ns}/secret-exists exists and is not managed by this SealedSecret",
            json!({
                "apiVersion": "v1", "kind": "Secret", "metadata": {},
                "stringData": {"k": "the owner's own value"},
            }),
        ),
        not_owned(
            // gitseal's label alone makes no Secret the object's.
            "secret-with-gitseals-label-only",
            "Secret {ns}/secret-with-gitseals-label-only exists and is not managed by this SealedSecret",
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"labels": {"app.kubernetes.io/managed-by": "gitseal"}},
                "stringData": {"k": "someone else's value"},
            }),
        ),
        // ApiError: Secrets the API server refuses to store.
        template_sets(
            "label-value-invalid",
            fails(ApiError, "", API_422),
            &["metadata", "labels", "tier"],
            json!("not valid!"),
        ),
        template_sets(
            "label-key-invalid",
            fails(ApiError, "", API_422),
            &["metadata", "labels", "bad key!"],
            json!("x"),
        ),
        template_sets(
            "type-tls-without-its-keys",
            fails(ApiError, "", API_422),
            &["type"],
            json!("kubernetes.io/tls"),
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
                let path = ["spec", "template", "type"];
                set(&mut b.doc, &path, json!("kubernetes.io/dockerconfigjson"));
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

fn refuse(
    name: &'static str,
    layer: &'static str,
    says: &'static str,
    build: impl Fn(&Kit, &str) -> Built + 'static,
) -> Refused {
    Refused {
        name,
        layer,
        says,
        build: Box::new(build),
    }
}

/// Objects the API server refuses wherever they are applied.
pub fn refused() -> Vec<Refused> {
    let schema = "CRD schema";
    let one_value = |k: &Kit, n: &str, plain: usize| {
        let mut doc = k.raw(n, std::slice::from_ref(&k.ours), &[]);
        doc["spec"]["envelopes"] = json!({});
        add_hand_sealed(&mut doc, &k.ours, "k", &vec![b'x'; plain]);
        Built::new(&k.ns, doc)
    };
    vec![
        refuse(
            "envelope-for-500-recipients",
            schema,
            "must have at most 32 items",
            |k, n| {
                let many: Vec<Recipient> = std::iter::once(k.ours.clone())
                    .chain(strangers(499))
                    .collect();
                sealed_to(k, n, &many)
            },
        ),
        refuse(
            "wrapped-key-for-500-recipients",
            schema,
            "may not be more than 1368 bytes",
            |k, n| {
                let our = k.our_id();
                edited(k, n, |d, env| {
                    let file = crypto::encrypt_file(&random_bytes(32), &strangers(500)).unwrap();
                    set_wrapped(d, env, &our, &file)
                })
            },
        ),
        refuse(
            "envelopes-257",
            schema,
            "must have at most 256 items",
            |k, n| {
                let mut doc = k.raw(n, std::slice::from_ref(&k.ours), &[]);
                doc["spec"]["envelopes"] = json!({});
                for i in 0..257 {
                    let sealer = Sealer::new(std::slice::from_ref(&k.ours), Scope::Strict).unwrap();
                    add_values(&mut doc, &sealer, &[(format!("e{i}").as_str(), &b"v"[..])]);
                }
                Built::new(&k.ns, doc)
            },
        ),
        refuse(
            "values-4097",
            schema,
            "must have at most 4096 items",
            |k, n| {
                let keys: Vec<String> = (0..4097).map(|i| format!("k{i}")).collect();
                let values: Vec<(&str, &[u8])> =
                    keys.iter().map(|k| (k.as_str(), &b"v"[..])).collect();
                Built::new(&k.ns, k.raw(n, std::slice::from_ref(&k.ours), &values))
            },
        ),
        refuse(
            "value-over-the-crd-character-cap",
            schema,
            "may not be more than 1398187 bytes",
            move |k, n| one_value(k, n, 1024 * 1024 + 2),
        ),
        refuse("plain-text-value", schema, "not a gitseal value", |k, n| {
            edited(k, n, |d, _| set_value(d, "k", "hunter2"))
        }),
        refuse(
            "unknown-scope",
            schema,
            "Unsupported value: \"global\"",
            |k, n| edited(k, n, |d, _| d["spec"]["scope"] = json!("global")),
        ),
        refuse(
            "value-of-another-scope",
            schema,
            "not sealed for spec.scope strict",
            |k, n| {
                edited(k, n, |d, _| {
                    let other = value(d, "k").replacen("gs1:strict:", "gs1:cluster:", 1);
                    set_value(d, "k", other)
                })
            },
        ),
        refuse(
            "bound-to-another-name",
            schema,
            "spec.boundTo must be <namespace>/<metadata.name>",
            |k, n| {
                let ns = k.ns.clone();
                edited(k, n, |d, _| {
                    d["spec"]["boundTo"] = json!(format!("{ns}/other"))
                })
            },
        ),
        refuse(
            "label-value-over-63",
            schema,
            "may not be more than 63 bytes",
            |k, n| with_template(k, n, &["metadata", "labels", "tier"], json!("x".repeat(64))),
        ),
        refuse(
            "values-over-the-storage-request-limit",
            "storage (etcd request limit)",
            "too large",
            |k, n| {
                let big = vec![b'x'; 600_000];
                let values = [("a", big.as_slice()), ("b", big.as_slice())];
                Built::new(&k.ns, k.raw(n, std::slice::from_ref(&k.ours), &values))
            },
        ),
    ]
}
