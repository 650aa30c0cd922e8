//! Fault drills against a real control plane (tests/faults.rs). A drill's life: a private
//! etcd + kube-apiserver ([`plane`]), the controller's deploy/ RBAC and a service-account
//! token, the controller's first start (it creates the cluster's key), 1,000 SealedSecrets
//! over ten namespaces sealed to that key and applied while no controller runs, a cold start
//! under the [`supervisor`] (optionally through the fault [`proxy`]), the fault, and the
//! verdict: every object has its Secret with the right data and Ready=True at its current
//! generation; none is lost; etcd's per-key modification counts say no Secret was written more
//! often than its values changed (nor once converged) and count the status writes; the
//! controller runs.
//! Drills hold one lock: they never run at once on a 2-core machine.

pub mod http;
pub mod plane;
pub mod proxy;
pub mod supervisor;

use crate::ctrltool::{Env, SYSTEM_NS, apply_deploy_file, is_ready_now, seal_to};
use futures::{StreamExt, TryStreamExt, stream};
use gitseal::api::SealedSecret;
use gitseal::manifest::KeyringFile;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use plane::Plane;
use proxy::Toxiproxy;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use supervisor::Supervisor;

/// Namespaces a drill's objects spread over.
const NAMESPACES: usize = 10;

/// Longest wait for convergence (or for a cold start's progress) on a loaded machine.
pub const CONVERGE_WITHIN: Duration = Duration::from_secs(300);

/// After convergence, how long nothing may be written before the drill's counts are final.
const QUIET_FOR: Duration = Duration::from_secs(5);

/// etcd key prefixes of the drill's Secrets and SealedSecrets (test namespaces are `t-…`).
const SECRETS: &str = "/registry/secrets/";
const SEALED: &str = "/registry/gitseal.dev/sealedsecrets/";
const DRILL_NAMESPACES: &str = "t-";

