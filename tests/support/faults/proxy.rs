//! The fault proxy: the real Toxiproxy server (built from its Go module by
//! scripts/toxiproxy, cached under ~/.cache/gitseal/toxiproxy/<version>/) between the
//! controller and the API server, on loopback. Its HTTP API adds and removes toxics
//! (`latency`, `reset_peer`, `limit_data`, `timeout`) and cuts every open connection (the
//! proxy disabled and enabled again). TLS passes through untouched: the API server's
//! certificate names 127.0.0.1, whatever the port.

use super::http;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The proxy's name in Toxiproxy.
const NAME: &str = "apiserver";

const HOWTO: &str = "The proxy drills need Toxiproxy, built from its Go module by \
`scripts/toxiproxy build` (needs Go from https://go.dev/dl/ and the Go module proxy; \
about 30 s, then cached under ~/.cache/gitseal/toxiproxy).";

pub struct Toxiproxy {
    child: Child,
    api: u16,
    /// Where the controller connects (forwarded to the API server).
    pub listen: u16,
    log: PathBuf,
}

impl Toxiproxy {
    /// Start Toxiproxy with its log in `dir` and one proxy 127.0.0.1:<listen> → 127.0.0.1:`upstream`.
    pub async fn start(dir: &Path, upstream: u16) -> Toxiproxy {
        let bin = binary();
        let api = http::free_port();
        let listen = http::free_port();
        let log = dir.join("toxiproxy.log");
        let out = std::fs::File::create(&log).expect("toxiproxy log");
        let child = Command::new(&bin)
            .args(["-host", "127.0.0.1", "-port", &api.to_string()])
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}\n{HOWTO}", bin.display()));
        let proxy = Toxiproxy {
            child,
            api,
            listen,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        while http::request(api, "GET", "/version", "").await.is_err() {
            assert!(
                Instant::now() < deadline,
                "Toxiproxy's API did not answer within 120 s; log:\n{}",
                proxy.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let created = serde_json::json!({
            "name": NAME,
            "listen": format!("127.0.0.1:{listen}"),
            "upstream": format!("127.0.0.1:{upstream}"),
            "enabled": true,
        });
        proxy.call("POST", "/proxies", &created).await;
        proxy
    }

    /// The URL the controller's kubeconfig names.
    pub fn server(&self) -> String {
        format!("https://127.0.0.1:{}", self.listen)
    }

    /// Add toxic `name` of `kind` on `stream` ("upstream": controller → server, "downstream":
    /// back) for a share `toxicity` of the connections.
    pub async fn add(
        &self,
        name: &str,
        kind: &str,
        stream: &str,
        toxicity: f64,
        attributes: serde_json::Value,
    ) {
        let toxic = serde_json::json!({
            "name": name, "type": kind, "stream": stream,
            "toxicity": toxicity, "attributes": attributes,
        });
        self.call("POST", &format!("/proxies/{NAME}/toxics"), &toxic)
            .await;
    }

    pub async fn remove(&self, name: &str) {
        let path = format!("/proxies/{NAME}/toxics/{name}");
        self.call("DELETE", &path, &serde_json::Value::Null).await;
    }

    /// Disable the proxy (it closes every open connection and refuses new ones) or enable it.
    pub async fn set_enabled(&self, enabled: bool) {
        let body = serde_json::json!({ "enabled": enabled });
        self.call("POST", &format!("/proxies/{NAME}"), &body).await;
    }

    /// Cut every open connection: disable the proxy and enable it again.
    pub async fn cut(&self) {
        self.set_enabled(false).await;
        self.set_enabled(true).await;
    }

    /// Connections the proxy accepted so far (its log says each).
    pub fn accepted(&self) -> usize {
        self.log_text().matches("Accepted client").count()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn call(&self, method: &str, path: &str, body: &serde_json::Value) {
        if let Err(e) = http::json(self.api, method, path, body).await {
            panic!("Toxiproxy {method} {path}: {e}");
        }
    }
}

impl Drop for Toxiproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `scripts/toxiproxy path` (builds it when missing).
fn binary() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/toxiproxy");
    let out = Command::new("bash")
        .arg(&script)
        .arg("path")
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}\n{HOWTO}", script.display()));
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success() && !path.is_empty(),
        "`scripts/toxiproxy path` failed ({}).\n{HOWTO}",
        out.status
    );
    PathBuf::from(path)
}
