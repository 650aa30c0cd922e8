//! `.gitseal.yaml`, found upward from the working directory up to the Git root: path
//! patterns → keyrings, recovery recipients and default scope (first matching rule wins, like
//! `.sops.yaml`'s creation rules), and what `gitseal verify` leaves out. A file others could
//! have written (world-writable, or owned by another user) is ignored: it decides where
//! secrets are sealed to.

use super::keyring_file::KeyringFile;
use super::{Location, ManifestError, Result};
use crate::crypto::Recipient;
use crate::format::Scope;
use globset::{Glob, GlobMatcher};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// File name looked up from the working directory towards the root.
pub const CONFIG_FILE: &str = ".gitseal.yaml";

/// A parsed `.gitseal.yaml` and the directory it lives in (paths in it are relative to that).
#[derive(Debug)]
pub struct Config {
    pub dir: PathBuf,
    pub rules: Vec<Rule>,
    pub verify: VerifyConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    rules: Vec<RawRule>,
    #[serde(default)]
    verify: VerifyConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    path: Option<String>,
    #[serde(default)]
    keyrings: Vec<String>,
    #[serde(default)]
    recipients: Vec<String>,
    scope: Option<Scope>,
}

/// One rule: which files it covers and where they are sealed to.
#[derive(Debug)]
pub struct Rule {
    /// Glob over paths relative to the config's directory; `None` matches everything,
    /// standard input included.
    pub path: Option<GlobMatcher>,
    /// Keyring files (relative to the config's directory): seal to their Active keys.
    pub keyrings: Vec<PathBuf>,
    /// Extra recipients added to every seal (offline recovery keys).
    pub recipients: Vec<Recipient>,
    pub scope: Option<Scope>,
}

/// `verify:` settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyConfig {
    /// Globs of paths `gitseal verify` skips (relative to the config's directory).
    #[serde(default)]
    pub exclude: Vec<String>,
}

/// Recipients and known key ids a rule resolves to.
#[derive(Debug, Default)]
pub struct Resolved {
    pub recipients: Vec<Recipient>,
    /// Key ids an envelope may name: usable keyring keys plus recovery recipients.
    pub known_key_ids: BTreeSet<String>,
    pub scope: Option<Scope>,
}

/// What the lookup of `.gitseal.yaml` found: the config in use, and files it passed over
/// because others could have written them (the CLI warns about each).
#[derive(Debug, Default)]
pub struct Lookup {
    pub config: Option<Config>,
    /// `(file, why)` of every `.gitseal.yaml` ignored on the way.
    pub ignored: Vec<(PathBuf, String)>,
}

impl Config {
    /// The nearest trusted `.gitseal.yaml` at or above `start`, looking no higher than the
    /// Git root (the first directory with a `.git` entry). Files that are world-writable or
    /// owned by another user than the one running gitseal are skipped and reported.
    pub fn find(start: &Path) -> Result<Lookup> {
        use std::io::Read;
        let start = std::path::absolute(start).unwrap_or_else(|_| start.to_path_buf());
        let me = rustix::process::geteuid().as_raw();
        let mut lookup = Lookup::default();
        for dir in start.ancestors() {
            let path = dir.join(CONFIG_FILE);
            let name = path.display().to_string();
            let cannot = |e: std::io::Error| {
                ManifestError::input(Location::new(&name, 0), format!("cannot read: {e}"))
            };
            // Checked on the opened file itself, so what is read is what was checked.
            let opened = match std::fs::File::open(&path) {
                Ok(f) => Some(f),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(cannot(e)),
            };
            if let Some(mut file) = opened {
                let meta = file.metadata().map_err(cannot)?;
                if meta.is_file() {
                    if let Some(why) = untrusted(&meta, me) {
                        lookup.ignored.push((path.clone(), why));
                    } else {
                        let mut text = String::new();
                        file.read_to_string(&mut text).map_err(cannot)?;
                        lookup.config = Some(Config::parse(dir, &name, &text)?);
                        return Ok(lookup);
                    }
                }
            }
            if dir.join(".git").symlink_metadata().is_ok() {
                break;
            }
        }
        Ok(lookup)
    }

