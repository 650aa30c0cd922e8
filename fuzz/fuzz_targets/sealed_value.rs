//! Sealed value strings and envelopes.
//!
//! 1. The whole input, when it is UTF-8, goes to `SealedValue::parse`; whatever parses must
//!    survive `emit()` → `parse()` unchanged, and `emit()` must give back the exact input text
//!    (sealed values are canonical, so unchanged values stay byte-identical in Git).
//! 2. The same bytes, read through `arbitrary`, build envelopes (genuine, arbitrary bytes,
//!    arbitrary base64 text, or a genuine age file with one byte flipped) and values
//!    (genuine, arbitrary text, well-formed with an arbitrary ciphertext, or genuine with
//!    one byte flipped), which `Opener::open` opens with a fixed test identity at a genuine
//!    or arbitrary scope / namespace / name / key. It must never panic, and it may only
//!    succeed for a value that was genuinely sealed by `gitseal seal` for exactly that
//!    associated data (scope, namespace, name, key), giving back the sealed plain text.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gitseal::crypto::{self, Identity};
use gitseal::format::{Envelopes, Opener, Scope, SealedValue, Target, aad};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// Test-only identity (made once with `gitseal keygen`); it protects nothing but the
/// fixtures below.
const IDENTITY: &str = "AGE-SECRET-KEY-1MJDQZMJ2G4FWRRJ0SFD9MVXAR0XHZRVE7CREMQMGKZ9WES95D8MQNZFXCC";
/// Its key id (the key under which envelopes hold its wrapping).
const KEY_ID: &str = "2b62e2d7383c81fa";

/// Values sealed by `gitseal seal -r age1ky2ezqdt8a8rr894y46fqg302vaju4mgl7dvu8wfqpdej3scasgqa7eug5`
/// from a Secret `prod/db` with `password: s3cret` and `user: admin`, once with the default
/// (strict) scope and once with `--scope cluster`.
struct Genuine {
    scope: Scope,
    namespace: Option<&'static str>,
    name: &'static str,
    key: &'static str,
    envelope_id: &'static str,
    wrapped: &'static str,
    value: &'static str,
    plaintext: &'static [u8],
}

const STRICT_ENVELOPE: &str = "2fdce0ef2da42b7da6bdbdaec48b2290";
const STRICT_WRAPPED: &str = "YWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSA4SEVjZ0dMZUJXUHVYOUw0UXB0ak5RTnFTdTVvdmY3UW5OSm5UTUdmUEQ4ClJrd1NKb2xCc1hNNklJR0xuVDZzUHdjWnp4SGtwNVluVGhmdGJ2YnVmQ3MKLT4gU2MrIy1ncmVhc2UgT2hSRCo4SyBZQSJ6QyAmNy4KUWNEblpWdWVjQkxFNGtmcU9YcGgzVWtsMmgvMXE5T2pza3NLTW5ZCi0tLSBhMG10dHg5b0xScFR4eEVQMmNJSmJKMFN6SmVROTRCeVhlQlRrT0ZFTHpjCoA4KWVHrVFQlPYZ0HHhwgdNQSskoJzFhd2YDQCLyGYi+eFOfJDvxvdOIK9MkD7Zq/Mc2s1U3/ET75E8w2ayeNo=";
const CLUSTER_ENVELOPE: &str = "bc1bc1cc2565be07b8fb61ec2cc36d93";
const CLUSTER_WRAPPED: &str = "YWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSBVWjNRSmhzWk1oR3JKeFZUUnJ0RzNQaUxnUmVJc3E4NDZKTDQvY1hGVW5rCmZQQ0VaZkdSaWpPTHpwOCtnTjM4TUo2ZXZHR1cray9wUkc0MDlpTjlCNTgKLT4gYlF2LWdyZWFzZSAzKlBuN3swIChVLkUgViBbNS5iJF0KamtOMkdXQnFIaS83Z0ljd1pFcWVWMzZaYnZxMmQ5WUlNbmloNWZNUGhGNXZUcUx5U0hoOQotLS0ga21GSng5Y0R1dXJJVWJNNkE5SEltaHVuYWdlN25NOUhvVloxekxPM2NibwrxbLfZOtKKhrpNz/5mknU+G6zuEw+Z7IuvlTmHhd4Xich0n+txxLHc4CK+30VrprGO8LuVwK9gKvRtp9lxKmgK";

