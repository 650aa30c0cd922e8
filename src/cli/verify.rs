//! `gitseal verify`: the offline CI and pre-commit check of a manifest tree. Prints one
//! `file:document:field: message` line per problem and exits 1 if there is any; an input over
//! the limits (docs/format.md § Limits) stops it with exit 3, like any command's bad input.

use super::io::{Source, expand};
use super::recipients::Recipients;
use super::unseal::read_identities;
use super::{CmdResult, VerifyArgs, exit};
use crate::format::Opener;
use crate::manifest::{
    ManifestError, check_sealed, is_plain_secret_with_data, is_sealed, is_sops_encrypted,
    open_values, parse_documents, parse_sealed,
};

#[derive(Default)]
struct Tally {
    files: usize,
    sealed: usize,
    values_opened: usize,
    problems: Vec<String>,
    /// An input over the limits: verify stops there and exits 3 (input error).
    over_limit: Option<ManifestError>,
}

pub fn run(args: VerifyArgs) -> CmdResult {
    let mut recipients = Recipients::load(&args.recipients)?;
    let identities = read_identities(&args.identities)?;
    let mut opener = Opener::new(&identities);
    let paths: Vec<String> = if args.paths.is_empty() {
        vec![".".into()]
    } else {
        args.paths.iter().map(|p| p.display().to_string()).collect()
    };
    if matches!(recipients, Recipients::Nothing) {
        eprintln!(
            "warning: no --keyring, -r or .gitseal.yaml: recipients of envelopes are not checked"
        );
    }
    let mut tally = Tally::default();
    for src in expand(&paths)? {
        if let (Some(cfg), Some(path)) = (recipients.config(), &src.path)
            && cfg.excluded(path)
        {
            continue;
        }
        verify_file(
            &src,
            &mut recipients,
            &mut opener,
            !identities.is_empty(),
            &mut tally,
        );
        if tally.over_limit.is_some() {
            break;
        }
    }
    for line in &tally.problems {
        println!("{line}");
    }
    if let Some(e) = tally.over_limit {
        return Err(e.into());
    }
    eprintln!(
        "{} problem(s); checked {} file(s), {} SealedSecret(s){}",
        tally.problems.len(),
        tally.files,
        tally.sealed,
        if identities.is_empty() {
            String::new()
        } else {
            format!(", decrypted {} value(s)", tally.values_opened)
        }
    );
    Ok(if tally.problems.is_empty() {
        exit::OK
    } else {
        exit::PROBLEMS
    })
}

fn verify_file(
    src: &Source,
    recipients: &mut Recipients,
    opener: &mut Opener<'_>,
    decrypt: bool,
    tally: &mut Tally,
) {
    let name = src.name();
    tally.files += 1;
    let text = match src.read_manifest() {
        Ok(t) => t,
        Err(e) if e.over_limit => return tally.over_limit = Some(e),
        Err(e) => return tally.problems.push(e.to_string()),
    };
    let docs = match parse_documents(&name, &text) {
        Ok(d) => d,
        // Templates (Helm, Kustomize patches) need not be valid YAML; only manifests that
        // look like Secrets must parse (and stay within the limits).
        Err(e) if text.contains("Secret") && e.over_limit => return tally.over_limit = Some(e),
        Err(e) if text.contains("Secret") => return tally.problems.push(e.to_string()),
        Err(_) => return,
    };
    let mut report = |e: ManifestError| tally.problems.push(e.to_string());
    let known = if docs.iter().any(|d| is_sealed(&d.value)) {
        let has_config = recipients.config().is_some();
        match recipients.for_path(src.path.as_deref()) {
            Ok(Some(r)) => Some(r.known_key_ids.clone()),
            Ok(None) if has_config => {
                report(ManifestError::input(
                    crate::manifest::Location::new(&name, 0),
                    "no .gitseal.yaml rule covers this file",
                ));
                None
            }
            Ok(None) => None,
            Err(f) => {
                tally.problems.push(f.message);
                return;
            }
        }
    } else {
        None
    };
    for doc in &docs {
        if is_sealed(&doc.value) {
            tally.sealed += 1;
            let sealed = match parse_sealed(doc) {
                Ok(s) => s,
                Err(e) if e.over_limit => return tally.over_limit = Some(e),
                Err(e) => {
                    tally.problems.push(e.to_string());
                    continue;
                }
            };
            let mut problems = check_sealed(&sealed, &doc.at, known.as_ref());
            if let Some(i) = problems.iter().position(|p| p.over_limit) {
                tally.over_limit = Some(problems.swap_remove(i));
                return;
            }
            let clean = problems.is_empty();
            tally
                .problems
                .extend(problems.iter().map(ToString::to_string));
            if decrypt && clean {
                match open_values(&sealed, &doc.at, opener) {
                    Ok(values) => tally.values_opened += values.len(),
                    Err(e) => tally.problems.push(e.to_string()),
                }
            }
        } else if is_plain_secret_with_data(&doc.value) {
            let field = if doc.value.get("data").is_some() {
                "data"
            } else {
                "stringData"
            };
            // A SOPS file is not plain text, but nothing gitseal can check or the controller open.
            let what = if is_sops_encrypted(&doc.value) {
                "SOPS-encrypted Secret (gitseal can neither check it nor unseal it in the cluster)"
            } else {
                "plain Secret with data"
            };
            tally.problems.push(format!(
                "{}:{field}: {what}: seal it with `gitseal seal`, or exclude the path in .gitseal.yaml verify.exclude",
                doc.at
            ));
        }
    }
}
