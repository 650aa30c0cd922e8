//! Trust boundaries, attacked against a real kube-apiserver + etcd (scripts/cluster): what a
//! SealedSecret author must never gain (a planted key, a Secret others trust, a Secret
//! outside their namespace, a key kept from retirement), and a key lifecycle that never
//! fights a GitOps agent over spec. Each test is one attack and fails on the code before it.

mod ctrltool;

use ctrltool::*;
use gitseal::api::{
    DELETION_BLOCKED, KeyState, PRIVATE_KEY_CONDITION, RETIRE_REFUSED, RETIRED_CONDITION,
    SealedSecret, SealingKey, SecretTemplate, TemplateMetadata,
};
use gitseal::crypto::{Identity, Recipient};
use gitseal::keyring::{KEY_FINALIZER, key_secret_name};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(90);

fn with_template(
    mut s: SealedSecret,
    type_: Option<&str>,
    labels: &[(&str, &str)],
    annotations: &[(&str, &str)],
) -> SealedSecret {
    let map = |kv: &[(&str, &str)]| {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let mut t = s.spec.template.take().unwrap_or_default();
    let mut meta = t.metadata.take().unwrap_or_default();
    meta.labels.extend::<Vec<(String, String)>>(map(labels));
    meta.annotations
        .extend::<Vec<(String, String)>>(map(annotations));
    s.spec.template = Some(SecretTemplate {
        metadata: Some(TemplateMetadata {
            labels: meta.labels,
            annotations: meta.annotations,
        }),
        type_: type_.map(str::to_string).or(t.type_),
        immutable: t.immutable,
        data: t.data,
    });
    s
}

async fn key(env: &Env, name: &str) -> SealingKey {
    Api::<SealingKey>::all(env.client.clone())
        .get(name)
        .await
        .unwrap()
}

async fn key_opt(env: &Env, name: &str) -> Option<SealingKey> {
    Api::<SealingKey>::all(env.client.clone())
        .get_opt(name)
        .await
        .unwrap()
}

fn state(k: &SealingKey) -> Option<KeyState> {
    k.status.as_ref().and_then(|s| s.state)
}

fn condition<'a>(
    k: &'a SealingKey,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    k.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

/// Wait until `check` holds for SealingKey `name`; panic with its status otherwise.
async fn wait_key(
    env: &Env,
    name: &str,
    what: &str,
    check: impl Fn(&SealingKey) -> bool,
) -> SealingKey {
    let start = std::time::Instant::now();
    loop {
        if let Some(k) = key_opt(env, name).await
            && check(&k)
        {
            return k;
        }
        if start.elapsed() > WAIT {
            panic!(
                "SealingKey {name}: {what} not reached within {WAIT:?}: {:?}",
                key_opt(env, name).await.map(|k| k.status)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The single Active key (by status) once there is exactly one with a public key.
async fn active_key(env: &Env) -> SealingKey {
    let api: Api<SealingKey> = Api::all(env.client.clone());
    let start = std::time::Instant::now();
    loop {
        let active: Vec<SealingKey> = api
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|k| state(k) == Some(KeyState::Active))
            .collect();
        if let [k] = active.as_slice()
            && k.status.as_ref().is_some_and(|s| s.public_key.is_some())
        {
            return k.clone();
        }
        assert!(start.elapsed() < WAIT, "no single Active key: {active:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn key_id_of(k: &SealingKey) -> String {
    k.status.as_ref().unwrap().key_id.clone().unwrap()
}

fn recipient_of(k: &SealingKey) -> Recipient {
    Recipient::parse(k.status.as_ref().unwrap().public_key.as_deref().unwrap()).unwrap()
}

async fn wait_reason(env: &Env, ns: &str, name: &str, reason: &str) -> (String, String) {
    let api: Api<SealedSecret> = Api::namespaced(env.client.clone(), ns);
    let start = std::time::Instant::now();
    loop {
        let ss = api.get(name).await.unwrap();
        let st = ss.status.clone().unwrap_or_default();
        if st.observed_generation == ss.metadata.generation
            && let Some(c) = st.conditions.iter().find(|c| c.type_ == "Ready")
            && c.reason == reason
        {
            return (c.reason.clone(), c.message.clone());
        }
        assert!(
            start.elapsed() < WAIT,
            "{ns}/{name} never {reason}: {:?}",
            st.conditions
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Issue 10.1: a SealedSecret shaped like the next key's Secret (name, type, labels, an
/// attacker's identity) — in the controller's namespace, even where an operator allowed that
/// namespace — never becomes a key Secret; and a key Secret planted by other means (here by
/// an admin client, as the unsealer would have written it) is never trusted: after a
/// rotation the attacker's key is never Active, published, or used for a re-wrap.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_sealed_secret_can_plant_a_key() {
    let env = Env::start().await;
    env.delete_all_keys().await;
    let ctl = env.controller("a").await;
    let first = active_key(&env).await;
    let ring = env.keyring().await;
    let attacker = Identity::generate();
    let evil = attacker.to_secret_string();
    let next = "gitseal-2";
    let planted_name = key_secret_name(next);
    // Sealed under its own name: the CRD refuses a strict object whose boundTo names another.
    let plant = |ns: &str, name: &str| {
        with_template(
            seal_to(&ring, ns, name, &[("identity", evil.as_str())], "strict"),
            Some("gitseal.dev/sealing-key"),
            &[
                ("gitseal.dev/sealing-key", next),
                ("gitseal.dev/key-id", "x"),
            ],
            &[],
        )
    };
    env.apply_sealed(SYSTEM_NS, &plant(SYSTEM_NS, &planted_name))
        .await;
    let (_, msg) = wait_reason(&env, SYSTEM_NS, &planted_name, "PolicyDenied").await;
    assert!(msg.starts_with("metadata.namespace:"), "{msg}");
    // Even where the operator allows the controller's namespace, the type and labels are refused.
    drop(ctl);
    let client = client_for(&env.kubeconfig).await;
    let _ctl = env
        .controller_custom("b", client, |c| {
            c.policy = gitseal::controller::policy::Policy::new(
                SYSTEM_NS,
                &gitseal::controller::policy::PolicyFlags {
                    allow_namespaces: vec![SYSTEM_NS.into()],
                    ..Default::default()
                },
            )
            .unwrap();
        })
        .await;
    env.apply_sealed(SYSTEM_NS, &plant(SYSTEM_NS, &format!("{planted_name}-b")))
        .await;
    let (_, msg) = wait_reason(
        &env,
        SYSTEM_NS,
        &format!("{planted_name}-b"),
        "PolicyDenied",
    )
    .await;
    assert!(msg.starts_with("spec.template.type:"), "{msg}");
    let secrets = env.secrets(SYSTEM_NS);
    assert!(secrets.get_opt(&planted_name).await.unwrap().is_none());

    // A key Secret planted under the next key's name, with the unsealer's marks.
    let mut forged = gitseal::keyring::key_secret(&first, &attacker, SYSTEM_NS);
    forged.metadata.name = Some(planted_name.clone());
    forged.metadata.finalizers = None;
    forged
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("gitseal.dev/sealing-key".into(), next.into());
    forged
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("app.kubernetes.io/managed-by".into(), "gitseal".into());
    secrets
        .create(&PostParams::default(), &forged)
        .await
        .unwrap();
    let (code, out, err) = cli(&["rotate"], &env.kubeconfig);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), next);
    let k = wait_key(&env, next, "PrivateKeyUntrusted", |k| {
        condition(k, PRIVATE_KEY_CONDITION).is_some_and(|c| c.reason == "PrivateKeyUntrusted")
    })
    .await;
    assert_ne!(state(&k), Some(KeyState::Active));
    assert!(
        k.status.as_ref().unwrap().public_key.is_none(),
        "the attacker's key was published"
    );
    // The first key stays the Active one; nothing is re-wrapped to the attacker.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(active_key(&env).await.name_any(), first.name_any());
    let ns = env.namespace().await;
    let victim = seal_to(&ring, &ns, "db", &[("password", "victim-plain")], "strict");
    env.apply_sealed(&ns, &victim).await;
    let ss = env.wait_ready(&ns, "db", "True").await;
    let attacker_id = attacker.key_id();
    let status = serde_json::to_string(&ss.status).unwrap();
    assert!(
        !status.contains(&attacker_id),
        "re-wrapped to the attacker: {status}"
    );
    let ring = env.keyring().await;
    assert!(
        ring.keys.iter().all(|e| e.key_id != attacker_id),
        "keys fetch would publish it"
    );
    let (code, out, err) = cli(&["keys", "fetch"], &env.kubeconfig);
    assert_eq!(code, 0, "{err}");
    assert!(
        !out.contains(&attacker.recipient().as_str().to_string()),
        "{out}"
    );
}

/// Issue 10.2: Secret types, labels, annotations and namespaces that other components trust
/// are refused with PolicyDenied naming the field; the good object next to them unseals;
/// a flag widens the policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn template_policy_refuses_what_others_trust() {
    let env = Env::start().await;
    let _ctl = env.controller("a").await;
    let ns = env.namespace().await;
    let ring = env.keyring().await;
    let base =
        |name: &str, ns: &str| seal_to(&ring, ns, name, &[("token", "policy-plain")], "strict");
    let cases: Vec<(SealedSecret, &str)> = vec![
        (
            with_template(
                base("sa-token", &ns),
                Some("kubernetes.io/service-account-token"),
                &[],
                &[("kubernetes.io/service-account.name", "default")],
            ),
            "spec.template.type",
        ),
        (
            with_template(
                base("bootstrap", &ns),
                Some("bootstrap.kubernetes.io/token"),
                &[],
                &[],
            ),
            "spec.template.type",
        ),
        (
            with_template(
                base("key-type", &ns),
                Some("gitseal.dev/sealing-key"),
                &[],
                &[],
            ),
            "spec.template.type",
        ),
        (
            with_template(
                base("reflect", &ns),
                None,
                &[],
                &[("reflector.v1.k8s.emberstack.com/reflection-allowed", "true")],
            ),
            "spec.template.metadata.annotations.reflector.v1.k8s.emberstack.com/reflection-allowed",
        ),
        (
            with_template(
                base("replicate", &ns),
                None,
                &[],
                &[("replicator.v1.mittwald.de/replicate-to", "*")],
            ),
            "spec.template.metadata.annotations.replicator.v1.mittwald.de/replicate-to",
        ),
        (
            with_template(
                base("argo", &ns),
                None,
                &[("argocd.argoproj.io/secret-type", "cluster")],
                &[],
            ),
            "spec.template.metadata.labels.argocd.argoproj.io/secret-type",
        ),
        (
            with_template(
                base("adopt", &ns),
                None,
                &[],
                &[("gitseal.dev/adopt", "true")],
            ),
            "spec.template.metadata.annotations.gitseal.dev/adopt",
        ),
        (base("in-kube-system", "kube-system"), "metadata.namespace"),
    ];
    let good = with_template(
        base("fine", &ns),
        Some("example.com/api-token"),
        &[("app.kubernetes.io/name", "fine")],
        &[("note", "ok")],
    );
    env.apply_sealed(&ns, &good).await;
    for (obj, _) in &cases {
        let target = obj.metadata.namespace.clone().unwrap();
        env.apply_sealed(&target, obj).await;
    }
    for (obj, field) in &cases {
        let (target, name) = (obj.metadata.namespace.clone().unwrap(), obj.name_any());
        let (_, msg) = wait_reason(&env, &target, &name, "PolicyDenied").await;
        assert!(msg.starts_with(&format!("{field}:")), "{name}: {msg}");
        assert!(
            env.secrets(&target).get_opt(&name).await.unwrap().is_none(),
            "{name} was written"
        );
    }
    let secret = env.wait_secret(&ns, "fine").await;
    assert_eq!(secret.type_.as_deref(), Some("example.com/api-token"));
    env.wait_ready(&ns, "fine", "True").await;
    let _ = env
        .secrets("kube-system")
        .delete("in-kube-system", &DeleteParams::default())
        .await;
    Api::<SealedSecret>::namespaced(env.client.clone(), "kube-system")
        .delete("in-kube-system", &DeleteParams::default())
        .await
        .unwrap();
}

/// Issue 10.3: SealingKeys declared in files and re-applied every second for 30 s, as a
/// self-healing GitOps agent does, while Git rotates (a new key) and retires (the old one,
/// refused while used, then granted once the object moved on). The controller never owns a
/// spec field (managedFields), spec changes only when Git changes it (generation), the
/// verdict is in status and converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gitops_agent_and_controller_never_fight_over_keys() {
    let env = Env::start().await;
    env.delete_all_keys().await;
    let api: Api<SealingKey> = Api::all(env.client.clone());
    let git = |name: &str, state: &str| {
        serde_json::json!({
            "apiVersion": "gitseal.dev/v1alpha1", "kind": "SealingKey",
            "metadata": {"name": name}, "spec": {"state": state},
        })
    };
    let sync = |docs: Vec<serde_json::Value>| {
        let api = api.clone();
        async move {
            for d in docs {
                let name = d["metadata"]["name"].as_str().unwrap().to_string();
                api.patch(
                    &name,
                    &PatchParams::apply("flux").force(),
                    &Patch::Apply(&d),
                )
                .await
                .unwrap();
            }
        }
    };
    sync(vec![git("prod-a", "Active")]).await;
    let _ctl = env.controller("a").await;
    let a = wait_key(&env, "prod-a", "Active", |k| {
        state(k) == Some(KeyState::Active)
    })
    .await;
    let ns = env.namespace().await;
    let obj = seal_with(
        &[recipient_of(&a)],
        &ns,
        "db",
        &[("password", "gitops-plain")],
        "strict",
    );
    env.apply_sealed(&ns, &obj).await;
    env.wait_ready(&ns, "db", "True").await;

    // Git history: rotate by commit, then retire by commit, while the agent self-heals.
    let steps = [
        vec![git("prod-a", "Active")],
        vec![git("prod-a", "Active"), git("prod-b", "Active")],
        vec![git("prod-a", "Retired"), git("prod-b", "Active")],
    ];
    let mut seen_refusal = false;
    let start = std::time::Instant::now();
    let mut moved = false;
    while start.elapsed() < Duration::from_secs(30) {
        let step = (start.elapsed().as_secs() / 8).min(2) as usize;
        sync(steps[step].clone()).await;
        if step == 2
            && !moved
            && let Some(k) = key_opt(&env, "prod-a").await
            && condition(&k, RETIRED_CONDITION).is_some_and(|c| c.reason == RETIRE_REFUSED)
        {
            seen_refusal = true;
            // The object moves to the new key (a reseal with --drop-old, done by hand here).
            let b = key(&env, "prod-b").await;
            let obj = seal_with(
                &[recipient_of(&b)],
                &ns,
                "db",
                &[("password", "gitops-plain")],
                "strict",
            );
            env.apply_sealed(&ns, &obj).await;
            moved = true;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(seen_refusal, "retiring a used key was never refused");
    assert!(moved);
    let a = wait_key(&env, "prod-a", "Retired", |k| {
        state(k) == Some(KeyState::Retired)
    })
    .await;
    let b = wait_key(&env, "prod-b", "Active", |k| {
        state(k) == Some(KeyState::Active)
    })
    .await;
    assert!(condition(&a, RETIRED_CONDITION).is_some_and(|c| c.status == "True"));
    assert!(
        env.secrets(SYSTEM_NS)
            .get_opt(&key_secret_name("prod-a"))
            .await
            .unwrap()
            .is_none()
    );
    // Spec: only the agent owns it, and it changed only with Git (a: Active -> Retired).
    for k in [&a, &b] {
        for m in k.metadata.managed_fields.iter().flatten() {
            let fields = m
                .fields_v1
                .as_ref()
                .map(|f| f.0.to_string())
                .unwrap_or_default();
            if m.manager.as_deref() != Some("flux") {
                assert!(
                    !fields.contains("\"f:spec\""),
                    "{} writes spec of {}: {fields}",
                    m.manager.as_deref().unwrap_or("?"),
                    k.name_any()
                );
            }
        }
        assert_eq!(
            k.spec.state,
            if k.name_any() == "prod-a" {
                KeyState::Retired
            } else {
                KeyState::Active
            }
        );
    }
    assert_eq!(
        a.metadata.generation,
        Some(2),
        "prod-a's spec changed other than by Git"
    );
    assert_eq!(
        b.metadata.generation,
        Some(1),
        "prod-b's spec changed other than by Git"
    );
    // Retirement is final; the object unseals with the new key.
    env.wait_ready(&ns, "db", "True").await;
    env.wait_event(SYSTEM_NS, "prod-a", |e| e.starts_with("RetireRefused"))
        .await;
    env.wait_event(SYSTEM_NS, "prod-a", |e| e.starts_with("Retired:"))
        .await;
}

/// Issue 10.4: deleting (pruning) a SealingKey that SealedSecrets still use, even with a
/// foreground cascade, keeps the key and its private Secret (finalizers) with a condition and
/// an Event; once nothing uses it, the key goes and its private key with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pruning_an_in_use_key_keeps_it() {
    let env = Env::start().await;
    env.delete_all_keys().await;
    let _ctl = env.controller("a").await;
    let k = active_key(&env).await;
    let name = k.name_any();
    assert!(k.finalizers().iter().any(|f| f == KEY_FINALIZER));
    let ns = env.namespace().await;
    let ring = env.keyring().await;
    env.apply_sealed(
        &ns,
        &seal_to(&ring, &ns, "db", &[("password", "prune-plain")], "strict"),
    )
    .await;
    env.wait_ready(&ns, "db", "True").await;
    let api: Api<SealingKey> = Api::all(env.client.clone());
    api.delete(&name, &DeleteParams::foreground())
        .await
        .unwrap();
    let k = wait_key(&env, &name, "DeletionBlocked", |k| {
        condition(k, RETIRED_CONDITION).is_some_and(|c| c.reason == DELETION_BLOCKED)
    })
    .await;
    assert!(k.metadata.deletion_timestamp.is_some());
    assert_ne!(
        state(&k),
        Some(KeyState::Active),
        "a key being deleted is not Active"
    );
    let secret = env
        .secrets(SYSTEM_NS)
        .get_opt(&key_secret_name(&name))
        .await
        .unwrap();
    assert!(
        secret.is_some(),
        "the private key was deleted with its SealingKey"
    );
    // Still in service: drift on the object is repaired with the kept key.
    env.secrets(&ns)
        .delete("db", &DeleteParams::default())
        .await
        .unwrap();
    let s = env.wait_secret(&ns, "db").await;
    assert_eq!(data(&s, "password"), "prune-plain");
    env.wait_event(SYSTEM_NS, &name, |e| e.starts_with(DELETION_BLOCKED))
        .await;
    // A new Active key took over for new seals.
    let new = active_key(&env).await;
    assert_ne!(new.name_any(), name);
    // Nothing uses it any more: the key and its private key go.
    Api::<SealedSecret>::namespaced(env.client.clone(), &ns)
        .delete("db", &DeleteParams::default())
        .await
        .unwrap();
    let start = std::time::Instant::now();
    while let Some(k) = key_opt(&env, &name).await {
        assert!(
            start.elapsed() < WAIT,
            "{name} not released: {:?} {:?}",
            k.metadata.finalizers,
            k.status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_for(WAIT, || async {
        env.secrets(SYSTEM_NS)
            .get_opt(&key_secret_name(&name))
            .await
            .unwrap()
            .is_none()
    })
    .await;
}

/// Issue 10.3 and 10.8: a refused retirement is re-evaluated as soon as usage changes, and
/// usage counts only wrappings that unwrap: an envelope naming the old key id with garbage
/// (anyone can write one) does not keep the key from retiring.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retirement_follows_real_usage() {
    let env = Env::start().await;
    env.delete_all_keys().await;
    let _ctl = env.controller("a").await;
    let old = active_key(&env).await;
    let ns = env.namespace().await;
    let in_use = seal_with(
        &[recipient_of(&old)],
        &ns,
        "db",
        &[("password", "usage-plain")],
        "strict",
    );
    env.apply_sealed(&ns, &in_use).await;
    env.wait_ready(&ns, "db", "True").await;
    let (code, _, err) = cli(&["rotate"], &env.kubeconfig);
    assert_eq!(code, 0, "{err}");
    let new = wait_for_new_active(&env, &old.name_any()).await;
    // A second object sealed to the new key, whose envelope also names the old key id with
    // a wrapping that is not one.
    let mut fake = seal_with(
        &[recipient_of(&new)],
        &ns,
        "other",
        &[("k", "fake-plain")],
        "strict",
    );
    for (_, wrapped) in fake.spec.envelopes.iter_mut() {
        let junk = wrapped.values().next().unwrap().clone();
        wrapped.insert(key_id_of(&old), junk);
    }
    env.apply_sealed(&ns, &fake).await;
    env.wait_ready(&ns, "other", "True").await;
    let patch = serde_json::json!({"spec": {"state": "Retired"}});
    let keys: Api<SealingKey> = Api::all(env.client.clone());
    keys.patch(
        &old.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .unwrap();
    let k = wait_key(&env, &old.name_any(), "RetireRefused", |k| {
        condition(k, RETIRED_CONDITION).is_some_and(|c| c.reason == RETIRE_REFUSED)
    })
    .await;
    assert_eq!(
        k.status.as_ref().unwrap().used_by,
        1,
        "only the real user counts"
    );
    assert_eq!(state(&k), Some(KeyState::DecryptOnly));
    // The real user moves to the new key: the refusal goes, the key retires.
    let moved = seal_with(
        &[recipient_of(&new)],
        &ns,
        "db",
        &[("password", "usage-plain")],
        "strict",
    );
    env.apply_sealed(&ns, &moved).await;
    let k = wait_key(&env, &old.name_any(), "Retired", |k| {
        state(k) == Some(KeyState::Retired)
    })
    .await;
    assert!(condition(&k, RETIRED_CONDITION).is_some_and(|c| c.status == "True"));
    assert!(
        env.secrets(SYSTEM_NS)
            .get_opt(&key_secret_name(&old.name_any()))
            .await
            .unwrap()
            .is_none()
    );
    env.wait_ready(&ns, "db", "True").await;
    env.wait_ready(&ns, "other", "True").await;
}

async fn wait_for_new_active(env: &Env, old: &str) -> SealingKey {
    let start = std::time::Instant::now();
    loop {
        let k = active_key(env).await;
        if k.name_any() != old {
            return k;
        }
        assert!(start.elapsed() < WAIT, "no new Active key");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Issue 10.7: limits at admission (the API server refuses what would exhaust the
/// controller: a wrapped key of many stanzas, too many envelopes or wrappings).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schema_limits_refuse_oversized_objects_at_admission() {
    let env = Env::start().await;
    let ns = env.namespace().await;
    let r = Recipient::parse(Identity::generate().recipient().as_str()).unwrap();
    let base = seal_with(&[r], &ns, "db", &[("k", "v")], "strict");
    let api: Api<SealedSecret> = Api::namespaced(env.client.clone(), &ns);
    let refused = |s: SealedSecret| {
        let api = api.clone();
        async move {
            match api.create(&PostParams::default(), &s).await {
                Err(kube::Error::Api(e)) => e.code == 422,
                other => panic!("accepted: {:?}", other.map(|o| o.name_any())),
            }
        }
    };
    let mut stanzas = base.clone();
    let one = stanzas
        .spec
        .envelopes
        .values()
        .next()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone();
    let many = one.repeat(100);
    for (_, w) in stanzas.spec.envelopes.iter_mut() {
        for (_, v) in w.iter_mut() {
            *v = many.clone();
        }
    }
    assert!(refused(stanzas).await);
    let mut envelopes = base.clone();
    let (id, w) = envelopes
        .spec
        .envelopes
        .iter()
        .next()
        .map(|(a, b)| (a.clone(), b.clone()))
        .unwrap();
    for i in 0..257 {
        envelopes
            .spec
            .envelopes
            .insert(format!("{id}{i}"), w.clone());
    }
    assert!(refused(envelopes).await);
    let mut wrappings = base.clone();
    for (_, w) in wrappings.spec.envelopes.iter_mut() {
        let v = w.values().next().unwrap().clone();
        for i in 0..33 {
            w.insert(format!("k{i}"), v.clone());
        }
    }
    assert!(refused(wrappings).await);
    api.create(&PostParams::default(), &base).await.unwrap();
}

/// Issue 10.8: API error text never reaches status or Events (it can quote what was sent);
/// they carry the status code and reason. A template whose annotations exceed what a
/// Secret may hold makes the API server refuse the Secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn api_errors_are_scrubbed_in_status_and_events() {
    let env = Env::start().await;
    let _ctl = env.controller("a").await;
    let ns = env.namespace().await;
    let ring = env.keyring().await;
    let big = "x".repeat(60_000);
    let annotations: Vec<(String, String)> =
        (0..5).map(|i| (format!("a{i}"), big.clone())).collect();
    let refs: Vec<(&str, &str)> = annotations
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let obj = with_template(
        seal_to(&ring, &ns, "db", &[("k", "scrub-plain")], "strict"),
        None,
        &[],
        &refs,
    );
    env.apply_sealed(&ns, &obj).await;
    let (_, msg) = wait_reason(&env, &ns, "db", "ApiError").await;
    assert!(
        msg.starts_with("the API server answered 422 Invalid"),
        "{msg}"
    );
    assert!(
        !msg.contains("xxxx") && !msg.contains("must have at most"),
        "{msg}"
    );
    let events = env
        .wait_event(&ns, "db", |e| {
            e.starts_with("ApiError: the API server answered 422")
        })
        .await;
    assert!(events.iter().all(|e| !e.contains("xxxx")));
}

/// `gitseal` with the cluster's kubeconfig: exit code, stdout, stderr.
fn cli(args: &[&str], kubeconfig: &std::path::Path) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gitseal"))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Issue 10.7: no tenant can push the controller past its Deployment's memory limit with
/// large objects: 100 SealedSecrets of ~1.3 MiB each (a Secret's 1 MiB, sealed), unsealed
/// while the controller runs and again by a fresh controller that finds them all at start
/// (its initial list). The controller is the real binary in its own process; its peak
/// resident memory (VmHWM) must stay under deploy/deployment.yaml's memory limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn large_objects_stay_within_the_memory_limit() {
    let env = Env::start().await;
    let limit = deployment_memory_limit();
    let ns = env.namespace().await;
    let mut ctl = ChildController::start(&env);
    let ring = env.keyring().await;
    let recipients = ring.active("keyring").unwrap();
    let big: String = std::iter::repeat_n("0123456789abcdef", 1_040_000 / 16).collect();
    let n = 100;
    let template = seal_with(
        &recipients,
        &ns,
        "big-0",
        &[("blob", big.as_str())],
        "namespace",
    );
    for i in 0..n {
        // Namespace scope: one sealing, many objects (only the name differs).
        let mut obj = template.clone();
        obj.metadata.name = Some(format!("big-{i}"));
        env.apply_sealed(&ns, &obj).await;
    }
    wait_all_ready(&env, &ns, n).await;
    let first = ctl.peak_rss();
    ctl.stop();
    let mut ctl = ChildController::start(&env);
    // The fresh controller reads everything at start and checks every object.
    wait_for(Duration::from_secs(300), || async {
        ctl.reconciles().await >= n as f64
    })
    .await;
    let second = ctl.peak_rss();
    ctl.stop();
    eprintln!(
        "100 objects of {:.2} MiB: peak RSS {:.1} MiB while applied, {:.1} MiB on a restart; limit {:.0} MiB",
        serde_json::to_vec(&template).unwrap().len() as f64 / 1048576.0,
        first as f64 / 1048576.0,
        second as f64 / 1048576.0,
        limit as f64 / 1048576.0
    );
    assert!(first < limit && second < limit, "over the memory limit");
    let secret = env.secrets(&ns).get("big-7").await.unwrap();
    assert_eq!(secret.data.unwrap()["blob"].0.len(), big.len());
    // Clean up: these are big.
    let _ = Api::<k8s_openapi::api::core::v1::Namespace>::all(env.client.clone())
        .delete(&ns, &DeleteParams::default())
        .await;
}

async fn wait_all_ready(env: &Env, ns: &str, n: usize) {
    let api: Api<SealedSecret> = Api::namespaced(env.client.clone(), ns);
    wait_for(Duration::from_secs(300), || async {
        let list = api.list(&ListParams::default()).await.unwrap().items;
        list.len() == n && list.iter().all(is_ready_now)
    })
    .await;
}

/// The memory limit of the controller container in deploy/deployment.yaml, in bytes.
fn deployment_memory_limit() -> u64 {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/deployment.yaml"
    ))
    .unwrap();
    let doc: serde_json::Value = gitseal::yaml::from_str(&text).unwrap();
    let limit = doc["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
        .as_str()
        .unwrap()
        .to_string();
    let mi: u64 = limit
        .strip_suffix("Mi")
        .expect("memory limit in Mi")
        .parse()
        .unwrap();
    mi * 1024 * 1024
}

/// `gitseal controller` as its own process (the real binary), logs to a file.
struct ChildController {
    child: std::process::Child,
    port: u16,
}

impl ChildController {
    fn start(env: &Env) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log =
            std::fs::File::create(std::env::temp_dir().join(format!("gitseal-child-{port}.log")))
                .unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_gitseal"))
            .args([
                "controller",
                "--namespace",
                SYSTEM_NS,
                "--leader-elect",
                "false",
            ])
            .args([
                "--metrics-addr",
                &format!("127.0.0.1:{port}"),
                "--key-renew-interval",
                "0",
            ])
            .arg("--kubeconfig")
            .arg(&env.kubeconfig)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Self { child, port }
    }

    /// Sum of `gitseal_reconciles_total` (0 until the endpoint answers).
    async fn reconciles(&self) -> f64 {
        let port = self.port;
        tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
                return 0.0;
            };
            let _ = write!(s, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            out.lines()
                .filter(|l| l.starts_with("gitseal_reconciles_total{"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        })
        .await
        .unwrap()
    }

    /// Peak resident set size so far (VmHWM), bytes.
    fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|v| v.trim().parse().ok())
            .expect("VmHWM in /proc status");
        kb * 1024
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildController {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A SealedSecret author creating and deleting objects at once must not stop the controller
/// for everyone: kube-runtime 5.0's shared-store handle stalled for good when an object it was
/// told about was gone from the store before it looked (src/controller/caches.rs, `Feed`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn objects_created_and_deleted_at_once_do_not_stop_the_controller() {
    let env = Env::start().await;
    let _ctl = env.controller("flash").await;
    let ring = env.keyring().await;
    let ns = env.namespace().await;
    let api: Api<SealedSecret> = Api::namespaced(env.client.clone(), &ns);
    for round in 0..5 {
        for _ in 0..20 {
            let s = seal_to(&ring, &ns, "flash", &[("k", "v")], "strict");
            api.create(&PostParams::default(), &s).await.unwrap();
            api.delete("flash", &DeleteParams::default()).await.unwrap();
        }
        // Another tenant's object, applied after the flashes, is still unsealed.
        let name = format!("after-{round}");
        let good = seal_to(&ring, &ns, &name, &[("k", "v")], "strict");
        api.create(&PostParams::default(), &good).await.unwrap();
        let secret = tokio::time::timeout(Duration::from_secs(120), env.wait_secret(&ns, &name))
            .await
            .unwrap_or_else(|_| {
                panic!("round {round}: {name} never unsealed: the controller stopped seeing SealedSecrets")
            });
        assert_eq!(data(&secret, "k"), "v");
    }
}
