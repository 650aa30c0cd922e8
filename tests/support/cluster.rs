//! Test cluster for integration tests: a real etcd + kube-apiserver + kube-controller-manager
//! (garbage collector, namespace and service-account controllers) built from the upstream Go
//! modules in `tests/cluster` by `scripts/cluster`. See docs/testing.md.
//!
//! One cluster serves a whole test binary. It is, in order of preference:
//! - the cluster of `GITSEAL_KUBECONFIG`, if set (any cluster; you opt in explicitly);
//! - the cluster of `KUBECONFIG`, only if it points into a testcluster state directory (what
//!   `eval "$(scripts/cluster env)"` sets), so tests never touch a real cluster by accident;
//! - otherwise a fresh one started from `scripts/cluster path` (built on first use) in a
//!   temporary directory. Its stdin is a pipe held by this process: when the test binary exits,
//!   however it exits, the cluster shuts down and deletes its directory.
//!
//! A missing Go toolchain or a failed build makes the tests fail with instructions; nothing is
//! skipped.
//!
//! Use from a test file with `#[path = "support/cluster.rs"] mod cluster;`, then
//! `let env = cluster::test_env("my-test").await;` for a client and a fresh namespace with the
//! project's CRDs installed. A `Client` is tied to the tokio runtime it was made in, and every
//! `#[tokio::test]` has its own runtime, so make clients per test (never share one in a static).
#![allow(dead_code)]

use std::{
    env,
    fs::{self, File},
    io::Read,
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::{
        authentication::v1::{TokenRequest, TokenRequestSpec},
        authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec},
        core::v1::{Namespace, ServiceAccount},
        rbac::v1::{
            ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
        },
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use kube::{
    Api, Client, Config, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
    runtime::wait::{await_condition, conditions},
};

/// How to get the cluster binary when it cannot be built or started.
const HOWTO: &str = "\
The cluster tests need the test cluster binary (a real kube-apiserver + etcd built from Go \
modules). Build it with `scripts/cluster build` (needs Go >= 1.25 from https://go.dev/dl/ and \
access to the Go module proxy; a cold build takes ~10 min), or point GITSEAL_TESTCLUSTER_BIN at \
a built binary, or run tests against a running test cluster: \
`scripts/cluster up && eval \"$(scripts/cluster env)\"`.";

/// Timeout for the things a healthy cluster does in well under a second or two.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// The test binary's cluster.
pub struct Cluster {
    /// Admin kubeconfig (user in group system:masters for a cluster we started).
    pub kubeconfig: PathBuf,
    /// Write end of the started cluster's stdin; closed when this process exits.
    _lifeline: Option<Mutex<ChildStdin>>,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

/// The cluster shared by all tests of this binary, started on first use (blocking).
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| match existing_kubeconfig() {
        Some(kubeconfig) => {
            eprintln!("cluster tests: using {}", kubeconfig.display());
            Cluster {
                kubeconfig,
                _lifeline: None,
            }
        }
        None => start_cluster(),
    })
}

fn existing_kubeconfig() -> Option<PathBuf> {
    if let Some(p) = env::var_os("GITSEAL_KUBECONFIG").filter(|p| !p.is_empty()) {
        return Some(p.into());
    }
    let p = PathBuf::from(env::var_os("KUBECONFIG").filter(|p| !p.is_empty())?);
    let dir = p.parent()?;
    (dir.join("ports.json").is_file() && dir.join("pki/ca.crt").is_file()).then_some(p)
}

/// Path of the testcluster binary: `GITSEAL_TESTCLUSTER_BIN`, or `scripts/cluster path`
/// (which builds it when its sources changed). Panics with instructions when unavailable.
pub fn binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(b) = env::var_os("GITSEAL_TESTCLUSTER_BIN").filter(|b| !b.is_empty()) {
            return b.into();
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster");
        let out = Command::new(&script)
            .arg("path")
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}\n{HOWTO}", script.display()));
        let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(
            out.status.success() && !path.is_empty(),
            "`scripts/cluster path` failed ({}).\n{HOWTO}",
            out.status
        );
        PathBuf::from(path)
    })
    .clone()
}

