//! Who a file is sealed to: `-r` / `--keyring` flags, else the first matching rule of the
//! nearest trusted `.gitseal.yaml` below the Git root (resolved once per rule); configs
//! passed over as untrusted are warned about on stderr.

use super::{Failure, RecipientArgs};
use crate::crypto::Recipient;
use crate::manifest::{Config, Resolved, read_keyring};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

pub enum Recipients {
    /// From flags: the same for every file.
    Flags(Arc<Resolved>),
    /// From `.gitseal.yaml`, resolved lazily per rule.
    Config {
        config: Config,
        resolved: HashMap<usize, Arc<Resolved>>,
    },
    /// Neither flags nor a config file.
    Nothing,
}

impl Recipients {
    pub fn load(args: &RecipientArgs) -> Result<Self, Failure> {
        if args.recipients.is_empty() && args.keyrings.is_empty() {
            let cwd = std::env::current_dir()
                .map_err(|e| Failure::input(format!("cannot read the working directory: {e}")))?;
            let lookup = Config::find(&cwd)?;
            for (file, why) in &lookup.ignored {
                eprintln!("warning: ignoring {}: {why}", file.display());
            }
            return Ok(match lookup.config {
                Some(config) => Recipients::Config {
                    config,
                    resolved: HashMap::new(),
                },
                None => Recipients::Nothing,
            });
        }
        let mut out = Resolved::default();
        for text in &args.recipients {
            let r =
                Recipient::parse(text).map_err(|e| Failure::usage(format!("-r {text}: {e}")))?;
            out.known_key_ids.insert(r.key_id());
            out.recipients.push(r);
        }
        for path in &args.keyrings {
            let ring = read_keyring(path)?;
            out.recipients
                .extend(ring.active(&path.display().to_string())?);
            out.known_key_ids.extend(ring.usable_key_ids());
        }
        Ok(Recipients::Flags(Arc::new(out)))
    }

    /// The recipients for a file (`None`: stdin). `None` when nothing covers it.
    pub fn for_path(&mut self, path: Option<&Path>) -> Result<Option<Arc<Resolved>>, Failure> {
        match self {
            Recipients::Flags(r) => Ok(Some(r.clone())),
            Recipients::Nothing => Ok(None),
            Recipients::Config { config, resolved } => {
                let Some(i) = config.rule_index(path) else {
                    return Ok(None);
                };
                if let std::collections::hash_map::Entry::Vacant(slot) = resolved.entry(i) {
                    slot.insert(Arc::new(config.resolve(&config.rules[i])?));
                }
                Ok(resolved.get(&i).cloned())
            }
        }
    }

    pub fn config(&self) -> Option<&Config> {
        match self {
            Recipients::Config { config, .. } => Some(config),
            _ => None,
        }
    }
}

/// The message when no recipient covers `source`.
pub fn none_configured(source: &str) -> Failure {
    Failure::input(format!(
        "{source}: no recipients configured: pass -r age1… or --keyring FILE, or add a rule covering it to .gitseal.yaml"
    ))
}
