//! `gitseal import sops`: SOPS-encrypted Secret manifests into SealedSecrets. Each file is
//! decrypted in memory by `migrate::sops` (every value and the MAC checked as sops checks
//! them) and sealed through `gitseal seal`'s pipeline: recipients as `seal` resolves them,
//! stdout, `-w FILE`, `-w DIR` mirrored, or `--in-place`; nothing is written unless every
//! input imported. Plain text never touches the disk.

use super::io::Source;
use super::recipients::Recipients;
use super::seal::seal_sources;
use super::unseal::read_identities;
use super::{CmdResult, Failure, ImportSopsArgs, SealArgs};
use crate::crypto::Identity;
use crate::manifest::SecretInput;
use crate::migrate::sops;
use std::path::PathBuf;
use zeroize::Zeroizing;

pub fn run(args: ImportSopsArgs) -> CmdResult {
    let identities = identities(&args.identities)?;
    let held: Vec<&Identity> = identities.iter().collect();
    let open = |src: &Source, text: &str| -> Result<Vec<SecretInput>, Failure> {
        Ok(sops::open(&src.name(), text, &held)?)
    };
    let in_place = args.in_place;
    let seal_args = SealArgs {
        inputs: args.inputs,
        recipients: args.recipients,
        write: args.write,
        output: args.output,
        namespace: None,
        scope: None,
        merge_into: None,
        from_literal: Vec::new(),
        from_file: Vec::new(),
        generate: Vec::new(),
        name: None,
        type_: None,
        allow_empty: true,
    };
    let recipients = Recipients::load(&seal_args.recipients)?;
    seal_sources(&seal_args, recipients, &open, in_place)
}

/// The identities sops would use: `-i` files, `SOPS_AGE_KEY_FILE`, `SOPS_AGE_KEY`, and sops'
/// default key file (`$XDG_CONFIG_HOME/sops/age/keys.txt`, else `~/.config/sops/age/keys.txt`)
/// when it exists.
fn identities(files: &[PathBuf]) -> Result<Vec<Identity>, Failure> {
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