fn start_cluster() -> Cluster {
    let dir = tempfile::Builder::new()
        .prefix("gitseal-cluster-")
        .tempdir()
        .expect("temp dir")
        .keep();
    let mut proc = ControlPlaneProcess::spawn(&binary(), &["up", "--rm"], &dir, "up");
    proc.wait_ready(Duration::from_secs(300));
    eprintln!("cluster tests: started a test cluster in {}", dir.display());
    let stdin = proc.child.stdin.take().expect("piped stdin");
    // The process handle is dropped without waiting; the cluster lives until our stdin pipe
    // closes, i.e. until this test binary exits.
    std::mem::forget(proc);
    Cluster {
        kubeconfig: dir.join("kubeconfig"),
        _lifeline: Some(Mutex::new(stdin)),
    }
}

impl Cluster {
    /// A client config for the admin user.
    pub async fn config(&self) -> Config {
        config_from(&self.kubeconfig).await
    }

    /// A new admin client (bound to the calling test's runtime).
    pub async fn client(&self) -> Client {
        Client::try_from(self.config().await).expect("client")
    }
}

/// A client config from a kubeconfig file.
pub async fn config_from(kubeconfig: &Path) -> Config {
    let kc = Kubeconfig::read_from(kubeconfig)
        .unwrap_or_else(|e| panic!("reading {}: {e}", kubeconfig.display()));
    Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("client config from kubeconfig")
}

/// What each test gets: an admin client and its own namespace, with the CRDs installed.
pub struct TestEnv {
    pub client: Client,
    pub ns: TestNamespace,
}

/// Starts (or reuses) the cluster, installs the CRDs once per test binary, and creates a fresh
/// namespace named after `test`.
pub async fn test_env(test: &str) -> TestEnv {
    let client = cluster().client().await;
    install_crds(&client).await;
    let ns = TestNamespace::create(&client, test).await;
    TestEnv { client, ns }
}

/// Applies `gitseal::api::crds()` (server-side apply, so a reused cluster gets the current
/// schema) and waits until each is Established. Runs once per test binary.
pub async fn install_crds(client: &Client) {
    static DONE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    DONE.get_or_init(|| apply_crds(client.clone())).await;
}

