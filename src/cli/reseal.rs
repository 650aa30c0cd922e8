//! `gitseal reseal`: copy the envelopes the controller re-wrapped to the Active key (published
//! in each SealedSecret's status) into the committed files. Only envelope lines change.
//!
//! Status is written by the controller, but also by anyone else allowed to write
//! `sealedsecrets/status`, so it is checked against what Git says before anything is taken:
//! a re-wrap is accepted only for the cluster's Active key (the controller's verdict in
//! `SealingKey` status), only when the committed keyring lists that key, and only when the
//! status is the controller's current, successful view of the object (`observedGeneration`
//! is the generation, `Ready` is True). Re-wraps only add wrappings: recovery recipients'
//! wrappings (any key id the committed keyring does not list) always stay, and the cluster's
//! older keys' wrappings stay unless `--drop-old`. A file with any refused object is left
//! byte-identical, and the refusal names file, document, field and reason.

use super::io::{PUBLIC_MODE, Source, expand, write_atomic};
use super::kube::{block_on, client, cluster_failure};
use super::{CmdResult, Failure, ResealArgs, exit};
use crate::api::{KeyState, SealedSecret, SealingKey};
use crate::format::Envelopes;
use crate::manifest::{
    Config, Format, Location, emit_sealed, is_sealed, parse_documents, parse_sealed, read_keyring,
};
use base64::Engine;
use kube::api::Api;
use kube::{Client, ResourceExt};
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

/// What the repository says about the cluster a file belongs to.
#[derive(Debug, Default)]
pub struct Committed {
    /// The committed keyring file(s), for messages.
    pub keyrings: String,
    /// Key ids the committed keyring(s) list as Active or DecryptOnly.
    pub usable: BTreeSet<String>,
    /// Every key id the committed keyring(s) list: the cluster's keys. Any other key id in
    /// an envelope is a recovery recipient's.
    pub cluster: BTreeSet<String>,
    /// Key ids of the `.gitseal.yaml` rule's recovery recipients.
    pub recovery: BTreeSet<String>,
}

/// Where each file's committed keyring comes from.
enum Keyrings {
    Flags(Arc<Committed>),
    Config {
        config: Config,
        resolved: HashMap<usize, Arc<Committed>>,
    },
}

impl Keyrings {
    fn load(flags: &[PathBuf]) -> Result<Self, Failure> {
        if !flags.is_empty() {
            let names: Vec<String> = flags.iter().map(|p| p.display().to_string()).collect();
            return Ok(Keyrings::Flags(Arc::new(read_committed(
                names.join(", "),
                flags.iter().cloned(),
                BTreeSet::new(),
            )?)));
        }
        let cwd = std::env::current_dir()
            .map_err(|e| Failure::input(format!("cannot read the working directory: {e}")))?;
        let lookup = Config::find(&cwd)?;
        for (file, why) in &lookup.ignored {
            eprintln!("warning: ignoring {}: {why}", file.display());
        }
        match lookup.config {
            Some(config) => Ok(Keyrings::Config {
                config,
                resolved: HashMap::new(),
            }),
            None => Err(Failure::usage(
                "reseal checks the cluster's re-wraps against the committed keyring: pass --keyring FILE, or run it below a .gitseal.yaml whose rules name keyrings",
            )),
        }
    }

    /// The committed keyring covering `src`; an error naming the file when there is none.
    fn for_file(&mut self, src: &Source) -> Result<Arc<Committed>, String> {
        let (config, resolved) = match self {
            Keyrings::Flags(c) => return Ok(c.clone()),
            Keyrings::Config { config, resolved } => (config, resolved),
        };
        let none = || {
            format!(
                "{}: no committed keyring covers this file (no rule of {} with keyrings matches it): pass --keyring FILE",
                src.name(),
                config.dir.join(crate::manifest::CONFIG_FILE).display()
            )
        };
        let i = config.rule_index(src.path.as_deref()).ok_or_else(none)?;
        if let Some(c) = resolved.get(&i) {
            return Ok(c.clone());
        }
        let rule = &config.rules[i];
        if rule.keyrings.is_empty() {
            return Err(none());
        }
        let paths: Vec<PathBuf> = rule.keyrings.iter().map(|p| config.dir.join(p)).collect();
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        let recovery = rule.recipients.iter().map(|r| r.key_id()).collect();
        let c = Arc::new(read_committed(names.join(", "), paths, recovery).map_err(|f| f.message)?);
        resolved.insert(i, c.clone());
        Ok(c)
    }
}

