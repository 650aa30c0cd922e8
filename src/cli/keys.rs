//! `gitseal keys fetch|list|retire` and `gitseal rotate`: the cluster's SealingKeys through
//! the plain API (no service proxy). `keys backup|restore` live in `backup.rs`.

use super::io::{PUBLIC_MODE, write_atomic};
use super::kube::{block_on, client, cluster_failure, sealing_keys};
use super::{CmdResult, Failure, KeysFetchArgs, KeysListArgs, KeysRetireArgs, exit};
use crate::api::SealingKey;
use crate::keyring::lifecycle::new_active_key;
use crate::keyring::next_key_name;
use crate::manifest::{KeyringEntry, KeyringFile};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};

pub fn fetch(args: KeysFetchArgs) -> CmdResult {
    block_on(async {
        let client = client(&args.kube).await?;
        let keys = sealing_keys(&client).await?;
        // Effective states: only the key the controller made Active is published as Active.
        let (entries, pending): (Vec<KeyringEntry>, Vec<String>) =
            super::key_state::keyring_entries(&keys);
        for name in &pending {
            eprintln!("note: {name} is left out: the controller has not given it a state yet");
        }
        if !entries
            .iter()
            .any(|e| e.state == crate::api::KeyState::Active)
        {
            return Err(cluster_failure(
                "the cluster has no Active key with a public key yet: is the gitseal controller running?",
            ));
        }
        let name = args
            .name
            .clone()
            .or_else(|| args.kube.context.clone())
            .unwrap_or_else(|| "cluster".into());
        let count = entries.len();
        let text = KeyringFile::new(&name, entries).to_yaml();
        match &args.output {
            Some(path) => {
                write_atomic(path, text.as_bytes(), PUBLIC_MODE)?;
                eprintln!("wrote {count} key(s) to {}", path.display());
            }
            None => print!("{text}"),
        }
        Ok(exit::OK)
    })
}

pub fn list(args: KeysListArgs) -> CmdResult {
    block_on(async {
        let keys = sealing_keys(&client(&args.kube).await?).await?;
        let now = jiff::Timestamp::now();
        // Columns 1-5 as before the effective state existed (scripts read USERS as $5).
        println!(
            "{:<20} {:<18} {:<12} {:>6} {:>6}  {:<12} WHY",
            "NAME", "KEY ID", "STATE", "AGE", "USERS", "WANTED"
        );
        for (k, row) in keys.iter().zip(super::key_state::rows(&keys)) {
            let age = k
                .creation_timestamp()
                .map_or("-".into(), |t| human_age(now.as_second() - t.0.as_second()));
            println!(
                "{:<20} {:<18} {:<12} {:>6} {:>6}  {:<12} {}",
                row.name, row.key_id, row.state, age, row.users, row.wanted, row.why
            );
        }
        Ok(exit::OK)
    })
}

fn human_age(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

pub fn rotate(args: KeysListArgs) -> CmdResult {
    block_on(async {
        let client = client(&args.kube).await?;
        let keys = sealing_keys(&client).await?;
        let name = next_key_name(
            keys.iter()
                .map(|k| k.metadata.name.as_deref().unwrap_or_default()),
        );
        let key = new_active_key(&name);
        Api::<SealingKey>::all(client)
            .create(&cli_post_params(), &key)
            .await
            .map_err(|e| cluster_failure(format!("cannot create SealingKey {name}: {e}")))?;
        eprintln!(
            "created SealingKey {name} (Active); the controller generates its key pair and makes the previous key DecryptOnly"
        );
        eprintln!(
            "next: `gitseal keys fetch -o KEYRING`, then `gitseal reseal` once the controller has published re-wrapped envelopes"
        );
        println!("{name}");
        Ok(exit::OK)
    })
}

/// Writes to SealingKeys made for a user carry the CLI's field manager.
fn cli_post_params() -> PostParams {
    PostParams {
        field_manager: Some(super::key_state::CLI_FIELD_MANAGER.into()),
        ..Default::default()
    }
}

/// `keys retire`: patch spec (the user's intent) and wait for the controller's verdict.
pub fn retire(args: KeysRetireArgs) -> CmdResult {
    use super::key_state::{CLI_FIELD_MANAGER, Verdict, other_state_managers, retire_verdict};
    let name = args.name.clone();
    block_on(async move {
        let api: Api<SealingKey> = Api::all(client(&args.kube).await?);
        let before = api
            .get(&name)
            .await
            .map_err(|e| cluster_failure(format!("cannot read SealingKey {name}: {e}")))?;
        let others = other_state_managers(&before);
        if !others.is_empty() {
            eprintln!(
                "warning: spec.state of {name} is also managed by {}: a GitOps agent will set it back to what Git says; retire it by committing `state: Retired` instead",
                others.join(", ")
            );
        }
        let patch = if args.force {
            serde_json::json!({"spec": {"state": "Retired", "force": true}})
        } else {
            serde_json::json!({"spec": {"state": "Retired"}})
        };
        let params = PatchParams {
            field_manager: Some(CLI_FIELD_MANAGER.into()),
            ..Default::default()
        };
        let mut key = api
            .patch(&name, &params, &Patch::Merge(&patch))
            .await
            .map_err(|e| cluster_failure(format!("cannot retire {name}: {e}")))?;
        let generation = key.metadata.generation.unwrap_or_default();
        if args.no_wait {
            eprintln!(
                "{name}: state Retired requested; `gitseal keys list` shows the controller's verdict"
            );
            return Ok(exit::OK);
        }
        eprintln!(
            "{name}: state Retired requested; waiting up to {}s for the controller's verdict",
            args.timeout.as_secs()
        );
        let deadline = tokio::time::Instant::now() + args.timeout;
        loop {
            match retire_verdict(&key, generation) {
                Verdict::Retired => {
                    eprintln!("{name}: retired; its private key is deleted");
                    return Ok(exit::OK);
                }
                Verdict::Refused(why) => {
                    return Err(Failure {
                        code: exit::REFUSED,
                        message: format!("{name}: retirement refused: {why}"),
                    });
                }
                Verdict::Pending if tokio::time::Instant::now() >= deadline => {
                    return Err(cluster_failure(format!(
                        "{name}: no verdict from the controller within {}s (is it running?); `gitseal keys list` shows the key's state",
                        args.timeout.as_secs()
                    )));
                }
                Verdict::Pending => {}
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            key = api
                .get(&name)
                .await
                .map_err(|e| cluster_failure(format!("cannot read SealingKey {name}: {e}")))?;
        }
    })
}
