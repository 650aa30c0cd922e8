//! Disaster recovery on dedicated real API servers (issue 10, item 6). An old cluster with two
//! keys (a rotation) and 50 SealedSecrets, half sealed to each key; keys backed up
//! (age-encrypted) and the keyring committed; then the control plane and etcd's data are
//! lost, twice:
//! - restore first, then the controller: same key names and ids, every Secret byte-identical;
//! - the controller first (it makes a fresh `gitseal-1`), then restore: the old `gitseal-1`
//!   is restored as `gitseal-1-restored` with its key id, nothing is replaced, and every old
//!   SealedSecret (applied before the restore) unseals byte-identical; restoring again changes
//!   nothing.
//!
//! And on the shared test cluster: forged bundles (an identity that is not the stated public
//! key's, a key id that is not the public key's), a future creation time, a key id the
//! committed keyring does not list, a bad name, no keyring without `--trust-bundle` are all
//! refused with the entry named, and nothing in the cluster changes; a trusted bundle creates
//! the key Secret from the SealingKey as created (type, owner uid).

mod ctrltool;

use ctrltool::*;
use gitseal::api::{KeyState, SealedSecret, SealingKey};
use gitseal::crypto::{Identity, Recipient};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn cluster(cmd: &str, dir: &Path) -> String {
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/cluster"))
        .arg(cmd)
        .env("GITSEAL_CLUSTER_DIR", dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/cluster {cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .lines()
        .last()
        .unwrap_or_default()
        .to_string()
}

struct Run {
    code: i32,
    stderr: String,
}

fn gitseal(args: &[&str], kubeconfig: &Path) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_gitseal"))
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

fn ok(args: &[&str], kubeconfig: &Path) -> String {
    let run = gitseal(args, kubeconfig);
    assert_eq!(run.code, 0, "gitseal {args:?}: {}", run.stderr);
    run.stderr
}

async fn namespaces(env: &Env, names: &[&str]) {
    let api: Api<Namespace> = Api::all(env.client.clone());
    for n in names {
        let ns: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": n}})).unwrap();
        api.create(&PostParams::default(), &ns).await.unwrap();
    }
}

async fn apply(env: &Env, files: &[String]) {
    for text in files {
        let s: SealedSecret = gitseal::yaml::from_str(text).unwrap();
        Api::<SealedSecret>::namespaced(env.client.clone(), &s.namespace().unwrap())
            .patch(
                &s.name_any(),
                &PatchParams::apply("gitops"),
                &Patch::Apply(&s),
            )
            .await
            .unwrap();
    }
}

/// (namespace/name, type, data, template labels) of every managed Secret, sorted.
async fn snapshot(env: &Env, nss: &[&str], want: usize) -> Vec<String> {
    let start = Instant::now();
    loop {
        let mut out = Vec::new();
        for ns in nss {
            for s in env
                .secrets(ns)
                .list(&ListParams::default().labels("app.kubernetes.io/managed-by=gitseal"))
                .await
                .unwrap()
                .items
            {
                out.push(format!(
                    "{ns}/{} {:?} {:?} {:?}",
                    s.name_any(),
                    s.type_,
                    s.data,
                    s.labels().get("app")
                ));
            }
        }
        if out.len() == want {
            out.sort();
            return out;
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "{} of {want} Secrets",
            out.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The state the controller gives a key (status; spec from a controller that sets none).
fn effective(k: &SealingKey) -> KeyState {
    k.status
        .as_ref()
        .and_then(|s| s.state)
        .unwrap_or(k.spec.state)
}

async fn keys(env: &Env) -> Vec<SealingKey> {
    Api::<SealingKey>::all(env.client.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
}

/// name → key id of every SealingKey.
async fn key_ids(env: &Env) -> BTreeMap<String, String> {
    keys(env)
        .await
        .iter()
        .map(|k| {
            let id = k.status.as_ref().and_then(|s| s.key_id.clone());
            (k.name_any(), id.unwrap_or_default())
        })
        .collect()
}

/// Wait until exactly one key is Active with a public key; its name and recipient.
async fn the_active_key(env: &Env) -> (String, Recipient) {
    let start = Instant::now();
    loop {
        let active: Vec<(String, Recipient)> = keys(env)
            .await
            .iter()
            .filter(|k| effective(k) == KeyState::Active)
            .filter_map(|k| {
                let public = k.status.as_ref()?.public_key.as_deref()?;
                Some((k.name_any(), Recipient::parse(public).ok()?))
            })
            .collect();
        if let [one] = active.as_slice() {
            return one.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "not exactly one Active key: {active:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every restored key's Secret is what `keyring::key_secret` builds for the SealingKey as
/// created: its type, an owner reference with that SealingKey's uid, the key id label.
async fn assert_key_secrets_trusted(env: &Env, names: &[&str]) {
    for k in keys(env).await {
        if !names.contains(&k.name_any().as_str()) {
            continue;
        }
        let s = env
            .secrets(SYSTEM_NS)
            .get(&gitseal::keyring::key_secret_name(&k.name_any()))
            .await
            .unwrap();
        assert_eq!(s.type_.as_deref(), Some("gitseal.dev/sealing-key"));
        assert!(
            s.owner_references()
                .iter()
                .any(|o| Some(&o.uid) == k.uid().as_ref()),
            "{}: key Secret owned by the SealingKey's uid",
            k.name_any()
        );
        let id = gitseal::keyring::identity_of(&s).unwrap().key_id();
        assert_eq!(Some(id), k.status.and_then(|st| st.key_id));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn disaster_recovery_drill() {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/dr-cluster"));
    let _ = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/cluster"))
        .arg("down")
        .env("GITSEAL_CLUSTER_DIR", &dir)
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    let t = Instant::now();
    let nss = ["shop", "billing", "auth", "search", "infra"];
    let work = tempfile::tempdir().unwrap();
    let admin = Identity::generate();
    let admin_file = work.path().join("admin.txt");
    std::fs::write(
        &admin_file,
        format!("{}\n", admin.to_secret_string().as_str()),
    )
    .unwrap();
    let backup = work.path().join("keys.age");
    let keyring = work.path().join("keyring.yaml");
    let (admin_file, backup, keyring) = (
        admin_file.to_str().unwrap(),
        backup.to_str().unwrap(),
        keyring.to_str().unwrap(),
    );

    // The old cluster: gitseal-1, a rotation to gitseal-2, 25 objects sealed to each.
    let (files, before, old_keys) = {
        let env = Env::at(PathBuf::from(cluster("up", &dir))).await;
        namespaces(&env, &nss).await;
        let _ctl = env.controller("a").await;
        let seal_batch = |recipient: Recipient, range: std::ops::Range<usize>| {
            range
                .map(|i| {
                    let s = seal_with(
                        std::slice::from_ref(&recipient),
                        nss[i % nss.len()],
                        &format!("app{i}"),
                        &[
                            ("password", &format!("pw-{i}")),
                            ("token", &format!("tk-{i}")),
                        ],
                        "strict",
                    );
                    gitseal::manifest::emit_sealed(&[s], gitseal::manifest::Format::Yaml)
                })
                .collect::<Vec<_>>()
        };
        let (first, r1) = the_active_key(&env).await;
        assert_eq!(first, "gitseal-1");
        let mut files = seal_batch(r1.clone(), 0..25);
        ok(&["rotate"], &env.kubeconfig);
        let r2 = loop {
            let (name, r) = the_active_key(&env).await;
            if name == "gitseal-2" {
                break r;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        files.extend(seal_batch(r2, 25..50));
        apply(&env, &files).await;
        let before = snapshot(&env, &nss, 50).await;
        ok(&["keys", "fetch", "-o", keyring], &env.kubeconfig);
        ok(
            &[
                "keys",
                "backup",
                "-r",
                admin.recipient().as_str(),
                "-o",
                backup,
            ],
            &env.kubeconfig,
        );
        (files, before, key_ids(&env).await)
    };
    assert_eq!(
        old_keys.keys().collect::<Vec<_>>(),
        ["gitseal-1", "gitseal-2"]
    );
    let bytes = std::fs::read(backup).unwrap();
    assert!(
        !String::from_utf8_lossy(&bytes).contains("AGE-SECRET-KEY"),
        "the backup is encrypted"
    );
    let backed_up = t.elapsed();

    // Disaster 1: the control plane goes, and etcd's data with it. Restore, then controller.
    cluster("down", &dir);
    std::fs::remove_dir_all(dir.join("etcd")).unwrap();
    {
        let env = Env::at(PathBuf::from(cluster("up", &dir))).await;
        assert!(
            Api::<SealedSecret>::all(env.client.clone())
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .is_empty(),
            "a fresh etcd"
        );
        namespaces(&env, &nss).await;
        ok(
            &[
                "keys",
                "restore",
                "-i",
                admin_file,
                "--keyring",
                keyring,
                backup,
            ],
            &env.kubeconfig,
        );
        let _ctl = env.controller("b").await;
        apply(&env, &files).await;
        let after = snapshot(&env, &nss, 50).await;
        assert_eq!(before, after, "every Secret byte-identical after recovery");
        assert_eq!(
            key_ids(&env).await,
            old_keys,
            "same key names and ids; no new key"
        );
        assert_eq!(the_active_key(&env).await.0, "gitseal-2");
        assert_key_secrets_trusted(&env, &["gitseal-1", "gitseal-2"]).await;
    }
    let recovered = t.elapsed();

    // Disaster 2: this time the controller starts first and makes a fresh gitseal-1.
    cluster("down", &dir);
    std::fs::remove_dir_all(dir.join("etcd")).unwrap();
    let env = Env::at(PathBuf::from(cluster("up", &dir))).await;
    namespaces(&env, &nss).await;
    let _ctl = env.controller("c").await;
    let (fresh, _) = the_active_key(&env).await;
    assert_eq!(fresh, "gitseal-1");
    let fresh_id = key_ids(&env).await["gitseal-1"].clone();
    assert!(!fresh_id.is_empty() && !old_keys.values().any(|id| *id == fresh_id));
    // Git is applied before anyone thinks of the backup: nothing opens yet.
    apply(&env, &files).await;
    let log = ok(
        &[
            "keys",
            "restore",
            "-i",
            admin_file,
            "--keyring",
            keyring,
            backup,
        ],
        &env.kubeconfig,
    );
    assert!(
        log.contains(
            "restored gitseal-1 as gitseal-1-restored (the name gitseal-1 is taken by another key)"
        ),
        "{log}"
    );
    assert!(log.contains("restored gitseal-2: key id"), "{log}");
    let after = snapshot(&env, &nss, 50).await;
    assert_eq!(
        before, after,
        "every old SealedSecret unseals, byte-identical"
    );
    let want = BTreeMap::from([
        ("gitseal-1".to_string(), fresh_id.clone()),
        (
            "gitseal-1-restored".to_string(),
            old_keys["gitseal-1"].clone(),
        ),
        ("gitseal-2".to_string(), old_keys["gitseal-2"].clone()),
    ]);
    assert_eq!(
        key_ids(&env).await,
        want,
        "the controller's key is kept; the old keys are back under their key ids"
    );
    the_active_key(&env).await;
    assert_key_secrets_trusted(&env, &["gitseal-1-restored", "gitseal-2"]).await;
    let log = ok(
        &[
            "keys",
            "restore",
            "-i",
            admin_file,
            "--keyring",
            keyring,
            backup,
        ],
        &env.kubeconfig,
    );
    assert_eq!(log.matches("is already restored").count(), 2, "{log}");
    assert_eq!(key_ids(&env).await, want, "restoring again changes nothing");
    eprintln!(
        "disaster-recovery drill: backed up after {:.1}s, recovered after {:.1}s, recovered next to a fresh key after {:.1}s",
        backed_up.as_secs_f64(),
        recovered.as_secs_f64(),
        t.elapsed().as_secs_f64()
    );
    drop(_ctl);
    drop(env);
    cluster("down", &dir);
}

/// A bundle entry as JSON, the way anyone could write one.
fn entry(name: &str, identity: &Identity, public: &Recipient, key_id: &str) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "state": "DecryptOnly",
        "keyId": key_id,
        "publicKey": public.as_str(),
        "identity": identity.to_secret_string().as_str(),
    })
}

/// Every SealingKey and every Secret of the controller's namespace, with resource versions.
async fn cluster_state(env: &Env) -> Vec<String> {
    let mut out: Vec<String> = keys(env)
        .await
        .iter()
        .map(|k| format!("key {} {:?}", k.name_any(), k.resource_version()))
        .collect();
    let secrets: Api<Secret> = env.secrets(SYSTEM_NS);
    for s in secrets.list(&ListParams::default()).await.unwrap().items {
        out.push(format!(
            "secret {} {:?}",
            s.name_any(),
            s.resource_version()
        ));
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restore_refuses_forged_bundles() {
    let env = Env::start().await;
    let kc = env.kubeconfig.clone();
    let work = tempfile::tempdir().unwrap();
    let admin = Identity::generate();
    let admin_file = work.path().join("admin.txt");
    std::fs::write(
        &admin_file,
        format!("{}\n", admin.to_secret_string().as_str()),
    )
    .unwrap();
    // The committed keyring lists key `a` only.
    let [a, b, c] = [(); 3].map(|_| Identity::generate());
    let keyring = work.path().join("keyring.yaml");
    std::fs::write(
        &keyring,
        gitseal::manifest::KeyringFile::new(
            "prod",
            vec![gitseal::manifest::KeyringEntry::new(
                &a.recipient(),
                KeyState::DecryptOnly,
                None,
            )],
        )
        .to_yaml(),
    )
    .unwrap();
    let (admin_file, keyring) = (admin_file.to_str().unwrap(), keyring.to_str().unwrap());
    let mut n = 0;
    let mut bundle = |keys: Vec<serde_json::Value>| {
        n += 1;
        let plain = serde_json::json!({"apiVersion": "gitseal.dev/v1alpha1", "kind": "KeyBackup", "keys": keys});
        let file = work.path().join(format!("bundle-{n}.age"));
        std::fs::write(
            &file,
            gitseal::crypto::encrypt_file(plain.to_string().as_bytes(), &[admin.recipient()])
                .unwrap(),
        )
        .unwrap();
        file.to_str().unwrap().to_string()
    };
    let suffix = format!("{:08x}", rand::random::<u32>());
    let name = |n: &str| format!("{n}-{suffix}");
    let good = entry(&name("good"), &a, &a.recipient(), &a.key_id());
    let mut future = good.clone();
    future["name"] = name("future").into();
    future["created"] = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(24))
        .unwrap()
        .to_string()
        .into();
    let mut bad_name = good.clone();
    bad_name["name"] = "Evil/../name".into();

    let cases: Vec<(Vec<&str>, String, i32, Vec<String>)> = vec![
        (
            vec!["--keyring", keyring],
            // Someone else's identity under the committed key's public key and id.
            bundle(vec![entry(
                &name("forged"),
                &b,
                &a.recipient(),
                &a.key_id(),
            )]),
            3,
            vec![format!(
                "keys[0] ({}):publicKey: the identity is not the private key of {}",
                name("forged"),
                a.recipient().as_str()
            )],
        ),
        (
            vec!["--keyring", keyring],
            // A consistent identity and public key, but the committed key's id.
            bundle(vec![entry(
                &name("forged-id"),
                &b,
                &b.recipient(),
                &a.key_id(),
            )]),
            3,
            vec![format!(
                "keys[0] ({}):keyId: key id {} does not belong to public key {}",
                name("forged-id"),
                a.key_id(),
                b.recipient().as_str()
            )],
        ),
        (
            vec!["--keyring", keyring],
            bundle(vec![future.clone()]),
            3,
            vec![
                format!("keys[0] ({}):created: ", name("future")),
                "is in the future".into(),
            ],
        ),
        (
            vec!["--keyring", keyring],
            // One good entry and one the keyring does not list: nothing at all is created.
            bundle(vec![
                good.clone(),
                entry(&name("stranger"), &c, &c.recipient(), &c.key_id()),
            ]),
            3,
            vec![
                format!(
                    "keys[1] ({}):keyId: key id {} is not in the committed keyring",
                    name("stranger"),
                    c.key_id()
                ),
                "1 of 2 key(s) refused; nothing restored".into(),
            ],
        ),
        (
            vec![],
            bundle(vec![good.clone()]),
            2,
            vec!["--keyring <FILE>".into()],
        ),
        (
            vec!["--trust-bundle"],
            bundle(vec![future]),
            3,
            vec!["is in the future".into()],
        ),
        (
            vec!["--trust-bundle"],
            bundle(vec![bad_name]),
            3,
            vec!["keys[0] (Evil/../name):name: ".into()],
        ),
    ];
    let state = cluster_state(&env).await;
    for (flags, file, code, want) in cases {
        let mut args = vec!["keys", "restore", "-i", admin_file];
        args.extend(flags.iter().copied());
        args.push(&file);
        let run = gitseal(&args, &kc);
        assert_eq!(run.code, code, "{args:?}: {}", run.stderr);
        for w in &want {
            assert!(
                run.stderr.contains(w.as_str()),
                "{w:?} not in {}",
                run.stderr
            );
        }
        assert!(
            !run.stderr.contains("AGE-SECRET-KEY"),
            "no key material in errors"
        );
        assert_eq!(
            cluster_state(&env).await,
            state,
            "{args:?} changed the cluster"
        );
    }

    // A bundle the admin vouches for: created as stated, the key Secret from the SealingKey
    // as created (type, owner uid).
    let mut trusted = entry(&name("trusted"), &c, &c.recipient(), &c.key_id());
    trusted["created"] = "2026-01-02T03:04:05Z".into();
    let file = bundle(vec![trusted]);
    let run = gitseal(
        &["keys", "restore", "-i", admin_file, "--trust-bundle", &file],
        &kc,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let keys_api: Api<SealingKey> = Api::all(env.client.clone());
    let key = keys_api.get(&name("trusted")).await.unwrap();
    assert_eq!(key.spec.state, KeyState::DecryptOnly);
    let status = key.status.clone().unwrap();
    assert_eq!(status.key_id.as_deref(), Some(c.key_id().as_str()));
    assert_eq!(status.public_key.as_deref(), Some(c.recipient().as_str()));
    assert_eq!(
        status.created.unwrap().0.to_string(),
        "2026-01-02T03:04:05Z"
    );
    assert_key_secrets_trusted(&env, &[&name("trusted")]).await;

    // The private key Secret is lost (no controller runs here to lift finalizers): the same
    // restore puts it back for the existing SealingKey; once more, and nothing changes.
    let secret_name = gitseal::keyring::key_secret_name(&name("trusted"));
    let secrets = env.secrets(SYSTEM_NS);
    let drop_secret = || async {
        secrets
            .patch(
                &secret_name,
                &PatchParams::default(),
                &Patch::Merge(&serde_json::json!({"metadata": {"finalizers": null}})),
            )
            .await
            .unwrap();
        let _ = secrets.delete(&secret_name, &DeleteParams::default()).await;
        wait_for(Duration::from_secs(60), || async {
            secrets.get_opt(&secret_name).await.unwrap().is_none()
        })
        .await;
    };
    drop_secret().await;
    let restore = [
        "keys",
        "restore",
        "-i",
        admin_file,
        "--trust-bundle",
        file.as_str(),
    ];
    let log = ok(&restore, &kc);
    assert!(
        log.contains(&format!(
            "restored the private key of key id {}",
            c.key_id()
        )),
        "{log}"
    );
    assert_key_secrets_trusted(&env, &[&name("trusted")]).await;
    let state = cluster_state(&env).await;
    assert!(ok(&restore, &kc).contains("is already restored"));
    assert_eq!(cluster_state(&env).await, state);

    // Clean up the shared cluster.
    drop_secret().await;
    keys_api
        .delete(&name("trusted"), &DeleteParams::default())
        .await
        .unwrap();
}
