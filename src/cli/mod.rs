//! Command-line interface: the clap definitions (doc comments are the help text), dispatch to
//! one module per command, and the mapping of failures to documented exit codes. The only
//! layer that prints.

mod backup;
mod completions;
mod controller;
mod import;
mod io;
mod key_state;
mod keygen;
mod keys;
mod kube;
mod output;
mod recipients;
mod reseal;
mod seal;
mod unseal;
mod verify;

use crate::manifest::{ErrorKind, ManifestError};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit codes (README § Exit codes).
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// `verify` found problems; or an unexpected failure.
    pub const PROBLEMS: u8 = 1;
    /// Wrong command-line usage (clap's own code).
    pub const USAGE: u8 = 2;
    /// Bad input: a file, document or field is not what the command takes.
    pub const INPUT: u8 = 3;
    /// Decryption failed: no matching key, binding mismatch, or tampering.
    pub const DECRYPT: u8 = 4;
    /// The cluster could not be reached or refused a request (or gave no verdict in time).
    pub const CLUSTER: u8 = 5;
    /// The controller refused the requested change (`keys retire` of a key still in use);
    /// its reason is printed.
    pub const REFUSED: u8 = 6;
}

/// Seal Kubernetes Secrets for GitOps.
///
/// `gitseal seal` encrypts Secret manifests to a cluster's public keys (age X25519 wrapping a
/// data key, AES-256-GCM per value) into SealedSecrets that are safe to commit; the gitseal
/// controller turns them back into Secrets inside the cluster.
#[derive(Debug, Parser)]
#[command(name = "gitseal", version, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate an age X25519 identity in age-keygen's file format (written 0600).
    Keygen(KeygenArgs),
    /// Seal Secret manifests into SealedSecret manifests.
    Seal(SealArgs),
    /// Open SealedSecret manifests offline with an age identity (recovery path).
    Unseal(UnsealArgs),
    /// Check a tree of manifests offline; one line per problem, exit 1 if any.
    Verify(VerifyArgs),
    /// Run the in-cluster controller: SealedSecrets → Secrets, keys, drift repair.
    Controller(ControllerArgs),
    /// The cluster's sealing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Create a new Active SealingKey; the controller makes the previous one DecryptOnly.
    Rotate(KeysListArgs),
    /// Turn another tool's encrypted Secret files into gitseal SealedSecrets, decrypting in
    /// memory only (no plain text on disk).
    #[command(subcommand)]
    Import(ImportCommand),
    /// Rewrite committed SealedSecrets with the envelopes the controller re-wrapped to the
    /// Active key (only envelope lines change; no plain text, no private key needed).
    Reseal(ResealArgs),
    /// Print the CustomResourceDefinitions (generated from the Rust types).
    Crds {
        /// Print the ValidatingAdmissionPolicy and its binding instead, which refuse malformed
        /// SealedSecrets at admission (deploy/admission-policy.yaml; Kubernetes >= 1.30).
        #[arg(long)]
        admission_policy: bool,
    },
    /// Print a shell completion script.
    Completions {
        /// Shell to generate completions for.
        shell: clap_complete::Shell,
    },
}

/// Output format of manifests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    #[default]
    Yaml,
    Json,
}

