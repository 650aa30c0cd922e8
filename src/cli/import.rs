//! `gitseal import`: other tools' encrypted Secret files into gitseal SealedSecrets. One
//! pipeline for every importer ([`run_import`]): each source is read and opened in memory by
//! the importer (values only ever in zeroizing types), sealed to the recipients `gitseal seal`
//! would use for its output path, and written only when every input succeeded.

use super::io::Source;
use super::output::{Plan, in_order};
use super::recipients::Recipients;
use super::unseal::read_identities;
use super::{CmdResult, Failure, ImportOutputArgs, ImportSealedSecretsArgs, ImportSopsArgs};
use crate::crypto::Identity;
use crate::format::Scope;
use crate::manifest::{SealOptions, SecretInput, is_sops_encrypted, parse_documents, seal};
use crate::migrate::bitnami::{BitnamiKey, is_bitnami, open_sealed, parse_keys};
use crate::migrate::sops;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// How an importer opens one source: its text (in a zeroizing buffer) into the Secrets it
/// stands for. `Ok(vec![])`: the source holds nothing of this importer's format.
pub(super) type Opener<'a> = dyn Fn(&Source, &str) -> Result<Vec<SecretInput>, Failure> + Sync + 'a;

/// Import `inputs` (files, directories, `-`; none: stdin) with `open`, writing as `out`
/// says. A source that holds nothing of the format (`what`, e.g. "Bitnami SealedSecret") is
/// skipped and listed on stderr when it was found in a directory, refused (exit 3) when it
/// was named. Each Secret keeps the scope the importer gives it (`SecretInput::scope`);
/// empty Secrets are allowed (the other tool had them).
pub(super) fn run_import(
    out: &ImportOutputArgs,
    inputs: &[String],
    what: &str,
    open: &Opener<'_>,
) -> CmdResult {
    let mut recipients = Recipients::load(&out.recipients)?;
    let plan = Plan::new(inputs, &out.out, out.in_place)?;
    let opened = in_order(&plan.sources, |src| {
        let text = src.read()?;
        let secrets = open(src, &text)?;
        if secrets.is_empty() && src.root.is_none() {
            return Err(Failure::input(format!("{}: no {what} in it", src.name())));
        }
        Ok(secrets)
    })?;
    let skipped: Vec<String> = plan
        .sources
        .iter()
        .zip(&opened)
        .filter(|(_, secrets)| secrets.is_empty())
        .map(|(src, _)| src.name())
        .collect();
    if skipped.len() == plan.sources.len() {
        return Err(Failure::input(format!("no {what} in {}", inputs.join(" "))));
    }
    let resolved = plan.resolve(&mut recipients, |i| !opened[i].is_empty())?;
    let jobs: Vec<_> = opened.iter().zip(&resolved).collect();
    let sealed = in_order(&jobs, |(secrets, resolved)| {
        let Some(resolved) = resolved else {
            return Ok(Vec::new());
        };
        let opts = SealOptions {
            recipients: &resolved.recipients,
            scope: None,
            default_scope: resolved.scope.unwrap_or(Scope::Strict),
            namespace: out.out.namespace.as_deref(),
            allow_empty: true,
        };
        secrets
            .iter()
            .map(|secret| Ok(seal(secret, &opts)?))
            .collect()
    })?;
    for name in &skipped {
        eprintln!("skipped {name}: no {what} in it");
    }
    plan.write(&sealed, "imported")
}

