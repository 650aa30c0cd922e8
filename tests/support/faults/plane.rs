//! One private control plane per drill: a real etcd and a real kube-apiserver (the
//! `testcluster` binary of scripts/cluster), each its own process on a state directory of the
//! drill's own under target/faults/, with its own ports, so a drill can SIGKILL and restart
//! either alone (a restarted component comes back on the same port, CA and data). No
//! controller manager runs: the drills delete nothing. Also etcd's v3 JSON gateway on
//! loopback: counts, each key's modification count (mvcc `version`) and compaction. A
//! plane's directory is removed afterwards unless the drill failed or FAULTS_KEEP is set.

use super::http;
use crate::cluster::{ControlPlaneProcess, binary};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a component may take to become ready on a loaded machine.
const READY_WITHIN: Duration = Duration::from_secs(300);

pub struct Plane {
    pub dir: PathBuf,
    pub etcd_port: u16,
    pub apiserver_port: u16,
    /// `TESTCLUSTER_APISERVER_EXTRA_ARGS` of every API server start.
    extra_args: String,
    etcd: Option<ControlPlaneProcess>,
    apiserver: Option<ControlPlaneProcess>,
    /// Starts so far, for the log file names (`apiserver-2.out`, ...).
    starts: u32,
}

impl Plane {
    /// A fresh plane in `target/faults/<drill>-<random>`: etcd, then the API server with
    /// `extra_args` (kube-apiserver flags), each ready.
    pub fn start(drill: &str, extra_args: &str) -> Plane {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/faults")
            .join(format!("{drill}-{:06x}", rand::random::<u32>() & 0xff_ffff));
        let mut plane = Plane {
            dir,
            etcd_port: 0,
            apiserver_port: 0,
            extra_args: extra_args.into(),
            etcd: None,
            apiserver: None,
            starts: 0,
        };
        plane.start_etcd();
        let ports: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(plane.dir.join("ports.json")).expect("ports.json"),
        )
        .expect("ports.json is JSON");
        let port = |name: &str| ports[name].as_u64().expect("port") as u16;
        plane.etcd_port = port("etcd");
        plane.apiserver_port = port("apiserver");
        plane.start_apiserver();
        eprintln!(
            "faults: plane {} (etcd 127.0.0.1:{}, kube-apiserver 127.0.0.1:{}{})",
            plane.dir.display(),
            plane.etcd_port,
            plane.apiserver_port,
            if extra_args.is_empty() {
                String::new()
            } else {
                format!(", flags {extra_args}")
            }
        );
        plane
    }

    /// The admin kubeconfig (group system:masters).
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    pub fn start_etcd(&mut self) {
        self.etcd = Some(self.spawn("etcd"));
    }

    pub fn start_apiserver(&mut self) {
        self.apiserver = Some(self.spawn("apiserver"));
    }

    /// SIGKILL etcd (no shutdown of any kind) and reap it.
    pub fn kill_etcd(&mut self) {
        kill(self.etcd.take().expect("etcd runs"));
    }

    /// SIGKILL the API server and reap it.
    pub fn kill_apiserver(&mut self) {
        kill(self.apiserver.take().expect("the API server runs"));
    }

    /// Start `component` and wait until it is ready (blocking this worker thread only).
    fn spawn(&mut self, component: &str) -> ControlPlaneProcess {
        self.starts += 1;
        let name = format!("{component}-{}", self.starts);
        // `env` sets the variable and execs testcluster: the child's pid is the component's.
        let setting = format!("TESTCLUSTER_APISERVER_EXTRA_ARGS={}", self.extra_args);
        let bin = binary();
        let bin = bin.to_str().expect("UTF-8 path");
        let mut proc = ControlPlaneProcess::spawn(
            Path::new("/usr/bin/env"),
            &[setting.as_str(), bin, component],
            &self.dir,
            &name,
        );
        tokio::task::block_in_place(|| proc.wait_ready(READY_WITHIN));
        proc
    }

    /// Every API server log of this plane, in start order.
    pub fn apiserver_logs(&self) -> String {
        let mut logs: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("apiserver-") && n.ends_with(".out"))
            })
            .collect();
        logs.sort();
        logs.iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect()
    }

    /// POST to etcd's v3 JSON gateway.
    async fn etcd(&self, path: &str, body: serde_json::Value) -> Result<serde_json::Value, String> {
        http::json(self.etcd_port, "POST", path, &body).await
    }

    /// A range request over every key under `prefix`, `only` the count or the keys.
    async fn range(&self, prefix: &str, only: &str) -> Result<serde_json::Value, String> {
        let (key, range_end) = range(prefix);
        let mut body = serde_json::json!({"key": key, "range_end": range_end});
        body[only] = true.into();
        self.etcd("/v3/kv/range", body).await
    }

    /// How many keys start with `prefix`.
    pub async fn count(&self, prefix: &str) -> Result<u64, String> {
        let r = self.range(prefix, "count_only").await?;
        Ok(int(&r["count"]) as u64)
    }

    /// Every key under `prefix` (without it) and its modification count since it was created
    /// (etcd's `version`: 1 = written once).
    pub async fn versions(&self, prefix: &str) -> Result<BTreeMap<String, i64>, String> {
        let r = self.range(prefix, "keys_only").await?;
        let mut out = BTreeMap::new();
        for kv in r["kvs"].as_array().into_iter().flatten() {
            let raw = B64
                .decode(kv["key"].as_str().unwrap_or_default())
                .map_err(|e| format!("etcd key not base64: {e}"))?;
            let name = String::from_utf8_lossy(&raw);
            let name = name.strip_prefix(prefix).unwrap_or(&name).to_string();
            out.insert(name, int(&kv["version"]));
        }
        Ok(out)
    }

    /// Compact etcd's history up to its current revision (physically), as the API server's
    /// periodic compaction does: every older revision is gone. Returns that revision.
    pub async fn compact(&self) -> Result<i64, String> {
        let head = self.range("/", "count_only").await?;
        let revision = int(&head["header"]["revision"]);
        self.etcd(
            "/v3/kv/compaction",
            serde_json::json!({"revision": revision.to_string(), "physical": true}),
        )
        .await?;
        Ok(revision)
    }
}

impl Drop for Plane {
    fn drop(&mut self) {
        // API server first, then etcd (each stopped cleanly by closing its stdin).
        drop(self.apiserver.take());
        drop(self.etcd.take());
        if std::thread::panicking() || std::env::var_os("FAULTS_KEEP").is_some() {
            eprintln!(
                "faults: kept {} (logs: *.out) for a look",
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn kill(mut proc: ControlPlaneProcess) {
    proc.child.kill().expect("SIGKILL");
    proc.child.wait().expect("reaping");
}

/// `key` and `range_end` (base64, as the gateway wants them) of every key under `prefix`.
fn range(prefix: &str) -> (String, String) {
    let mut end = prefix.as_bytes().to_vec();
    *end.last_mut().expect("non-empty prefix") += 1;
    (B64.encode(prefix), B64.encode(end))
}

/// The gateway writes 64-bit integers as strings (absent: zero).
fn int(v: &serde_json::Value) -> i64 {
    match v {
        serde_json::Value::String(s) => s.parse().unwrap_or(0),
        other => other.as_i64().unwrap_or(0),
    }
}
