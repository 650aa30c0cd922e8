//! `gitseal unseal`: SealedSecrets back into Secrets, offline, with age identities. Output
//! holds plain text: it goes to stdout or to a 0600 file.

use super::io::{PRIVATE_MODE, Source, write_atomic};
use super::{CmdResult, Failure, UnsealArgs, exit};
use crate::crypto::Identity;
use crate::manifest::{emit_documents, parse_documents, parse_sealed};
use crate::unsealer::unseal;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// Read every identity of the given age identity files.
pub fn read_identities(paths: &[PathBuf]) -> Result<Vec<Identity>, Failure> {
    let mut out = Vec::new();
    for path in paths {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            Failure::input(format!("{}: cannot read identity: {e}", path.display()))
        })?);
        out.extend(
            Identity::parse_file(&text)
                .map_err(|e| Failure::input(format!("{}: {e}", path.display())))?,
        );
    }
    Ok(out)
}

pub fn run(args: UnsealArgs) -> CmdResult {
    let identities = read_identities(&args.identities)?;
    let source = if args.input == "-" {
        Source {
            path: None,
            root: None,
        }
    } else {
        Source {
            path: Some(args.input.clone().into()),
            root: None,
        }
    };
    let name = source.name();
    let text = source.read()?;
    let docs = parse_documents(&name, &text)?;
    if docs.is_empty() {
        return Err(Failure::input(format!("{name}: no documents")));
    }
    // The controller's own function, without the cluster's template policy: this writes
    // nothing into a cluster.
    let held: Vec<&Identity> = identities.iter().collect();
    let mut secrets = Vec::new();
    for doc in &docs {
        let sealed = parse_sealed(doc)?;
        let (secret, _) = unseal(&sealed, &held, None);
        secrets.push(secret.map_err(|f| f.at(&doc.at))?);
    }
    let out = Zeroizing::new(emit_documents(&secrets, args.output.into()));
    match &args.write {
        Some(path) => write_atomic(path, out.as_bytes(), PRIVATE_MODE)?,
        None => print!("{}", out.as_str()),
    }
    Ok(exit::OK)
}
