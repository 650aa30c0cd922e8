//! Key lifecycle drills against the real API server: rotation while the controller is busy,
//! re-wrap and `gitseal reseal` (only envelope lines change), retirement refused while in
//! use, then done; backup, wipe etcd, restore, and every Secret comes back byte-identical.

mod ctrltool;

use ctrltool::*;
use gitseal::api::{KeyState, SealedSecret, SealingKey};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn gitseal(args: &[&str], kubeconfig: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gitseal"))
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// Write `n` sealed files under `dir/<ns>/sNNN.yaml` and apply them.
async fn seal_tree(
    env: &Env,
    dir: &Path,
    namespaces: &[String],
    n: usize,
) -> Vec<(String, String, String)> {
    let keyring = env.keyring().await;
    let mut objects = Vec::new();
    for i in 0..n {
        let ns = &namespaces[i % namespaces.len()];
        let name = format!("s{i:04}");
        let value = format!("value-{i}");
        let sealed = seal_to(&keyring, ns, &name, &[("v", &value)], "strict");
        std::fs::create_dir_all(dir.join(ns)).unwrap();
        std::fs::write(
            dir.join(ns).join(format!("{name}.yaml")),
            gitseal::manifest::emit_sealed(&[sealed], gitseal::manifest::Format::Yaml),
        )
        .unwrap();
        objects.push((ns.clone(), name, value));
    }
    apply_tree(env, dir).await;
    objects
}

async fn apply_tree(env: &Env, dir: &Path) {
    let mut tasks = Vec::new();
    for entry in walk(dir) {
        let text = std::fs::read_to_string(&entry).unwrap();
        let sealed: SealedSecret = gitseal::yaml::from_str(&text).unwrap();
        let api: Api<SealedSecret> =
            Api::namespaced(env.client.clone(), &sealed.namespace().unwrap());
        tasks.push(async move {
            api.patch(
                &sealed.name_any(),
                &PatchParams::apply("gitops").force(),
                &Patch::Apply(&sealed),
            )
            .await
            .unwrap()
        });
        if tasks.len() == 32 {
            futures::future::join_all(std::mem::take(&mut tasks)).await;
        }
    }
    futures::future::join_all(tasks).await;
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p))
        } else {
            out.push(p)
        }
    }
    out.sort();
    out
}