impl From<Output> for crate::manifest::Format {
    fn from(o: Output) -> Self {
        match o {
            Output::Yaml => Self::Yaml,
            Output::Json => Self::Json,
        }
    }
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Write the identity to FILE (0600, refused if it exists) and print only the public key.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Where recipients come from when no `.gitseal.yaml` rule should be used.
#[derive(Debug, Args)]
pub struct RecipientArgs {
    /// Seal to this age recipient (repeatable). Overrides `.gitseal.yaml`.
    #[arg(short, long = "recipient", value_name = "AGE1…")]
    pub recipients: Vec<String>,
    /// Seal to the Active key of this keyring file (repeatable). Overrides `.gitseal.yaml`.
    #[arg(long = "keyring", value_name = "FILE")]
    pub keyrings: Vec<PathBuf>,
}

/// Where sealed manifests go (`seal` and `import`).
#[derive(Debug, Args)]
pub struct WriteArgs {
    /// Write to FILE atomically instead of stdout; a directory (mirrored) when the input is one.
    #[arg(short = 'w', long = "write", value_name = "PATH")]
    pub write: Option<PathBuf>,
    /// Output format.
    #[arg(short, long = "output", value_enum, default_value_t)]
    pub output: Output,
    /// Namespace for Secrets that name none.
    #[arg(short, long)]
    pub namespace: Option<String>,
}

#[derive(Debug, Args)]
pub struct SealArgs {
    /// Secret manifests: files, directories (recursive: *.yaml, *.yml, *.json) or `-` for stdin.
    #[arg(value_name = "FILE|DIR|-")]
    pub inputs: Vec<String>,
    #[command(flatten)]
    pub recipients: RecipientArgs,
    #[command(flatten)]
    pub out: WriteArgs,
    /// How far values may travel (default: the input's gitseal.dev/scope annotation, then
    /// `.gitseal.yaml`, then strict).
    #[arg(long, value_parser = parse_scope)]
    pub scope: Option<crate::format::Scope>,
    /// Seal only the given keys into this existing SealedSecret file, leaving every other line
    /// as it is (rewritten atomically).
    #[arg(long, value_name = "FILE")]
    pub merge_into: Option<PathBuf>,
    /// A value from the command line (repeatable), like kubectl create secret.
    #[arg(long, value_name = "KEY=VALUE")]
    pub from_literal: Vec<String>,
    /// A value read from a file (repeatable).
    #[arg(long, value_name = "KEY=PATH")]
    pub from_file: Vec<String>,
    /// A random alphanumeric value of LEN characters (default 32), never printed (repeatable).
    #[arg(long, value_name = "KEY[=LEN]")]
    pub generate: Vec<String>,
    /// Name of the Secret built from --from-literal/--from-file/--generate.
    #[arg(long)]
    pub name: Option<String>,
    /// Type of the Secret built from --from-* flags (e.g. kubernetes.io/tls).
    #[arg(long = "type")]
    pub type_: Option<String>,
    /// Seal Secrets without any data.
    #[arg(long)]
    pub allow_empty: bool,
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Bitnami Sealed Secrets (bitnami.com/v1alpha1 SealedSecrets) into gitseal SealedSecrets.
    ///
    /// Each file is opened in memory with the Bitnami controller's private keys and sealed to
    /// the recipients `gitseal seal` would use, with the same name,
    /// namespace, scope (strict; namespace-wide → namespace; cluster-wide → cluster) and
    /// template (labels, annotations, type, immutable, data). Files of a directory holding
    /// no Bitnami SealedSecret are skipped (listed on stderr); a file mixing them with other
    /// documents is refused. Nothing is written unless every input opened.
    SealedSecrets(ImportSealedSecretsArgs),
    /// SOPS-encrypted Secret manifests (YAML, multi-document YAML, JSON; age recipients) into
    /// gitseal SealedSecrets.
    ///
    /// Each is decrypted in memory, checked as sops checks it (every value, the MAC) and
    /// sealed to the recipients `gitseal seal` would use. Identities: -i, then
    /// SOPS_AGE_KEY_FILE, SOPS_AGE_KEY and sops' default key file. Files of a directory that
    /// are not SOPS files are skipped (listed on stderr). Nothing is written unless every
    /// input opened.
    Sops(ImportSopsArgs),
}

/// What every importer shares: recipients and where the SealedSecrets go.
#[derive(Debug, Args)]
pub struct ImportOutputArgs {
    #[command(flatten)]
    pub recipients: RecipientArgs,
    #[command(flatten)]
    pub out: WriteArgs,
    /// Rewrite each input file in place (atomically, keeping its YAML or JSON format) instead
    /// of writing elsewhere.
    #[arg(long, conflicts_with_all = ["write", "output"])]
    pub in_place: bool,
}

#[derive(Debug, Args)]
pub struct ImportSealedSecretsArgs {
    /// Bitnami SealedSecret manifests: files, directories (recursive: *.yaml, *.yml, *.json)
    /// or `-` for stdin.
    #[arg(value_name = "FILE|DIR|-")]
    pub inputs: Vec<String>,
    /// The Bitnami controller's private keys (repeatable, every key is tried): the output of
    /// `kubectl get secret -n kube-system -l sealedsecrets.bitnami.com/sealed-secrets-key -o
    /// yaml`, or PEM files (PKCS#1 or PKCS#8).
    #[arg(long = "keys", value_name = "FILE", required = true)]
    pub keys: Vec<PathBuf>,
    #[command(flatten)]
    pub out: ImportOutputArgs,
}

#[derive(Debug, Args)]
pub struct ImportSopsArgs {
    /// SOPS-encrypted Secret manifests: files, directories (recursive: *.yaml, *.yml,
    /// *.json) or `-` for stdin.
    #[arg(value_name = "FILE|DIR|-")]
    pub inputs: Vec<String>,
    /// age identity file that opens the SOPS files (repeatable; age-keygen format).
    #[arg(short, long = "identity", value_name = "FILE")]
    pub identities: Vec<PathBuf>,
    #[command(flatten)]
    pub out: ImportOutputArgs,
}

#[derive(Debug, Args)]
pub struct UnsealArgs {
    /// SealedSecret manifest file, or `-` for stdin.
    #[arg(value_name = "FILE|-")]
    pub input: String,
    /// age identity file (age-keygen format, repeatable).
    #[arg(
        short,
        long = "identity",
        value_name = "FILE",
        required = true,
        env = "GITSEAL_IDENTITY"
    )]
    pub identities: Vec<PathBuf>,
    /// Write the Secret(s) to FILE (0600, atomically) instead of stdout.
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub write: Option<PathBuf>,
    /// Output format.
    #[arg(short, long = "output", value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Files or directories to check (recursive). Default: the current directory.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub recipients: RecipientArgs,
    /// Also decrypt every value with this age identity (repeatable).
    #[arg(short, long = "identity", value_name = "FILE")]
    pub identities: Vec<PathBuf>,
}

