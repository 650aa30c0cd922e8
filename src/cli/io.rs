//! Files in and out: expanding paths into manifest files, reading them (or stdin) into
//! zeroizing buffers, and atomic writes (temp file in the same directory, then rename), so a
//! failed command never leaves a half-written file.

use super::Failure;
use crate::manifest::{Location, MAX_INPUT_LEN, ManifestError};
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
            walk(&path, &mut files).map_err(|e| Failure::input(format!("{arg}: {e}")))?;
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

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(&path, out)?;
        } else if is_manifest(&path) {
            out.push(path);
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
    let staged: Vec<_> = par_map(files.len(), stage)
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

/// `f(0..n)` on every core (one thread when `n` is small), results in index order.
pub fn par_map<R: Send>(n: usize, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    const MIN_PER_THREAD: usize = 8;
    // Asking for the core count reads cgroup files: a sizeable part of sealing one file.
    let threads = if n < 2 * MIN_PER_THREAD {
        1
    } else {
        std::thread::available_parallelism()
            .map_or(1, |t| t.get())
            .min(n / MIN_PER_THREAD)
    };
    if threads == 1 {
        return (0..n).map(f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut out: Vec<(usize, R)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= n {
                            return done;
                        }
                        done.push((i, f(i)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("worker panicked"))
            .collect()
    });
    out.sort_unstable_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

/// Mode of files that hold only public or encrypted data.
pub const PUBLIC_MODE: u32 = 0o644;
/// Mode of files that hold key material or plain text.
pub const PRIVATE_MODE: u32 = 0o600;
