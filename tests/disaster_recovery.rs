//! Disaster-recovery drill on a dedicated real API server: 50 SealedSecrets unsealed; keys
//! backed up (age-encrypted); the API server stopped and etcd's data deleted; a fresh server;
//! keys restored; the same files applied; every Secret byte-identical to before.

mod ctrltool;

use ctrltool::*;
use gitseal::api::{KeyState, SealedSecret, SealingKey};
use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
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

fn gitseal(args: &[&str], kubeconfig: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_gitseal"))
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gitseal {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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
            start.elapsed() < Duration::from_secs(120),
            "{} of {want} Secrets",
            out.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
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
    let admin = gitseal::crypto::Identity::generate();
    let admin_file = work.path().join("admin.txt");
    std::fs::write(
        &admin_file,
        format!("{}\n", admin.to_secret_string().as_str()),
    )
    .unwrap();
    let backup = work.path().join("keys.age");

    let (files, before, key_ids) = {
        let env = Env::at(PathBuf::from(cluster("up", &dir))).await;
        namespaces(&env, &nss).await;
        let ctl = env.controller("a").await;
        let keyring = env.keyring().await;
        let files: Vec<String> = (0..50)
            .map(|i| {
                let s = seal_to(
                    &keyring,
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
            .collect();
        apply(&env, &files).await;
        let before = snapshot(&env, &nss, 50).await;
        gitseal(
            &[
                "keys",
                "backup",
                "-r",
                admin.recipient().as_str(),
                "-o",
                backup.to_str().unwrap(),
            ],
            &env.kubeconfig,
        );
        let keys: Api<SealingKey> = Api::all(env.client.clone());
        let key_ids: Vec<(String, String)> = keys
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(|k| (k.name_any(), k.status.clone().unwrap().key_id.unwrap()))
            .collect();
        drop(ctl);
        (files, before, key_ids)
    };
    let bytes = std::fs::read(&backup).unwrap();
    assert!(
        !String::from_utf8_lossy(&bytes).contains("AGE-SECRET-KEY"),
        "the backup is encrypted"
    );
    let backed_up = t.elapsed();

    // The disaster: the control plane goes, and etcd's data with it.
    cluster("down", &dir);
    std::fs::remove_dir_all(dir.join("etcd")).unwrap();
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
    gitseal(
        &[
            "keys",
            "restore",
            "-i",
            admin_file.to_str().unwrap(),
            backup.to_str().unwrap(),
        ],
        &env.kubeconfig,
    );
    let _ctl = env.controller("b").await;
    apply(&env, &files).await;
    let after = snapshot(&env, &nss, 50).await;
    assert_eq!(before, after, "every Secret byte-identical after recovery");
    let keys: Api<SealingKey> = Api::all(env.client.clone());
    let restored: Vec<(String, String)> = keys
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|k| (k.name_any(), k.status.clone().unwrap().key_id.unwrap()))
        .collect();
    assert_eq!(restored, key_ids, "same key names and ids; no new key made");
    assert_eq!(
        keys.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .filter(|k| k.status.as_ref().and_then(|s| s.state) == Some(KeyState::Active))
            .count(),
        1
    );
    eprintln!(
        "disaster-recovery drill: backed up after {:.1}s, recovered after {:.1}s",
        backed_up.as_secs_f64(),
        t.elapsed().as_secs_f64()
    );
    drop(env);
    cluster("down", &dir);
}