/// `gitseal import sealed-secrets`. A file holding Bitnami SealedSecrets and other documents
/// is refused (exit 3): rewriting it would drop or reformat the others; so is a `List` of
/// them (a directory must not skip one as holding none).
pub fn sealed_secrets(args: ImportSealedSecretsArgs) -> CmdResult {
    let keys = read_keys(&args.keys)?;
    let namespace = args.out.out.namespace.as_deref();
    let open = |src: &Source, text: &str| -> Result<Vec<SecretInput>, Failure> {
        let docs = parse_documents(&src.name(), text)?;
        // `kubectl get sealedsecrets -o yaml` prints a List: never skip one as "none here".
        if let Some(list) = docs.iter().find(|d| lists_bitnami(&d.value)) {
            return Err(Failure::input(format!(
                "{}:items: a List of Bitnami SealedSecrets: give each its own document, then import",
                list.at
            )));
        }
        if !docs.iter().any(|d| is_bitnami(&d.value)) {
            return Ok(Vec::new());
        }
        if let Some(other) = docs.iter().find(|d| !is_bitnami(&d.value)) {
            return Err(Failure::input(format!(
                "{}: not a Bitnami SealedSecret, in a file of Bitnami SealedSecrets: move it to \
                 a file of its own, then import",
                other.at
            )));
        }
        docs.iter()
            .map(|doc| Ok(open_sealed(doc, &keys, namespace)?))
            .collect()
    };
    run_import(&args.out, &args.inputs, "Bitnami SealedSecret", &open)
}

/// `gitseal import sops`. Every value and the MAC are checked as sops checks them
/// (`migrate::sops`). In a directory, files that are not SOPS files at all are skipped; a
/// SOPS file that is not a Secret (dotenv, ini, binary, a ConfigMap) is refused, saying what
/// it is.
pub fn sops(args: ImportSopsArgs) -> CmdResult {
    let identities = sops_identities(&args.identities)?;
    let held: Vec<&Identity> = identities.iter().collect();
    let open = |src: &Source, text: &str| -> Result<Vec<SecretInput>, Failure> {
        if src.root.is_some()
            && parse_documents(&src.name(), text)
                .is_ok_and(|docs| !docs.iter().any(|d| is_sops_encrypted(&d.value)))
        {
            return Ok(Vec::new());
        }
        Ok(sops::open(&src.name(), text, &held)?)
    };
    run_import(&args.out, &args.inputs, "SOPS-encrypted Secret", &open)
}

/// The identities sops would use: `-i` files, `SOPS_AGE_KEY_FILE`, `SOPS_AGE_KEY`, and sops'
/// default key file (`$XDG_CONFIG_HOME/sops/age/keys.txt`, else `~/.config/sops/age/keys.txt`)
/// when it exists.
fn sops_identities(files: &[PathBuf]) -> Result<Vec<Identity>, Failure> {
    let mut paths = files.to_vec();
    if let Some(file) = std::env::var_os("SOPS_AGE_KEY_FILE").filter(|f| !f.is_empty()) {
        paths.push(file.into());
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
    if let Some(default) = config.map(|c| c.join("sops/age/keys.txt"))
        && default.is_file()
    {
        paths.push(default);
    }
    let mut out = read_identities(&paths)?;
    if let Some(text) = std::env::var_os("SOPS_AGE_KEY").filter(|k| !k.is_empty()) {
        let text = Zeroizing::new(text.to_string_lossy().into_owned());
        out.extend(
            Identity::parse_file(&text)
                .map_err(|e| Failure::input(format!("SOPS_AGE_KEY: {e}")))?,
        );
    }
    if out.is_empty() {
        return Err(Failure::usage(
            "no age identity: give -i FILE, or set SOPS_AGE_KEY_FILE or SOPS_AGE_KEY as for sops",
        ));
    }
    Ok(out)
}

/// Whether a document is a `List` holding a Bitnami SealedSecret.
fn lists_bitnami(doc: &serde_json::Value) -> bool {
    doc.get("kind").and_then(serde_json::Value::as_str) == Some("List")
        && doc
            .get("items")
            .and_then(serde_json::Value::as_array)
            .is_some_and(|items| items.iter().any(is_bitnami))
}

/// Every key of the `--keys` files.
fn read_keys(paths: &[std::path::PathBuf]) -> Result<Vec<BitnamiKey>, Failure> {
    let mut keys = Vec::new();
    for path in paths {
        let name = path.display().to_string();
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| Failure::input(format!("{name}: cannot read keys: {e}")))?,
        );
        keys.extend(parse_keys(&name, &text)?);
    }
    Ok(keys)
}