/// How to reach the cluster (kubectl's flags and defaults).
#[derive(Debug, Args, Clone)]
pub struct KubeArgs {
    /// Path of the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Write the cluster's public keys to a keyring file (reads SealingKeys through the plain
    /// API; no service proxy).
    Fetch(KeysFetchArgs),
    /// Show the cluster's keys: name, key id, the state the controller gives each (and the
    /// wanted one when it differs), age, users and why.
    List(KeysListArgs),
    /// Write every private key, age-encrypted to admin recipients, to one backup file.
    Backup(KeysBackupArgs),
    /// Load a backup into a cluster, keeping key ids and states (names unless taken), after
    /// checking every entry against the committed keyring.
    Restore(KeysRestoreArgs),
    /// Retire a key and wait for the controller's verdict: refused (exit 6) while
    /// SealedSecrets still use it, unless --force.
    Retire(KeysRetireArgs),
}

#[derive(Debug, Args)]
pub struct ResealArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Files or directories to rewrite (recursive). Default: the current directory.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// The cluster's committed keyring (repeatable; default: the keyrings of the
    /// `.gitseal.yaml` rule covering each file). Re-wraps are accepted only for the cluster's
    /// Active key, and only when this keyring lists it.
    #[arg(long = "keyring", value_name = "FILE")]
    pub keyrings: Vec<PathBuf>,
    /// Also remove wrappings for the cluster's other keys (DecryptOnly, Retired: any key id of
    /// the committed keyring but the Active one) from envelopes wrapped to the Active key.
    /// Recovery recipients' wrappings are always kept.
    #[arg(long)]
    pub drop_old: bool,
}

#[derive(Debug, Args)]
pub struct KeysBackupArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Admin age recipient to encrypt the backup to (repeatable, required).
    #[arg(short, long = "recipient", value_name = "AGE1…", required = true)]
    pub recipients: Vec<String>,
    /// Backup file (written 0600, atomically).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// The controller's namespace (where key Secrets live).
    #[arg(long, default_value = "gitseal-system")]
    pub namespace: String,
}

#[derive(Debug, Args)]
pub struct KeysRestoreArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Backup file written by `gitseal keys backup`.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Admin age identity file (repeatable).
    #[arg(short, long = "identity", value_name = "FILE", required = true)]
    pub identities: Vec<PathBuf>,
    /// The cluster's committed keyring (repeatable): only keys whose key id it lists are
    /// restored. Required unless --trust-bundle.
    #[arg(
        long = "keyring",
        value_name = "FILE",
        required_unless_present = "trust_bundle"
    )]
    pub keyrings: Vec<PathBuf>,
    /// Restore keys the committed keyring does not list (the bundle's origin is trusted; its
    /// entries are still checked).
    #[arg(long)]
    pub trust_bundle: bool,
    /// The controller's namespace (where key Secrets live).
    #[arg(long, default_value = "gitseal-system")]
    pub namespace: String,
}

