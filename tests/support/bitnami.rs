//! The real Bitnami Sealed Secrets controller (v0.36.6, `scripts/bitnami path controller`)
//! against the test API server, as a host process that believes it runs in a pod: its only
//! configuration is `rest.InClusterConfig()`, so it runs in a private mount namespace
//! (`unshare -m --propagation private`) where a tmpfs over /run holds
//! /run/secrets/kubernetes.io/serviceaccount/{token,ca.crt,namespace}: a ServiceAccount token
//! from the TokenRequest API, the test cluster's CA. RBAC as Bitnami's Helm chart grants
//! (helm/sealed-secrets/templates/cluster-role.yaml), its CRD from the module directory, key
//! namespace `kube-system` and the default `--key-prefix`. Killed when dropped. Also
//! `kubeseal --cert` with the controller's certificate read from its key Secret (there is no
//! Service to fetch it through).
//!
//! Use with `#[path = "support/bitnami.rs"] mod bitnami;`.
#![allow(dead_code)]

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::config::Kubeconfig;
use kube::{Client, ResourceExt};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Bitnami's controller keeps its keys (its default install namespace).
pub const KEY_NS: &str = "kube-system";
/// Its ServiceAccount (as the chart names it).
pub const ACCOUNT: &str = "sealed-secrets-controller";
/// Label of its key Secrets (`--key-prefix` default `sealed-secrets-key`).
pub const KEY_LABEL: &str = "sealedsecrets.bitnami.com/sealed-secrets-key";
const FIELD_MANAGER: &str = "gitseal-tests";

/// A path printed by `scripts/bitnami path NAME` (built and cached on first use).
pub fn binary(name: &str) -> PathBuf {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("bash")
        .arg(format!("{root}/scripts/bitnami"))
        .args(["path", name])
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/bitnami");
    assert!(
        out.status.success(),
        "scripts/bitnami path {name} failed (needs Go >= 1.26; docs/testing.md)"
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// The Sealed Secrets module directory (CRD, chart), next to the built binaries' source.
pub fn module_dir() -> PathBuf {
    let out = Command::new("go")
        .args(["env", "GOMODCACHE"])
        .output()
        .expect("go env GOMODCACHE");
    let cache = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let gomod =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/bitnami/go.mod"))
            .expect("tests/bitnami/go.mod");
    let version = gomod
        .lines()
        .find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("github.com/bitnami-labs/sealed-secrets"))
                .then(|| w.next().unwrap().to_string())
        })
        .expect("the sealed-secrets requirement");
    PathBuf::from(format!(
        "{cache}/github.com/bitnami-labs/sealed-secrets@{version}"
    ))
}

/// Install Bitnami's `SealedSecret` CRD (bitnami.com) from the module directory.
pub async fn install_crd(client: &Client) {
    let path = module_dir().join("helm/sealed-secrets/crds/bitnami.com_sealedsecrets.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let crd: CustomResourceDefinition = serde_saphyr::from_str(&text).expect("the CRD parses");
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    api.patch(
        &crd.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("apply the bitnami.com CRD");
    let name = crd.name_any();
    wait(
        Duration::from_secs(60),
        "the bitnami.com CRD established",
        || {
            let api = api.clone();
            let name = name.clone();
            async move {
                api.get(&name)
                    .await
                    .ok()?
                    .status?
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
                    .then_some(())
            }
        },
    )
    .await;
}

/// The ServiceAccount, ClusterRole (the chart's rules) and binding the controller runs as.
async fn install_rbac(client: &Client) {
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    let sa: ServiceAccount = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": ACCOUNT, "namespace": KEY_NS},
    }))
    .unwrap();
    Api::<ServiceAccount>::namespaced(client.clone(), KEY_NS)
        .patch(ACCOUNT, &pp, &Patch::Apply(&sa))
        .await
        .expect("ServiceAccount");
    let role: ClusterRole = serde_json::from_value(serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "secrets-unsealer"},
        "rules": [
            {"apiGroups": ["bitnami.com"], "resources": ["sealedsecrets"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["bitnami.com"], "resources": ["sealedsecrets/status"], "verbs": ["update"]},
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "create", "update", "delete", "watch"]},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
        ],
    }))
    .unwrap();
    Api::<ClusterRole>::all(client.clone())
        .patch("secrets-unsealer", &pp, &Patch::Apply(&role))
        .await
        .expect("ClusterRole");
    let binding: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": ACCOUNT},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "secrets-unsealer"},
        "subjects": [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": KEY_NS}],
    }))
    .unwrap();
    Api::<ClusterRoleBinding>::all(client.clone())
        .patch(ACCOUNT, &pp, &Patch::Apply(&binding))
        .await
        .expect("ClusterRoleBinding");
}

/// A token for the controller's ServiceAccount (TokenRequest API, as the kubelet gets one).
async fn token(client: &Client) -> String {
    let request = TokenRequest {
        metadata: Default::default(),
        spec: TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..Default::default()
        },
        status: None,
    };
    Api::<ServiceAccount>::namespaced(client.clone(), KEY_NS)
        .create_token_request(ACCOUNT, &PostParams::default(), &request)
        .await
        .expect("TokenRequest")
        .status
        .expect("TokenRequest status")
        .token
}

