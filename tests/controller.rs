//! The controller against a real kube-apiserver + etcd (scripts/cluster): unseal, status
//! reasons, Events, drift repair, ownership, restarts without writes, exactly one Active key,
//! leader failover, and no plain text in logs, Events, status or metrics.
//! Tests run one at a time (SealingKeys are cluster-wide), each in fresh namespaces.

mod ctrltool;

use ctrltool::*;
use gitseal::api::{KeyState, SealingKey};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unseals_reports_status_and_events() {
    let env = Env::start().await;
    let ctl = env.controller("a").await;
    let ns = env.namespace().await;
    let keyring = env.keyring().await;
    let sealed = seal_to(
        &keyring,
        &ns,
        "db",
        &[("password", "hunter2-plain"), ("user", "admin-plain")],
        "strict",
    );
    env.apply_sealed(&ns, &sealed).await;
    let secret = env.wait_secret(&ns, "db").await;
    assert_eq!(data(&secret, "password"), "hunter2-plain");
    assert_eq!(
        secret
            .labels()
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("gitseal")
    );
    assert_eq!(secret.labels().get("app").map(String::as_str), Some("db"));
    let owner = &secret.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("SealedSecret", Some(true))
    );
    assert!(
        secret
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .any(|m| m.manager.as_deref() == Some("gitseal-controller"))
    );
    let ss = env.wait_ready(&ns, "db", "True").await;
    let status = ss.status.unwrap();
    assert_eq!(status.observed_generation, ss.metadata.generation);
    let active: Vec<String> = keyring
        .active("k")
        .unwrap()
        .iter()
        .map(|r| r.key_id())
        .collect();
    assert_eq!(status.key_ids, active);
    // Events follow the status write.
    env.wait_event(&ns, "db", |e| e.contains("Unsealed")).await;
    ctl.assert_no_plain_text(&env, &ns, &["hunter2-plain", "admin-plain"])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_failure_has_its_own_reason_and_others_still_unseal() {
    let env = Env::start().await;
    let ctl = env.controller("a").await;
    let (prod, staging) = (env.namespace().await, env.namespace().await);
    let keyring = env.keyring().await;
    // Sealed for prod/db, applied in staging.
    let moved = seal_to(
        &keyring,
        &prod,
        "db",
        &[("password", "moved-plain")],
        "strict",
    );
    env.apply_sealed(&staging, &moved).await;
    // Sealed to a key the cluster does not have.
    let stranger = gitseal::crypto::Identity::generate();
    let foreign = seal_with(
        &[stranger.recipient()],
        &staging,
        "foreign",
        &[("k", "foreign-plain")],
        "strict",
    );
    env.apply_sealed(&staging, &foreign).await;
    // A flipped value.
    let mut tampered = seal_to(
        &keyring,
        &staging,
        "tampered",
        &[("k", "tampered-plain")],
        "strict",
    );
    let v = tampered.spec.encrypted_data.get_mut("k").unwrap();
    let last = v.pop().unwrap();
    v.push(if last == 'A' { 'B' } else { 'A' });
    if v.ends_with("==B") || v.ends_with("==A") {
        v.truncate(v.len() - 4);
        v.push_str("AA==");
    }
    env.apply_sealed(&staging, &tampered).await;
    // And a good one next to them.
    let good = seal_to(&keyring, &staging, "good", &[("k", "good-plain")], "strict");
    env.apply_sealed(&staging, &good).await;

    let ss = env.wait_ready(&staging, "db", "False").await;
    let (reason, msg) = ready_of(&ss);
    assert_eq!(reason, "BindingMismatch");
    assert!(
        msg.contains(&format!("sealed for {prod}/db, found in {staging}/db")),
        "{msg}"
    );
    let ss = env.wait_ready(&staging, "foreign", "False").await;
    let (reason, msg) = ready_of(&ss);
    assert_eq!(reason, "KeyNotFound");
    assert!(
        msg.contains(&stranger.key_id()) && msg.contains(&keyring.active("k").unwrap()[0].key_id()),
        "{msg}"
    );
    let ss = env.wait_ready(&staging, "tampered", "False").await;
    assert_eq!(ready_of(&ss).0, "Tampered", "{:?}", ready_of(&ss));
    env.wait_secret(&staging, "good").await;
    env.wait_event(&staging, "db", |e| e.contains("BindingMismatch"))
        .await;
    for name in ["db", "foreign", "tampered"] {
        assert!(
            env.secrets(&staging).get_opt(name).await.unwrap().is_none(),
            "{name} must not be written"
        );
    }
    ctl.assert_no_plain_text(
        &env,
        &staging,
        &[
            "moved-plain",
            "foreign-plain",
            "tampered-plain",
            "good-plain",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drift_is_repaired_within_a_second() {
    let env = Env::start().await;
    let ctl = env.controller("a").await;
    let ns = env.namespace().await;
    let keyring = env.keyring().await;
    env.apply_sealed(
        &ns,
        &seal_to(
            &keyring,
            &ns,
            "db",
            &[("password", "drift-plain")],
            "strict",
        ),
    )
    .await;
    env.wait_secret(&ns, "db").await;
    env.wait_ready(&ns, "db", "True").await;
    let api = env.secrets(&ns);

    // An edit is reverted.
    let patch = serde_json::json!({"data": {"password": "ZWRpdGVk"}});
    let t = std::time::Instant::now();
    api.patch("db", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_for(Duration::from_secs(5), || async {
        data(&api.get("db").await.unwrap(), "password") == "drift-plain"
    })
    .await;
    let edit_repair = t.elapsed();
    // A deletion is undone.
    let t = std::time::Instant::now();
    api.delete("db", &DeleteParams::default()).await.unwrap();
    wait_for(Duration::from_secs(5), || async {
        api.get_opt("db")
            .await
            .unwrap()
            .is_some_and(|s| data(&s, "password") == "drift-plain")
    })
    .await;
    let delete_repair = t.elapsed();
    assert!(
        edit_repair < Duration::from_secs(1),
        "edit repaired in {edit_repair:?}"
    );
    assert!(
        delete_repair < Duration::from_secs(1),
        "deletion repaired in {delete_repair:?}"
    );
    env.wait_event(&ns, "db", |e| e.contains("DriftRepaired"))
        .await;
    assert!(ctl.metric("gitseal_drift_repairs_total").await >= 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_existing_secret_is_not_taken_unless_it_asks_to_be_adopted() {
    let env = Env::start().await;
    let _ctl = env.controller("a").await;
    let ns = env.namespace().await;
    let keyring = env.keyring().await;
    let api = env.secrets(&ns);
    let mine: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "db", "namespace": ns}, "stringData": {"password": "hand-made"}
    }))
    .unwrap();
    api.create(&PostParams::default(), &mine).await.unwrap();
    env.apply_sealed(
        &ns,
        &seal_to(
            &keyring,
            &ns,
            "db",
            &[("password", "sealed-value")],
            "strict",
        ),
    )
    .await;
    let ss = env.wait_ready(&ns, "db", "False").await;
    let (reason, msg) = ready_of(&ss);
    assert_eq!(reason, "SecretNotOwned");
    assert!(msg.contains("gitseal.dev/adopt"), "{msg}");
    assert_eq!(data(&api.get("db").await.unwrap(), "password"), "hand-made");
    let adopt = serde_json::json!({"metadata": {"annotations": {"gitseal.dev/adopt": "true"}}});
    api.patch("db", &PatchParams::default(), &Patch::Merge(&adopt))
        .await
        .unwrap();
    wait_for(Duration::from_secs(30), || async {
        data(&api.get("db").await.unwrap(), "password") == "sealed-value"
    })
    .await;
    env.wait_ready(&ns, "db", "True").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restart_over_in_sync_objects_writes_nothing() {
    let env = Env::start().await;
    let ns = env.namespace().await;
    {
        let _ctl = env.controller("a").await;
        let keyring = env.keyring().await;
        for i in 0..20 {
            env.apply_sealed(
                &ns,
                &seal_to(&keyring, &ns, &format!("s{i}"), &[("k", "v")], "strict"),
            )
            .await;
        }
        for i in 0..20 {
            env.wait_ready(&ns, &format!("s{i}"), "True").await;
        }
    }
    let before: Vec<String> = env
        .secrets(&ns)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|s| s.resource_version().unwrap())
        .collect();
    let ctl = env.controller("b").await;
    ctl.wait_leading().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after: Vec<String> = env
        .secrets(&ns)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|s| s.resource_version().unwrap())
        .collect();
    assert_eq!(before.len(), 20);
    assert_eq!(before, after, "a restart rewrote Secrets");
    assert_eq!(ctl.metric("gitseal_secret_writes_total").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_make_exactly_one_active_key_and_fail_over() {
    let env = Env::start().await;
    env.delete_all_keys().await;
    let (a, b) = tokio::join!(env.controller("a"), env.controller("b"));
    let keys: Api<SealingKey> = Api::all(env.client.clone());
    wait_for(Duration::from_secs(30), || async {
        keys.list(&Default::default())
            .await
            .unwrap()
            .items
            .iter()
            .any(|k| k.status.as_ref().is_some_and(|s| s.public_key.is_some()))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = keys.list(&Default::default()).await.unwrap().items;
    assert_eq!(
        all.iter()
            .filter(|k| k.status.as_ref().and_then(|s| s.state) == Some(KeyState::Active))
            .count(),
        1,
        "{:?}",
        all.iter().map(|k| k.name_any()).collect::<Vec<_>>()
    );
    assert_eq!(all.len(), 1);

    // One leads; stop it, the other takes over within the lease duration and keeps working.
    let (leader, standby) = if a.is_leading().await { (a, b) } else { (b, a) };
    assert!(!standby.is_leading().await);
    let stopped = std::time::Instant::now();
    drop(leader);
    standby.wait_leading().await;
    let takeover = stopped.elapsed();
    assert!(
        takeover <= LEASE + Duration::from_secs(2),
        "takeover after {takeover:?}"
    );
    let ns = env.namespace().await;
    let keyring = env.keyring().await;
    env.apply_sealed(
        &ns,
        &seal_to(&keyring, &ns, "after", &[("k", "v")], "strict"),
    )
    .await;
    env.wait_secret(&ns, "after").await;
}

/// The standby keeps its caches while it waits (ready = caches synced), writes nothing, and
/// on takeover writes nothing for in-sync objects; an edit right after is repaired.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_warm_standby_takes_over_without_writes_and_repairs_drift() {
    let env = Env::start().await;
    let a = env.controller("a").await;
    a.wait_leading().await;
    let ns = env.namespace().await;
    let keyring = env.keyring().await;
    let b = env.controller("b").await;
    wait_for(Duration::from_secs(60), || async {
        b.get("/readyz").await.as_deref() == Some("ok")
    })
    .await;
    for i in 0..20 {
        let name = format!("s{i}");
        env.apply_sealed(&ns, &seal_to(&keyring, &ns, &name, &[("k", "v")], "strict"))
            .await;
    }
    for i in 0..20 {
        env.wait_ready(&ns, &format!("s{i}"), "True").await;
    }
    assert!(!b.is_leading().await);
    assert_eq!(b.metric("gitseal_secret_writes_total").await, 0.0);
    assert_eq!(
        b.metric("gitseal_reconciles_total").await,
        0.0,
        "a standby reconciles nothing"
    );
    // The standby opens every object ahead, in memory.
    let by_standby = r#"gitseal_opened_total{by="standby"}"#;
    let by_reconcile = r#"gitseal_opened_total{by="reconcile"}"#;
    wait_for(Duration::from_secs(60), || async {
        b.metric(by_standby).await >= 20.0
    })
    .await;

    drop(a);
    b.wait_leading().await;
    wait_for(Duration::from_secs(60), || async {
        b.metric("gitseal_reconciles_total").await >= 20.0
    })
    .await;
    assert_eq!(
        b.metric("gitseal_secret_writes_total").await,
        0.0,
        "takeover over in-sync objects writes no Secret"
    );
    assert_eq!(
        b.metric(by_reconcile).await,
        0.0,
        "takeover over in-sync objects decrypts nothing: the standby knew them"
    );
    let api = env.secrets(&ns);
    let patch = serde_json::json!({"data": {"k": "ZWRpdGVk"}});
    api.patch("s3", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_for(Duration::from_secs(30), || async {
        data(&api.get("s3").await.unwrap(), "k") == "v"
    })
    .await;
    assert_eq!(
        b.metric(by_reconcile).await,
        1.0,
        "only the edited one is opened"
    );
}

/// A leader that shuts down hands the Lease over at once; only the holder can release it,
/// and a release never undoes someone else's takeover.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_released_lease_is_taken_at_once_and_only_the_holder_releases() {
    use gitseal::controller::{LeaseConfig, leader};
    // Expiry is judged by when a replica saw the record change, not by renewTime.
    let env = Env::start().await;
    let api: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(env.client.clone(), SYSTEM_NS);
    let name = format!("release-test-{:x}", rand_u32());
    let cfg = |holder: &str| LeaseConfig {
        namespace: SYSTEM_NS.into(),
        name: name.clone(),
        holder: holder.into(),
        duration: Duration::from_secs(3600),
        retry: Duration::from_secs(1),
    };
    let (a, b) = (cfg("a"), cfg("b"));
    let mut ea = leader::Elector::new(api.clone(), a.clone());
    let mut eb = leader::Elector::new(api.clone(), b.clone());
    assert!(ea.try_acquire().await.unwrap(), "a acquires");
    assert!(!eb.try_acquire().await.unwrap(), "held for an hour");
    assert!(
        !leader::release(&api, &b).await.unwrap(),
        "b does not hold it"
    );
    assert!(!eb.try_acquire().await.unwrap(), "still a's");
    assert!(leader::release(&api, &a).await.unwrap(), "a releases");
    assert!(
        eb.try_acquire().await.unwrap(),
        "b takes a released lease without waiting for it to expire"
    );
    assert!(!ea.try_acquire().await.unwrap(), "a sees b's fresh record");
    let spec = api.get(&name).await.unwrap().spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_transitions, Some(1));
    assert!(
        !leader::release(&api, &a).await.unwrap(),
        "a no longer holds it"
    );
    assert_eq!(
        api.get(&name)
            .await
            .unwrap()
            .spec
            .unwrap()
            .holder_identity
            .as_deref(),
        Some("b")
    );
    api.delete(&name, &DeleteParams::default()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_fetch_writes_a_keyring_that_seal_uses() {
    let env = Env::start().await;
    let _ctl = env.controller("a").await;
    env.keyring().await;
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gitseal"))
        .args(["keys", "fetch", "--name", "test", "-o"])
        .arg(dir.path().join("keyring.yaml"))
        .arg("--kubeconfig")
        .arg(&env.kubeconfig)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ring = gitseal::manifest::KeyringFile::parse(
        "k",
        &std::fs::read_to_string(dir.path().join("keyring.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        ring.keys
            .iter()
            .filter(|k| k.state == KeyState::Active)
            .count(),
        1
    );
    let list = std::process::Command::new(env!("CARGO_BIN_EXE_gitseal"))
        .args(["keys", "list", "--kubeconfig"])
        .arg(&env.kubeconfig)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.contains(
            &ring
                .keys
                .iter()
                .find(|k| k.state == KeyState::Active)
                .unwrap()
                .key_id
        ) && text.contains("Active"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runs_with_only_the_deploy_rbac_and_users_cannot_read_keys() {
    let env = Env::start().await;
    apply_deploy_file(&env.client, "serviceaccount.yaml").await;
    apply_deploy_file(&env.client, "rbac.yaml").await;
    let restricted = client_as(&env, SYSTEM_NS, "gitseal-controller").await;
    // The service account itself cannot read what it has no rule for.
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(restricted.clone(), "default");
    assert!(
        matches!(cms.list(&Default::default()).await, Err(kube::Error::Api(e)) if e.code == 403)
    );
    let _ctl = env.controller_with("rbac", restricted).await;
    let ns = env.namespace().await;
    let keyring = env.keyring().await;
    env.apply_sealed(
        &ns,
        &seal_to(&keyring, &ns, "db", &[("password", "rbac-plain")], "strict"),
    )
    .await;
    assert_eq!(
        data(&env.wait_secret(&ns, "db").await, "password"),
        "rbac-plain"
    );
    env.wait_ready(&ns, "db", "True").await;

    // A namespace admin (plus the gitseal view role) sees SealingKeys, never the key Secrets.
    use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
    let user = client_as(&env, &ns, "dev").await;
    let rb: RoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "dev-admin", "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
        "subjects": [{"kind": "ServiceAccount", "name": "dev", "namespace": ns}]
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(env.client.clone(), &ns)
        .create(&PostParams::default(), &rb)
        .await
        .unwrap();
    let crb: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("dev-view-{ns}")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "gitseal-view"},
        "subjects": [{"kind": "ServiceAccount", "name": "dev", "namespace": ns}]
    }))
    .unwrap();
    Api::<ClusterRoleBinding>::all(env.client.clone())
        .create(&PostParams::default(), &crb)
        .await
        .unwrap();
    wait_for(Duration::from_secs(10), || async {
        Api::<SealingKey>::all(user.clone())
            .list(&Default::default())
            .await
            .is_ok()
    })
    .await;
    assert!(
        Api::<Secret>::namespaced(user.clone(), &ns)
            .get("db")
            .await
            .is_ok(),
        "admin of its namespace"
    );
    let keys: Api<Secret> = Api::namespaced(user.clone(), SYSTEM_NS);
    assert!(
        matches!(keys.list(&Default::default()).await, Err(kube::Error::Api(e)) if e.code == 403)
    );
    let key_name = gitseal::keyring::key_secret_name(
        &Api::<SealingKey>::all(env.client.clone())
            .list(&Default::default())
            .await
            .unwrap()
            .items[0]
            .name_any(),
    );
    assert!(matches!(keys.get(&key_name).await, Err(kube::Error::Api(e)) if e.code == 403));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_fields_no_longer_set_are_removed_even_where_an_older_version_wrote_them() {
    let env = Env::start().await;
    let ns = env.namespace().await;
    let keyring = {
        let _ctl = env.controller("a").await;
        env.keyring().await
    };
    // With no controller running, status as an older gitseal wrote it: a merge patch
    // without a field manager, naming a key id and a re-wrap the object does not need.
    let sealed = seal_to(&keyring, &ns, "db", &[("k", "v")], "strict");
    env.apply_sealed(&ns, &sealed).await;
    let envelope = sealed.spec.envelopes.keys().next().unwrap().clone();
    let api: Api<gitseal::api::SealedSecret> = Api::namespaced(env.client.clone(), &ns);
    let old = serde_json::json!({"status": {
        "conditions": [{
            "type": "Ready", "status": "True", "reason": "Unsealed",
            "message": "Secret db is up to date", "lastTransitionTime": "2025-01-01T00:00:00Z",
        }],
        "keyIds": ["00112233deadbeef"],
        "rewrappedEnvelopes": {envelope: {"00112233deadbeef": "stale"}},
    }});
    api.patch_status("db", &PatchParams::default(), &Patch::Merge(&old))
        .await
        .unwrap();
    let _ctl = env.controller("b").await;
    let active: Vec<String> = keyring
        .active("k")
        .unwrap()
        .iter()
        .map(|r| r.key_id())
        .collect();
    wait_for(Duration::from_secs(60), || async {
        let ss = api.get("db").await.unwrap();
        let st = ss.status.unwrap_or_default();
        st.observed_generation == ss.metadata.generation
            && st.key_ids == active
            && st.rewrapped_envelopes.is_empty()
    })
    .await;
    // Now sealed to a key the cluster does not hold: no key id opens it any more.
    let stranger = gitseal::crypto::Identity::generate();
    let foreign = seal_with(&[stranger.recipient()], &ns, "db", &[("k", "v")], "strict");
    env.apply_sealed(&ns, &foreign).await;
    let ss = env.wait_ready(&ns, "db", "False").await;
    assert_eq!(ready_of(&ss).0, "KeyNotFound");
    let st = ss.status.unwrap();
    assert!(st.key_ids.is_empty(), "{:?}", st.key_ids);
    assert!(st.rewrapped_envelopes.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn template_data_is_rendered_and_forbidden_functions_are_refused() {
    let env = Env::start().await;
    let ctl = env.controller("a").await;
    let ns = env.namespace().await;
    let keyring = env.keyring().await;
    let with_template = |name: &str, key: &str, template: &str| {
        let mut sealed = seal_to(
            &keyring,
            &ns,
            name,
            &[("password", "tmpl-pass-plain"), ("user", "tmpl-user-plain")],
            "strict",
        );
        let t = sealed.spec.template.get_or_insert_default();
        t.data.insert(key.into(), template.into());
        sealed
    };
    let good = with_template(
        "db",
        "dsn",
        "postgres://{{ .user }}:{{ .password }}@db:5432/app",
    );
    env.apply_sealed(&ns, &good).await;
    let bad = with_template("bad", "dsn", "{{ env \"HOME\" }}");
    env.apply_sealed(&ns, &bad).await;

    let secret = env.wait_secret(&ns, "db").await;
    assert_eq!(
        data(&secret, "dsn"),
        "postgres://tmpl-user-plain:tmpl-pass-plain@db:5432/app"
    );
    assert_eq!(data(&secret, "password"), "tmpl-pass-plain");
    env.wait_ready(&ns, "db", "True").await;
    let ss = env.wait_ready(&ns, "bad", "False").await;
    let (reason, msg) = ready_of(&ss);
    assert_eq!(reason, "InvalidSpec");
    assert!(
        msg.contains("spec.template.data.dsn: function \"env\" is not available"),
        "{msg}"
    );
    assert!(env.secrets(&ns).get_opt("bad").await.unwrap().is_none());
    ctl.assert_no_plain_text(&env, &ns, &["tmpl-pass-plain", "tmpl-user-plain"])
        .await;
}