fn read_committed(
    keyrings: String,
    paths: impl IntoIterator<Item = PathBuf>,
    recovery: BTreeSet<String>,
) -> Result<Committed, Failure> {
    let mut out = Committed {
        keyrings,
        recovery,
        ..Default::default()
    };
    for path in paths {
        let ring = read_keyring(&path)?;
        out.usable.extend(ring.usable_key_ids());
        out.cluster.extend(ring.keys.into_iter().map(|k| k.key_id));
    }
    Ok(out)
}

/// The cluster's Active key, by the controller's verdict (`status.state`). Only when no key
/// has a `status.state` at all (an older controller) does `spec.state` stand in; otherwise a
/// key without one is not judged yet and is not Active.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveKey {
    pub name: String,
    pub key_id: String,
}

pub fn active_key(keys: &[SealingKey]) -> Result<ActiveKey, String> {
    let reports = keys
        .iter()
        .any(|k| k.status.as_ref().is_some_and(|s| s.state.is_some()));
    let active: Vec<&SealingKey> = keys
        .iter()
        .filter(|k| match k.status.as_ref().and_then(|s| s.state) {
            Some(state) => state == KeyState::Active,
            None => !reports && k.spec.state == KeyState::Active,
        })
        .collect();
    match active.as_slice() {
        [] => {
            Err("the cluster has no Active SealingKey: is the gitseal controller running?".into())
        }
        [key] => {
            let key_id = key
                .status
                .as_ref()
                .and_then(|s| s.key_id.clone())
                .ok_or_else(|| {
                    format!(
                        "the Active SealingKey {} has no key id yet: wait for the controller",
                        key.name_any()
                    )
                })?;
            Ok(ActiveKey {
                name: key.name_any(),
                key_id,
            })
        }
        many => Err(format!(
            "{} SealingKeys are Active ({}): wait for the controller to settle, then reseal",
            many.len(),
            many.iter()
                .map(|k| k.name_any())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

pub fn run(args: ResealArgs) -> CmdResult {
    let paths: Vec<String> = if args.paths.is_empty() {
        vec![".".into()]
    } else {
        args.paths.iter().map(|p| p.display().to_string()).collect()
    };
    let mut keyrings = Keyrings::load(&args.keyrings)?;
    let sources = expand(&paths)?;
    block_on(async {
        let client = client(&args.kube).await?;
        let keys = Api::<SealingKey>::all(client.clone())
            .list(&Default::default())
            .await
            .map_err(|e| cluster_failure(format!("cannot list SealingKeys: {e}")))?
            .items;
        let active = active_key(&keys).map_err(cluster_failure)?;
        let (mut rewritten, mut untouched, mut objects) = (0, 0, 0);
        for src in sources {
            let result = match keyrings.for_file(&src) {
                Ok(committed) => {
                    let trust = Trust {
                        active: &active,
                        committed: &committed,
                        drop_old: args.drop_old,
                    };
                    reseal_file(&client, &src, &trust).await
                }
                Err(why) => Err(why),
            };
            match result {
                Ok(0) => {}
                Ok(n) => {
                    rewritten += 1;
                    objects += n;
                    eprintln!("{}: re-wrapped {n} object(s)", src.name());
                }
                Err(why) => {
                    untouched += 1;
                    println!("{why}; file left untouched");
                }
            }
        }
        eprintln!(
            "resealed {objects} object(s) in {rewritten} file(s); {untouched} file(s) left untouched"
        );
        Ok(if untouched == 0 {
            exit::OK
        } else {
            exit::PROBLEMS
        })
    })
}

/// What a file's envelopes are checked against.
pub struct Trust<'a> {
    pub active: &'a ActiveKey,
    pub committed: &'a Committed,
    pub drop_old: bool,
}

/// Rewrite one file; the number of objects whose envelopes changed. Writes nothing unless
/// every object of the file passes.
async fn reseal_file(client: &Client, src: &Source, trust: &Trust<'_>) -> Result<usize, String> {
    let name = src.name();
    let text = src.read().map_err(|f| f.message)?;
    let Ok(docs) = parse_documents(&name, &text) else {
        return Ok(0);
    };
    if !docs.iter().any(|d| is_sealed(&d.value)) {
        return Ok(0);
    }
    if !docs.iter().all(|d| is_sealed(&d.value)) {
        return Err(format!("{name}: mixes SealedSecrets with other documents"));
    }
    let mut objects = docs
        .iter()
        .map(parse_sealed)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let mut changed = 0;
    for (i, obj) in objects.iter_mut().enumerate() {
        let at = Location::new(&name, i + 1);
        let (ns, obj_name) = (obj.namespace().unwrap_or_default(), obj.name_any());
        let live = Api::<SealedSecret>::namespaced(client.clone(), &ns)
            .get_opt(&obj_name)
            .await
            .map_err(|e| format!("{at}: cannot read {ns}/{obj_name}: {e}"))?
            .ok_or_else(|| format!("{at}: {ns}/{obj_name} is not in the cluster"))?;
        if live.spec != obj.spec {
            return Err(format!(
                "{at}: {ns}/{obj_name} differs from the live object (apply the file first)"
            ));
        }
        match resealed(&obj.spec.envelopes, &live, trust) {
            Ok(None) => {}
            Ok(Some(envelopes)) => {
                obj.spec.envelopes = envelopes;
                changed += 1;
            }
            Err((field, why)) => {
                return Err(format!("{}: {ns}/{obj_name}: {why}", at.field(field)));
            }
        }
    }
    if changed > 0 {
        let out = emit_sealed(&objects, Format::sniff(&text));
        write_atomic(
            src.path.as_deref().expect("reseal reads files"),
            out.as_bytes(),
            PUBLIC_MODE,
        )
        .map_err(|f| f.message)?;
    }
    Ok(changed)
}

/// A refusal: the field it concerns and why.
pub type Refusal = (String, String);

/// The envelopes `file` (equal to the live object's spec) gets from the live object's
/// status; `None` when nothing changes.
pub fn resealed(
    file: &Envelopes,
    live: &SealedSecret,
    trust: &Trust<'_>,
) -> Result<Option<Envelopes>, Refusal> {
    let (active, committed) = (&trust.active.key_id, trust.committed);
    let status = live.status.clone().unwrap_or_default();
    let mut out = file.clone();
    for (env, wraps) in &status.rewrapped_envelopes {
        let field = format!("status.rewrappedEnvelopes.{env}");
        let Some(entry) = out.get_mut(env) else {
            return Err((
                field,
                format!("re-wraps envelope {env}, which the file does not have"),
            ));
        };
        for (kid, wrapped) in wraps {
            if kid != active {
                let what = if committed.recovery.contains(kid) {
                    "it is a recovery recipient of .gitseal.yaml".to_string()
                } else if committed.cluster.contains(kid) {
                    "it is another key of the committed keyring".to_string()
                } else {
                    format!(
                        "the committed keyring {} does not list it",
                        committed.keyrings
                    )
                };
                return Err((
                    format!("{field}.{kid}"),
                    format!(
                        "re-wrap for key id {kid}, which is not the cluster's Active key {} ({active}): {what}",
                        trust.active.name
                    ),
                ));
            }
            check_wrapped(wrapped).map_err(|why| (format!("{field}.{kid}"), why))?;
        }
        if !entry.contains_key(active)
            && let Some(w) = wraps.get(active)
        {
            entry.insert(active.clone(), w.clone());
        }
    }
    if trust.drop_old {
        for (_, entry) in out.iter_mut() {
            if entry.contains_key(active) {
                entry.retain(|kid, _| {
                    kid == active
                        || !committed.cluster.contains(kid)
                        || committed.recovery.contains(kid)
                });
            }
        }
    }
    if out == *file {
        return Ok(None);
    }
    // Something changes: the cluster's word must be current, successful and in Git's keyring.
    if !committed.usable.contains(active) {
        return Err((
            "keyring".into(),
            format!(
                "the cluster's Active key {} ({active}) is not in the committed keyring {}: run `gitseal keys fetch -o KEYRING`, review and commit it, then reseal",
                trust.active.name, committed.keyrings
            ),
        ));
    }
    if committed.recovery.contains(active) {
        return Err((
            "keyring".into(),
            format!(
                "the cluster's Active key id {active} is a recovery recipient of .gitseal.yaml"
            ),
        ));
    }
    let generation = live.metadata.generation;
    if generation.is_none() || status.observed_generation != generation {
        return Err((
            "status.observedGeneration".into(),
            format!(
                "the status is for generation {}, the object is at {}: the controller has not caught up; try again",
                show(status.observed_generation),
                show(generation)
            ),
        ));
    }
    match status.conditions.iter().find(|c| c.type_ == "Ready") {
        None => return Err(("status.conditions".into(), "no Ready condition".into())),
        Some(c) if c.status != "True" => {
            return Err((
                "status.conditions.Ready".into(),
                format!("Ready is {} ({}: {})", c.status, c.reason, c.message),
            ));
        }
        Some(c) if c.observed_generation.is_some() && c.observed_generation != generation => {
            return Err((
                "status.conditions.Ready".into(),
                format!(
                    "Ready is for generation {}, the object is at {}",
                    show(c.observed_generation),
                    show(generation)
                ),
            ));
        }
        Some(_) => {}
    }
    Ok(Some(out))
}

fn show(n: Option<i64>) -> String {
    n.map_or("none".into(), |n| n.to_string())
}

/// A wrapped data key from status must at least look like one: base64 of an age file whose
/// header passes the stanza rule (`crypto::check_wrapped`).
fn check_wrapped(wrapped: &str) -> Result<(), String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(wrapped)
        .map_err(|_| "the wrapped key is not base64".to_string())?;
    crate::crypto::check_wrapped(&bytes).map_err(|e| format!("the wrapped key is not usable: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{SealedSecretSpec, SealedSecretStatus};
    use crate::format::Map;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    /// A real wrapping per tag (the same text each time for one tag).
    fn wrapped(tag: &str) -> String {
        thread_local! {
            static CACHE: std::cell::RefCell<HashMap<String, String>> = Default::default();
        }
        CACHE.with(|c| {
            c.borrow_mut()
                .entry(tag.to_string())
                .or_insert_with(|| {
                    let to = crate::crypto::Identity::generate().recipient();
                    let w = crate::crypto::wrap(&crate::crypto::DataKey::generate(), &to).unwrap();
                    base64::engine::general_purpose::STANDARD.encode(w)
                })
                .clone()
        })
    }

    fn envs(pairs: &[(&str, &[&str])]) -> Envelopes {
        pairs
            .iter()
            .map(|(env, kids)| {
                (
                    env.to_string(),
                    kids.iter().map(|k| (k.to_string(), wrapped(k))).collect(),
                )
            })
            .collect()
    }

    fn ready(status: &str) -> Condition {
        Condition {
            type_: "Ready".into(),
            status: status.into(),
            reason: "Unsealed".into(),
            message: "m".into(),
            last_transition_time: Time(jiff::Timestamp::UNIX_EPOCH),
            observed_generation: Some(3),
        }
    }

    fn live(spec: &Envelopes, rewrapped: Envelopes) -> SealedSecret {
        let mut s = SealedSecret::new(
            "db",
            SealedSecretSpec {
                envelopes: spec.clone(),
                ..Default::default()
            },
        );
        s.metadata.generation = Some(3);
        s.status = Some(SealedSecretStatus {
            conditions: vec![ready("True")],
            observed_generation: Some(3),
            rewrapped_envelopes: rewrapped,
            ..Default::default()
        });
        s
    }

    fn committed() -> Committed {
        Committed {
            keyrings: "keyring.yaml".into(),
            usable: BTreeSet::from(["old".into(), "new".into()]),
            cluster: BTreeSet::from(["old".into(), "new".into(), "gone".into()]),
            recovery: BTreeSet::from(["rec".into()]),
        }
    }

    fn active() -> ActiveKey {
        ActiveKey {
            name: "gitseal-2".into(),
            key_id: "new".into(),
        }
    }

    #[test]
    fn adds_the_active_wrapping_and_keeps_the_rest_unless_drop_old() {
        let file = envs(&[("e1", &["old", "rec", "offline"]), ("e2", &["old"])]);
        let obj = live(&file, envs(&[("e1", &["new"]), ("e2", &["new"])]));
        let (a, c) = (active(), committed());
        let mut trust = Trust {
            active: &a,
            committed: &c,
            drop_old: false,
        };
        let out = resealed(&file, &obj, &trust).unwrap().unwrap();
        assert_eq!(
            out,
            envs(&[
                ("e1", &["new", "offline", "old", "rec"]),
                ("e2", &["new", "old"])
            ])
        );
        trust.drop_old = true;
        let out = resealed(&file, &obj, &trust).unwrap().unwrap();
        assert_eq!(
            out,
            envs(&[("e1", &["new", "offline", "rec"]), ("e2", &["new"])])
        );
        // Nothing to do: no change, no gate.
        let mut done = live(&envs(&[("e1", &["new"])]), Map::new());
        done.status = None;
        assert_eq!(
            resealed(&envs(&[("e1", &["new"])]), &done, &trust).unwrap(),
            None
        );
        // A wrapping the file already has for the Active key is never replaced from status.
        let has = envs(&[("e1", &["new", "old"])]);
        let mut other = envs(&[("e1", &["new"])]);
        other
            .get_mut("e1")
            .unwrap()
            .insert("new".into(), wrapped("other"));
        trust.drop_old = false;
        assert_eq!(resealed(&has, &live(&has, other), &trust).unwrap(), None);
    }

    #[test]
    fn refuses_untrusted_status() {
        let file = envs(&[("e1", &["old", "rec"])]);
        let (a, c) = (active(), committed());
        let trust = Trust {
            active: &a,
            committed: &c,
            drop_old: false,
        };
        let refused = |obj: SealedSecret| resealed(&file, &obj, &trust).unwrap_err();
        let (field, why) = refused(live(&file, envs(&[("e1", &["old"])])));
        assert_eq!(field, "status.rewrappedEnvelopes.e1.old");
        assert!(
            why.contains("not the cluster's Active key gitseal-2 (new)"),
            "{why}"
        );
        assert!(
            why.contains("another key of the committed keyring"),
            "{why}"
        );
        let (_, why) = refused(live(&file, envs(&[("e1", &["rec"])])));
        assert!(why.contains("recovery recipient"), "{why}");
        let (_, why) = refused(live(&file, envs(&[("e1", &["new", "attacker"])])));
        assert!(why.contains("does not list it"), "{why}");
        let (field, _) = refused(live(&file, envs(&[("e9", &["new"])])));
        assert_eq!(field, "status.rewrappedEnvelopes.e9");
        let mut bad = envs(&[("e1", &["new"])]);
        bad.get_mut("e1")
            .unwrap()
            .insert("new".into(), "bm90IGFnZQ==".into());
        let (_, why) = refused(live(&file, bad));
        assert!(why.contains("the wrapped key is not usable"), "{why}");

        let good = envs(&[("e1", &["new"])]);
        let mut stale = live(&file, good.clone());
        stale.metadata.generation = Some(4);
        let (field, why) = refused(stale);
        assert_eq!(field, "status.observedGeneration");
        assert!(why.contains("generation 3, the object is at 4"), "{why}");
        let mut not_ready = live(&file, good.clone());
        not_ready.status.as_mut().unwrap().conditions = vec![ready("False")];
        let (field, why) = refused(not_ready);
        assert_eq!(field, "status.conditions.Ready");
        assert!(why.starts_with("Ready is False"), "{why}");
        let mut no_ready = live(&file, good.clone());
        no_ready.status.as_mut().unwrap().conditions.clear();
        assert_eq!(refused(no_ready).0, "status.conditions");

        // The Active key must be in the committed keyring (a stale keyring: fetch it first).
        let stale_ring = Committed {
            usable: BTreeSet::from(["old".into()]),
            cluster: BTreeSet::from(["old".into()]),
            ..committed()
        };
        let trust = Trust {
            active: &a,
            committed: &stale_ring,
            drop_old: false,
        };
        let (field, why) = resealed(&file, &live(&file, good), &trust).unwrap_err();
        assert_eq!(field, "keyring");
        assert!(
            why.contains("is not in the committed keyring keyring.yaml"),
            "{why}"
        );
    }

    #[test]
    fn active_key_is_the_controllers_verdict() {
        use crate::api::{SealingKeySpec, SealingKeyStatus};
        let key = |name: &str, spec: KeyState, status: Option<KeyState>| {
            let mut k = SealingKey::new(
                name,
                SealingKeySpec {
                    state: spec,
                    force: false,
                },
            );
            k.status = Some(SealingKeyStatus {
                state: status,
                key_id: Some(format!("id-{name}")),
                ..Default::default()
            });
            k
        };
        // Both Active in spec (Git declares both); status says which one is.
        let keys = [
            key("a", KeyState::Active, Some(KeyState::DecryptOnly)),
            key("b", KeyState::Active, Some(KeyState::Active)),
        ];
        assert_eq!(active_key(&keys).unwrap().key_id, "id-b");
        // A key the controller has not judged yet is not Active, whatever its spec says.
        let keys = [
            key("b", KeyState::Active, Some(KeyState::Active)),
            key("c", KeyState::Active, None),
        ];
        assert_eq!(active_key(&keys).unwrap().name, "b");
        // An older controller: no status.state, spec decides.
        let keys = [
            key("a", KeyState::DecryptOnly, None),
            key("b", KeyState::Active, None),
        ];
        assert_eq!(active_key(&keys).unwrap().name, "b");
        let keys = [
            key("a", KeyState::Active, None),
            key("b", KeyState::Active, None),
        ];
        assert!(
            active_key(&keys)
                .unwrap_err()
                .contains("2 SealingKeys are Active")
        );
        assert!(active_key(&[]).is_err());
    }
}
