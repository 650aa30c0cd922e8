//! The controller as a separate OS process, as a Pod runs it: the built `gitseal controller`
//! (Cargo's `CARGO_BIN_EXE_gitseal`) with a kubeconfig of its own holding the deploy/ service
//! account's token (pointing at the API server or at the fault proxy), leader election on with
//! a fixed identity (a restarted container keeps its Pod's name), restarted like a kubelet
//! restarts a container that died (after [`RESTART_DELAY`]), its stderr appended to one log
//! per drill. Drills send it signals (SIGKILL, SIGSTOP, SIGCONT) and ask its /healthz.

use super::http;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use rustix::process::{Pid, Signal, kill_process};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Pause before a died controller is started again. A kubelet waits 10 s after the first
/// crash, doubling up to 5 min (CrashLoopBackOff); shorter here, the drills restart often.
pub const RESTART_DELAY: Duration = Duration::from_secs(1);

/// What the controller logs: the default plus kube-runtime's watcher at debug level, which
/// is where a watch's 410 Gone (and the relist it causes) shows.
const RUST_LOG: &str = "info,kube=warn,kube_runtime::watcher=debug";

/// The controller's process and what became of the earlier ones.
#[derive(Default)]
struct State {
    child: Option<Child>,
    starts: u32,
    /// Exits the drill caused (its SIGKILLs).
    planned_exits: u32,
    /// Exits nobody asked for: exit status and the last log lines before it.
    unplanned_exits: Vec<String>,
    /// A SIGKILL was sent: the next exit is planned.
    killing: bool,
    last_start: Option<Instant>,
}

struct Shared {
    state: Mutex<State>,
    stopping: AtomicBool,
    command: Vec<String>,
    log: PathBuf,
}

pub struct Supervisor {
    shared: Arc<Shared>,
    watcher: Option<std::thread::JoinHandle<()>>,
    /// The /metrics, /healthz and /readyz port (the same across restarts).
    pub port: u16,
}

impl Supervisor {
    /// Start `gitseal controller` with `kubeconfig` and `flags` (on top of the drills'
    /// defaults), logging to `log`, and keep it running.
    pub fn start(kubeconfig: &Path, flags: &[&str], log: &Path) -> Supervisor {
        let port = http::free_port();
        let mut command: Vec<String> = [
            "controller",
            "--namespace",
            crate::ctrltool::SYSTEM_NS,
            "--identity",
            "gitseal-controller-faults",
            "--key-renew-interval",
            "0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if !flags.iter().any(|f| f.starts_with("--lease-duration")) {
            command.push("--lease-duration=15s".into()); // deploy/deployment.yaml's
        }
        command.push(format!("--metrics-addr=127.0.0.1:{port}"));
        command.push(format!("--kubeconfig={}", kubeconfig.display()));
        command.extend(flags.iter().map(|s| s.to_string()));
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            stopping: AtomicBool::new(false),
            command,
            log: log.to_path_buf(),
        });
        spawn(&shared);
        let watcher = {
            let shared = shared.clone();
            std::thread::spawn(move || keep_running(&shared))
        };
        Supervisor {
            shared,
            watcher: Some(watcher),
            port,
        }
    }

    /// SIGKILL the running controller (the supervisor starts it again).
    pub fn kill(&self) {
        let mut st = self.shared.state.lock().unwrap();
        if let Some(pid) = st.child.as_ref().map(Pid::from_child) {
            st.killing = true;
            kill_process(pid, Signal::KILL).expect("SIGKILL the controller");
        }
    }

    /// Send `signal` (SIGSTOP, SIGCONT) to the running controller.
    pub fn signal(&self, signal: Signal) {
        let st = self.shared.state.lock().unwrap();
        let child = st.child.as_ref().expect("the controller runs");
        kill_process(Pid::from_child(child), signal).expect("signalling the controller");
    }

    /// Stop supervising, then SIGTERM the controller and wait for its exit (a graceful stop
    /// releases the Lease); SIGKILL after a minute.
    pub fn stop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        if let Some(w) = self.watcher.take() {
            let _ = w.join();
        }
        let Some(mut child) = self.shared.state.lock().unwrap().child.take() else {
            return;
        };
        let _ = kill_process(Pid::from_child(&child), Signal::CONT);
        let _ = kill_process(Pid::from_child(&child), Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Processes started so far (1 + restarts).
    pub fn starts(&self) -> u32 {
        self.shared.state.lock().unwrap().starts
    }

    /// Exits the drill caused with SIGKILL.
    pub fn planned_exits(&self) -> u32 {
        self.shared.state.lock().unwrap().planned_exits
    }

    /// Exits nobody caused, each with its exit status and the log lines before it.
    pub fn unplanned_exits(&self) -> Vec<String> {
        self.shared.state.lock().unwrap().unplanned_exits.clone()
    }

    /// When the running process was started (`None` while none runs).
    pub fn started_at(&self) -> Option<Instant> {
        let st = self.shared.state.lock().unwrap();
        st.child.as_ref().and(st.last_start)
    }

    /// Whether a controller process runs now.
    pub fn running(&self) -> bool {
        self.shared.state.lock().unwrap().child.is_some()
    }

    /// Everything the controllers of this supervisor logged.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.shared.log).unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        &self.shared.log
    }

    /// Whether /healthz answers 200.
    pub async fn healthy(&self) -> bool {
        matches!(
            http::request(self.port, "GET", "/healthz", "").await,
            Ok((200, _))
        )
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Start one controller process, appending its stderr to the log after a marker line.
fn spawn(shared: &Shared) {
    let mut st = shared.state.lock().unwrap();
    st.starts += 1;
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&shared.log)
        .expect("controller log");
    let _ = writeln!(log, "--- supervisor: start #{}", st.starts);
    let child = Command::new(env!("CARGO_BIN_EXE_gitseal"))
        .args(&shared.command)
        .env("RUST_LOG", RUST_LOG)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting the built gitseal binary");
    st.child = Some(child);
    st.last_start = Some(Instant::now());
}

