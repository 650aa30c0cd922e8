//! Files in and out: expanding paths into manifest files, reading them (or stdin) into
//! zeroizing buffers, and atomic writes (temp file in the same directory, then rename), so a
//! failed command never leaves a half-written file.

use super::Failure;
use crate::manifest::{Location, MAX_INPUT_LEN, ManifestError};
use rayon::prelude::*;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// A manifest source: a file (with the directory argument it was found under) or stdin.
#[derive(Clone, Debug)]
pub struct Source {
    /// `None` for standard input.
    pub path: Option<PathBuf>,
    /// The directory argument this file was found under, for mirrored output.
    pub root: Option<PathBuf>,
}

impl Source {
    /// How errors name this source.
    pub fn name(&self) -> String {
        self.path
            .as_ref()
            .map_or_else(|| "<stdin>".to_string(), |p| p.display().to_string())
    }

    /// The whole text, in a zeroizing buffer (it may hold plain text).
    pub fn read(&self) -> Result<Zeroizing<String>, Failure> {
        Ok(self.read_manifest()?)
    }

    /// [`Source::read`] as a located error; a source over [`MAX_INPUT_LEN`] is refused
    /// (`over_limit`) without being read past the limit.
    pub fn read_manifest(&self) -> Result<Zeroizing<String>, ManifestError> {
        let at = Location::new(self.name(), 0);
        let cannot =
            |e: std::io::Error| ManifestError::input(at.clone(), format!("cannot read: {e}"));
        let too_big = || {
            ManifestError::over_limit(
                at.clone(),
                format!(
                    "over the {} MiB limit of a manifest file",
                    MAX_INPUT_LEN >> 20
                ),
            )
        };
        let mut text = Zeroizing::new(String::new());
        let limit = MAX_INPUT_LEN as u64 + 1;
        match &self.path {
            None => std::io::stdin()
                .take(limit)
                .read_to_string(&mut text)
                .map_err(cannot)?,
            Some(p) => {
                let file = std::fs::File::open(p).map_err(cannot)?;
                let len = file.metadata().map_err(cannot)?.len();
                if len >= limit {
                    return Err(too_big());
                }
                text.reserve(len as usize);
                file.take(limit).read_to_string(&mut text).map_err(cannot)?
            }
        };
        if text.len() > MAX_INPUT_LEN {
            return Err(too_big());
        }
        Ok(text)
    }
}

/// Expand arguments (files, directories, `-`) into sources. Directories are walked
/// recursively in sorted order, taking `*.yaml`, `*.yml` and `*.json`, skipping hidden entries.
pub fn expand(args: &[String]) -> Result<Vec<Source>, Failure> {
    let mut out = Vec::new();
    for arg in args {
        if arg == "-" {
            out.push(Source {
                path: None,
                root: None,
            });
            continue;
        }
        let path = PathBuf::from(arg);
        let meta = std::fs::metadata(&path).map_err(|e| Failure::input(format!("{arg}: {e}")))?;
        if meta.is_dir() {
            let mut files = Vec::new();
            walk(&path, &mut files).map_err(Failure::input)?;
            out.extend(files.into_iter().map(|f| Source {
                path: Some(f),
                root: Some(path.clone()),
            }));
        } else {
            out.push(Source {
                path: Some(path),
                root: None,
            });
        }
    }
    Ok(out)
}

/// The manifest files under `dir`, depth first with every directory's entries sorted by
/// file name, skipping hidden entries (and all below a hidden directory; `dir` itself may be
/// hidden). Symbolic links are listed, not followed. An error names the path it is about.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let hidden =
        |e: &walkdir::DirEntry| e.depth() > 0 && e.file_name().as_encoded_bytes().starts_with(b".");
    for entry in walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| !hidden(e))
    {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(dir).display();
            match e.io_error() {
                Some(io) => format!("{path}: {io}"),
                None => format!("{path}: {e}"),
            }
        })?;
        if !entry.file_type().is_dir() && is_manifest(entry.path()) {
            out.push(entry.into_path());
        }
    }
    Ok(())
}

/// Whether a file name looks like a manifest.
pub fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// Write `bytes` to `path` atomically: a temp file next to it (mode `mode`), then rename.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Failure> {
    write_all_atomic(&[(path, bytes)], mode)
}

