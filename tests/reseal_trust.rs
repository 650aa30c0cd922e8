//! `gitseal reseal` against the real API server when someone other than the controller writes
//! `sealedsecrets/status` (issue 10, item 5). The controller rotates and publishes genuine
//! re-wraps; then, with the controller stopped, an admin client plays the attacker and
//! rewrites status: re-wraps for a DecryptOnly key id, for a recovery key id, for a key id
//! beside the Active one, a stale `observedGeneration`, `Ready` False; and the committed
//! keyring may not list the Active key yet. Every refusal names file, document, field and
//! reason and leaves the file byte-identical. The genuine status reseals with only envelope
//! lines changing, keeps the old and the recovery wrappings, and `--drop-old` then drops only
//! the old key's; the result unseals in the cluster and with the recovery key.

mod ctrltool;

use ctrltool::*;
use gitseal::api::{KeyState, SealedSecret, SealingKey};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Run gitseal in `dir`; commands that talk to the cluster get `--kubeconfig`.
fn gitseal(dir: &Path, args: &[&str], kubeconfig: &Path) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gitseal"));
    cmd.current_dir(dir).args(args);
    if !matches!(args[0], "seal" | "unseal") {
        cmd.arg("--kubeconfig").arg(kubeconfig);
    }
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

fn ok(run: Run) -> Run {
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    run
}

/// Server-side apply every document of a sealed file, as a GitOps agent would.
async fn apply_file(env: &Env, path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    for doc in gitseal::yaml::from_multiple::<SealedSecret>(&text).unwrap() {
        Api::<SealedSecret>::namespaced(env.client.clone(), &doc.namespace().unwrap())
            .patch(
                &doc.name_any(),
                &PatchParams::apply("gitops").force(),
                &Patch::Apply(&doc),
            )
            .await
            .unwrap();
    }
}

