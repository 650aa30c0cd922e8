//! Tools for the install tests (tests/helm.rs, tests/in_cluster.rs): the real helm built from
//! its Go module (`scripts/helm`), the container image built offline (`scripts/image`), and
//! renders of the chart and of the kustomize base as parsed objects. Each tool is built on
//! first use and cached by source hash; a tool that cannot be built fails the test with how
//! to get it (never a skip).
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn chart_dir() -> PathBuf {
    root().join("deploy/helm/gitseal")
}

/// Run one of the repository's scripts that prints a path on stdout (building if needed).
fn script_path(script: &str, args: &[&str], howto: &str) -> PathBuf {
    let path = root().join(script);
    let out = Command::new(&path)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}\n{howto}", path.display()));
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.status.success() && !printed.is_empty(),
        "`{script} {}` failed ({}).\n{howto}",
        args.join(" "),
        out.status
    );
    PathBuf::from(printed)
}

/// The helm binary: `GITSEAL_HELM_BIN`, or `scripts/helm path` (built from tests/helm).
pub fn helm_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(b) = std::env::var_os("GITSEAL_HELM_BIN").filter(|b| !b.is_empty()) {
            return b.into();
        }
        script_path(
            "scripts/helm",
            &["path"],
            "The chart tests run the real helm, built from its Go module (helm.sh/helm/v3, \
             pinned in tests/helm/go.mod) by `scripts/helm build`: it needs Go >= 1.25 \
             (https://go.dev/dl/) and the Go module proxy.",
        )
    })
    .clone()
}

/// A helm command with its state directories in a temporary place (no user config).
pub fn helm() -> Command {
    static HOME: OnceLock<PathBuf> = OnceLock::new();
    let home = HOME.get_or_init(|| {
        tempfile::Builder::new()
            .prefix("gitseal-helm-")
            .tempdir()
            .expect("temp dir")
            .keep()
    });
    let mut cmd = Command::new(helm_binary());
    cmd.env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"));
    cmd
}

/// Run a command; panic with its output unless it succeeds.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

/// Every non-empty document of a multi-document YAML stream.
pub fn parse_docs(text: &str) -> Vec<Value> {
    gitseal::yaml::from_multiple::<Value>(text)
        .unwrap_or_else(|e| panic!("rendered YAML does not parse: {e}\n{text}"))
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

/// `helm template gitseal deploy/helm/gitseal --namespace NS --include-crds` with these
/// extra arguments, as parsed objects.
pub fn helm_template(namespace: &str, extra: &[&str]) -> Vec<Value> {
    let text = run_ok(
        helm()
            .args(["template", "gitseal"])
            .arg(chart_dir())
            .args(["--namespace", namespace, "--include-crds"])
            .args(extra),
    );
    parse_docs(&text)
}

/// `kubectl kustomize DIR` with the test cluster's kubectl (the same release as the API
/// server; kustomize is built into it).
pub fn kustomize(testcluster: &Path, dir: &Path) -> Vec<Value> {
    let text = run_ok(
        Command::new(testcluster)
            .arg("kubectl")
            .arg("kustomize")
            .arg(dir),
    );
    parse_docs(&text)
}

/// The one object of this kind and name.
pub fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    let found: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "expected exactly one {kind} {name}");
    found[0]
}

/// A built image: its archive (docker-archive, for `ctr images import`) and reference.
#[derive(Clone, Debug)]
pub struct Image {
    pub archive: PathBuf,
    pub reference: String,
}

/// `scripts/image build [--tag TAG --label ...]` (cached by source hash).
pub fn image(tag: Option<&str>) -> Image {
    const HOWTO: &str = "The in-cluster tests build the image from the Dockerfile with \
        `scripts/image build`: it needs buildah (apt-get install buildah; scripts/prereqs \
        installs it), Debian's ca-certificates and cargo.";
    let default_tag = script_path("scripts/image", &["tag"], HOWTO);
    let tag = tag.map_or_else(
        || default_tag.to_string_lossy().into_owned(),
        |t| format!("{t}-{}", default_tag.display()),
    );
    let label = format!("gitseal.dev/build={tag}");
    let archive = script_path(
        "scripts/image",
        &["build", "--tag", &tag, "--label", &label],
        HOWTO,
    );
    Image {
        archive,
        reference: format!("gitseal:{tag}"),
    }
}
