//! `gitseal seal`: Secret manifests (files, directories, stdin, or `--from-*` flags) into
//! SealedSecrets on stdout, into a file or mirrored directory, or merged into an existing
//! SealedSecret file. Everything is sealed in memory first; files are written only when all
//! inputs succeeded, each atomically.

use super::io::{PUBLIC_MODE, Source, expand, write_atomic};
use super::output::{Plan, in_order, write_stream};
use super::recipients::{Recipients, none_configured};
use super::{CmdResult, Failure, SealArgs, exit};
use crate::api::SealedSecret;
use crate::crypto::Plaintext;
use crate::format::{MAX_VALUE_LEN, Scope};
use crate::manifest::{
    Format, Location, Resolved, SealOptions, SecretInput, check_key, emit_sealed, merge_into,
    parse_documents, parse_sealed, parse_secret, seal,
};
use rand::Rng;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const DEFAULT_GENERATE_LEN: usize = 32;

pub fn run(args: SealArgs) -> CmdResult {
    let from_flags =
        !(args.from_literal.is_empty() && args.from_file.is_empty() && args.generate.is_empty());
    if from_flags && !args.inputs.is_empty() {
        return Err(Failure::usage(
            "give either manifest files or --from-literal/--from-file/--generate, not both",
        ));
    }
    let recipients = Recipients::load(&args.recipients)?;
    if let Some(file) = args.merge_into.clone() {
        return merge(&args, &file, recipients, from_flags);
    }
    if from_flags {
        let name = args
            .name
            .clone()
            .ok_or_else(|| Failure::usage("--from-* flags need --name NAME"))?;
        return seal_flags(&args, name, recipients);
    }
    seal_sources(&args, recipients)
}

fn options<'a>(args: &'a SealArgs, resolved: &'a crate::manifest::Resolved) -> SealOptions<'a> {
    SealOptions {
        recipients: &resolved.recipients,
        scope: args.scope,
        default_scope: resolved.scope.unwrap_or(Scope::Strict),
        namespace: args.out.namespace.as_deref(),
        allow_empty: args.allow_empty,
    }
}

/// Seal every Secret of one source to `resolved`.
fn seal_source(
    args: &SealArgs,
    src: &Source,
    resolved: &Resolved,
) -> Result<Vec<SealedSecret>, Failure> {
    let name = src.name();
    let text = src.read()?;
    let docs = parse_documents(&name, &text)?;
    if docs.is_empty() {
        return Err(Failure::input(format!("{name}: no documents")));
    }
    let opts = options(args, resolved);
    docs.iter()
        .map(|doc| Ok(seal(&parse_secret(doc)?, &opts)?))
        .collect()
}

/// Seal every source on every core, each to the recipients of its rule path
/// ([`Plan::rule_path`]); the first failure in input order wins.
fn seal_sources(args: &SealArgs, mut recipients: Recipients) -> CmdResult {
    let plan = Plan::new(&args.inputs, &args.out, false)?;
    let resolved = plan.resolve(&mut recipients, |_| true)?;
    let jobs: Vec<_> = plan.sources.iter().zip(&resolved).collect();
    let sealed = in_order(&jobs, |(src, resolved)| {
        seal_source(args, src, resolved.as_ref().expect("every source resolved"))
    })?;
    plan.write(&sealed, "sealed")
}

fn emit(args: &SealArgs, sealed: &[SealedSecret]) -> CmdResult {
    write_stream(args.out.write.as_deref(), sealed, args.out.output.into())
}

fn seal_flags(args: &SealArgs, name: String, mut recipients: Recipients) -> CmdResult {
    let input = flag_input(args, name)?;
    let resolved = recipients
        .for_path(args.out.write.as_deref())?
        .ok_or_else(|| none_configured("--from-* flags"))?;
    let sealed = seal(&input, &options(args, &resolved))?;
    emit(args, &[sealed])
}