const GENUINE: [Genuine; 4] = [
    Genuine {
        scope: Scope::Strict,
        namespace: Some("prod"),
        name: "db",
        key: "password",
        envelope_id: STRICT_ENVELOPE,
        wrapped: STRICT_WRAPPED,
        value: "gs1:strict:2fdce0ef2da42b7da6bdbdaec48b2290:qigdnBckVn+o9dlbF/JvsFx4RXwXbq4+BPEidjt4MjfO+w==",
        plaintext: b"s3cret",
    },
    Genuine {
        scope: Scope::Strict,
        namespace: Some("prod"),
        name: "db",
        key: "user",
        envelope_id: STRICT_ENVELOPE,
        wrapped: STRICT_WRAPPED,
        value: "gs1:strict:2fdce0ef2da42b7da6bdbdaec48b2290:pghPaTDp+lUObtnE+pq/sukLGNf+oHhQzYjr6hJfSY9H",
        plaintext: b"admin",
    },
    Genuine {
        scope: Scope::Cluster,
        namespace: Some("prod"),
        name: "db",
        key: "password",
        envelope_id: CLUSTER_ENVELOPE,
        wrapped: CLUSTER_WRAPPED,
        value: "gs1:cluster:bc1bc1cc2565be07b8fb61ec2cc36d93:m7E136ssFU8kHNzLXYP6nA2bQ5aREN4XH2+EIdKBUMZMbg==",
        plaintext: b"s3cret",
    },
    Genuine {
        scope: Scope::Cluster,
        namespace: Some("prod"),
        name: "db",
        key: "user",
        envelope_id: CLUSTER_ENVELOPE,
        wrapped: CLUSTER_WRAPPED,
        value: "gs1:cluster:bc1bc1cc2565be07b8fb61ec2cc36d93:OVmhGySeU009Xv5X1Yh2NlF7uKfzUaNbCls+DI+Dw3be",
        plaintext: b"admin",
    },
];

fn genuine(i: u8) -> &'static Genuine {
    &GENUINE[usize::from(i) % GENUINE.len()]
}

fn identity() -> &'static Identity {
    static ID: OnceLock<Identity> = OnceLock::new();
    ID.get_or_init(|| {
        let id = Identity::parse(IDENTITY).expect("fixture identity parses");
        assert_eq!(id.key_id(), KEY_ID, "fixture key id");
        id
    })
}

fn scope_of(n: u8) -> Scope {
    [Scope::Strict, Scope::Namespace, Scope::Cluster][usize::from(n) % 3]
}

/// A string field: the genuine one (variant 0, so all-zero input means "all genuine") or
/// arbitrary text.
#[derive(Arbitrary, Debug)]
enum Str<'a> {
    Genuine,
    Fuzzed(&'a str),
}