/// Applies the CRDs and waits for Established (every call; see [`install_crds`]).
pub async fn apply_crds(client: Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client);
    let pp = PatchParams::apply("gitseal-tests").force();
    for crd in gitseal::api::crds() {
        let name = crd.name_any();
        api.patch(&name, &pp, &Patch::Apply(&crd))
            .await
            .unwrap_or_else(|e| panic!("applying CRD {name}: {e}"));
        tokio::time::timeout(
            TIMEOUT,
            await_condition(api.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .unwrap_or_else(|_| panic!("CRD {name} not Established within {TIMEOUT:?}"))
        .expect("watching CRD");
    }
}

/// A namespace for one test, deleted when dropped (also on panic) unless
/// `GITSEAL_KEEP_NAMESPACES` is set. Labelled `gitseal.dev/test=true` for manual cleanup.
pub struct TestNamespace {
    pub name: String,
    pub uid: String,
    kubeconfig: PathBuf,
}

impl TestNamespace {
    pub async fn create(client: &Client, test: &str) -> TestNamespace {
        let prefix: String = test
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(40)
            .collect();
        let name = format!(
            "{}-{:06x}",
            prefix.trim_matches('-'),
            rand::random::<u32>() & 0xff_ffff
        );
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([("gitseal.dev/test".to_owned(), "true".to_owned())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let created = Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        TestNamespace {
            name,
            uid: created.uid().expect("uid"),
            kubeconfig: cluster().kubeconfig.clone(),
        }
    }

    /// An owner reference to this namespace: cluster-scoped objects a test creates (cluster
    /// role bindings, ...) carry it, so the garbage collector removes them with the namespace.
    pub fn owner_reference(&self) -> OwnerReference {
        OwnerReference {
            api_version: "v1".into(),
            kind: "Namespace".into(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            ..Default::default()
        }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if env::var_os("GITSEAL_KEEP_NAMESPACES").is_some() {
            return;
        }
        // Drop can't await, and the test's runtime may be gone: delete from a new thread with
        // its own runtime. Only the request is awaited, not the namespace's finalization.
        let (name, kubeconfig) = (self.name.clone(), self.kubeconfig.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let client = Client::try_from(config_from(&kubeconfig).await).ok()?;
                Api::<Namespace>::all(client)
                    .delete(&name, &DeleteParams::background())
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// What a restricted client is granted.
pub enum Grant<'a> {
    /// A Role of the test namespace, bound there.
    Role(&'a str),
    /// A ClusterRole, bound in the test namespace only (RoleBinding).
    ClusterRole(&'a str),
    /// A ClusterRole, bound cluster-wide (ClusterRoleBinding owned by the test namespace).
    ClusterWide(&'a str),
}

/// A client authenticated as a new ServiceAccount `sa` of namespace `ns` (bearer token from
/// the TokenRequest API, as a pod would get), holding exactly `grants`. Returns once the
/// authorizer has observed the bindings.
pub async fn service_account_client(
    admin: &Client,
    ns: &TestNamespace,
    sa: &str,
    grants: &[Grant<'_>],
) -> Client {
    let pp = PostParams::default();
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), &ns.name);
    let account = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(sa.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    sas.create(&pp, &account)
        .await
        .unwrap_or_else(|e| panic!("creating ServiceAccount {sa}: {e}"));
    let user = format!("system:serviceaccount:{}:{sa}", ns.name);
    let subject = Subject {
        kind: "ServiceAccount".into(),
        name: sa.into(),
        namespace: Some(ns.name.clone()),
        api_group: None,
    };

    for (i, grant) in grants.iter().enumerate() {
        let (kind, role, cluster_wide) = match *grant {
            Grant::Role(r) => ("Role", r, false),
            Grant::ClusterRole(r) => ("ClusterRole", r, false),
            Grant::ClusterWide(r) => ("ClusterRole", r, true),
        };
        let role_ref = RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: kind.into(),
            name: role.into(),
        };
        let binding_name = format!("{sa}-{i}-{role}").replace(':', "-");
        let rules = if cluster_wide {
            let meta = ObjectMeta {
                name: Some(format!("{}-{binding_name}", ns.name)),
                owner_references: Some(vec![ns.owner_reference()]),
                ..Default::default()
            };
            let crb = ClusterRoleBinding {
                metadata: meta,
                role_ref,
                subjects: Some(vec![subject.clone()]),
            };
            Api::<ClusterRoleBinding>::all(admin.clone())
                .create(&pp, &crb)
                .await
                .expect("creating ClusterRoleBinding");
            cluster_role_rules(admin, role).await
        } else {
            let meta = ObjectMeta {
                name: Some(binding_name),
                ..Default::default()
            };
            let rb = RoleBinding {
                metadata: meta,
                role_ref,
                subjects: Some(vec![subject.clone()]),
            };
            Api::<RoleBinding>::namespaced(admin.clone(), &ns.name)
                .create(&pp, &rb)
                .await
                .expect("creating RoleBinding");
            if kind == "Role" {
                let r = Api::<Role>::namespaced(admin.clone(), &ns.name)
                    .get(role)
                    .await
                    .expect("reading Role");
                r.rules.unwrap_or_default()
            } else {
                cluster_role_rules(admin, role).await
            }
        };
        if let Some(rule) = rules.iter().find(|r| r.resources.is_some()) {
            let ns_scope = (!cluster_wide).then_some(ns.name.as_str());
            wait_allowed(admin, &user, ns_scope, rule).await;
        }
    }

    let request = TokenRequest {
        metadata: ObjectMeta::default(),
        spec: TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..Default::default()
        },
        status: None,
    };
    let token = sas
        .create_token_request(sa, &pp, &request)
        .await
        .expect("TokenRequest")
        .status
        .expect("TokenRequest status")
        .token;
    let mut config = cluster().config().await;
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.into()),
        ..Default::default()
    };
    Client::try_from(config).expect("client")
}

/// A Role named `name` in the test namespace with `rules`, and a client bound to just it.
pub async fn client_with_rules(
    admin: &Client,
    ns: &TestNamespace,
    name: &str,
    rules: Vec<PolicyRule>,
) -> Client {
    let role = Role {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        rules: Some(rules),
    };
    Api::<Role>::namespaced(admin.clone(), &ns.name)
        .create(&PostParams::default(), &role)
        .await
        .expect("creating Role");
    service_account_client(admin, ns, name, &[Grant::Role(name)]).await
}

/// A PolicyRule: `verbs` on `resources` of API group `group` ("" for core).
pub fn rule(group: &str, resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.into()]),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// The rules of a ClusterRole; for an aggregated one (admin, edit, view), once the
/// controller manager's aggregation controller has filled them in.
async fn cluster_role_rules(admin: &Client, name: &str) -> Vec<PolicyRule> {
    let api = Api::<ClusterRole>::all(admin.clone());
    eventually(
        &format!("ClusterRole {name} to have rules"),
        TIMEOUT,
        || async {
            let r = api.get(name).await.expect("reading ClusterRole");
            let rules = r.rules.unwrap_or_default();
            (r.aggregation_rule.is_none() || !rules.is_empty()).then_some(rules)
        },
    )
    .await
}

/// Waits until the authorizer allows `user` the first verb/resource of `rule` (RBAC works from
/// informer caches, so a new binding takes a moment to count).
async fn wait_allowed(admin: &Client, user: &str, ns: Option<&str>, rule: &PolicyRule) {
    let pick = |v: Option<&String>, wildcard: &str| match v.map(String::as_str) {
        None | Some("*") => wildcard.to_owned(),
        Some(s) => s.to_owned(),
    };
    let attrs = ResourceAttributes {
        namespace: ns.map(Into::into),
        verb: Some(pick(rule.verbs.first(), "get")),
        group: Some(pick(rule.api_groups.as_ref().and_then(|g| g.first()), "")),
        resource: Some(pick(
            rule.resources.as_ref().and_then(|r| r.first()),
            "configmaps",
        )),
        name: rule
            .resource_names
            .as_ref()
            .and_then(|n| n.first())
            .cloned(),
        ..Default::default()
    };
    let review = SubjectAccessReview {
        metadata: ObjectMeta::default(),
        spec: SubjectAccessReviewSpec {
            user: Some(user.into()),
            groups: Some(vec![
                "system:serviceaccounts".into(),
                "system:authenticated".into(),
            ]),
            resource_attributes: Some(attrs),
            ..Default::default()
        },
        status: None,
    };
    let api: Api<SubjectAccessReview> = Api::all(admin.clone());
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let r = api
            .create(&PostParams::default(), &review)
            .await
            .expect("SubjectAccessReview");
        if r.status.is_some_and(|s| s.allowed) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "RBAC grant for {user} not effective within {TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `check` every 200 ms until it returns `Some`, panicking with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The HTTP status code of an API error (panics on other errors).
pub fn api_code(err: &kube::Error) -> u16 {
    match err {
        kube::Error::Api(status) => status.code,
        other => panic!("expected an API error, got {other}"),
    }
}

/// One testcluster component (`up`, `etcd`, `apiserver`, `controller-manager`) run as a child
/// process with `--stop-on-eof`; stopped (SIGTERM path, via closing its stdin) when dropped.
pub struct ControlPlaneProcess {
    pub child: Child,
    pub log: PathBuf,
    name: String,
}

impl ControlPlaneProcess {
    /// Starts `binary ARGS --dir DIR --stop-on-eof`, logging to DIR/NAME.out.
    pub fn spawn(binary: &Path, args: &[&str], dir: &Path, name: &str) -> ControlPlaneProcess {
        fs::create_dir_all(dir).expect("state dir");
        let log = dir.join(format!("{name}.out"));
        let out = File::create(&log).expect("log file");
        let child = Command::new(binary)
            .args(args)
            .arg("--dir")
            .arg(dir)
            .arg("--stop-on-eof")
            .stdin(Stdio::piped())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}\n{HOWTO}", binary.display()));
        ControlPlaneProcess {
            child,
            log,
            name: name.into(),
        }
    }

    /// Waits for the component's `ready ...` line, panicking with its log if it exits first.
    pub fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log_text();
            if log.lines().any(|l| l.starts_with("ready ")) {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!(
                    "{} exited ({status}) before it was ready; log {}:\n{}",
                    self.name,
                    self.log.display(),
                    tail(&log)
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready after {timeout:?}; log:\n{}",
                self.name,
                tail(&log)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log_text(&self) -> String {
        let mut s = String::new();
        let _ = File::open(&self.log).and_then(|mut f| f.read_to_string(&mut s));
        s
    }

    /// Graceful stop: closes stdin (the component SIGTERMs itself) and waits for a clean exit.
    pub fn stop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                assert!(
                    status.success(),
                    "{} exited with {status}; log:\n{}",
                    self.name,
                    tail(&self.log_text())
                );
                return;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("{} did not stop within {TIMEOUT:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for ControlPlaneProcess {
    fn drop(&mut self) {
        if self.child.stdin.is_some() {
            drop(self.child.stdin.take());
            let _ = self.child.wait();
        }
    }
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
