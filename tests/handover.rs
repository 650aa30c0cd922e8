//! Zero-downtime handover from Bitnami Sealed Secrets to gitseal, in the test cluster (real
//! kube-apiserver + etcd + kube-controller-manager's garbage collector), with both real
//! controllers and the real `kubeseal` (docs/takeover.md):
//!
//! 100 Bitnami SealedSecrets sealed with `kubeseal --cert` are unsealed by Bitnami's
//! controller; `gitseal import sealed-secrets` of those files with Bitnami's exported keys
//! makes their gitseal versions, which are applied to a gitseal controller started with
//! `--take-over-from sealed-secrets`; then the Bitnami SealedSecrets are deleted and the
//! Bitnami controller stopped. A watch on the namespace's Secrets runs the whole time: no
//! Secret is ever deleted, no Secret's data ever changes; at the end every Secret is
//! controlled by its gitseal SealedSecret, Ready=True, and survives a garbage-collection pass.
//! The gitseal controller that takes over runs with the shipped RBAC only (deploy/rbac.yaml).
//! Without the flag the gitseal SealedSecret gets SecretNotOwned and the Secret is untouched;
//! Bitnami's controller, restarted after the takeover, leaves the Secrets alone; Bitnami's
//! rendering of `spec.template.data` equals gitseal's.

#[path = "support/bitnami.rs"]
mod bitnami;
mod ctrltool;

use ctrltool::*;
use futures::StreamExt;
use gitseal::api::SealedSecret;
use gitseal::manifest::KeyringFile;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::runtime::watcher;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const COUNT: usize = 100;
/// Generous: a loaded 2-core machine.
const LIMIT: Duration = Duration::from_secs(120);

/// Template data rendered by both controllers (Go templates with sprig functions, cases of
/// tests/fixtures/templates.json).
const TEMPLATES: [(&str, &str); 4] = [
    ("dsn", "{{ .user }}:{{ .password }}"),
    ("b64", "{{ index . \"a-b\" | b64enc }}"),
    ("shout", "{{ .password | upper }}"),
    ("addr", "{{ printf \"%s@%s\" .user .host }}"),
];

/// One Secret as Git would hold it before sealing: name, plain values, whether it templates.
struct Plain {
    name: String,
    values: Vec<(String, String)>,
    templated: bool,
}

fn plains() -> Vec<Plain> {
    (0..COUNT)
        .map(|i| {
            let templated = i % 25 == 0;
            let mut values = vec![
                ("user".to_string(), format!("user-{i}")),
                (
                    "password".to_string(),
                    format!("pw-{i}-plain-{:08x}", rand_u32()),
                ),
            ];
            if templated {
                values.push(("host".into(), format!("db-{i}.example")));
                values.push(("a-b".into(), format!("dash-{i}")));
            }
            Plain {
                name: format!("s-{i:03}"),
                values,
                templated,
            }
        })
        .collect()
}

/// The plain Secret manifest `kubeseal` reads.
fn secret_manifest(ns: &str, p: &Plain) -> String {
    let data: serde_json::Map<String, serde_json::Value> = p
        .values
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().into()))
        .collect();
    serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": p.name, "namespace": ns, "labels": {"app": p.name}},
        "type": "Opaque",
        "stringData": data,
    })
    .to_string()
}