#[derive(Debug, Args)]
pub struct KeysRetireArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// SealingKey name (see `gitseal keys list`).
    pub name: String,
    /// Retire even while SealedSecrets still use the key (they stop unsealing).
    #[arg(long)]
    pub force: bool,
    /// How long to wait for the controller's verdict (exit 5 when none comes).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
    /// Request the retirement and return without waiting for the verdict.
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Debug, Args)]
pub struct KeysFetchArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Write to FILE atomically instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Name recorded in the keyring (default: the kubeconfig context).
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct KeysListArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// Log line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ControllerArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Namespace of the key Secrets and the leader Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "gitseal-system")]
    pub namespace: String,
    /// Reconcile SealedSecrets only in this namespace (repeatable; default: all).
    #[arg(long = "watch-namespace", value_name = "NS")]
    pub watch_namespaces: Vec<String>,
    /// Create a new Active key when the current one is this old (e.g. 30d, 12h; 0 = never).
    #[arg(long, default_value = "30d", value_parser = parse_duration)]
    pub key_renew_interval: std::time::Duration,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub metrics_addr: std::net::SocketAddr,
    /// Elect a leader with a Lease (only the leader writes).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// How long a leader's lease lasts without renewal.
    #[arg(long, default_value = "15s", value_parser = parse_lease_duration)]
    pub lease_duration: std::time::Duration,
    /// SealedSecrets reconciled at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: u16,
    /// Log format.
    #[arg(long, value_enum, default_value_t)]
    pub log_format: LogFormat,
    /// This replica's name in the Lease and Events.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Take over an existing Secret whose controlling owner is another controller's object,
    /// replacing its owner reference in one write (repeatable; default: none). Only
    /// `sealed-secrets`: a Secret controlled by a Bitnami `SealedSecret` (bitnami.com) of
    /// the same name and namespace. For a migration; turn it off afterwards
    /// (docs/takeover.md).
    #[arg(long = "take-over-from", value_name = "CONTROLLER", value_enum)]
    pub take_over_from: Vec<TakeOverFrom>,
    /// Take over (see --take-over-from) only in this namespace (repeatable; default: every
    /// namespace the controller writes to).
    #[arg(
        long = "take-over-namespace",
        value_name = "NS",
        requires = "take_over_from"
    )]
    pub take_over_namespaces: Vec<String>,
}

/// Controllers whose Secrets `--take-over-from` may take over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TakeOverFrom {
    /// Bitnami Sealed Secrets (`bitnami.com/v1alpha1` SealedSecret of the same name).
    SealedSecrets,
}

/// The template policy: what a SealedSecret may make the controller write (docs/security.md).
/// Defaults refuse Secret types, label/annotation keys and namespaces that other components
/// trust; these flags widen or narrow them. Key Secrets' type and `gitseal.dev/` keys are
/// never allowed.
#[derive(Debug, Args, Default)]
pub struct PolicyArgs {
    /// Allow this Secret type although the defaults deny it (repeatable).
    #[arg(long = "allow-secret-type", value_name = "TYPE")]
    pub allow_secret_types: Vec<String>,
    /// Deny this Secret type as well (repeatable).
    #[arg(long = "deny-secret-type", value_name = "TYPE")]
    pub deny_secret_types: Vec<String>,
    /// Allow this label/annotation key or rule (`prefix/` for a whole prefix) although the
    /// defaults deny it (repeatable).
    #[arg(long = "allow-template-key", value_name = "KEY")]
    pub allow_template_keys: Vec<String>,
    /// Deny this label/annotation key, `prefix/` or `*.domain/` as well (repeatable).
    #[arg(long = "deny-template-key", value_name = "KEY")]
    pub deny_template_keys: Vec<String>,
    /// Write Secrets into this namespace although the defaults deny it (kube-system,
    /// kube-public, kube-node-lease and the controller's own) (repeatable).
    #[arg(long = "allow-namespace", value_name = "NS")]
    pub allow_namespaces: Vec<String>,
    /// Write no Secret into this namespace (repeatable).
    #[arg(long = "deny-namespace", value_name = "NS")]
    pub deny_namespaces: Vec<String>,
}

