//! Every reason the core gives, from real sealed objects and real keys, without a server.

use super::policy::Policy;
use super::secret::{ManagedSecret, data_digest, desired};
use super::{Failure, Reason, TakeOver, Write, plan, unseal, was_unsealed};
use crate::api::SealedSecret;
use crate::crypto::Identity;
use crate::format::{Scope, Sealer, Target};
use crate::manifest::{SealOptions, parse_documents, parse_secret, seal};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

const SECRET: &str = "\
apiVersion: v1
kind: Secret
metadata: {name: db, namespace: prod}
type: Opaque
stringData: {password: hunter2, user: admin}
";

fn sealed_with(text: &str, to: &Identity) -> SealedSecret {
    let docs = parse_documents("in.yaml", text).unwrap();
    let input = parse_secret(&docs[0]).unwrap();
    let recipients = [to.recipient()];
    let opts = SealOptions {
        recipients: &recipients,
        scope: None,
        default_scope: Scope::Strict,
        namespace: None,
        allow_empty: false,
    };
    let mut s = seal(&input, &opts).unwrap();
    s.metadata.uid = Some("uid-1".into());
    s.metadata.generation = Some(1);
    s
}

fn fails(sealed: &SealedSecret, held: &[&Identity], policy: Option<&Policy>) -> Failure {
    let (result, _) = unseal(sealed, held, policy);
    let failure = result.expect_err("unsealed");
    let shown = format!("{failure} {failure:?}");
    assert!(!shown.contains("hunter2"), "plain text in {shown}");
    failure
}

fn policy() -> Policy {
    Policy::new("gitseal-system", &Default::default()).unwrap()
}

#[test]
fn unsealed_gives_the_secret_and_the_verified_key() {
    let key = Identity::generate();
    let sealed = sealed_with(SECRET, &key);
    let (result, unsealing) = unseal(&sealed, &[&key], Some(&policy()));
    let secret = result.unwrap();
    let data = secret.data.unwrap();
    assert_eq!(data["password"].0, b"hunter2");
    assert_eq!(data["user"].0, b"admin");
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    assert_eq!(
        unsealing.used.into_iter().collect::<Vec<_>>(),
        [key.key_id()]
    );
}

#[test]
fn key_not_found_when_no_held_key_is_a_recipient() {
    let (key, other) = (Identity::generate(), Identity::generate());
    let sealed = sealed_with(SECRET, &key);
    let f = fails(&sealed, &[&other], None);
    assert_eq!(f.reason, Reason::KeyNotFound);
    assert!(
        f.text.contains(&key.key_id()) && f.text.contains(&other.key_id()),
        "{f}"
    );
    assert_eq!(f.field, "spec.encryptedData.password");
    // A stanza naming a held key but wrapping garbage: still not found, and not counted.
    let mut planted = sealed.clone();
    for (_, wrapped) in planted.spec.envelopes.iter_mut() {
        let real = wrapped.values().next().unwrap().clone();
        wrapped.insert(other.key_id(), real);
    }
    let (result, unsealing) = unseal(&planted, &[&other], None);
    assert!(result.is_err());
    assert!(
        unsealing.used.is_empty(),
        "a planted stanza counted as usage"
    );
}

#[test]
fn invalid_spec_names_the_field() {
    let key = Identity::generate();
    let mut sealed = sealed_with(SECRET, &key);
    sealed
        .spec
        .encrypted_data
        .insert("token".into(), "not a sealed value".into());
    let f = fails(&sealed, &[&key], Some(&policy()));
    assert_eq!(f.reason, Reason::InvalidSpec);
    assert_eq!(f.field, "spec.encryptedData.token");
    // The controller refuses an unused envelope before opening anything; offline opening
    // does not care.
    let mut unused = sealed_with(SECRET, &key);
    let extra = unused.spec.envelopes.values().next().unwrap().clone();
    unused.spec.envelopes.insert("0".repeat(32), extra);
    assert_eq!(
        fails(&unused, &[&key], Some(&policy())).reason,
        Reason::InvalidSpec
    );
    assert!(unseal(&unused, &[&key], None).0.is_ok());
    assert!(f.message().starts_with("spec.encryptedData.token: "));
}

