//! Property tests of the sealed format: arbitrary keys and bytes round-trip under every
//! scope; a single bit flip in a value or a wrapped key, swapping two values, or moving a value
//! to another key / name / namespace as its scope binds always fails — never wrong plain text.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gitseal::crypto::Identity;
use gitseal::format::{Envelopes, Opener, Scope, SealedValue, Sealer, Target};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::LazyLock;

static ID: LazyLock<Identity> = LazyLock::new(Identity::generate);

fn scope() -> impl Strategy<Value = Scope> {
    prop_oneof![
        Just(Scope::Strict),
        Just(Scope::Namespace),
        Just(Scope::Cluster)
    ]
}

fn key_name() -> impl Strategy<Value = String> {
    "[-._a-zA-Z0-9]{1,40}"
}

fn dns_name() -> impl Strategy<Value = String> {
    "[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?"
}

fn seal_one(
    scope: Scope,
    ns: &str,
    name: &str,
    values: &BTreeMap<String, Vec<u8>>,
) -> (BTreeMap<String, String>, Envelopes) {
    let sealer = Sealer::new(&[ID.recipient()], scope).unwrap();
    let target = Target {
        namespace: Some(ns),
        name,
    };
    let sealed = values
        .iter()
        .map(|(k, v)| (k.clone(), sealer.seal(target, k, v).unwrap()))
        .collect();
    let env = sealer.envelope().clone();
    (
        sealed,
        gitseal::format::Map::from_iter([(env.id, env.wrapped)]),
    )
}

fn open(
    envs: &Envelopes,
    scope: Scope,
    ns: &str,
    name: &str,
    key: &str,
    value: &str,
) -> Option<Vec<u8>> {
    Opener::new([&*ID])
        .open(
            envs,
            scope,
            Target {
                namespace: Some(ns),
                name,
            },
            key,
            value,
        )
        .ok()
        .map(|p| p.expose().to_vec())
}

fn flip_value_bit(value: &str, bit: usize) -> String {
    let mut v = SealedValue::parse(value).unwrap();
    let i = bit % (v.blob.len() * 8);
    v.blob[i / 8] ^= 1 << (i % 8);
    v.emit()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn round_trip(scope in scope(), ns in dns_name(), name in dns_name(),
                  values in prop::collection::btree_map(key_name(), prop::collection::vec(any::<u8>(), 0..300), 1..6)) {
        let (sealed, envs) = seal_one(scope, &ns, &name, &values);
        for (k, v) in &values {
            prop_assert_eq!(open(&envs, scope, &ns, &name, k, &sealed[k]), Some(v.clone()));
        }
    }

    #[test]
    fn any_bit_flip_in_a_value_fails(scope in scope(), plain in prop::collection::vec(any::<u8>(), 0..64), bit in any::<usize>()) {
        let values = BTreeMap::from([("k".to_string(), plain)]);
        let (sealed, envs) = seal_one(scope, "ns", "obj", &values);
        let flipped = flip_value_bit(&sealed["k"], bit);
        prop_assert_eq!(open(&envs, scope, "ns", "obj", "k", &flipped), None);
    }

    #[test]
    fn any_bit_flip_in_a_wrapped_key_fails(plain in prop::collection::vec(any::<u8>(), 1..64), bit in any::<usize>()) {
        let values = BTreeMap::from([("k".to_string(), plain)]);
        let (sealed, mut envs) = seal_one(Scope::Strict, "ns", "obj", &values);
        let wrapped = envs.iter_mut().next().unwrap().1.iter_mut().next().unwrap().1;
        let mut bytes = STANDARD.decode(&*wrapped).unwrap();
        let i = bit % (bytes.len() * 8);
        bytes[i / 8] ^= 1 << (i % 8);
        *wrapped = STANDARD.encode(bytes);
        prop_assert_eq!(open(&envs, Scope::Strict, "ns", "obj", "k", &sealed["k"]), None);
    }

    #[test]
    fn swapping_two_values_fails(scope in scope(), a in prop::collection::vec(any::<u8>(), 0..64), b in prop::collection::vec(any::<u8>(), 0..64)) {
        let values = BTreeMap::from([("a".to_string(), a), ("b".to_string(), b)]);
        let (sealed, envs) = seal_one(scope, "ns", "obj", &values);
        prop_assert_eq!(open(&envs, scope, "ns", "obj", "a", &sealed["b"]), None);
        prop_assert_eq!(open(&envs, scope, "ns", "obj", "b", &sealed["a"]), None);
    }

    #[test]
    fn moving_a_value_fails_exactly_where_the_scope_binds(scope in scope(), plain in prop::collection::vec(any::<u8>(), 0..64),
                                                          other_ns in dns_name(), other_name in dns_name(), other_key in key_name()) {
        prop_assume!(other_ns != "ns" && other_name != "obj" && other_key != "k");
        let values = BTreeMap::from([("k".to_string(), plain.clone())]);
        let (sealed, envs) = seal_one(scope, "ns", "obj", &values);
        let v = &sealed["k"];
        // Another key: bound under every scope.
        prop_assert_eq!(open(&envs, scope, "ns", "obj", &other_key, v), None);
        // Another name: bound under strict only.
        let renamed = open(&envs, scope, "ns", &other_name, "k", v);
        prop_assert_eq!(renamed, (scope != Scope::Strict).then(|| plain.clone()));
        // Another namespace: bound under strict and namespace.
        let moved = open(&envs, scope, &other_ns, "obj", "k", v);
        prop_assert_eq!(moved, (scope == Scope::Cluster).then(|| plain.clone()));
        // Claiming a wider scope in spec.scope does not help: the value carries its own.
        if scope != Scope::Cluster {
            prop_assert_eq!(open(&envs, Scope::Cluster, &other_ns, "obj", "k", v), None);
            let relabelled = v.replacen(&format!(":{scope}:"), ":cluster:", 1);
            prop_assert_eq!(open(&envs, Scope::Cluster, &other_ns, "obj", "k", &relabelled), None);
        }
    }

    #[test]
    fn a_value_from_another_seal_fails(plain in prop::collection::vec(any::<u8>(), 0..64)) {
        let values = BTreeMap::from([("k".to_string(), plain)]);
        let (first, envs1) = seal_one(Scope::Strict, "ns", "obj", &values);
        let (_, envs2) = seal_one(Scope::Strict, "ns", "obj", &values);
        // Point the value at the other seal's envelope: the data key differs.
        let other_id = envs2.keys().next().unwrap().clone();
        let mut v = SealedValue::parse(&first["k"]).unwrap();
        v.envelope_id = other_id;
        let mut both = envs1.clone();
        both.extend(envs2);
        prop_assert_eq!(open(&both, Scope::Strict, "ns", "obj", "k", &v.emit()), None);
    }
}