/// The kubelet's part: notice an exit, record why, start a new process.
fn keep_running(shared: &Shared) {
    while !shared.stopping.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
        let exited = {
            let mut st = shared.state.lock().unwrap();
            let status = match st.child.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => status,
                _ => continue,
            };
            st.child = None;
            if std::mem::take(&mut st.killing) {
                st.planned_exits += 1;
            } else {
                let log = std::fs::read_to_string(&shared.log).unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                let tail = lines[lines.len().saturating_sub(5)..].join("\n");
                eprintln!("faults: the controller exited by itself ({status}):\n{tail}");
                st.unplanned_exits.push(format!("{status}: {tail}"));
            }
            true
        };
        if exited {
            std::thread::sleep(RESTART_DELAY);
            if !shared.stopping.load(Ordering::SeqCst) {
                spawn(shared);
            }
        }
    }
}

/// A token of the deploy/ ServiceAccount `ns/name` from the TokenRequest API (two hours:
/// longer than any drill).
pub async fn token(admin: &kube::Client, ns: &str, name: &str) -> String {
    let api: Api<ServiceAccount> = Api::namespaced(admin.clone(), ns);
    let request: TokenRequest =
        serde_json::from_value(serde_json::json!({"spec": {"expirationSeconds": 7200}}))
            .expect("a TokenRequest");
    api.create_token_request(name, &PostParams::default(), &request)
        .await
        .unwrap_or_else(|e| panic!("TokenRequest for {ns}/{name}: {e}"))
        .status
        .expect("TokenRequest status")
        .token
}

/// Write to `out` the kubeconfig `admin` with its user's credentials replaced by `token`
/// and, when given, the server replaced by `server` (the proxy). JSON, which is YAML.
pub fn kubeconfig(admin: &Path, token: &str, server: Option<&str>, out: &Path) {
    let text = std::fs::read_to_string(admin).expect("admin kubeconfig");
    let mut config: serde_json::Value = gitseal::yaml::from_str(&text).expect("kubeconfig is YAML");
    for user in config["users"].as_array_mut().expect("users") {
        user["user"] = serde_json::json!({"token": token});
    }
    if let Some(server) = server {
        for cluster in config["clusters"].as_array_mut().expect("clusters") {
            cluster["cluster"]["server"] = server.into();
        }
    }
    std::fs::write(out, serde_json::to_string_pretty(&config).unwrap()).expect("kubeconfig");
}