async fn wait_all_unsealed(env: &Env, objects: &[(String, String, String)]) {
    let start = Instant::now();
    for (ns, name, value) in objects {
        loop {
            if let Some(s) = env.secrets(ns).get_opt(name).await.unwrap()
                && data(&s, "v") == *value
            {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(300),
                "{ns}/{name} not unsealed"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn all_sealed(env: &Env, namespaces: &[String]) -> Vec<SealedSecret> {
    let mut out = Vec::new();
    for ns in namespaces {
        out.extend(
            Api::<SealedSecret>::namespaced(env.client.clone(), ns)
                .list(&ListParams::default())
                .await
                .unwrap()
                .items,
        );
    }
    out
}

async fn key_by_state(env: &Env, state: KeyState) -> Vec<SealingKey> {
    let api: Api<SealingKey> = Api::all(env.client.clone());
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|k| k.status.as_ref().and_then(|s| s.state) == Some(state))
        .collect()
}

fn drill_size() -> usize {
    std::env::var("GITSEAL_DRILL_OBJECTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_drill() {
    let env = Env::start().await;
    let _ctl = env.controller("a").await;
    let mut namespaces = Vec::new();
    for _ in 0..10 {
        namespaces.push(env.namespace().await);
    }
    let dir = tempfile::tempdir().unwrap();
    let n = drill_size();
    let t = Instant::now();
    let old_key = env
        .keyring()
        .await
        .keys
        .into_iter()
        .find(|k| k.state == KeyState::Active)
        .unwrap()
        .key_id;
    let objects = seal_tree(&env, dir.path(), &namespaces, n).await;

    // Rotate while the controller is still busy with the new objects.
    let (code, stdout, stderr) = gitseal(&["rotate"], &env.kubeconfig);
    assert_eq!(code, 0, "{stderr}");
    let new_name = stdout.trim().to_string();
    wait_all_unsealed(&env, &objects).await;
    let unsealed = t.elapsed();
    let new_key = loop {
        let active = key_by_state(&env, KeyState::Active).await;
        if let [k] = active.as_slice()
            && k.name_any() == new_name
            && let Some(id) = k.status.as_ref().and_then(|s| s.key_id.clone())
        {
            break id;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_ne!(new_key, old_key);

    // Retiring the old key now is refused: everything still uses it.
    let old_name = key_by_state(&env, KeyState::DecryptOnly)
        .await
        .iter()
        .find(|k| k.status.as_ref().and_then(|s| s.key_id.as_deref()) == Some(&old_key))
        .unwrap()
        .name_any();
    // `keys retire` waits for the controller's verdict: refused, exit 6, with its reason.
    let (code, _, stderr) = gitseal(
        &["keys", "retire", &old_name, "--timeout", "120s"],
        &env.kubeconfig,
    );
    assert_eq!(code, 6, "{stderr}");
    assert!(stderr.contains("still use this key"), "{stderr}");
    let keys: Api<SealingKey> = Api::all(env.client.clone());
    wait_for(Duration::from_secs(60), || async {
        keys.get(&old_name)
            .await
            .unwrap()
            .status
            .unwrap_or_default()
            .conditions
            .iter()
            .any(|c| c.reason == "RetireRefused")
    })
    .await;
    assert!(
        env.secrets(SYSTEM_NS)
            .get_opt(&gitseal::keyring::key_secret_name(&old_name))
            .await
            .unwrap()
            .is_some(),
        "refused retirement kept the key"
    );
    keys.patch(
        &old_name,
        &PatchParams::default(),
        &Patch::Merge(&serde_json::json!({"spec": {"state": "DecryptOnly"}})),
    )
    .await
    .unwrap();

    // The controller publishes re-wrapped envelopes for every object.
    wait_for(Duration::from_secs(300), || async {
        all_sealed(&env, &namespaces).await.iter().all(|s| {
            s.status.as_ref().is_some_and(|st| {
                st.rewrapped_envelopes
                    .values()
                    .all(|w| w.contains_key(&new_key))
                    && !st.rewrapped_envelopes.is_empty()
            })
        })
    })
    .await;
    let rewrapped = t.elapsed();

    // reseal rewrites the files: only envelope lines change.
    let before: Vec<(std::path::PathBuf, String)> = walk(dir.path())
        .into_iter()
        .map(|p| {
            let t = std::fs::read_to_string(&p).unwrap();
            (p, t)
        })
        .collect();
    // The committed keyring (outside the tree apply_tree walks) lists the new key.
    let ring_dir = tempfile::tempdir().unwrap();
    let ring = ring_dir.path().join("keyring.yaml");
    let ring = ring.to_str().unwrap();
    assert_eq!(
        gitseal(&["keys", "fetch", "-o", ring], &env.kubeconfig).0,
        0
    );
    let (code, _, stderr) = gitseal(
        &[
            "reseal",
            "--drop-old",
            "--keyring",
            ring,
            dir.path().to_str().unwrap(),
        ],
        &env.kubeconfig,
    );
    assert_eq!(code, 0, "{stderr}");
    for (path, old) in &before {
        let new = std::fs::read_to_string(path).unwrap();
        assert_ne!(&new, old, "{} not resealed", path.display());
        let changed = |a: &str, b: &str| {
            a.lines()
                .filter(|l| !b.lines().any(|m| m == *l))
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        for line in changed(old, &new).iter().chain(changed(&new, old).iter()) {
            assert!(
                line.starts_with("      ") && !line.contains("gs1:"),
                "{}: a non-envelope line changed: {line}",
                path.display()
            );
        }
        let doc: SealedSecret = gitseal::yaml::from_str(&new).unwrap();
        assert!(
            doc.spec
                .envelopes
                .values()
                .all(|w| w.keys().collect::<Vec<_>>() == [&new_key]),
            "sealed only to the new cluster key"
        );
    }
    let resealed = t.elapsed();

    // Apply: every object now uses the new key only, then the old key can retire.
    apply_tree(&env, dir.path()).await;
    wait_for(Duration::from_secs(300), || async {
        all_sealed(&env, &namespaces).await.iter().all(|s| {
            s.status.as_ref().is_some_and(|st| {
                st.key_ids == [new_key.clone()]
                    && st.rewrapped_envelopes.is_empty()
                    && st.observed_generation == s.metadata.generation
            })
        })
    })
    .await;
    let (code, _, stderr) = gitseal(
        &["keys", "retire", &old_name, "--timeout", "120s"],
        &env.kubeconfig,
    );
    assert_eq!(code, 0, "{stderr}");
    wait_for(Duration::from_secs(120), || async {
        env.secrets(SYSTEM_NS)
            .get_opt(&gitseal::keyring::key_secret_name(&old_name))
            .await
            .unwrap()
            .is_none()
    })
    .await;
    let retired = t.elapsed();
    wait_all_unsealed(&env, &objects).await;
    eprintln!(
        "rotation drill, {n} objects: unsealed {:.1}s, re-wrapped {:.1}s, resealed {:.1}s, retired {:.1}s",
        unsealed.as_secs_f64(),
        rewrapped.as_secs_f64(),
        resealed.as_secs_f64(),
        retired.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reseal_leaves_files_that_differ_from_the_cluster_alone() {
    let env = Env::start().await;
    let _ctl = env.controller("a").await;
    let ns = env.namespace().await;
    let dir = tempfile::tempdir().unwrap();
    seal_tree(&env, dir.path(), std::slice::from_ref(&ns), 2).await;
    let files = walk(dir.path());
    // One file edited locally (not applied), one object the cluster never saw.
    let edited = std::fs::read_to_string(&files[0])
        .unwrap()
        .replace("name: s0000", "name: s0000\n  labels:\n    x: y");
    std::fs::write(&files[0], &edited).unwrap();
    let keyring = env.keyring().await;
    let ghost = seal_to(&keyring, &ns, "ghost", &[("v", "x")], "strict");
    let ghost_path = dir.path().join("ghost.yaml");
    std::fs::write(
        &ghost_path,
        gitseal::manifest::emit_sealed(
            std::slice::from_ref(&ghost),
            gitseal::manifest::Format::Yaml,
        ),
    )
    .unwrap();
    // Make the spec differ for files[0] by changing a value line instead of metadata.
    let mut doc: SealedSecret = gitseal::yaml::from_str(&edited).unwrap();
    doc.spec.template = None;
    std::fs::write(
        &files[0],
        gitseal::manifest::emit_sealed(&[doc], gitseal::manifest::Format::Yaml),
    )
    .unwrap();
    let before0 = std::fs::read_to_string(&files[0]).unwrap();
    let ring_dir = tempfile::tempdir().unwrap();
    let ring = ring_dir.path().join("keyring.yaml");
    let ring = ring.to_str().unwrap();
    assert_eq!(
        gitseal(&["keys", "fetch", "-o", ring], &env.kubeconfig).0,
        0
    );
    let (code, stdout, _) = gitseal(
        &["reseal", "--keyring", ring, dir.path().to_str().unwrap()],
        &env.kubeconfig,
    );
    assert_eq!(code, 1);
    assert!(stdout.contains("differs from the live object"), "{stdout}");
    assert!(stdout.contains("is not in the cluster"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&files[0]).unwrap(), before0);
}