#[test]
fn binding_mismatch_when_moved_to_another_namespace() {
    let key = Identity::generate();
    let mut sealed = sealed_with(SECRET, &key);
    sealed.metadata.namespace = Some("dev".into());
    let f = fails(&sealed, &[&key], None);
    assert_eq!(f.reason, Reason::BindingMismatch, "{f}");
    assert!(f.text.contains("prod/db"), "{f}");
}

#[test]
fn tampered_when_a_value_is_changed() {
    let key = Identity::generate();
    let mut sealed = sealed_with(SECRET, &key);
    let v = sealed.spec.encrypted_data.get_mut("password").unwrap();
    let last = v.pop().unwrap();
    v.push(if last == 'A' { 'B' } else { 'A' });
    let f = fails(&sealed, &[&key], None);
    assert_eq!(f.reason, Reason::Tampered, "{f}");
    assert_eq!(f.field, "spec.encryptedData.password");
}

#[test]
fn policy_denied_before_any_value_is_opened() {
    let key = Identity::generate();
    let text = SECRET.replace("type: Opaque", "type: kubernetes.io/service-account-token");
    let sealed = sealed_with(&text, &key);
    let f = fails(&sealed, &[&key], Some(&policy()));
    assert_eq!(f.reason, Reason::PolicyDenied);
    assert_eq!(f.field, "spec.template.type");
    // Key usage still counts it (so its key is not retired under it); the CLI has no policy.
    let (_, unsealing) = unseal(&sealed, &[&key], Some(&policy()));
    assert_eq!(unsealing.used.len(), 1);
    assert!(unseal(&sealed, &[&key], None).0.is_ok());
}

fn unsealed(
    sealed: &SealedSecret,
    key: &Identity,
) -> (k8s_openapi::api::core::v1::Secret, [u8; 32]) {
    let (result, _) = unseal(sealed, &[key], None);
    let mut want = result.unwrap();
    let values = want.data.take().unwrap();
    let values = values
        .into_iter()
        .map(|(k, v)| (k, crate::crypto::Plaintext::new(v.0)))
        .collect();
    let want = desired(sealed, values);
    let digest = data_digest(want.data.as_ref());
    (want, digest)
}

#[test]
fn plan_creates_leaves_applies_replaces_and_refuses() {
    let key = Identity::generate();
    let sealed = sealed_with(SECRET, &key);
    let (want, digest) = unsealed(&sealed, &key);
    let judge = |existing: Option<&ManagedSecret>| {
        plan(&sealed, &want, &digest, existing, &TakeOver::default())
    };
    assert_eq!(judge(None), Ok(Write::Create));
    let mut existing = ManagedSecret::of(&want);
    existing.metadata.resource_version = Some("7".into());
    existing.metadata.uid = Some("s-1".into());
    assert_eq!(judge(Some(&existing)), Ok(Write::Nothing));
    existing.digest = [0; 32]; // edited
    assert_eq!(
        judge(Some(&existing)),
        Ok(Write::Apply {
            resource_version: Some("7".into())
        })
    );
    existing.immutable = Some(true);
    assert_eq!(
        judge(Some(&existing)),
        Ok(Write::Replace {
            uid: Some("s-1".into()),
            resource_version: Some("7".into())
        })
    );
    // Someone else's Secret: refused, unless its owner annotated it for adoption.
    existing.metadata.owner_references = None;
    let f = judge(Some(&existing)).unwrap_err();
    assert_eq!(f.reason, Reason::SecretNotOwned);
    assert!(f.text.contains("prod/db") && f.text.contains("gitseal.dev/adopt"));
    existing.metadata.annotations = Some([("gitseal.dev/adopt".into(), "true".into())].into());
    assert!(matches!(judge(Some(&existing)), Ok(Write::Replace { .. })));
}

#[test]
fn drift_repaired_only_once_unsealed_at_this_generation() {
    let key = Identity::generate();
    let mut sealed = sealed_with(SECRET, &key);
    assert!(!was_unsealed(&sealed));
    let ready = |reason: Reason, status: &str| Condition {
        type_: "Ready".into(),
        status: status.into(),
        reason: reason.as_str().into(),
        message: String::new(),
        last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            jiff::Timestamp::UNIX_EPOCH,
        ),
        observed_generation: None,
    };
    let status = sealed.status.get_or_insert_default();
    status.observed_generation = Some(1);
    status.conditions = vec![ready(Reason::Unsealed, "True")];
    assert!(was_unsealed(&sealed));
    sealed.metadata.generation = Some(2); // a new spec: a changed Secret is an update
    assert!(!was_unsealed(&sealed));
    sealed.metadata.generation = Some(1);
    sealed.status.as_mut().unwrap().conditions = vec![ready(Reason::KeyNotFound, "False")];
    assert!(!was_unsealed(&sealed));
}