/// The Bitnami SealedSecret of `p`: `kubeseal --cert`, then the template data (the template
/// is not encrypted, as in a file one edits after sealing).
fn bitnami_sealed(
    kubeseal: &std::path::Path,
    cert: &std::path::Path,
    ns: &str,
    p: &Plain,
) -> serde_json::Value {
    let mut obj = bitnami::kubeseal(kubeseal, cert, &secret_manifest(ns, p));
    if p.templated {
        obj["spec"]["template"]["data"] = TEMPLATES
            .iter()
            .map(|(k, t)| (k.to_string(), serde_json::Value::from(*t)))
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    obj
}

/// The gitseal versions of the Bitnami files, as a migration makes them: one `gitseal import
/// sealed-secrets` of the directory of Bitnami files with the Bitnami controller's exported
/// keys (`kubectl get secret -n kube-system -l sealedsecrets.bitnami.com/sealed-secrets-key
/// -o yaml`), sealed to the gitseal cluster's Active key.
async fn import_all(
    client: &kube::Client,
    ring: &KeyringFile,
    work: &std::path::Path,
    files: &HashMap<String, serde_json::Value>,
) -> HashMap<String, SealedSecret> {
    let keys: Api<Secret> = Api::namespaced(client.clone(), bitnami::KEY_NS);
    let exported = keys
        .list(&ListParams::default().labels(bitnami::KEY_LABEL))
        .await
        .unwrap()
        .items;
    assert!(!exported.is_empty(), "Bitnami made no key");
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": exported});
    let keys_file = work.join("bitnami-keys.json");
    std::fs::write(&keys_file, list.to_string()).unwrap();
    let (from, to) = (work.join("bitnami"), work.join("gitseal"));
    std::fs::create_dir_all(&from).unwrap();
    for (name, obj) in files {
        std::fs::write(from.join(format!("{name}.json")), obj.to_string()).unwrap();
    }
    let recipients: Vec<String> = ring
        .active("keyring")
        .unwrap()
        .iter()
        .flat_map(|r| ["-r".to_string(), r.as_str().to_string()])
        .collect();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gitseal"))
        .args(["import", "sealed-secrets"])
        .arg(&from)
        .args(["-o", "json", "-w"])
        .arg(&to)
        .arg("--keys")
        .arg(&keys_file)
        .args(&recipients)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gitseal import sealed-secrets: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    files
        .keys()
        .map(|name| {
            let text = std::fs::read_to_string(to.join(format!("{name}.json"))).unwrap();
            (name.clone(), serde_json::from_str(&text).unwrap())
        })
        .collect()
}

/// A gitseal-native SealedSecret of `p` (not imported: there is no Bitnami file of it).
fn sealed_natively(ring: &KeyringFile, ns: &str, p: &Plain) -> SealedSecret {
    let pairs: Vec<(&str, &str)> = p
        .values
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    seal_to(ring, ns, &p.name, &pairs, "strict")
}

fn bitnami_resource() -> ApiResource {
    ApiResource {
        group: "bitnami.com".into(),
        version: "v1alpha1".into(),
        api_version: "bitnami.com/v1alpha1".into(),
        kind: "SealedSecret".into(),
        plural: "sealedsecrets".into(),
    }
}

type Data = BTreeMap<String, ByteString>;

/// What the watch saw of the namespace's Secrets (those of `names`).
#[derive(Default)]
struct Seen {
    /// The data each Secret had when first seen.
    first: HashMap<String, Data>,
    deleted: Vec<String>,
    changed: Vec<String>,
    /// Names present in the latest (re)list.
    listing: HashSet<String>,
    events: usize,
}

/// Watch the Secrets of `ns` (of `names`) until aborted: count DELETED events (and Secrets a
/// re-list no longer shows) and every change of `data` from the first seen.
fn watch_secrets(
    client: kube::Client,
    ns: &str,
    names: HashSet<String>,
) -> (Arc<Mutex<Seen>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let api: Api<Secret> = Api::namespaced(client, ns);
    let record = seen.clone();
    let task = tokio::spawn(async move {
        let mut stream = watcher(api, watcher::Config::default()).boxed();
        while let Some(event) = stream.next().await {
            let Ok(event) = event else { continue };
            let mut s = record.lock().unwrap();
            s.events += 1;
            let look = |secret: &Secret, s: &mut Seen| {
                let name = secret.name_any();
                if !names.contains(&name) {
                    return;
                }
                let data = secret.data.clone().unwrap_or_default();
                match s.first.get(&name) {
                    None => {
                        s.first.insert(name, data);
                    }
                    Some(first) if *first != data => s.changed.push(name),
                    Some(_) => {}
                }
            };
            match event {
                watcher::Event::Apply(secret) => look(&secret, &mut s),
                watcher::Event::InitApply(secret) => {
                    s.listing.insert(secret.name_any());
                    look(&secret, &mut s);
                }
                watcher::Event::Delete(secret) => {
                    if names.contains(&secret.name_any()) {
                        s.deleted.push(secret.name_any());
                    }
                }
                watcher::Event::Init => s.listing.clear(),
                watcher::Event::InitDone => {
                    // A re-list that misses a Secret seen before: it went while unwatched.
                    let gone: Vec<String> = s
                        .first
                        .keys()
                        .filter(|n| !s.listing.contains(*n))
                        .cloned()
                        .collect();
                    s.deleted.extend(gone);
                }
            }
        }
    });
    (seen, task)
}

/// The controlling owner reference of `secret`: (apiVersion, kind, name, uid).
fn controller_of(secret: &Secret) -> Option<(String, String, String, String)> {
    secret
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| {
            (
                o.api_version.clone(),
                o.kind.clone(),
                o.name.clone(),
                o.uid.clone(),
            )
        })
}