fn docs_of(path: &Path) -> Vec<SealedSecret> {
    gitseal::yaml::from_multiple(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The key the controller gives state Active (status, or spec from an older controller).
async fn active_key_id(env: &Env) -> Option<(String, String)> {
    let keys: Api<SealingKey> = Api::all(env.client.clone());
    let active: Vec<(String, String)> = keys
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|k| {
            k.status
                .as_ref()
                .and_then(|s| s.state)
                .unwrap_or(k.spec.state)
                == KeyState::Active
        })
        .filter_map(|k| Some((k.name_any(), k.status.as_ref()?.key_id.clone()?)))
        .collect();
    match active.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// Lines of `a` that are not in `b`.
fn changed(a: &str, b: &str) -> Vec<String> {
    a.lines()
        .filter(|l| !b.lines().any(|m| m == *l))
        .map(str::to_string)
        .collect()
}

/// The status of `ns/name` replaced by `edit(genuine)`, as an attacker with status write would.
async fn forge(
    env: &Env,
    ns: &str,
    name: &str,
    genuine: &SealedSecret,
    edit: impl FnOnce(&mut SealedSecret),
) {
    let api: Api<SealedSecret> = Api::namespaced(env.client.clone(), ns);
    let mut obj = api.get(name).await.unwrap();
    obj.status = genuine.status.clone();
    edit(&mut obj);
    api.replace_status(name, &PostParams::default(), &obj)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reseal_takes_only_trusted_rewraps() {
    let env = Env::start().await;
    let ctl = env.controller("a").await;
    let ns = env.namespace().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let kc = env.kubeconfig.clone();

    // A repository: .gitseal.yaml names the committed keyring and a recovery recipient.
    let recovery = gitseal::crypto::Identity::generate();
    std::fs::write(
        root.join("recovery.key"),
        format!("{}\n", recovery.to_secret_string().as_str()),
    )
    .unwrap();
    std::fs::create_dir_all(root.join("clusters")).unwrap();
    std::fs::write(
        root.join(".gitseal.yaml"),
        format!(
            "rules:\n  - path: 'apps/**'\n    keyrings: [clusters/keyring.yaml]\n    recipients: [{}]\n",
            recovery.recipient().as_str()
        ),
    )
    .unwrap();
    env.keyring().await;
    ok(gitseal(
        root,
        &["keys", "fetch", "-o", "clusters/keyring.yaml"],
        &kc,
    ));
    std::fs::copy(
        root.join("clusters/keyring.yaml"),
        root.join("keyring-before-rotation.yaml"),
    )
    .unwrap();
    let (_, old_id) = active_key_id(&env).await.unwrap();
    std::fs::create_dir_all(root.join("plain")).unwrap();
    std::fs::write(
        root.join("plain/app.yaml"),
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: {ns}\nstringData:\n  password: pw-1\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: api\n  namespace: {ns}\nstringData:\n  token: tk-1\n"
        ),
    )
    .unwrap();
    ok(gitseal(
        root,
        &["seal", "plain/app.yaml", "-w", "apps/app.yaml"],
        &kc,
    ));
    let file = root.join("apps/app.yaml");
    for doc in docs_of(&file) {
        assert!(
            doc.spec
                .envelopes
                .values()
                .all(|w| w.contains_key(&old_id) && w.contains_key(&recovery.key_id())),
            "sealed to the cluster and the recovery key"
        );
    }
    apply_file(&env, &file).await;
    env.wait_ready(&ns, "db", "True").await;
    env.wait_ready(&ns, "api", "True").await;

    // Rotate; the controller publishes genuine re-wraps to the new Active key.
    ok(gitseal(root, &["rotate"], &kc));
    let new_id = {
        let start = std::time::Instant::now();
        loop {
            if let Some((_, id)) = active_key_id(&env).await
                && id != old_id
            {
                break id;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "no new Active key"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let api: Api<SealedSecret> = Api::namespaced(env.client.clone(), &ns);
    wait_for(Duration::from_secs(120), || async {
        let mut all = true;
        for name in ["db", "api"] {
            let s = api.get(name).await.unwrap();
            let st = s.status.clone().unwrap_or_default();
            all &= st.observed_generation == s.metadata.generation
                && st
                    .conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
                && !st.rewrapped_envelopes.is_empty()
                && st
                    .rewrapped_envelopes
                    .values()
                    .all(|w| w.contains_key(&new_id));
        }
        all
    })
    .await;
    ok(gitseal(
        root,
        &["keys", "fetch", "-o", "clusters/keyring.yaml"],
        &kc,
    ));

    // From here on only the attacker writes status.
    drop(ctl);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let genuine_db = api.get("db").await.unwrap();
    let genuine_api = api.get("api").await.unwrap();
    let before = std::fs::read(&file).unwrap();
    let refused = |run: Run, want: &[&str]| {
        assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
        for w in want {
            assert!(run.stdout.contains(w), "{w:?} not in {}", run.stdout);
        }
        assert!(run.stdout.contains("file left untouched"), "{}", run.stdout);
        assert_eq!(
            std::fs::read(&file).unwrap(),
            before,
            "a refused file stays byte-identical"
        );
    };
    let envelope = |s: &SealedSecret| s.spec.envelopes.keys().next().unwrap().clone();
    let db_env = envelope(&genuine_db);
    let new_wrap =
        genuine_db.status.as_ref().unwrap().rewrapped_envelopes[&db_env][&new_id].clone();
    let relabel = |kid: String| {
        let (db_env, new_wrap) = (db_env.clone(), new_wrap.clone());
        move |s: &mut SealedSecret| {
            let st = s.status.as_mut().unwrap();
            st.rewrapped_envelopes = gitseal::format::Map::from_iter([(
                db_env,
                gitseal::format::Map::from_iter([(kid, new_wrap)]),
            )]);
        }
    };

    // 1. The committed keyring does not list the Active key yet (fetched before rotating).
    refused(
        gitseal(
            root,
            &[
                "reseal",
                "--keyring",
                "keyring-before-rotation.yaml",
                "apps",
            ],
            &kc,
        ),
        &[
            "apps/app.yaml:1:keyring: ",
            &format!("({new_id}) is not in the committed keyring keyring-before-rotation.yaml"),
        ],
    );

    // 2. A re-wrap labelled with the old (DecryptOnly) key id.
    forge(&env, &ns, "db", &genuine_db, relabel(old_id.clone())).await;
    refused(
        gitseal(root, &["reseal", "apps"], &kc),
        &[
            &format!("apps/app.yaml:1:status.rewrappedEnvelopes.{db_env}.{old_id}: {ns}/db: "),
            "is not the cluster's Active key",
            "another key of the committed keyring",
        ],
    );

    // 3. A re-wrap labelled with the recovery key id.
    forge(&env, &ns, "db", &genuine_db, relabel(recovery.key_id())).await;
    refused(
        gitseal(root, &["reseal", "apps"], &kc),
        &[
            &format!("status.rewrappedEnvelopes.{db_env}.{}", recovery.key_id()),
            "it is a recovery recipient of .gitseal.yaml",
        ],
    );

    // 4. Beside the Active key's re-wrap, one for a key nobody committed (document 2).
    forge(&env, &ns, "db", &genuine_db, |_| {}).await;
    let api_env = envelope(&genuine_api);
    forge(&env, &ns, "api", &genuine_api, |s| {
        let st = s.status.as_mut().unwrap();
        let w = st.rewrapped_envelopes.get_mut(&api_env).unwrap();
        let copy = w.values().next().unwrap().clone();
        w.insert("00112233deadbeef".into(), copy);
    })
    .await;
    refused(
        gitseal(root, &["reseal", "apps"], &kc),
        &[
            &format!(
                "apps/app.yaml:2:status.rewrappedEnvelopes.{api_env}.00112233deadbeef: {ns}/api: "
            ),
            "the committed keyring",
            "does not list it",
        ],
    );
    forge(&env, &ns, "api", &genuine_api, |_| {}).await;

    // 5. A stale observedGeneration.
    forge(&env, &ns, "db", &genuine_db, |s| {
        let st = s.status.as_mut().unwrap();
        st.observed_generation = st.observed_generation.map(|g| g - 1);
    })
    .await;
    refused(
        gitseal(root, &["reseal", "apps"], &kc),
        &[
            "apps/app.yaml:1:status.observedGeneration: ",
            "the controller has not caught up",
        ],
    );

    // 6. Ready False.
    forge(&env, &ns, "db", &genuine_db, |s| {
        for c in &mut s.status.as_mut().unwrap().conditions {
            if c.type_ == "Ready" {
                c.status = "False".into();
                c.reason = "KeyNotFound".into();
            }
        }
    })
    .await;
    refused(
        gitseal(root, &["reseal", "apps"], &kc),
        &[
            "apps/app.yaml:1:status.conditions.Ready: ",
            "Ready is False (KeyNotFound",
        ],
    );

    // The genuine status: only envelope lines change; old and recovery wrappings stay.
    forge(&env, &ns, "db", &genuine_db, |_| {}).await;
    let run = ok(gitseal(root, &["reseal", "apps"], &kc));
    assert!(
        run.stderr.contains("re-wrapped 2 object(s)"),
        "{}",
        run.stderr
    );
    let old_text = String::from_utf8(before.clone()).unwrap();
    let new_text = std::fs::read_to_string(&file).unwrap();
    assert!(!changed(&new_text, &old_text).is_empty());
    assert!(
        changed(&old_text, &new_text).is_empty(),
        "lines are only added"
    );
    for line in changed(&new_text, &old_text) {
        assert!(
            line.starts_with("      ") && !line.contains("gs1:"),
            "a non-envelope line changed: {line}"
        );
    }
    let mut want = vec![old_id.clone(), new_id.clone(), recovery.key_id()];
    want.sort();
    for doc in docs_of(&file) {
        for w in doc.spec.envelopes.values() {
            let mut kids: Vec<String> = w.keys().cloned().collect();
            kids.sort();
            assert_eq!(kids, want, "the old, the new and the recovery wrapping");
        }
    }

    // Applied and seen by the controller, `--drop-old` drops the old key's wrappings only.
    let ctl = env.controller("a").await;
    apply_file(&env, &file).await;
    env.wait_ready(&ns, "db", "True").await;
    env.wait_ready(&ns, "api", "True").await;
    let run = ok(gitseal(root, &["reseal", "--drop-old", "apps"], &kc));
    assert!(
        run.stderr.contains("re-wrapped 2 object(s)"),
        "{}",
        run.stderr
    );
    let dropped = std::fs::read_to_string(&file).unwrap();
    assert!(
        changed(&dropped, &new_text).is_empty(),
        "lines are only removed"
    );
    for doc in docs_of(&file) {
        for w in doc.spec.envelopes.values() {
            assert!(w.contains_key(&new_id) && w.contains_key(&recovery.key_id()));
            assert!(!w.contains_key(&old_id));
        }
    }
    apply_file(&env, &file).await;
    let api_obj = env.wait_ready(&ns, "api", "True").await;
    let used = api_obj.status.unwrap().key_ids;
    assert!(
        used.contains(&new_id) && !used.contains(&old_id),
        "{used:?}"
    );
    env.wait_ready(&ns, "db", "True").await;
    assert_eq!(data(&env.wait_secret(&ns, "db").await, "password"), "pw-1");
    assert_eq!(data(&env.wait_secret(&ns, "api").await, "token"), "tk-1");
    let run = ok(gitseal(
        root,
        &["unseal", "apps/app.yaml", "-i", "recovery.key"],
        &kc,
    ));
    // base64 of pw-1 and tk-1
    assert!(
        run.stdout.contains("cHctMQ==") && run.stdout.contains("dGstMQ=="),
        "{}",
        run.stdout
    );
    drop(ctl);
}

/// Without `--keyring` and without a `.gitseal.yaml`, reseal refuses before it reads anything.
#[test]
fn reseal_needs_a_committed_keyring() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gitseal"))
        .current_dir(dir.path())
        .args(["reseal", "."])
        .env("KUBECONFIG", dir.path().join("none"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--keyring FILE"), "{err}");
}