#[test]
fn rewraps_go_to_the_active_key_only_and_are_kept_in_status() {
    let (old, new) = (Identity::generate(), Identity::generate());
    let mut sealed = sealed_with(SECRET, &old);
    let (result, mut unsealing) = unseal(&sealed, &[&old, &new], None);
    result.unwrap();
    let new_id = new.key_id();
    let recipient = new.recipient();
    let rewrapped = unsealing.rewraps(&sealed, Some((new_id.as_str(), &recipient)));
    assert_eq!(rewrapped.len(), 1);
    assert!(rewrapped.values().all(|m| m.keys().eq([&new_id])));
    assert_eq!(
        super::earlier_rewraps(&sealed, &new_id),
        None,
        "not in status yet"
    );
    sealed.status.get_or_insert_default().rewrapped_envelopes = rewrapped.clone();
    assert_eq!(
        super::earlier_rewraps(&sealed, &new_id),
        Some(rewrapped.clone())
    );
    // The re-wrap opens with the new key alone.
    for (id, wrapped) in &rewrapped {
        sealed
            .spec
            .envelopes
            .get_mut(id)
            .unwrap()
            .extend(wrapped.clone());
    }
    for (_, w) in sealed.spec.envelopes.iter_mut() {
        w.retain(|k, _| *k == new_id);
    }
    assert!(unseal(&sealed, &[&new], None).0.is_ok());
    // Nothing to re-wrap for the key that already wraps everything.
    let old_id = old.key_id();
    let (_, mut u) = unseal(&sealed, &[&new], None);
    assert!(
        u.rewraps(&sealed, Some((new_id.as_str(), &recipient)))
            .is_empty()
    );
    assert!(u.rewraps(&sealed, None).is_empty());
    let _ = old_id;
}

#[test]
fn template_data_is_rendered_and_a_changed_template_is_out_of_sync() {
    let key = Identity::generate();
    let mut sealed = sealed_with(SECRET, &key);
    let with = |sealed: &mut SealedSecret, t: &str| {
        let tmpl = sealed.spec.template.get_or_insert_default();
        tmpl.data.insert("dsn".into(), t.into());
    };
    with(&mut sealed, "{{ .user }}:{{ .password }}");
    let (result, _) = unseal(&sealed, &[&key], Some(&policy()));
    let first = result.unwrap();
    assert_eq!(first.data.as_ref().unwrap()["dsn"].0, b"admin:hunter2");
    // The view of the Secret written with the first rendering.
    let mut have = first.clone();
    super::secret::mark(&mut have, &sealed);
    let actual = ManagedSecret::of(&have);
    assert_eq!(
        plan(
            &sealed,
            &have,
            &data_digest(have.data.as_ref()),
            Some(&actual),
            &TakeOver::default()
        ),
        Ok(Write::Nothing)
    );
    // The same values, another template: the digest differs, so the Secret is rewritten.
    with(&mut sealed, "{{ .user }}@{{ .password }}");
    let (result, _) = unseal(&sealed, &[&key], Some(&policy()));
    let mut want = result.unwrap();
    super::secret::mark(&mut want, &sealed);
    assert!(matches!(
        plan(
            &sealed,
            &want,
            &data_digest(want.data.as_ref()),
            Some(&actual),
            &TakeOver::default()
        ),
        Ok(Write::Apply { .. })
    ));
    // A forbidden function: InvalidSpec naming it, with or without the policy.
    with(&mut sealed, "{{ env \"HOME\" }}");
    for policy in [Some(policy()), None] {
        let f = fails(&sealed, &[&key], policy.as_ref());
        assert_eq!(f.reason, Reason::InvalidSpec);
        assert_eq!(f.field, "spec.template.data.dsn");
        assert!(f.text.contains("function \"env\""), "{}", f.text);
    }
}