fn text(data: &Data, key: &str) -> String {
    String::from_utf8(data[key].0.clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn takes_over_bitnami_secrets_without_a_gap() {
    let env = Env::start().await;
    let mut bitnami_ctl = bitnami::Controller::start(&env.client, &env.kubeconfig).await;
    let ns = env.namespace().await;
    let kubeseal = tokio::task::spawn_blocking(|| bitnami::binary("kubeseal"))
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let cert = work.path().join("cert.pem");
    std::fs::write(&cert, bitnami::cert(&env.client).await).unwrap();

    // Bitnami: 100 SealedSecrets (and a canary that is never handed over) unsealed by its
    // controller.
    let plains = plains();
    let canary = Plain {
        name: "canary".into(),
        values: vec![("k".into(), "canary-value".into())],
        templated: false,
    };
    let bitnami_api: Api<DynamicObject> =
        Api::namespaced_with(env.client.clone(), &ns, &bitnami_resource());
    let started = Instant::now();
    let mut files = HashMap::new();
    for p in plains.iter().chain([&canary]) {
        let file = bitnami_sealed(&kubeseal, &cert, &ns, p);
        if p.name != canary.name {
            files.insert(p.name.clone(), file.clone());
        }
        let obj: DynamicObject = serde_json::from_value(file).unwrap();
        bitnami_api
            .create(&PostParams::default(), &obj)
            .await
            .unwrap();
    }
    eprintln!(
        "sealed and applied {} Bitnami SealedSecrets in {:?}",
        COUNT + 1,
        started.elapsed()
    );
    let secrets = env.secrets(&ns);
    let by_bitnami: HashMap<String, Secret> =
        bitnami::wait(LIMIT, "Bitnami unsealed all", || async {
            let list = secrets.list(&ListParams::default()).await.ok()?.items;
            let made: HashMap<String, Secret> = list
                .into_iter()
                .filter(|s| {
                    controller_of(s).is_some_and(|(api, kind, ..)| {
                        api == "bitnami.com/v1alpha1" && kind == "SealedSecret"
                    })
                })
                .map(|s| (s.name_any(), s))
                .collect();
            (made.len() == COUNT + 1).then_some(made)
        })
        .await;
    eprintln!(
        "Bitnami unsealed {} Secrets after {:?}",
        COUNT + 1,
        started.elapsed()
    );
    for p in &plains {
        let data = by_bitnami[&p.name].data.clone().unwrap();
        for (k, v) in &p.values {
            assert_eq!(&text(&data, k), v, "{} {k}", p.name);
        }
        if p.templated {
            let v: HashMap<&str, &str> = p
                .values
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            use base64::Engine as _;
            let want = [
                ("dsn", format!("{}:{}", v["user"], v["password"])),
                (
                    "b64",
                    base64::engine::general_purpose::STANDARD.encode(v["a-b"]),
                ),
                ("shout", v["password"].to_uppercase()),
                ("addr", format!("{}@{}", v["user"], v["host"])),
            ];
            for (k, w) in want {
                assert_eq!(
                    text(&data, k),
                    w,
                    "Bitnami's rendering of {k} in {}",
                    p.name
                );
            }
        }
    }

    // The watch runs from here to the end.
    let names: HashSet<String> = plains.iter().map(|p| p.name.clone()).collect();
    let (seen, watch) = watch_secrets(env.client.clone(), &ns, names.clone());
    bitnami::wait(LIMIT, "the watch's initial list", || async {
        (seen.lock().unwrap().first.len() == COUNT).then_some(())
    })
    .await;

    // gitseal without the flag: SecretNotOwned, the Secret untouched.
    let (ring, imported) = {
        let plain_ctl = env.controller("no-flag").await;
        let ring = env.keyring().await;
        let started = Instant::now();
        let imported = import_all(&env.client, &ring, work.path(), &files).await;
        eprintln!(
            "gitseal import sealed-secrets of {COUNT} Bitnami files: {:?}",
            started.elapsed()
        );
        let first = imported[&plains[0].name].clone();
        env.apply_sealed(&ns, &first).await;
        let ss = env.wait_ready(&ns, &plains[0].name, "False").await;
        let (reason, message) = ready_of(&ss);
        assert_eq!(reason, "SecretNotOwned", "{message}");
        assert!(
            message.contains("--take-over-from sealed-secrets"),
            "{message}"
        );
        let now = secrets.get(&plains[0].name).await.unwrap();
        assert_eq!(
            now.metadata.resource_version, by_bitnami[&plains[0].name].metadata.resource_version,
            "the Secret was written without the flag"
        );
        drop(plain_ctl);
        (ring, imported)
    };

    // gitseal with the flag: every Secret taken over in place.
    // As the shipped RBAC (deploy/rbac.yaml) allows, nothing more: the takeover is an update.
    apply_deploy_file(&env.client, "serviceaccount.yaml").await;
    apply_deploy_file(&env.client, "rbac.yaml").await;
    let flagged = client_as(&env, SYSTEM_NS, "gitseal-controller").await;
    let ctl = env
        .controller_custom("take-over", flagged, |c| {
            c.take_over.sealed_secrets = true;
        })
        .await;
    ctl.wait_leading().await;
    let started = Instant::now();
    for p in &plains[1..] {
        env.apply_sealed(&ns, &imported[&p.name]).await;
    }
    // A forbidden template function in the same flow: refused, naming it.
    let mut forbidden = sealed_natively(
        &ring,
        &ns,
        &Plain {
            name: "env-template".into(),
            values: vec![("k".into(), "v".into())],
            templated: false,
        },
    );
    forbidden
        .spec
        .template
        .get_or_insert_default()
        .data
        .insert("home".into(), "{{ env \"HOME\" }}".into());
    env.apply_sealed(&ns, &forbidden).await;
    let gitseal_api: Api<SealedSecret> = Api::namespaced(env.client.clone(), &ns);
    let uids: HashMap<String, String> = bitnami::wait(LIMIT, "gitseal took over all", || async {
        let objects = gitseal_api.list(&ListParams::default()).await.ok()?.items;
        let ready: HashMap<String, String> = objects
            .iter()
            .filter(|s| names.contains(&s.name_any()) && is_ready_now(s))
            .map(|s| (s.name_any(), s.uid().unwrap()))
            .collect();
        let list = secrets.list(&ListParams::default()).await.ok()?.items;
        let controlled = list
            .iter()
            .filter(|s| {
                controller_of(s).is_some_and(|(api, _, name, uid)| {
                    api == "gitseal.dev/v1alpha1" && ready.get(&name) == Some(&uid)
                })
            })
            .count();
        (ready.len() == COUNT && controlled == COUNT).then_some(ready)
    })
    .await;
    let took = started.elapsed();
    eprintln!(
        "takeover: {COUNT} Secrets controlled by their gitseal SealedSecrets, Ready=True, {took:?} after applying (99 applied then; one taken over at the controller's start)"
    );
    let ss = env.wait_ready(&ns, "env-template", "False").await;
    let (reason, message) = ready_of(&ss);
    assert_eq!(reason, "InvalidSpec", "{message}");
    assert!(message.contains("\"env\""), "{message}");
    let events = env
        .wait_event(&ns, &plains[1].name, |e| e.starts_with("TakenOver:"))
        .await;
    eprintln!("events of {}: {events:?}", plains[1].name);

    // Each Secret: the gitseal owner only, no Bitnami annotation, the same data.
    for s in secrets.list(&ListParams::default()).await.unwrap().items {
        let name = s.name_any();
        if !names.contains(&name) {
            continue;
        }
        let owners = s.metadata.owner_references.clone().unwrap_or_default();
        assert_eq!(owners.len(), 1, "{name}: {owners:?}");
        assert_eq!(owners[0].kind, "SealedSecret");
        assert_eq!(owners[0].api_version, "gitseal.dev/v1alpha1");
        assert_eq!(Some(&owners[0].uid), uids.get(&name));
        assert!(
            !s.annotations()
                .keys()
                .any(|k| k.starts_with("sealedsecrets.bitnami.com/")),
            "{name}: {:?}",
            s.annotations()
        );
        assert_eq!(
            s.labels()
                .get("app.kubernetes.io/managed-by")
                .map(String::as_str),
            Some("gitseal")
        );
        assert_eq!(s.data, by_bitnami[&name].data, "{name}: data differ");
    }

    // Bitnami's controller, restarted, reconciles every object and takes none back: it reports
    // its own error and leaves the Secret.
    bitnami_ctl.stop();
    let bitnami_ctl = bitnami::Controller::start(&env.client, &env.kubeconfig).await;
    let probe = &plains[COUNT / 2].name;
    let events = env
        .wait_event(&ns, probe, |e| {
            e.starts_with("ErrUpdateFailed:") && e.contains("not managed by SealedSecret")
        })
        .await;
    eprintln!("Bitnami on {probe} after the takeover: {events:?}");
    let canary_events = env.events_for(&ns, "canary").await;
    assert!(
        !canary_events
            .iter()
            .any(|e| e.starts_with("ErrUpdateFailed:")),
        "{canary_events:?}"
    );

    // Delete the Bitnami SealedSecrets; the garbage collector deletes only the canary's Secret.
    bitnami_api
        .delete_collection(&DeleteParams::background(), &ListParams::default())
        .await
        .unwrap();
    bitnami::wait(LIMIT, "the Bitnami SealedSecrets gone", || async {
        bitnami_api
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await;
    bitnami::wait(
        LIMIT,
        "the garbage collector deleted the canary's Secret",
        || async {
            secrets
                .get_opt("canary")
                .await
                .ok()?
                .is_none()
                .then_some(())
        },
    )
    .await;
    drop(bitnami_ctl);
    // A little longer for any late deletion, then the verdict.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let list = secrets.list(&ListParams::default()).await.unwrap().items;
    let survivors = list
        .iter()
        .filter(|s| names.contains(&s.name_any()))
        .count();
    assert_eq!(survivors, COUNT, "Secrets lost after the GC pass");
    for s in gitseal_api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
    {
        if names.contains(&s.name_any()) {
            assert!(is_ready_now(&s), "{}: {:?}", s.name_any(), s.status);
        }
    }
    for s in &list {
        if names.contains(&s.name_any()) {
            let (api, _, name, uid) = controller_of(s).expect("a controller");
            assert_eq!(api, "gitseal.dev/v1alpha1");
            assert_eq!(Some(&uid), uids.get(&name));
        }
    }
    watch.abort();
    let s = seen.lock().unwrap();
    eprintln!(
        "watch: {} events; deleted {} {:?}; data changed {} {:?}",
        s.events,
        s.deleted.len(),
        s.deleted,
        s.changed.len(),
        s.changed
    );
    assert!(s.deleted.is_empty(), "Secrets deleted: {:?}", s.deleted);
    assert!(
        s.changed.is_empty(),
        "Secrets whose data changed: {:?}",
        s.changed
    );
    assert_eq!(s.first.len(), COUNT);
    drop(ctl);
}