    pub fn parse(dir: &Path, file: &str, text: &str) -> Result<Config> {
        let raw: RawConfig = super::docs::parse_one(text, super::MAX_NODES)
            .map_err(|e| super::docs::parse_error(Location::new(file, 0), "config", &e))?;
        let at = Location::new(file, 1);
        let mut rules = Vec::new();
        for (i, r) in raw.rules.into_iter().enumerate() {
            let path = match r.path {
                None => None,
                Some(p) => Some(
                    Glob::new(&p)
                        .map_err(|e| {
                            ManifestError::input(
                                at.field(format!("rules[{i}].path")),
                                format!("invalid glob: {e}"),
                            )
                        })?
                        .compile_matcher(),
                ),
            };
            let recipients = r
                .recipients
                .iter()
                .enumerate()
                .map(|(j, s)| {
                    Recipient::parse(s).map_err(|e| {
                        ManifestError::input(
                            at.field(format!("rules[{i}].recipients[{j}]")),
                            e.to_string(),
                        )
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            if r.keyrings.is_empty() && recipients.is_empty() {
                return Err(ManifestError::input(
                    at.field(format!("rules[{i}]")),
                    "a rule needs keyrings or recipients",
                ));
            }
            rules.push(Rule {
                path,
                keyrings: r.keyrings.into_iter().map(PathBuf::from).collect(),
                recipients,
                scope: r.scope,
            });
        }
        for (i, g) in raw.verify.exclude.iter().enumerate() {
            Glob::new(g).map_err(|e| {
                ManifestError::input(
                    at.field(format!("verify.exclude[{i}]")),
                    format!("invalid glob: {e}"),
                )
            })?;
        }
        Ok(Config {
            dir: dir.to_path_buf(),
            rules,
            verify: raw.verify,
        })
    }

    /// `path` relative to the config's directory, when it lies below it.
    fn relative(&self, path: &Path) -> Option<PathBuf> {
        let abs = std::path::absolute(path).ok()?;
        abs.strip_prefix(&self.dir).ok().map(Path::to_path_buf)
    }

    /// Index of the first rule covering `path` (`None`: standard input, matched only by
    /// path-less rules).
    pub fn rule_index(&self, path: Option<&Path>) -> Option<usize> {
        let rel = path.and_then(|p| self.relative(p));
        self.rules.iter().position(|r| match (&r.path, &rel) {
            (None, _) => true,
            (Some(glob), Some(rel)) => glob.is_match(rel),
            (Some(_), None) => false,
        })
    }

    /// The first rule covering `path`.
    pub fn rule_for(&self, path: Option<&Path>) -> Option<&Rule> {
        self.rule_index(path).map(|i| &self.rules[i])
    }

    /// Whether `gitseal verify` skips `path`.
    pub fn excluded(&self, path: &Path) -> bool {
        let Some(rel) = self.relative(path) else {
            return false;
        };
        self.verify
            .exclude
            .iter()
            .filter_map(|g| Glob::new(g).ok())
            .any(|g| g.compile_matcher().is_match(&rel))
    }

    /// Read a rule's keyrings and collect its recipients.
    pub fn resolve(&self, rule: &Rule) -> Result<Resolved> {
        let mut out = Resolved {
            scope: rule.scope,
            ..Default::default()
        };
        for path in &rule.keyrings {
            let ring = read_keyring(&self.dir.join(path))?;
            let file = self.dir.join(path).display().to_string();
            out.recipients.extend(ring.active(&file)?);
            out.known_key_ids.extend(ring.usable_key_ids());
        }
        for r in &rule.recipients {
            out.known_key_ids.insert(r.key_id());
            out.recipients.push(r.clone());
        }
        Ok(out)
    }
}

/// Why a config file with metadata `meta` must not be trusted by user `me`, if so.
fn untrusted(meta: &std::fs::Metadata, me: u32) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    if meta.mode() & 0o002 != 0 {
        return Some(format!(
            "it is world-writable (mode {:o}): anyone could choose the recipients",
            meta.mode() & 0o7777
        ));
    }
    if meta.uid() != me {
        return Some(format!(
            "it is owned by uid {}, not by you (uid {me}): chown it, or seal with -r/--keyring",
            meta.uid()
        ));
    }
    None
}

/// Read and check a keyring file from disk.
pub fn read_keyring(path: &Path) -> Result<KeyringFile> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ManifestError::input(Location::new(&file, 0), format!("cannot read keyring: {e}"))
    })?;
    KeyringFile::parse(&file, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_matching_rule_wins_and_stdin_takes_pathless_rules() {
        let dir = tempfile::tempdir().unwrap();
        let r = crate::crypto::Identity::generate().recipient();
        let text = format!(
            "rules:\n  - path: 'clusters/prod/**'\n    recipients: [{r}]\n    scope: namespace\n  - recipients: [{r}]\nverify:\n  exclude: ['**/testdata/**']\n",
            r = r.as_str()
        );
        let cfg = Config::parse(dir.path(), ".gitseal.yaml", &text).unwrap();
        let prod = cfg
            .rule_for(Some(&dir.path().join("clusters/prod/a.yaml")))
            .unwrap();
        assert_eq!(prod.scope, Some(Scope::Namespace));
        let other = cfg
            .rule_for(Some(&dir.path().join("clusters/staging/a.yaml")))
            .unwrap();
        assert_eq!(other.scope, None);
        assert_eq!(cfg.rule_for(None).unwrap().scope, None);
        assert!(cfg.excluded(&dir.path().join("x/testdata/s.yaml")));
        assert!(!cfg.excluded(&dir.path().join("x/s.yaml")));
    }

    fn rule_text() -> String {
        let r = crate::crypto::Identity::generate().recipient();
        format!("rules:\n  - recipients: [{}]\n", r.as_str())
    }

    #[test]
    fn lookup_stops_at_the_git_root() {
        let root = tempfile::tempdir().unwrap();
        let repo = root.path().join("repo");
        let deep = repo.join("clusters/prod");
        std::fs::create_dir_all(&deep).unwrap();
        // Above the repository: never read from inside it.
        std::fs::write(root.path().join(CONFIG_FILE), rule_text()).unwrap();
        std::fs::create_dir(repo.join(".git")).unwrap();
        let found = Config::find(&deep).unwrap();
        assert!(found.config.is_none(), "{:?}", found.config.map(|c| c.dir));
        // Outside any repository the lookup goes on upwards.
        std::fs::remove_dir(repo.join(".git")).unwrap();
        let found = Config::find(&deep).unwrap();
        assert_eq!(found.config.unwrap().dir, root.path());
        // A worktree's `.git` file is a root too; the config in the root itself is found.
        std::fs::write(repo.join(".git"), "gitdir: /elsewhere\n").unwrap();
        assert!(Config::find(&deep).unwrap().config.is_none());
        std::fs::write(repo.join(CONFIG_FILE), rule_text()).unwrap();
        assert_eq!(Config::find(&deep).unwrap().config.unwrap().dir, repo);
    }

    #[test]
    fn world_writable_or_foreign_configs_are_ignored() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let repo = root.path().join("repo");
        let sub = repo.join("sub");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::create_dir(repo.join(".git")).unwrap();
        std::fs::write(repo.join(CONFIG_FILE), rule_text()).unwrap();
        let near = sub.join(CONFIG_FILE);
        std::fs::write(&near, rule_text()).unwrap();
        std::fs::set_permissions(&near, std::fs::Permissions::from_mode(0o666)).unwrap();
        let found = Config::find(&sub).unwrap();
        assert_eq!(
            found.config.unwrap().dir,
            repo,
            "the trusted one further up"
        );
        assert_eq!(found.ignored.len(), 1);
        assert_eq!(found.ignored[0].0, near);
        assert!(
            found.ignored[0].1.contains("world-writable"),
            "{:?}",
            found.ignored
        );

        std::fs::set_permissions(&near, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(Config::find(&sub).unwrap().config.unwrap().dir, sub);
        // Owned by someone else (we run as root in tests, so chown works; otherwise the
        // ownership rule is checked on its own below).
        if rustix::process::geteuid().is_root() {
            std::os::unix::fs::chown(&near, Some(4242), Some(4242)).unwrap();
            let found = Config::find(&sub).unwrap();
            assert_eq!(found.config.unwrap().dir, repo);
            assert!(
                found.ignored[0].1.contains("owned by uid 4242"),
                "{:?}",
                found.ignored
            );
        }
        let meta = std::fs::metadata(&near).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert!(untrusted(&meta, meta.uid()).is_none());
        assert!(
            untrusted(&meta, meta.uid() + 1)
                .unwrap()
                .contains("not by you")
        );
    }

    #[test]
    fn errors_name_the_field() {
        let err = Config::parse(
            Path::new("/"),
            ".gitseal.yaml",
            "rules:\n  - recipients: [nope]\n",
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with(".gitseal.yaml:1:rules[0].recipients[0]: invalid age recipient"),
            "{err}"
        );
        let err = Config::parse(
            Path::new("/"),
            ".gitseal.yaml",
            "rules:\n  - keyring: [x]\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }
}