/// A Secret the Bitnami controller made for `sealed`'s name: its data, no gitseal marks, and
/// a controlling owner reference to a `bitnami.com/v1alpha1` SealedSecret.
fn bitnami_made(want: &k8s_openapi::api::core::v1::Secret) -> ManagedSecret {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    let mut secret = want.clone();
    secret.metadata.labels = None;
    secret.metadata.resource_version = Some("41".into());
    secret.metadata.uid = Some("secret-uid".into());
    secret.metadata.annotations = Some(
        [(
            "sealedsecrets.bitnami.com/managed".to_string(),
            "true".to_string(),
        )]
        .into(),
    );
    secret.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "bitnami.com/v1alpha1".into(),
        kind: "SealedSecret".into(),
        name: "db".into(),
        uid: "bitnami-uid".into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }]);
    ManagedSecret::of(&secret)
}

#[test]
fn take_over_only_a_bitnami_controlled_secret_of_the_same_name_when_the_operator_allows() {
    let key = Identity::generate();
    let sealed = sealed_with(SECRET, &key);
    let (want, digest) = unsealed(&sealed, &key);
    let bitnami = bitnami_made(&want);
    let on = TakeOver {
        sealed_secrets: true,
        namespaces: Vec::new(),
    };
    let judge =
        |existing: &ManagedSecret, t: &TakeOver| plan(&sealed, &want, &digest, Some(existing), t);
    // Flag off (the default): refused, with a hint for the operator, whatever the Secret says.
    let f = judge(&bitnami, &TakeOver::default()).unwrap_err();
    assert_eq!(f.reason, Reason::SecretNotOwned);
    assert!(
        f.text.contains("--take-over-from sealed-secrets"),
        "{}",
        f.text
    );
    // Flag on: one write at the judged resourceVersion, replacing the Bitnami reference.
    assert_eq!(
        judge(&bitnami, &on),
        Ok(Write::TakeOver {
            resource_version: Some("41".into()),
            from: "bitnami-uid".into(),
        })
    );
    // Narrowed to other namespaces: refused in prod.
    let elsewhere = TakeOver {
        sealed_secrets: true,
        namespaces: vec!["staging".into()],
    };
    let narrowed = judge(&bitnami, &elsewhere).unwrap_err();
    assert_eq!(narrowed.reason, Reason::SecretNotOwned);
    let only_prod = TakeOver {
        sealed_secrets: true,
        namespaces: vec!["prod".into()],
    };
    assert!(matches!(
        judge(&bitnami, &only_prod),
        Ok(Write::TakeOver { .. })
    ));
    // With the flag on, nothing but that: another owner's Secret is refused.
    let refused =
        |edit: &dyn Fn(&mut k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference)| {
            let mut other = bitnami.clone();
            edit(&mut other.metadata.owner_references.as_mut().unwrap()[0]);
            let f = judge(&other, &on).unwrap_err();
            assert_eq!(f.reason, Reason::SecretNotOwned);
            assert!(!f.text.contains("--take-over-from"), "{}", f.text);
        };
    refused(&|o| o.kind = "Deployment".into()); // another kind
    refused(&|o| o.api_version = "apps/v1".into());
    refused(&|o| o.api_version = "bitnami.com.evil.example/v1alpha1".into()); // another group
    refused(&|o| o.api_version = "evil.bitnami.com/v1alpha1".into());
    refused(&|o| o.api_version = "bitnami.com".into()); // no version: not a group at all
    refused(&|o| o.name = "other-db".into()); // a Bitnami object of another name
    refused(&|o| o.controller = None); // a reference that is not the controller
    refused(&|o| o.controller = Some(false));
    // No owner at all (e.g. Bitnami's skip-set-owner-references): not taken either.
    let mut orphan = bitnami.clone();
    orphan.metadata.owner_references = None;
    assert_eq!(
        judge(&orphan, &on).unwrap_err().reason,
        Reason::SecretNotOwned
    );
    // The template policy still comes first: a denied template never reaches the plan.
    let mut denied = sealed.clone();
    denied.spec.template.get_or_insert_default().type_ =
        Some("kubernetes.io/service-account-token".into());
    let (result, _) = unseal(&denied, &[&key], Some(&policy()));
    assert_eq!(result.unwrap_err().reason, Reason::PolicyDenied);
    // Once taken over, the Secret is the SealedSecret's own: applied as usual.
    let mut taken = ManagedSecret::of(&want);
    taken.metadata.resource_version = Some("42".into());
    assert_eq!(judge(&taken, &on), Ok(Write::Nothing));
}