/// SealedSecrets per drill: 1,000 (FAULTS_OBJECTS overrides it for a quick look).
pub fn objects() -> usize {
    std::env::var("FAULTS_OBJECTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000)
}

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What one object should end as, and how often the drill itself wrote it.
pub struct Expected {
    pub value: String,
    /// Secret writes it needs: its creation and one per change of its values.
    pub secret_writes: i64,
    /// Writes of the SealedSecret by the drill (its creation and each reseal).
    pub spec_writes: i64,
}

/// What etcd counted, over the drill's objects.
#[derive(Debug, PartialEq, Eq)]
pub struct Writes {
    pub secrets: i64,
    /// Beyond what the objects needed (`Expected::secret_writes`).
    pub extra_secrets: i64,
    /// Status writes: SealedSecret modifications the drill did not make.
    pub status: i64,
    /// Beyond one per generation.
    pub extra_status: i64,
}

/// What a drill ends with.
pub struct Verdict {
    /// Once nothing more was written.
    pub writes: Writes,
    /// Status writes after every object already read right.
    pub status_after_convergence: i64,
    /// How long after convergence the last write came.
    pub settled_after: Duration,
}

pub struct Drill {
    pub name: &'static str,
    /// Declared before the plane: dropped (stopped) first.
    pub controller: Option<Supervisor>,
    pub proxy: Option<Toxiproxy>,
    pub env: Env,
    pub plane: Plane,
    pub namespaces: Vec<String>,
    pub objects: BTreeMap<(String, String), Expected>,
    token: String,
    ring: Option<KeyringFile>,
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

impl Drill {
    /// A plane (API server with `apiserver_flags`), the deploy/ RBAC, a token for the
    /// controller's service account, the drill's namespaces.
    pub async fn new(name: &'static str, apiserver_flags: &str) -> Drill {
        let serial = SERIAL.lock().await;
        eprintln!("faults: drill {name}: starting its control plane");
        let plane = Plane::start(name, apiserver_flags);
        let env = Env::at(plane.kubeconfig()).await;
        apply_deploy_file(&env.client, "serviceaccount.yaml").await;
        apply_deploy_file(&env.client, "rbac.yaml").await;
        let token = supervisor::token(&env.client, SYSTEM_NS, "gitseal-controller").await;
        let mut namespaces = Vec::new();
        for _ in 0..NAMESPACES {
            namespaces.push(env.namespace().await);
        }
        Drill {
            name,
            controller: None,
            proxy: None,
            env,
            plane,
            namespaces,
            objects: BTreeMap::new(),
            token,
            ring: None,
            _serial: serial,
        }
    }

    /// Put the fault proxy between the controller and the API server.
    pub async fn start_proxy(&mut self) -> &Toxiproxy {
        let proxy = Toxiproxy::start(&self.plane.dir, self.plane.apiserver_port).await;
        self.proxy.insert(proxy)
    }

    /// The controller's kubeconfig: its service account's token, to the API server or (once
    /// [`Drill::start_proxy`] ran) through the proxy.
    fn controller_kubeconfig(&self) -> PathBuf {
        let server = self.proxy.as_ref().map(Toxiproxy::server);
        let out = self.plane.dir.join("controller.kubeconfig");
        supervisor::kubeconfig(
            &self.plane.kubeconfig(),
            &self.token,
            server.as_deref(),
            &out,
        );
        out
    }

    /// The controller's first start: it creates the cluster's key; stopped once the key is
    /// Active. Then `objects()` SealedSecrets sealed to it are applied, no controller running.
    pub async fn prepare(&mut self) {
        let first = Supervisor::start(
            &self.controller_kubeconfig(),
            &[],
            &self.plane.dir.join("controller-first.log"),
        );
        self.ring = Some(self.env.keyring().await);
        tokio::task::block_in_place(|| drop(first)); // SIGTERM: the Lease is released
        let created: Vec<usize> = (0..objects()).collect();
        self.create(&created).await;
        eprintln!(
            "faults: drill {}: {} SealedSecrets in {} namespaces, no controller running",
            self.name,
            self.objects.len(),
            self.namespaces.len()
        );
    }

    /// Seal and apply objects `s<i>` (new ones, or new values for existing ones).
    pub async fn create(&mut self, which: &[usize]) {
        let ring = self.ring.as_ref().expect("prepare() first");
        let mut sealed = Vec::new();
        for &i in which {
            let ns = self.namespaces[i % self.namespaces.len()].clone();
            let name = format!("s{i:04}");
            let value = format!("value-{i}-{:08x}", rand::random::<u32>());
            sealed.push(seal_to(
                ring,
                &ns,
                &name,
                &[("v", value.as_str())],
                "strict",
            ));
            let e = self.objects.entry((ns, name)).or_insert(Expected {
                value: String::new(),
                secret_writes: 0,
                spec_writes: 0,
            });
            e.value = value;
            e.secret_writes += 1;
            e.spec_writes += 1;
        }
        let client = &self.env.client;
        stream::iter(sealed)
            .map(|s| async move {
                let api: Api<SealedSecret> =
                    Api::namespaced(client.clone(), &s.namespace().expect("namespace"));
                let pp = PatchParams::apply("gitops").force();
                api.patch(&s.name_any(), &pp, &Patch::Apply(&s)).await
            })
            .buffer_unordered(32)
            .try_collect::<Vec<_>>()
            .await
            .expect("applying SealedSecrets");
    }

    /// Start the controller (supervised) with `flags`; the cold start begins.
    pub fn start_controller(&mut self, flags: &[&str]) -> Instant {
        let log = self.plane.dir.join("controller.log");
        let kubeconfig = self.controller_kubeconfig();
        self.controller = Some(Supervisor::start(&kubeconfig, flags, &log));
        Instant::now()
    }

    pub fn controller(&self) -> &Supervisor {
        self.controller.as_ref().expect("start_controller() first")
    }

    /// Managed Secrets in the drill's namespaces (from etcd), 0 while it does not answer.
    pub async fn secrets_written(&self) -> u64 {
        let prefix = format!("{SECRETS}{DRILL_NAMESPACES}");
        self.plane.count(&prefix).await.unwrap_or(0)
    }

    /// A cold start's progress from etcd: the drill's Secrets that exist and the objects
    /// whose status has been written at least once; (0, 0) while etcd does not answer.
    pub async fn cold_start_progress(&self) -> (u64, u64) {
        let Ok(sealed) = self.plane.versions(SEALED).await else {
            return (0, 0);
        };
        let statuses = self
            .objects
            .iter()
            .filter(|((ns, name), want)| {
                sealed
                    .get(&format!("{ns}/{name}"))
                    .is_some_and(|v| *v > want.spec_writes)
            })
            .count();
        (self.secrets_written().await, statuses as u64)
    }

    /// Wait until at least `n` of the drill's Secrets exist; how many do then.
    pub async fn wait_secrets(&self, n: u64) -> u64 {
        let deadline = Instant::now() + CONVERGE_WITHIN;
        loop {
            let have = self.secrets_written().await;
            if have >= n {
                return have;
            }
            assert!(
                Instant::now() < deadline,
                "drill {}: only {have} of {n} Secrets after {CONVERGE_WITHIN:?}; controller log:\n{}",
                self.name,
                tail(&self.controller().log_text())
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Wait until every object has its right Secret and a current Ready=True; how long it took.
    pub async fn wait_converged(&self) -> Duration {
        let start = Instant::now();
        loop {
            let last = match self.progress().await {
                Ok(p) if p.done() => return start.elapsed(),
                Ok(p) => p.to_string(),
                Err(e) => format!("the API server did not answer: {e}"),
            };
            if start.elapsed() > CONVERGE_WITHIN {
                let c = self.controller();
                panic!(
                    "drill {}: not converged after {CONVERGE_WITHIN:?}: {last}\nunplanned \
                     controller exits: {:?}\ncontroller log ({}):\n{}",
                    self.name,
                    c.unplanned_exits(),
                    c.log_path().display(),
                    tail(&c.log_text())
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Where the objects stand, read from the API server.
    async fn progress(&self) -> Result<Progress, kube::Error> {
        let mut sealed = HashMap::new();
        let mut secrets = HashMap::new();
        let managed = format!(
            "{}={}",
            gitseal::controller::secret::MANAGED_BY.0,
            gitseal::controller::secret::MANAGED_BY.1
        );
        for ns in &self.namespaces {
            let api: Api<SealedSecret> = Api::namespaced(self.env.client.clone(), ns);
            for s in api.list(&ListParams::default()).await?.items {
                sealed.insert((ns.clone(), s.name_any()), s);
            }
            let api: Api<Secret> = Api::namespaced(self.env.client.clone(), ns);
            for s in api
                .list(&ListParams::default().labels(&managed))
                .await?
                .items
            {
                secrets.insert((ns.clone(), s.name_any()), s);
            }
        }
        let mut p = Progress {
            total: self.objects.len(),
            extra_secrets: secrets.len().saturating_sub(self.objects.len()),
            ..Default::default()
        };
        for (key, want) in &self.objects {
            let Some(s) = sealed.get(key) else {
                p.wrong
                    .push(format!("{}/{}: SealedSecret gone", key.0, key.1));
                continue;
            };
            let secret_ok = secrets.get(key).is_some_and(|secret| {
                let data = secret.data.as_ref().and_then(|d| d.get("v"));
                let owned = secret
                    .owner_references()
                    .iter()
                    .any(|o| o.controller == Some(true) && Some(&o.uid) == s.uid().as_ref());
                owned && data.is_some_and(|v| v.0 == want.value.as_bytes())
            });
            p.right += usize::from(secret_ok);
            p.ready += usize::from(is_ready_now(s));
            if (!secret_ok || !is_ready_now(s)) && p.wrong.len() < 5 {
                let ready = s
                    .status
                    .as_ref()
                    .map(|st| (&st.conditions, st.observed_generation));
                p.wrong.push(format!(
                    "{}/{}: Secret right {secret_ok}, generation {:?}, status {ready:?}",
                    key.0, key.1, s.metadata.generation
                ));
            }
        }
        Ok(p)
    }

    /// What etcd counted for the drill's objects (retried while etcd does not answer).
    pub async fn writes(&self) -> Writes {
        let deadline = Instant::now() + CONVERGE_WITHIN;
        let (secrets, sealed) = loop {
            let s = self.plane.versions(SECRETS).await;
            let t = self.plane.versions(SEALED).await;
            match (s, t) {
                (Ok(s), Ok(t)) => break (s, t),
                (Err(e), _) | (_, Err(e)) => {
                    assert!(Instant::now() < deadline, "etcd: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        let mut w = Writes {
            secrets: 0,
            extra_secrets: 0,
            status: 0,
            extra_status: 0,
        };
        let mut over = Vec::new();
        for ((ns, name), want) in &self.objects {
            let key = format!("{ns}/{name}");
            let written = *secrets
                .get(&key)
                .unwrap_or_else(|| panic!("drill {}: Secret {key} lost", self.name));
            w.secrets += written;
            w.extra_secrets += written - want.secret_writes;
            if written != want.secret_writes && over.len() < 10 {
                over.push(format!("{key}: {written} (needed {})", want.secret_writes));
            }
            let status = sealed.get(&key).copied().unwrap_or(0) - want.spec_writes;
            w.status += status;
            w.extra_status += status - want.spec_writes;
        }
        assert!(
            over.is_empty(),
            "drill {}: Secrets written more (or less) often than their values changed: {over:?}",
            self.name
        );
        w
    }

    /// The verdict once converged: the write counts (Secrets checked exactly, by
    /// [`Drill::writes`]) once nothing has been written for [`QUIET_FOR`], and a controller
    /// that runs and answers /healthz. Status writes may go on for a while after every
    /// object reads right (a controller whose caches are still catching up after a fault);
    /// how many and for how long is reported, not judged.
    pub async fn verdict(&self) -> Verdict {
        let at_convergence = self.writes().await;
        let start = Instant::now();
        let (mut last, mut changed) = (self.writes().await, start);
        while changed.elapsed() < QUIET_FOR {
            assert!(
                start.elapsed() < CONVERGE_WITHIN,
                "drill {}: writes did not stop within {CONVERGE_WITHIN:?} of convergence",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = self.writes().await;
            if now != last {
                (last, changed) = (now, Instant::now());
            }
        }
        assert_eq!(
            last.secrets, at_convergence.secrets,
            "drill {}: Secrets were written after every object had converged",
            self.name
        );
        let c = self.controller();
        let deadline = Instant::now() + Duration::from_secs(120);
        while !c.healthy().await {
            assert!(
                Instant::now() < deadline,
                "drill {}: the controller does not answer /healthz (running: {}); log:\n{}",
                self.name,
                c.running(),
                tail(&c.log_text())
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Verdict {
            status_after_convergence: last.status - at_convergence.status,
            settled_after: changed - start,
            writes: last,
        }
    }

    /// Print the drill's `FIGURES` line: `fields`, then the writes and restarts.
    pub fn figures(&self, v: &Verdict, fields: &[(&str, String)]) {
        let w = &v.writes;
        let c = self.controller();
        let mut line = format!(
            "FIGURES faults drill={} objects={}",
            self.name,
            self.objects.len()
        );
        for (k, v) in fields {
            line.push_str(&format!(" {k}={v}"));
        }
        line.push_str(&format!(
            " secret_writes={} extra_secret_writes={} status_writes={} extra_status_writes={} \
             status_writes_after_convergence={} writes_settled_after_s={} \
             controller_starts={} killed={} unplanned_exits={}",
            w.secrets,
            w.extra_secrets,
            w.status,
            w.extra_status,
            v.status_after_convergence,
            secs(v.settled_after),
            c.starts(),
            c.planned_exits(),
            c.unplanned_exits().len()
        ));
        // Straight to the process's stderr: the test harness captures print!/eprint! only,
        // and these lines are wanted from passing drills too.
        let _ = writeln!(std::io::stderr(), "{line}");
    }
}

/// Where the objects stand.
#[derive(Default)]
struct Progress {
    total: usize,
    /// Objects whose Secret exists, is controlled by it and holds the right value.
    right: usize,
    /// Objects whose status says Ready=True for their current generation.
    ready: usize,
    /// Managed Secrets beyond one per object.
    extra_secrets: usize,
    wrong: Vec<String>,
}

impl Progress {
    fn done(&self) -> bool {
        self.right == self.total && self.ready == self.total && self.extra_secrets == 0
    }
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of {} Secrets right, {} Ready, {} Secrets too many; e.g. {:?}",
            self.right, self.total, self.ready, self.extra_secrets, self.wrong
        )
    }
}

/// Seconds with one decimal, for FIGURES.
pub fn secs(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64())
}

/// The last 40 lines of a log.
pub fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