/// The API server's address (host, port) and CA (PEM) from an admin kubeconfig.
fn server_of(kubeconfig: &Path) -> (String, u16, Vec<u8>) {
    let kc = Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    let cluster = kc.clusters[0].cluster.clone().expect("a cluster");
    let url: http::Uri = cluster.server.expect("server").parse().expect("server URL");
    let ca = match (
        cluster.certificate_authority_data,
        cluster.certificate_authority,
    ) {
        (Some(data), _) => {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .expect("CA data")
        }
        (None, Some(path)) => {
            let path = kubeconfig.parent().unwrap().join(path);
            std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"))
        }
        (None, None) => panic!("the kubeconfig names no CA"),
    };
    (
        url.host().expect("host").to_string(),
        url.port_u16().unwrap_or(443),
        ca,
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Poll `check` every 200 ms until it returns `Some`, panicking with `what` after `limit`.
pub async fn wait<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A running Bitnami controller (killed on drop).
pub struct Controller {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// Its combined output.
    pub log: PathBuf,
    /// Its HTTP address (`--listen-addr`: /healthz, /v1/cert.pem).
    pub addr: String,
}

impl Controller {
    /// Install the CRD and RBAC, start the controller and wait until it has an active key and
    /// serves HTTP.
    pub async fn start(client: &Client, kubeconfig: &Path) -> Controller {
        install_crd(client).await;
        install_rbac(client).await;
        let bin = tokio::task::spawn_blocking(|| binary("controller"))
            .await
            .unwrap();
        let (host, port, ca) = server_of(kubeconfig);
        let token = token(client).await;
        let dir = tempfile::Builder::new()
            .prefix("bitnami-")
            .tempdir()
            .unwrap();
        let sa = dir.path().join("sa");
        std::fs::create_dir(&sa).unwrap();
        std::fs::write(sa.join("token"), token).unwrap();
        std::fs::write(sa.join("ca.crt"), ca).unwrap();
        std::fs::write(sa.join("namespace"), KEY_NS).unwrap();
        let log = dir.path().join("controller.log");
        let out = std::fs::File::create(&log).unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let metrics = format!("127.0.0.1:{}", free_port());
        // In its own mount namespace: a tmpfs over /run (/var/run links there) holding the
        // service account files where client-go's InClusterConfig reads them. Nothing is
        // mounted or written outside that namespace.
        let script = r#"set -e
mount -t tmpfs -o mode=0755,size=1m gitseal-bitnami /run
mkdir -p /run/secrets/kubernetes.io/serviceaccount
cp "$SA_DIR"/token "$SA_DIR"/ca.crt "$SA_DIR"/namespace /run/secrets/kubernetes.io/serviceaccount/
exec "$@""#;
        let mut command = Command::new("unshare");
        // Killed with this test process however it ends (the signal survives the execs of
        // unshare and sh into the controller).
        // SAFETY: the closure runs between fork and exec and only makes one system call.
        unsafe {
            use std::os::unix::process::CommandExt as _;
            command.pre_exec(|| {
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::KILL,
                ))
                .map_err(std::io::Error::from)
            });
        }
        let child = command
            .args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
            .arg(&bin)
            .arg(format!("--listen-addr={addr}"))
            .arg(format!("--listen-metrics-addr={metrics}"))
            // The chart's defaults otherwise; client-side rate limits off so that 100 objects
            // unseal in seconds on a loaded test machine.
            .args(["--kubeclient-qps=-1", "--log-level=INFO"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("SA_DIR", &sa)
            .env("KUBERNETES_SERVICE_HOST", host)
            .env("KUBERNETES_SERVICE_PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start unshare + the Bitnami controller");
        let mut ctl = Controller {
            child: Some(child),
            dir,
            log,
            addr,
        };
        let keys: Api<Secret> = Api::namespaced(client.clone(), KEY_NS);
        let start = Instant::now();
        loop {
            if let Some(status) = ctl.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "the Bitnami controller exited ({status}):\n{}",
                    ctl.log_text()
                );
            }
            let active = keys
                .list(&ListParams::default().labels(&format!("{KEY_LABEL}=active")))
                .await
                .map(|l| !l.items.is_empty())
                .unwrap_or(false);
            if active && std::net::TcpStream::connect(&ctl.addr).is_ok() {
                return ctl;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "the Bitnami controller not ready within 120 s:\n{}",
                ctl.log_text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stop it (SIGKILL) and wait for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The controller's newest certificate (PEM), read from its active key Secret's `tls.crt`.
pub async fn cert(client: &Client) -> Vec<u8> {
    let keys: Api<Secret> = Api::namespaced(client.clone(), KEY_NS);
    let mut list = keys
        .list(&ListParams::default().labels(&format!("{KEY_LABEL}=active")))
        .await
        .expect("list the Bitnami key Secrets")
        .items;
    list.sort_by_key(|s| s.metadata.creation_timestamp.clone().map(|t| t.0));
    let newest = list.pop().expect("an active Bitnami key");
    newest.data.expect("key data")["tls.crt"].0.clone()
}

/// `kubeseal --cert CERT -o json` of the Secret manifest `secret` (JSON or YAML): the
/// Bitnami SealedSecret, as JSON.
pub fn kubeseal(kubeseal: &Path, cert: &Path, secret: &str) -> serde_json::Value {
    let mut child = Command::new(kubeseal)
        .arg("--cert")
        .arg(cert)
        .args(["-o", "json"])
        .env("KUBECONFIG", "/dev/null")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubeseal");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(secret.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kubeseal failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("kubeseal's JSON")
}