/// Longest duration a flag takes (a key renewal interval beyond this is "never": use 0).
const MAX_DURATION_DAYS: i64 = 3650;

/// `30d`, `12h`, `15m`, `10s`, `500ms`, combinations (`1h30m`), ISO 8601 (`P30D`) or plain
/// seconds, parsed by jiff; days are 24 hours; at most [`MAX_DURATION_DAYS`] days. Anything
/// else (overflow included) is a usage error.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let text = s.trim();
    let hint = "use e.g. 30d, 12h, 15m, 10s or 500ms";
    let span: jiff::Span = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        format!("{text}s").parse()
    } else {
        text.parse()
    }
    .map_err(|e| format!("invalid duration {s:?} ({e}): {hint}"))?;
    let signed = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .map_err(|e| format!("invalid duration {s:?} ({e}): {hint}"))?;
    if signed > jiff::SignedDuration::from_hours(24 * MAX_DURATION_DAYS) {
        return Err(format!(
            "duration {s:?} is longer than {MAX_DURATION_DAYS}d (for a key that never renews, use 0)"
        ));
    }
    std::time::Duration::try_from(signed)
        .map_err(|_| format!("invalid duration {s:?}: it is negative"))
}

/// A lease duration: at least 2 s (renewals come every fifth of it), whole seconds (the
/// Lease stores seconds).
fn parse_lease_duration(s: &str) -> Result<std::time::Duration, String> {
    let d = parse_duration(s)?;
    if d < std::time::Duration::from_secs(2) || d.subsec_nanos() != 0 {
        return Err(format!(
            "lease duration {s:?} must be whole seconds, at least 2s (e.g. 15s)"
        ));
    }
    Ok(d)
}

fn parse_scope(s: &str) -> Result<crate::format::Scope, String> {
    s.parse()
}

/// A command's failure: a message for stderr and an exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn input(message: impl Into<String>) -> Self {
        Self {
            code: exit::INPUT,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            code: exit::USAGE,
            message: message.into(),
        }
    }
}

impl From<ManifestError> for Failure {
    fn from(e: ManifestError) -> Self {
        let code = match e.kind {
            ErrorKind::Input => exit::INPUT,
            ErrorKind::KeyNotFound | ErrorKind::BindingMismatch | ErrorKind::Tampered => {
                exit::DECRYPT
            }
        };
        Self {
            code,
            message: e.to_string(),
        }
    }
}

type CmdResult = Result<u8, Failure>;

/// Parse the command line, run the command, print a failure: what `main` does.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

pub fn run(cli: Cli) -> CmdResult {
    match cli.command {
        Command::Keygen(args) => keygen::run(args),
        Command::Seal(args) => seal::run(args),
        Command::Unseal(args) => unseal::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Controller(args) => controller::run(args),
        Command::Keys(KeysCommand::Fetch(args)) => keys::fetch(args),
        Command::Keys(KeysCommand::List(args)) => keys::list(args),
        Command::Keys(KeysCommand::Backup(args)) => backup::backup(args),
        Command::Keys(KeysCommand::Restore(args)) => backup::restore(args),
        Command::Keys(KeysCommand::Retire(args)) => keys::retire(args),
        Command::Rotate(args) => keys::rotate(args),
        Command::Import(ImportCommand::SealedSecrets(args)) => import::sealed_secrets(args),
        Command::Reseal(args) => reseal::run(args),
        Command::Import(ImportCommand::Sops(args)) => import::sops(args),
        Command::Crds { admission_policy } => {
            print!(
                "{}",
                if admission_policy {
                    crate::api::admission::policy_yaml()
                } else {
                    crate::api::crds_yaml()
                }
            );
            Ok(exit::OK)
        }
        Command::Completions { shell } => completions::run(shell),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_parse_and_overflow_is_an_error() {
        for (text, secs) in [
            ("30d", 30 * 86400),
            ("12h", 12 * 3600),
            ("15m", 900),
            ("10s", 10),
            ("45", 45),
            ("0", 0),
            ("1h30m", 5400),
            ("P30D", 30 * 86400),
            ("3650d", 3650 * 86400),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(secs)),
                "{text}"
            );
        }
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        for bad in [
            "99999999999999d",
            "99999999999999999999",
            "18446744073709551616s",
            "3651d",
            "-5s",
            "5 fortnights",
            "",
            "1y",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad} parsed");
        }
    }
}
