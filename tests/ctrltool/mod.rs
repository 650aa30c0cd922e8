//! Helpers of the controller tests: the shared real API server (scripts/cluster), CRDs,
//! fresh namespaces, in-process controllers whose logs are captured, and sealing to the
//! cluster's keyring. Tests hold a global lock: SealingKeys are cluster-wide.
#![allow(dead_code)]

use gitseal::api::{KeyState, SealedSecret, SealingKey};
use gitseal::crypto::Recipient;
use gitseal::manifest::{
    KeyringEntry, KeyringFile, SealOptions, parse_documents, parse_secret, seal,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, ResourceExt};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

pub const SYSTEM_NS: &str = "gitseal-system";
pub const LEASE: Duration = Duration::from_secs(4);
static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
static KUBECONFIG: OnceLock<PathBuf> = OnceLock::new();
static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

/// The API server, started by scripts/cluster (or the one GITSEAL_KUBECONFIG names).
fn kubeconfig() -> PathBuf {
    KUBECONFIG
        .get_or_init(|| {
            if let Some(p) = std::env::var_os("GITSEAL_KUBECONFIG") {
                return PathBuf::from(p);
            }
            let root = env!("CARGO_MANIFEST_DIR");
            let dir = format!("{root}/target/test-cluster");
            let out = std::process::Command::new("bash")
                .arg(format!("{root}/scripts/cluster"))
                .arg("up")
                .env("GITSEAL_CLUSTER_DIR", &dir)
                .output()
                .expect("run scripts/cluster");
            assert!(
                out.status.success(),
                "scripts/cluster up failed (the controller tests need the real API server; see docs/testing.md):\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            PathBuf::from(String::from_utf8(out.stdout).unwrap().trim().lines().last().unwrap())
        })
        .clone()
}

/// Captured log output of every in-process controller.
fn logs() -> Arc<Mutex<Vec<u8>>> {
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                std::env::var("GITSEAL_TEST_LOG").unwrap_or_else(|_| "info,kube=warn".into()),
            )
            .with_writer(move || LogWriter(writer.clone()))
            .try_init();
        buf
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        std::io::stderr().write_all(b)?;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub struct Env {
    pub client: Client,
    pub kubeconfig: PathBuf,
    _guard: tokio::sync::MutexGuard<'static, ()>,
}

pub async fn client_for(path: &PathBuf) -> Client {
    let file = Kubeconfig::read_from(path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

pub async fn wait_for<F, Fut>(limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < limit,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Env {
    pub async fn start() -> Env {
        let path = tokio::task::spawn_blocking(kubeconfig).await.unwrap();
        Env::at(path).await
    }

    /// An environment on the API server of `path` (a dedicated cluster).
    pub async fn at(path: PathBuf) -> Env {
        let guard = LOCK.lock().await;
        logs();
        let client = client_for(&path).await;
        install_crds(&client).await;
        let ns: Api<Namespace> = Api::all(client.clone());
        // Namespaces of earlier tests go (the namespace controller empties them).
        for old in ns.list(&ListParams::default()).await.unwrap().items {
            if old.name_any().starts_with("t-") && old.metadata.deletion_timestamp.is_none() {
                let _ = ns.delete(&old.name_any(), &DeleteParams::default()).await;
            }
        }
        // ...and are gone before this test starts: a controller would otherwise spend its
        // first minutes on a thousand objects of a drill whose namespace is terminating.
        for system in [SYSTEM_NS, "kube-system"] {
            let _ = Api::<SealedSecret>::namespaced(client.clone(), system)
                .delete_collection(&DeleteParams::default(), &ListParams::default())
                .await;
        }
        wait_for(Duration::from_secs(180), || async {
            !ns.list(&ListParams::default())
                .await
                .unwrap()
                .items
                .iter()
                .any(|n| n.name_any().starts_with("t-"))
        })
        .await;
        if ns.get_opt(SYSTEM_NS).await.unwrap().is_none() {
            let n: Namespace =
                serde_json::from_value(serde_json::json!({"metadata": {"name": SYSTEM_NS}}))
                    .unwrap();
            ns.create(&PostParams::default(), &n).await.unwrap();
        }
        let leases: Api<Lease> = Api::namespaced(client.clone(), SYSTEM_NS);
        let _ = leases
            .delete("gitseal-controller", &DeleteParams::default())
            .await;
        Env {
            client,
            kubeconfig: path,
            _guard: guard,
        }
    }

    /// A fresh namespace for one test.
    pub async fn namespace(&self) -> String {
        let name = format!("t-{:08x}", rand_u32());
        let n: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &n)
            .await
            .unwrap();
        name
    }

    pub fn secrets(&self, ns: &str) -> Api<Secret> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// Start a controller replica in this process (stopped when the handle drops).
    pub async fn controller(&self, name: &str) -> Ctl {
        let client = client_for(&self.kubeconfig).await;
        self.controller_with(name, client).await
    }

    /// The cluster's keyring once it has an Active key with a public key.
    pub async fn keyring(&self) -> KeyringFile {
        let api: Api<SealingKey> = Api::all(self.client.clone());
        let mut ring = None;
        let start = std::time::Instant::now();
        while ring.is_none() {
            let keys = api.list(&ListParams::default()).await.unwrap().items;
            let entries: Vec<KeyringEntry> = keys
                .iter()
                .filter_map(|k| {
                    let status = k.status.as_ref()?;
                    let r = Recipient::parse(status.public_key.as_deref()?).ok()?;
                    Some(KeyringEntry::new(&r, status.state?, None))
                })
                .collect();
            if entries.iter().any(|e| e.state == KeyState::Active) {
                ring = Some(KeyringFile::new("test", entries));
            } else {
                assert!(
                    start.elapsed() < Duration::from_secs(90),
                    "no Active key after 90 s"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        ring.unwrap()
    }

    pub async fn apply_sealed(&self, ns: &str, sealed: &SealedSecret) {
        let mut obj = sealed.clone();
        obj.metadata.namespace = Some(ns.to_string());
        let api: Api<SealedSecret> = Api::namespaced(self.client.clone(), ns);
        api.patch(
            &obj.name_any(),
            &PatchParams::apply("test").force(),
            &Patch::Apply(&obj),
        )
        .await
        .unwrap();
    }

    pub async fn wait_secret(&self, ns: &str, name: &str) -> Secret {
        let api = self.secrets(ns);
        let start = std::time::Instant::now();
        loop {
            if let Some(s) = api.get_opt(name).await.unwrap() {
                return s;
            }
            if start.elapsed() > Duration::from_secs(90) {
                let api: Api<SealedSecret> = Api::namespaced(self.client.clone(), ns);
                let status = api.get_opt(name).await.unwrap().and_then(|s| s.status);
                panic!("Secret {ns}/{name} did not appear; SealedSecret status: {status:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait for the Ready condition to have `status` at the current generation.
    pub async fn wait_ready(&self, ns: &str, name: &str, status: &str) -> SealedSecret {
        let api: Api<SealedSecret> = Api::namespaced(self.client.clone(), ns);
        let start = std::time::Instant::now();
        loop {
            let ss = api.get(name).await.unwrap();
            let st = ss.status.clone().unwrap_or_default();
            if st.observed_generation == ss.metadata.generation
                && st
                    .conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == status)
            {
                return ss;
            }
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "{ns}/{name} not Ready={status}: {:?}",
                st.conditions
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `reason: note` of every Event about object `name` in `ns`.
    pub async fn events_for(&self, ns: &str, name: &str) -> Vec<String> {
        let api: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.client.clone(), ns);
        api.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .map(|e| {
                format!(
                    "{}: {}",
                    e.reason.unwrap_or_default(),
                    e.note.unwrap_or_default()
                )
            })
            .collect()
    }

    /// The events about `name` once one matching `wanted` has arrived: Events are written after
    /// the status, by their own task, so a test waits for them rather than reading once.
    pub async fn wait_event(
        &self,
        ns: &str,
        name: &str,
        wanted: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let start = std::time::Instant::now();
        loop {
            let events = self.events_for(ns, name).await;
            if events.iter().any(|e| wanted(e)) {
                return events;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no matching event for {ns}/{name} within 60 s: {events:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Remove every SealingKey and key Secret (a cluster without keys), releasing the key
    /// manager's finalizers as an admin would.
    pub async fn delete_all_keys(&self) {
        let keys: Api<SealingKey> = Api::all(self.client.clone());
        let release = serde_json::json!({"metadata": {"finalizers": null}});
        for k in keys.list(&ListParams::default()).await.unwrap().items {
            let _ = keys
                .patch(
                    &k.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&release),
                )
                .await;
            let _ = keys.delete(&k.name_any(), &DeleteParams::default()).await;
        }
        let secrets = self.secrets(SYSTEM_NS);
        let labelled = ListParams::default().labels(gitseal::keyring::KEY_LABEL);
        for s in secrets.list(&labelled).await.unwrap().items {
            let _ = secrets
                .patch(
                    &s.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&release),
                )
                .await;
        }
        let _ = secrets
            .delete_collection(&DeleteParams::default(), &labelled)
            .await;
        wait_for(Duration::from_secs(90), || async {
            keys.list(&ListParams::default())
                .await
                .unwrap()
                .items
                .is_empty()
        })
        .await;
    }
}

async fn install_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in gitseal::api::crds() {
        api.patch(
            &crd.name_any(),
            &PatchParams::apply("gitseal-tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap();
    }
    for crd in gitseal::api::crds() {
        wait_for(Duration::from_secs(30), || async {
            let c = api.get(&crd.name_any()).await.unwrap();
            c.status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
        .await;
    }
}

pub fn rand_u32() -> u32 {
    let mut b = [0u8; 4];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    u32::from_le_bytes(b)
}

/// A controller replica running in this process.
pub struct Ctl {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Ctl {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Ctl {
    pub async fn get(&self, path: &str) -> Option<String> {
        let port = self.port;
        let path = path.to_string();
        tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
            write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
            let mut out = String::new();
            s.read_to_string(&mut out).ok()?;
            out.split_once("\r\n\r\n").map(|(_, body)| body.to_string())
        })
        .await
        .unwrap()
    }

    /// Sum of every sample of metric `name`.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.get("/metrics").await.unwrap_or_default();
        text.lines()
            .filter(|l| {
                l.starts_with(name)
                    && (l[name.len()..].starts_with(' ') || l[name.len()..].starts_with('{'))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub async fn is_leading(&self) -> bool {
        self.metric("gitseal_leader").await == 1.0
    }

    pub async fn wait_leading(&self) {
        wait_for(Duration::from_secs(30), || async {
            self.is_leading().await
        })
        .await;
    }

    /// None of `plain` appears in the logs, Events, statuses or metrics.
    pub async fn assert_no_plain_text(&self, env: &Env, ns: &str, plain: &[&str]) {
        let logs = String::from_utf8_lossy(&logs().lock().unwrap()).into_owned();
        let api: Api<SealedSecret> = Api::namespaced(env.client.clone(), ns);
        let statuses = serde_json::to_string(
            &api.list(&ListParams::default())
                .await
                .unwrap()
                .items
                .iter()
                .map(|s| &s.status)
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let events: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(env.client.clone(), ns);
        let events =
            serde_json::to_string(&events.list(&ListParams::default()).await.unwrap().items)
                .unwrap();
        let metrics = self.get("/metrics").await.unwrap_or_default();
        assert!(!logs.is_empty() && !events.is_empty() && !metrics.is_empty());
        for p in plain {
            for (what, text) in [
                ("logs", &logs),
                ("status", &statuses),
                ("Events", &events),
                ("metrics", &metrics),
            ] {
                assert!(
                    !text.contains(p),
                    "plain text {p:?} found in the controller's {what}"
                );
            }
        }
    }
}

/// Seal `pairs` as Secret `ns/name` to the keyring's Active keys.
pub fn seal_to(
    ring: &KeyringFile,
    ns: &str,
    name: &str,
    pairs: &[(&str, &str)],
    scope: &str,
) -> SealedSecret {
    seal_with(&ring.active("keyring").unwrap(), ns, name, pairs, scope)
}

pub fn seal_with(
    recipients: &[Recipient],
    ns: &str,
    name: &str,
    pairs: &[(&str, &str)],
    scope: &str,
) -> SealedSecret {
    let data: serde_json::Map<String, serde_json::Value> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
        .collect();
    let doc = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}, "annotations": {"gitseal.dev/scope": scope}},
        "stringData": data,
    });
    let docs = parse_documents("test", &doc.to_string()).unwrap();
    let input = parse_secret(&docs[0]).unwrap();
    let opts = SealOptions {
        recipients,
        scope: None,
        default_scope: Default::default(),
        namespace: None,
        allow_empty: false,
    };
    seal(&input, &opts).unwrap()
}

pub fn data(secret: &Secret, key: &str) -> String {
    String::from_utf8(secret.data.as_ref().unwrap()[key].0.clone()).unwrap()
}

/// Whether the status is current (for this generation) and says Ready=True.
pub fn is_ready_now(s: &SealedSecret) -> bool {
    s.status.as_ref().is_some_and(|st| {
        st.observed_generation == s.metadata.generation
            && st
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

pub fn ready_of(ss: &SealedSecret) -> (String, String) {
    let c = ss
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    (c.reason.clone(), c.message.clone())
}

/// Apply every document of a deploy/ file (the kinds deploy/ uses).
pub async fn apply_deploy_file(client: &Client, file: &str) {
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
    let text =
        std::fs::read_to_string(format!("{}/deploy/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let pp = PatchParams::apply("gitseal-tests").force();
    for doc in gitseal::yaml::from_multiple::<serde_json::Value>(&text).unwrap() {
        let name = doc["metadata"]["name"].as_str().unwrap().to_string();
        let ns = doc["metadata"]["namespace"]
            .as_str()
            .unwrap_or(SYSTEM_NS)
            .to_string();
        match doc["kind"].as_str().unwrap() {
            "ServiceAccount" => drop(
                Api::<ServiceAccount>::namespaced(client.clone(), &ns)
                    .patch(&name, &pp, &Patch::Apply(&doc))
                    .await
                    .unwrap(),
            ),
            "ClusterRole" => drop(
                Api::<ClusterRole>::all(client.clone())
                    .patch(&name, &pp, &Patch::Apply(&doc))
                    .await
                    .unwrap(),
            ),
            "ClusterRoleBinding" => drop(
                Api::<ClusterRoleBinding>::all(client.clone())
                    .patch(&name, &pp, &Patch::Apply(&doc))
                    .await
                    .unwrap(),
            ),
            "Role" => drop(
                Api::<Role>::namespaced(client.clone(), &ns)
                    .patch(&name, &pp, &Patch::Apply(&doc))
                    .await
                    .unwrap(),
            ),
            "RoleBinding" => drop(
                Api::<RoleBinding>::namespaced(client.clone(), &ns)
                    .patch(&name, &pp, &Patch::Apply(&doc))
                    .await
                    .unwrap(),
            ),
            other => panic!("apply_deploy_file: unexpected kind {other}"),
        }
    }
}

/// A client that authenticates as service account `ns/name` (a real token from the API).
pub async fn client_as(env: &Env, ns: &str, name: &str) -> Client {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    let sas: Api<ServiceAccount> = Api::namespaced(env.client.clone(), ns);
    if sas.get_opt(name).await.unwrap().is_none() {
        let sa: ServiceAccount =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
        sas.create(&PostParams::default(), &sa).await.unwrap();
    }
    let req = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(3600),
            ..Default::default()
        },
        ..Default::default()
    };
    let token = sas
        .create_token_request(name, &PostParams::default(), &req)
        .await
        .unwrap()
        .status
        .unwrap()
        .token;
    let file = Kubeconfig::read_from(&env.kubeconfig).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
        .await
        .unwrap();
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.into()),
        ..Default::default()
    };
    Client::try_from(config).unwrap()
}

impl Env {
    /// Start a controller replica that uses `client` (e.g. one bound only to deploy/ RBAC).
    pub async fn controller_with(&self, name: &str, client: Client) -> Ctl {
        self.controller_custom(name, client, |_| {}).await
    }

    /// Start a controller replica whose configuration `tweak` changes (policy, renewal).
    pub async fn controller_custom(
        &self,
        name: &str,
        client: Client,
        tweak: impl FnOnce(&mut gitseal::controller::Config),
    ) -> Ctl {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = gitseal::controller::Config {
            namespace: SYSTEM_NS.into(),
            watch_namespaces: vec![],
            key_renew_interval: Duration::ZERO,
            metrics_addr: format!("127.0.0.1:{port}").parse().unwrap(),
            leader_elect: true,
            lease_duration: LEASE,
            identity: format!("replica-{name}-{:x}", rand_u32()),
            concurrency: 16,
            policy: gitseal::controller::policy::Policy::new(SYSTEM_NS, &Default::default())
                .unwrap(),
            take_over: Default::default(),
        };
        let mut config = config;
        tweak(&mut config);
        let task = tokio::spawn(async move {
            if let Err(e) = gitseal::controller::run(client, config).await {
                eprintln!("controller stopped: {e}");
            }
        });
        let ctl = Ctl { port, task };
        wait_for(Duration::from_secs(60), || async {
            ctl.get("/healthz").await.is_some()
        })
        .await;
        ctl
    }
}

impl Ctl {
    /// Whether the controller still runs: its task ends when the controller stops on an error
    /// or panics.
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }
}

/// Bind the shipped ValidatingAdmissionPolicy (deploy/admission-policy.yaml) to namespace
/// `ns` only (the shipped binding covers every namespace, but test binaries share the API
/// server and make malformed objects on purpose elsewhere), and return once it is in force:
/// once `probe`, a SealedSecret it refuses, is refused in `ns` (the API server's policy
/// informer takes a moment). The probe is a dry run: admission judges it, nothing is stored,
/// so no controller sees objects come and go. Generous for a loaded machine.
pub async fn bind_admission_policy(env: &Env, ns: &str, probe: &serde_json::Value) {
    use gitseal::api::admission::{POLICY_NAME, binding, policy};
    use k8s_openapi::api::admissionregistration::v1::{
        MatchResources, ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    const LABEL: &str = "gitseal.dev/admission-test";
    let pp = PatchParams::apply("gitseal-tests").force();
    Api::<ValidatingAdmissionPolicy>::all(env.client.clone())
        .patch(POLICY_NAME, &pp, &Patch::Apply(&policy()))
        .await
        .expect("the API server accepts the shipped policy");
    let mut b: ValidatingAdmissionPolicyBinding = binding();
    let name = format!("{POLICY_NAME}-{ns}");
    b.metadata.name = Some(name.clone());
    b.spec.as_mut().unwrap().match_resources = Some(MatchResources {
        namespace_selector: Some(LabelSelector {
            match_labels: Some([(LABEL.to_string(), ns.to_string())].into()),
            ..Default::default()
        }),
        ..Default::default()
    });
    Api::<ValidatingAdmissionPolicyBinding>::all(env.client.clone())
        .patch(&name, &pp, &Patch::Apply(&b))
        .await
        .expect("binding");
    Api::<Namespace>::all(env.client.clone())
        .patch(
            ns,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"labels": {LABEL: ns}}})),
        )
        .await
        .expect("label namespace");
    let api: Api<SealedSecret> = Api::namespaced(env.client.clone(), ns);
    let probe_name = probe["metadata"]["name"].as_str().unwrap().to_string();
    let dry_run = PatchParams::apply("probe").dry_run();
    wait_for(Duration::from_secs(120), || async {
        let tried = api.patch(&probe_name, &dry_run, &Patch::Apply(probe)).await;
        matches!(tried, Err(kube::Error::Api(e)) if e.code == 422)
    })
    .await;
}