impl<'a> Str<'a> {
    fn or(&self, genuine: &'a str) -> &'a str {
        match self {
            Str::Genuine => genuine,
            Str::Fuzzed(s) => s,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum WrappedIn<'a> {
    /// The genuine base64 age file.
    Genuine,
    /// Arbitrary bytes, base64-encoded by the harness (so they reach the age parser).
    Bytes(&'a [u8]),
    /// Arbitrary bytes after a genuine age header line, base64-encoded.
    AgeFile(&'a [u8]),
    /// The genuine age file with one byte xored.
    Tampered { at: u16, xor: u8 },
    /// Arbitrary text used as the base64 as it is.
    Text(&'a str),
}

#[derive(Arbitrary, Debug)]
struct EnvelopeIn<'a> {
    from: u8,
    id: Str<'a>,
    key_id: Str<'a>,
    wrapped: WrappedIn<'a>,
}

#[derive(Arbitrary, Debug)]
enum ValueIn<'a> {
    /// The genuine sealed value.
    Genuine,
    /// A well-formed value with an arbitrary scope, envelope id and ciphertext.
    Built {
        scope: u8,
        envelope_id: Str<'a>,
        blob: &'a [u8],
    },
    /// The genuine value with one byte of its ciphertext (nonce ‖ ct ‖ tag) xored.
    Tampered { at: u16, xor: u8 },
    /// Arbitrary text.
    Text(&'a str),
}

#[derive(Arbitrary, Debug)]
struct OpenIn<'a> {
    from: u8,
    /// `None`: the genuine scope.
    scope: Option<u8>,
    /// `None`: the genuine namespace; `Some(ns)`: that one (possibly none at all).
    namespace: Option<Option<&'a str>>,
    name: Str<'a>,
    key: Str<'a>,
    value: ValueIn<'a>,
}

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    envelope: EnvelopeIn<'a>,
    open: OpenIn<'a>,
    more_envelopes: Vec<EnvelopeIn<'a>>,
    more_opens: Vec<OpenIn<'a>>,
}

fn flip(bytes: &mut [u8], at: u16, xor: u8) {
    if !bytes.is_empty() {
        let i = usize::from(at) % bytes.len();
        bytes[i] ^= xor;
    }
}

fn add_envelope(envelopes: &mut Envelopes, e: &EnvelopeIn<'_>) {
    let g = genuine(e.from);
    let wrapped = match &e.wrapped {
        WrappedIn::Genuine => g.wrapped.to_string(),
        WrappedIn::Bytes(b) => STANDARD.encode(b),
        WrappedIn::AgeFile(b) => STANDARD.encode([b"age-encryption.org/v1\n", *b].concat()),
        WrappedIn::Tampered { at, xor } => {
            let mut bytes = STANDARD.decode(g.wrapped).expect("fixture base64");
            flip(&mut bytes, *at, *xor);
            STANDARD.encode(bytes)
        }
        WrappedIn::Text(t) => t.to_string(),
    };
    envelopes
        .entry(e.id.or(g.envelope_id).to_string())
        .or_default()
        .insert(e.key_id.or(KEY_ID).to_string(), wrapped);
}

fn value_text(o: &OpenIn<'_>) -> String {
    let g = genuine(o.from);
    match &o.value {
        ValueIn::Genuine => g.value.to_string(),
        ValueIn::Built {
            scope,
            envelope_id,
            blob,
        } => format!(
            "gs1:{}:{}:{}",
            scope_of(*scope),
            envelope_id.or(g.envelope_id),
            STANDARD.encode(blob)
        ),
        ValueIn::Tampered { at, xor } => {
            let mut v = SealedValue::parse(g.value).expect("fixture value parses");
            flip(&mut v.blob, *at, *xor);
            v.emit()
        }
        ValueIn::Text(t) => {
            check_parse(t);
            t.to_string()
        }
    }
}

/// Whatever parses round-trips, as a value and as text.
fn check_parse(text: &str) {
    if let Ok(v) = SealedValue::parse(text) {
        let emitted = v.emit();
        let again = SealedValue::parse(&emitted).expect("an emitted value parses");
        assert_eq!(again, v, "parse(emit(v)) != v for input {text:?}");
        assert_eq!(emitted, text, "emit(parse(s)) != s: a second spelling of one value");
    }
}

fn open_one(opener: &mut Opener<'_>, envelopes: &Envelopes, o: &OpenIn<'_>) {
    let g = genuine(o.from);
    let scope = o.scope.map_or(g.scope, scope_of);
    let target = Target {
        namespace: o.namespace.unwrap_or(g.namespace),
        name: o.name.or(g.name),
    };
    let key = o.key.or(g.key);
    let value = value_text(o);
    let Ok(plain) = opener.open(envelopes, scope, target, key, &value) else {
        return;
    };

    // Success is only allowed for a genuinely sealed value, opened with exactly the
    // associated data it was sealed with.
    let sealed = SealedValue::parse(&value).expect("an opened value parses");
    let here = aad(scope, target, key).expect("an opened value has associated data");
    let origin = GENUINE.iter().find(|g| {
        let gv = SealedValue::parse(g.value).expect("fixture value parses");
        g.scope == scope
            && gv == sealed
            && aad(
                g.scope,
                Target {
                    namespace: g.namespace,
                    name: g.name,
                },
                g.key,
            )
            .expect("fixture aad")
                == here
    });
    let Some(origin) = origin else {
        panic!(
            "opened a value that was never sealed: scope {scope}, target {target}, key {key:?}, value {value:?}, envelopes {envelopes:?}"
        );
    };
    assert_eq!(
        plain.expose(),
        origin.plaintext,
        "opened to the wrong plain text"
    );
    // And the envelope that gave the data key commits to it.
    let wrapped = &envelopes[&sealed.envelope_id]
        .get(KEY_ID)
        .expect("sealed to the fuzz key");
    let data_key = crypto::unwrap(
        &STANDARD.decode(wrapped).expect("used wrapping is base64"),
        &[identity()],
    )
    .expect("used wrapping unwraps");
    assert_eq!(crypto::envelope_id(&data_key), sealed.envelope_id);
    if std::env::var_os("GITSEAL_FUZZ_DEBUG").is_some() {
        eprintln!("opened genuine {scope} value {key:?} at {target}");
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check_parse(text);
    }

    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let mut envelopes = Envelopes::new();
    add_envelope(&mut envelopes, &input.envelope);
    for e in input.more_envelopes.iter().take(4) {
        add_envelope(&mut envelopes, e);
    }
    let mut opener = Opener::new([identity()]);
    open_one(&mut opener, &envelopes, &input.open);
    for o in input.more_opens.iter().take(8) {
        open_one(&mut opener, &envelopes, o);
    }
});
