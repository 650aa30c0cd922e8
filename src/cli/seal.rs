//! `gitseal seal`: Secret manifests (files, directories, stdin, or `--from-*` flags) into
//! SealedSecrets on stdout, into a file or mirrored directory, or merged into an existing
//! SealedSecret file. Everything is sealed in memory first; files are written only when all
//! inputs succeeded, each atomically.

use super::io::{PUBLIC_MODE, Source, expand, write_all_atomic, write_atomic};
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
use rayon::prelude::*;
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
    seal_sources(&args, recipients, &open_plain, false)
}

fn options<'a>(args: &'a SealArgs, resolved: &'a crate::manifest::Resolved) -> SealOptions<'a> {
    SealOptions {
        recipients: &resolved.recipients,
        scope: args.scope,
        default_scope: resolved.scope.unwrap_or(Scope::Strict),
        namespace: args.namespace.as_deref(),
        allow_empty: args.allow_empty,
    }
}

/// Reads one source (named, with its text) into the Secrets to seal: plain manifests for
/// `gitseal seal`, another tool's files for `gitseal import`.
pub(super) type Opener<'a> = dyn Fn(&Source, &str) -> Result<Vec<SecretInput>, Failure> + Sync + 'a;

/// `gitseal seal`'s opener: plain Secret manifests.
fn open_plain(src: &Source, text: &str) -> Result<Vec<SecretInput>, Failure> {
    let name = src.name();
    let docs = parse_documents(&name, text)?;
    if docs.is_empty() {
        return Err(Failure::input(format!("{name}: no documents")));
    }
    Ok(docs
        .iter()
        .map(parse_secret)
        .collect::<Result<Vec<_>, _>>()?)
}

/// Seal every Secret of one source to `resolved`.
fn seal_source(
    args: &SealArgs,
    src: &Source,
    resolved: &Resolved,
    open: &Opener<'_>,
) -> Result<Vec<SealedSecret>, Failure> {
    let text = src.read()?;
    let opts = options(args, resolved);
    open(src, &text)?
        .iter()
        .map(|input| Ok(seal(input, &opts)?))
        .collect()
}