/// A Secret built from `--from-literal`, `--from-file` and `--generate`.
fn flag_input(args: &SealArgs, name: String) -> Result<SecretInput, Failure> {
    let at = Location::new("<flags>", 1);
    let mut data = BTreeMap::new();
    let mut add = |flag: &str, key: &str, value: Plaintext| -> Result<(), Failure> {
        check_key(key, &at.field(format!("{flag} {key}")))?;
        if value.len() > MAX_VALUE_LEN {
            return Err(Failure::input(format!(
                "{flag} {key}: value is {} bytes, over the 1 MiB limit",
                value.len()
            )));
        }
        if data.insert(key.to_string(), value).is_some() {
            return Err(Failure::usage(format!("{flag} {key}: key given twice")));
        }
        Ok(())
    };
    for lit in &args.from_literal {
        let (k, v) = lit
            .split_once('=')
            .ok_or_else(|| Failure::usage(format!("--from-literal {lit}: expected KEY=VALUE")))?;
        add("--from-literal", k, Plaintext::new(v.as_bytes().to_vec()))?;
    }
    for spec in &args.from_file {
        let (k, path) = match spec.split_once('=') {
            Some((k, p)) => (k.to_string(), PathBuf::from(p)),
            None => {
                let p = PathBuf::from(spec);
                (
                    p.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    p,
                )
            }
        };
        let bytes =
            std::fs::read(&path).map_err(|e| Failure::input(format!("--from-file {spec}: {e}")))?;
        add("--from-file", &k, Plaintext::new(bytes))?;
    }
    for spec in &args.generate {
        let (k, len) = match spec.split_once('=') {
            None => (spec.as_str(), DEFAULT_GENERATE_LEN),
            Some((k, n)) => match n.parse::<usize>() {
                Ok(n) if (1..=4096).contains(&n) => (k, n),
                _ => {
                    return Err(Failure::usage(format!(
                        "--generate {spec}: LEN must be 1..4096"
                    )));
                }
            },
        };
        let value: Vec<u8> = rand::rngs::OsRng
            .sample_iter(rand::distributions::Alphanumeric)
            .take(len)
            .collect();
        add("--generate", k, Plaintext::new(value))?;
    }
    Ok(SecretInput {
        at,
        name,
        namespace: args.out.namespace.clone(),
        data,
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        type_: args.type_.clone(),
        immutable: None,
        scope: None,
        template_data: BTreeMap::new(),
    })
}

/// `--merge-into FILE`: seal the given keys into one SealedSecret of FILE.
fn merge(args: &SealArgs, file: &Path, mut recipients: Recipients, from_flags: bool) -> CmdResult {
    let name = file.display().to_string();
    let source = Source {
        path: Some(file.to_path_buf()),
        root: None,
    };
    let text = source.read()?;
    let docs = parse_documents(&name, &text)?;
    let mut objects = docs
        .iter()
        .map(parse_sealed)
        .collect::<Result<Vec<_>, _>>()?;
    let before = emit_sealed(&objects, Format::sniff(&text));

    let input = if from_flags {
        let wanted = match (&args.name, objects.as_slice()) {
            (Some(n), _) => n.clone(),
            (None, [one]) => one.metadata.name.clone().unwrap_or_default(),
            (None, _) => {
                return Err(Failure::usage(format!(
                    "{name} holds several SealedSecrets: pick one with --name"
                )));
            }
        };
        flag_input(args, wanted)?
    } else {
        let inputs = if args.inputs.is_empty() {
            vec!["-".to_string()]
        } else {
            args.inputs.clone()
        };
        let sources = expand(&inputs)?;
        let [src] = sources.as_slice() else {
            return Err(Failure::usage("--merge-into takes one Secret manifest"));
        };
        let text = src.read()?;
        let docs = parse_documents(&src.name(), &text)?;
        let [doc] = docs.as_slice() else {
            return Err(Failure::input(format!(
                "{}: --merge-into takes exactly one Secret document",
                src.name()
            )));
        };
        parse_secret(doc)?
    };
    let index = objects
        .iter()
        .position(|o| o.metadata.name.as_deref() == Some(input.name.as_str()))
        .ok_or_else(|| Failure::input(format!("{name}: no SealedSecret named {:?}", input.name)))?;
    let resolved = recipients
        .for_path(Some(file))?
        .ok_or_else(|| none_configured(&name))?;
    let outcome = merge_into(&mut objects[index], &input, &options(args, &resolved))?;
    let format = Format::sniff(&text);
    if before != *text {
        eprintln!(
            "note: {name} was not in gitseal's layout; rewritten in it (later merges keep unchanged lines)"
        );
    }
    write_atomic(file, emit_sealed(&objects, format).as_bytes(), PUBLIC_MODE)?;
    eprintln!(
        "{name}: added [{}], replaced [{}]{}",
        outcome.added.join(", "),
        outcome.replaced.join(", "),
        if outcome.dropped_envelopes.is_empty() {
            String::new()
        } else {
            format!(
                ", dropped {} unused envelope(s)",
                outcome.dropped_envelopes.len()
            )
        }
    );
    Ok(exit::OK)
}
