//! Where sealed manifests go, shared by `seal` and `import`: one stream (stdout or `-w FILE`),
//! a mirrored tree (`-w DIR` for an input directory) or every input rewritten in place; the
//! path `.gitseal.yaml` rules match for each input; the work run on every core in input order;
//! and the writes, all-or-nothing (every file staged before any is renamed into place).

use super::io::{PUBLIC_MODE, Source, expand, write_all_atomic, write_atomic};
use super::recipients::{Recipients, none_configured};
use super::{CmdResult, Failure, WriteArgs, exit};
use crate::api::SealedSecret;
use crate::manifest::{Format, Resolved, emit_sealed};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;

enum Layout {
    /// Everything into one stream: `-w FILE`, else stdout.
    Stream(Option<PathBuf>),
    /// One output file per input file below `-w DIR`.
    Mirror(PathBuf),
    /// Each input file rewritten.
    InPlace,
}

/// The inputs of a command and where each one's output goes.
pub(super) struct Plan {
    pub sources: Vec<Source>,
    layout: Layout,
    /// The output file of each source (mirrored or in place).
    files: Vec<Option<PathBuf>>,
    format: Format,
}

impl Plan {
    /// Expand `inputs` (none: stdin) and place their outputs.
    pub fn new(inputs: &[String], out: &WriteArgs, in_place: bool) -> Result<Self, Failure> {
        let inputs = if inputs.is_empty() {
            vec!["-".to_string()]
        } else {
            inputs.to_vec()
        };
        let sources = expand(&inputs)?;
        if sources.is_empty() {
            return Err(Failure::input(format!(
                "{}: no *.yaml, *.yml or *.json files",
                inputs.join(" ")
            )));
        }
        let format = out.output.into();
        let mirrored = out.write.is_some() && inputs.iter().any(|i| Path::new(i).is_dir());
        let (layout, files) = if in_place {
            let files = sources
                .iter()
                .map(|s| s.path.clone())
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| Failure::usage("--in-place rewrites files: stdin cannot be one"))?;
            (Layout::InPlace, files.into_iter().map(Some).collect())
        } else if mirrored {
            if inputs.len() != 1 {
                return Err(Failure::usage(
                    "-w DIR mirrors one input directory; give exactly one",
                ));
            }
            let dir = out.write.clone().expect("mirrored implies -w");
            let files = sources
                .iter()
                .map(|src| Some(dir.join(mirror_name(src, format))))
                .collect();
            (Layout::Mirror(dir), files)
        } else {
            (Layout::Stream(out.write.clone()), vec![None; sources.len()])
        };
        Ok(Self {
            sources,
            layout,
            files,
            format,
        })
    }

    /// The path `.gitseal.yaml` rules match for source `i`: where its output is written,
    /// else the input file (`None`: stdin to stdout).
    pub fn rule_path(&self, i: usize) -> Option<&Path> {
        match &self.layout {
            Layout::Stream(Some(file)) => Some(file),
            _ => self.files[i].as_deref().or(self.sources[i].path.as_deref()),
        }
    }

    /// The recipients of every source `wanted` says needs them (`None` for the others).
    pub fn resolve(
        &self,
        recipients: &mut Recipients,
        wanted: impl Fn(usize) -> bool,
    ) -> Result<Vec<Option<Arc<Resolved>>>, Failure> {
        (0..self.sources.len())
            .map(|i| {
                if !wanted(i) {
                    return Ok(None);
                }
                let resolved = recipients
                    .for_path(self.rule_path(i))?
                    .ok_or_else(|| none_configured(&self.sources[i].name()))?;
                Ok(Some(resolved))
            })
            .collect()
    }

    /// Write each source's SealedSecrets (`sealed[i]`; an empty list writes no file of its
    /// own). Nothing is written unless every file can be; `done` names the work on stderr.
    pub fn write(&self, sealed: &[Vec<SealedSecret>], done: &str) -> CmdResult {
        let dir = match &self.layout {
            Layout::Stream(file) => {
                let all: Vec<SealedSecret> = sealed.iter().flatten().cloned().collect();
                return write_stream(file.as_deref(), &all, self.format);
            }
            Layout::Mirror(dir) => Some(dir),
            Layout::InPlace => None,
        };
        let texts: Vec<(&Path, String)> = self
            .files
            .iter()
            .zip(sealed)
            .filter(|(_, objects)| !objects.is_empty())
            .map(|(file, objects)| {
                let path = file.as_deref().expect("a file per source");
                let format = match &self.layout {
                    Layout::InPlace => Format::of_path(path),
                    _ => self.format,
                };
                (path, emit_sealed(objects, format))
            })
            .collect();
        let files: Vec<_> = texts.iter().map(|(p, t)| (*p, t.as_bytes())).collect();
        write_all_atomic(&files, PUBLIC_MODE)?;
        match dir {
            Some(dir) => eprintln!("{done} {} files into {}", files.len(), dir.display()),
            None => eprintln!("{done} {} files in place", files.len()),
        }
        Ok(exit::OK)
    }
}

/// SealedSecrets into one file (atomically), or to stdout.
pub(super) fn write_stream(
    file: Option<&Path>,
    sealed: &[SealedSecret],
    format: Format,
) -> CmdResult {
    let text = emit_sealed(sealed, format);
    match file {
        Some(path) => write_atomic(path, text.as_bytes(), PUBLIC_MODE)?,
        None => print!("{text}"),
    }
    Ok(exit::OK)
}

/// Run `work` over `items` on every core. Every result is kept, then the first failure in
/// input order is returned: rayon's own `collect` into a `Result` would return whichever
/// failure some thread saw first, and errors must not depend on scheduling.
pub(super) fn in_order<T: Sync, R: Send>(
    items: &[T],
    work: impl Fn(&T) -> Result<R, Failure> + Sync + Send,
) -> Result<Vec<R>, Failure> {
    items
        .par_iter()
        .map(work)
        .collect::<Vec<_>>()
        .into_iter()
        .collect()
}

/// A mirrored output keeps the path relative to its input directory, with the extension of
/// the output format.
fn mirror_name(src: &Source, format: Format) -> PathBuf {
    let path = src.path.as_ref().expect("directory entries are files");
    let rel = path
        .strip_prefix(src.root.as_ref().expect("directory entry"))
        .unwrap_or(path);
    let ext = rel.extension().and_then(|e| e.to_str()).unwrap_or("yaml");
    match (format, ext) {
        (Format::Json, "json") | (Format::Yaml, "yaml" | "yml") => rel.to_path_buf(),
        (Format::Json, _) => rel.with_extension("json"),
        (Format::Yaml, _) => rel.with_extension("yaml"),
    }
}