/// `sealed` with one more value under `key`, properly sealed for it (in an envelope of its
/// own): only the key itself may be wrong.
fn with_value(sealed: &mut SealedSecret, to: &Identity, key: &str, plain: &[u8]) {
    let sealer = Sealer::new(&[to.recipient()], sealed.spec.scope).unwrap();
    let target = Target {
        namespace: sealed.metadata.namespace.as_deref(),
        name: sealed.metadata.name.as_deref().unwrap(),
    };
    let value = sealer.seal(target, key, plain).unwrap();
    sealed.spec.encrypted_data.insert(key.into(), value);
    let envelope = sealer.envelope();
    sealed
        .spec
        .envelopes
        .insert(envelope.id.clone(), envelope.wrapped.clone());
}

#[test]
fn keys_the_api_server_refuses_are_invalid_spec_before_anything_is_opened() {
    let key = Identity::generate();
    let long = "k".repeat(254);
    let bad_keys = ".,..,..data,a/b,a b,a\0b,caf\u{e9}".split(',');
    for bad in bad_keys.chain([long.as_str()]) {
        let mut sealed = sealed_with(SECRET, &key);
        with_value(&mut sealed, &key, bad, b"v");
        // A tampered value sorted after the bad key: were keys checked only after opening,
        // this would be reported as Tampered.
        let v = sealed.spec.encrypted_data.get_mut("user").unwrap();
        let at = v.len() - 8..v.len() - 4;
        let flipped = if &v[at.clone()] == "AAAA" {
            "BBBB"
        } else {
            "AAAA"
        };
        v.replace_range(at, flipped);
        for policy in [Some(policy()), None] {
            let f = fails(&sealed, &[&key], policy.as_ref());
            assert_eq!(f.reason, Reason::InvalidSpec, "{bad:?}: {f}");
            if bad.len() <= 253 {
                assert_eq!(f.field, format!("spec.encryptedData.{bad}"));
            } else {
                assert_eq!(f.field, format!("spec.encryptedData.{}...", &bad[..64]));
            }
            assert!(f.text.starts_with("invalid key name "), "{bad:?}: {f}");
        }
    }
    // A key far too long is named by its head, and the message stays short.
    let mut huge = sealed_with(SECRET, &key);
    with_value(&mut huge, &key, &"k".repeat(100_000), b"v");
    let f = fails(&huge, &[&key], Some(&policy()));
    assert_eq!(f.reason, Reason::InvalidSpec);
    assert!(f.message().len() < 300, "{}", f.message());
    assert!(
        f.message()
            .ends_with("(100000 bytes): use 1-253 of [-._a-zA-Z0-9]"),
        "{f}"
    );
    // Template keys follow the same rule.
    let mut templated = sealed_with(SECRET, &key);
    templated
        .spec
        .template
        .get_or_insert_default()
        .data
        .insert("a/b".into(), "{{ .user }}".into());
    for policy in [Some(policy()), None] {
        let f = fails(&templated, &[&key], policy.as_ref());
        assert_eq!(f.reason, Reason::InvalidSpec, "{f}");
        assert!(
            f.message()
                .starts_with("spec.template.data.a/b: invalid key name \"a/b\""),
            "{f}"
        );
    }
    // `gitseal verify` (check_sealed) reports the same keys, naming the field.
    let at = crate::manifest::Location::new("s.yaml", 0);
    let problems = crate::manifest::check_sealed(&templated, &at, None);
    assert!(
        problems
            .iter()
            .any(|p| p.at.field == "spec.template.data.a/b"),
        "{:?}",
        problems
            .iter()
            .map(|p| p.message.clone())
            .collect::<Vec<_>>()
    );
    // Keys at the edges of the rule unseal.
    let mut edges = sealed_with(SECRET, &key);
    let longest = "k".repeat(253);
    for ok in [".dockerconfigjson", "a..b", "-", "_.", longest.as_str()] {
        with_value(&mut edges, &key, ok, ok.as_bytes());
    }
    let (result, _) = unseal(&edges, &[&key], Some(&policy()));
    let data = result.expect("edge keys unseal").data.unwrap();
    assert_eq!(data["a..b"].0, b"a..b");
    assert_eq!(data[longest.as_str()].0, longest.as_bytes());
}