/// Seal many sources on every core. `.gitseal.yaml` rules match each source's rule path:
/// where its sealed file will be written (`-w`), else the input file. Results come back in
/// order; the first failure in that order wins, so errors don't depend on scheduling.
fn seal_all(
    args: &SealArgs,
    jobs: &[(&Source, Option<&Path>)],
    recipients: &mut Recipients,
    open: &Opener<'_>,
) -> Result<Vec<Vec<SealedSecret>>, Failure> {
    let resolved = jobs
        .iter()
        .map(|(src, rule_path)| {
            recipients
                .for_path(*rule_path)?
                .ok_or_else(|| none_configured(&src.name()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Every result is kept, then the first failure in input order is returned: rayon's own
    // `collect` into a `Result` would return whichever failure some thread saw first.
    jobs.par_iter()
        .zip(&resolved)
        .map(|((src, _), resolved)| seal_source(args, src, resolved, open))
        .collect::<Vec<_>>()
        .into_iter()
        .collect()
}

/// Seal files, directories or stdin with `open`: to stdout, to `-w FILE`, mirrored into
/// `-w DIR`, or (`in_place`) each back over its own input file. Files are written only when
/// every input succeeded.
pub(super) fn seal_sources(
    args: &SealArgs,
    mut recipients: Recipients,
    open: &Opener<'_>,
    in_place: bool,
) -> CmdResult {
    let inputs = if args.inputs.is_empty() {
        vec!["-".to_string()]
    } else {
        args.inputs.clone()
    };
    let sources = expand(&inputs)?;
    let format = args.output.into();
    let mirrored = inputs.iter().any(|i| Path::new(i).is_dir()) && args.write.is_some();
    if mirrored && inputs.len() != 1 {
        return Err(Failure::usage(
            "-w DIR mirrors one input directory; give exactly one",
        ));
    }
    if sources.is_empty() {
        return Err(Failure::input(format!(
            "{}: no *.yaml, *.yml or *.json files",
            inputs.join(" ")
        )));
    }
    if in_place {
        if let Some(stdin) = sources.iter().find(|s| s.path.is_none()) {
            return Err(Failure::usage(format!(
                "--in-place rewrites files; {} is not one",
                stdin.name()
            )));
        }
        let jobs: Vec<_> = sources.iter().map(|s| (s, s.path.as_deref())).collect();
        // A file keeps its format: a `.json` file is rewritten as JSON whatever `-o` says.
        let texts: Vec<String> = seal_all(args, &jobs, &mut recipients, open)?
            .iter()
            .zip(&jobs)
            .map(|(sealed, (_, path))| {
                let json = path.and_then(Path::extension).is_some_and(|e| e == "json");
                emit_sealed(sealed, if json { Format::Json } else { format })
            })
            .collect();
        let files: Vec<_> = jobs
            .iter()
            .zip(&texts)
            .map(|((_, path), text)| (path.expect("checked above"), text.as_bytes()))
            .collect();
        write_all_atomic(&files, PUBLIC_MODE)?;
        eprintln!("sealed {} files in place", files.len());
        return Ok(exit::OK);
    }
    if mirrored {
        let out_dir = args.write.clone().expect("mirrored implies -w");
        let dests: Vec<PathBuf> = sources
            .iter()
            .map(|src| {
                let path = src.path.as_ref().expect("directory entries are files");
                let rel = path
                    .strip_prefix(src.root.as_ref().expect("directory entry"))
                    .unwrap_or(path);
                out_dir.join(output_name(rel, format))
            })
            .collect();
        let jobs: Vec<_> = sources
            .iter()
            .zip(&dests)
            .map(|(src, dest)| (src, Some(dest.as_path())))
            .collect();
        let texts: Vec<String> = seal_all(args, &jobs, &mut recipients, open)?
            .iter()
            .map(|sealed| emit_sealed(sealed, format))
            .collect();
        let files: Vec<_> = dests
            .iter()
            .zip(&texts)
            .map(|(path, text)| (path.as_path(), text.as_bytes()))
            .collect();
        write_all_atomic(&files, PUBLIC_MODE)?;
        eprintln!("sealed {} files into {}", files.len(), out_dir.display());
        return Ok(exit::OK);
    }
    let jobs: Vec<_> = sources
        .iter()
        .map(|src| (src, args.write.as_deref().or(src.path.as_deref())))
        .collect();
    let all: Vec<SealedSecret> = seal_all(args, &jobs, &mut recipients, open)?
        .into_iter()
        .flatten()
        .collect();
    emit(args, &all)
}

/// Mirrored output keeps the relative path, with the extension of the output format.
fn output_name(rel: &Path, format: Format) -> PathBuf {
    let ext = rel.extension().and_then(|e| e.to_str()).unwrap_or("yaml");
    match (format, ext) {
        (Format::Json, "json") | (Format::Yaml, "yaml" | "yml") => rel.to_path_buf(),
        (Format::Json, _) => rel.with_extension("json"),
        (Format::Yaml, _) => rel.with_extension("yaml"),
    }
}

fn emit(args: &SealArgs, sealed: &[SealedSecret]) -> CmdResult {
    let text = emit_sealed(sealed, args.output.into());
    match &args.write {
        Some(path) => write_atomic(path, text.as_bytes(), PUBLIC_MODE)?,
        None => print!("{text}"),
    }
    Ok(exit::OK)
}

fn seal_flags(args: &SealArgs, name: String, mut recipients: Recipients) -> CmdResult {
    let input = flag_input(args, name)?;
    let resolved = recipients
        .for_path(args.write.as_deref())?
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
        namespace: args.namespace.clone(),
        data,
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        type_: args.type_.clone(),
        immutable: None,
        scope: None,
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