/// Write several files, each atomically: every temp file is written first, made durable
/// together (one `fsync`, or one `syncfs` for many files instead of an `fsync` each), and
/// only then renamed into place. A failure before the renames leaves no file touched.
pub fn write_all_atomic(files: &[(&Path, &[u8])], mode: u32) -> Result<(), Failure> {
    let fail = |path: &Path, e: std::io::Error| {
        Failure::input(format!("{}: cannot write: {e}", path.display()))
    };
    let stage = |i: usize| {
        let (path, bytes) = files[i];
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(dir).map_err(|e| fail(path, e))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".gitseal-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))
            .tempfile_in(dir)
            .map_err(|e| fail(path, e))?;
        tmp.write_all(bytes).map_err(|e| fail(path, e))?;
        Ok((path, tmp))
    };
    // On error every temp file made so far is removed as `staged` drops.
    let staged: Vec<_> = (0..files.len())
        .into_par_iter()
        .map(stage)
        .collect::<Vec<_>>()
        .into_iter()
        .collect::<Result<_, Failure>>()?;
    match staged.as_slice() {
        [] => {}
        [(path, tmp)] => tmp.as_file().sync_all().map_err(|e| fail(path, e))?,
        [(path, tmp), ..] => rustix::fs::syncfs(tmp.as_file()).map_err(|e| fail(path, e.into()))?,
    }
    for (path, tmp) in staged {
        tmp.persist(path).map_err(|e| fail(path, e.error))?;
    }
    Ok(())
}

/// Write `bytes` to a new file `path` (mode `mode`), never replacing anything there: the data
/// goes to a temp file next to it, which is then linked into place with the kernel refusing
/// an existing name (a file, directory or even a dangling symlink) — no check-then-rename
/// race. `Ok(false)` when `path` already exists.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<bool, Failure> {
    let fail = |e: std::io::Error| Failure::input(format!("{}: cannot write: {e}", path.display()));
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".gitseal-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))
        .tempfile_in(dir)
        .map_err(fail)?;
    tmp.write_all(bytes).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    match tmp.persist_noclobber(path) {
        Ok(_) => Ok(true),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(fail(e.error)),
    }
}

/// Mode of files that hold only public or encrypted data.
pub const PUBLIC_MODE: u32 = 0o644;
/// Mode of files that hold key material or plain text.
pub const PRIVATE_MODE: u32 = 0o600;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_sorts_skips_hidden_and_keeps_only_manifests() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join(".secrets"); // the root itself may be hidden
        for f in [
            "b.yaml",
            "a.yml",
            "A.yaml",
            "c.json",
            "notes.txt",
            ".hidden.yaml",
            ".git/x.yaml",
            "sub/z.yaml",
            "sub/.h/y.yaml",
            "sub/deeper/w.json",
        ] {
            let path = root.join(f);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, "x").unwrap();
        }
        // Links are listed, not followed: a link to a directory is not walked.
        std::os::unix::fs::symlink(root.join("sub"), root.join("link")).unwrap();
        std::os::unix::fs::symlink(root.join("b.yaml"), root.join("l.yaml")).unwrap();
        let mut out = Vec::new();
        walk(&root, &mut out).unwrap();
        let rel: Vec<_> = out
            .iter()
            .map(|p| p.strip_prefix(&root).unwrap().to_str().unwrap())
            .collect();
        assert_eq!(
            rel,
            [
                "A.yaml",
                "a.yml",
                "b.yaml",
                "c.json",
                "l.yaml",
                "sub/deeper/w.json",
                "sub/z.yaml"
            ]
        );
        let missing = tmp.path().join("gone");
        let err = walk(&missing, &mut out).unwrap_err();
        assert!(
            err.starts_with(&format!("{}: ", missing.display())),
            "{err}"
        );
        assert!(err.contains("No such file"), "{err}");
    }

    #[test]
    fn write_all_atomic_writes_every_file_or_none() {
        let tmp = tempfile::tempdir().unwrap();
        let names: Vec<PathBuf> = (0..40)
            .map(|i| tmp.path().join(format!("d{}/f{i:02}.yaml", i % 3)))
            .collect();
        let texts: Vec<String> = (0..40).map(|i| format!("file {i}\n")).collect();
        let files: Vec<(&Path, &[u8])> = names
            .iter()
            .zip(&texts)
            .map(|(p, t)| (p.as_path(), t.as_bytes()))
            .collect();
        write_all_atomic(&files, PUBLIC_MODE).unwrap();
        for (p, t) in names.iter().zip(&texts) {
            assert_eq!(&std::fs::read_to_string(p).unwrap(), t);
        }
        // One destination under a regular file: staging fails, nothing is renamed, and no
        // temp file is left behind.
        let blocked = tmp.path().join("d0/f00.yaml/x.yaml");
        let mut again = files.clone();
        again[0].1 = b"changed";
        again.push((blocked.as_path(), b"y"));
        let err = write_all_atomic(&again, PUBLIC_MODE).unwrap_err();
        assert!(err.message.contains("x.yaml"), "{}", err.message);
        assert_eq!(std::fs::read_to_string(&names[0]).unwrap(), texts[0]);
        for d in 0..3 {
            let stray = std::fs::read_dir(tmp.path().join(format!("d{d}")))
                .unwrap()
                .filter(|e| {
                    let e = e.as_ref().unwrap();
                    e.file_name().to_string_lossy().starts_with(".gitseal-")
                })
                .count();
            assert_eq!(stray, 0);
        }
    }
}
