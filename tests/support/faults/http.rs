//! Loopback helpers: a free port, and one plain HTTP/1.0 request to a loopback port: etcd's v3 JSON gateway, Toxiproxy's API and
//! the controller's /metrics and /healthz. HTTP/1.0, so every answer ends with the connection
//! (no chunked bodies to decode); bounded by a timeout, errors as text.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Longest wait for one request (a loaded machine, a server just restarted).
const TIMEOUT: Duration = Duration::from_secs(30);

/// `method path` with a JSON `body` (may be empty) to 127.0.0.1:`port`: (status, body).
pub async fn request(
    port: u16,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String), String> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("connecting to 127.0.0.1:{port}: {e}"))?;
        let head = format!(
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream
            .write_all(format!("{head}{body}").as_bytes())
            .await
            .map_err(|e| format!("writing to 127.0.0.1:{port}: {e}"))?;
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .await
            .map_err(|e| format!("reading from 127.0.0.1:{port}: {e}"))?;
        let text = String::from_utf8_lossy(&answer).into_owned();
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| format!("no HTTP answer from 127.0.0.1:{port}{path}"))?;
        let code = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("bad status line from 127.0.0.1:{port}{path}: {head}"))?;
        Ok((code, body.to_string()))
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| format!("{method} 127.0.0.1:{port}{path}: no answer within {TIMEOUT:?}"))?
}

/// [`request`] that wants a 2xx answer holding JSON.
pub async fn json(
    port: u16,
    method: &str,
    path: &str,
    body: &serde_json::Value,
) -> Result<serde_json::Value, String> {
    let sent = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let (code, text) = request(port, method, path, &sent).await?;
    if !(200..300).contains(&code) {
        return Err(format!("{method} {path} answered {code}: {text}"));
    }
    if text.trim().is_empty() {
        return Ok(serde_json::Value::Null);
    }
    serde_json::from_str(&text).map_err(|e| format!("{method} {path}: not JSON ({e}): {text}"))
}

/// The sum of every sample of Prometheus metric `name` in `text` whose labels contain every
/// one of `labels` (e.g. `code="429"`).
pub fn metric_sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A loopback port free now (the kernel's pick; a server binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}
