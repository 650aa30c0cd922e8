//! `gitseal keys fetch|list|backup|restore|retire` and `gitseal rotate`: the cluster's
//! SealingKeys and key Secrets through the plain API (no service proxy).

use super::io::{PRIVATE_MODE, PUBLIC_MODE, write_atomic};
use super::kube::{block_on, client, cluster_failure};
use super::{
    CmdResult, Failure, KeysBackupArgs, KeysFetchArgs, KeysListArgs, KeysRestoreArgs,
    KeysRetireArgs, exit,
};
use crate::api::{KeyState, SealingKey, SealingKeySpec};
use crate::crypto::Recipient;
use crate::keyring::backup::{Bundle, BundleKey};
use crate::keyring::{identity_of, key_secret, key_secret_name, next_key_name};
use crate::manifest::{KeyringEntry, KeyringFile};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};

async fn sealing_keys(client: Client) -> Result<Vec<SealingKey>, super::Failure> {
    let api: Api<SealingKey> = Api::all(client);
    let mut keys = api
        .list(&Default::default())
        .await
        .map_err(|e| cluster_failure(format!("cannot list SealingKeys: {e}")))?
        .items;
    keys.sort_by_key(|k| k.creation_timestamp().map(|t| t.0));
    Ok(keys)
}

pub fn fetch(args: KeysFetchArgs) -> CmdResult {
    block_on(async {
        let client = client(&args.kube).await?;
        let keys = sealing_keys(client).await?;
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
        let keys = sealing_keys(client(&args.kube).await?).await?;
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
        let keys = sealing_keys(client.clone()).await?;
        let name = next_key_name(
            keys.iter()
                .map(|k| k.metadata.name.as_deref().unwrap_or_default()),
        );
        let key = SealingKey::new(
            &name,
            SealingKeySpec {
                state: KeyState::Active,
                force: false,
            },
        );
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

pub fn backup(args: KeysBackupArgs) -> CmdResult {
    let recipients = args
        .recipients
        .iter()
        .map(|r| Recipient::parse(r).map_err(|e| Failure::usage(format!("-r {r}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    block_on(async {
        let client = client(&args.kube).await?;
        let keys = sealing_keys(client.clone()).await?;
        let secrets: Api<Secret> = Api::namespaced(client, &args.namespace);
        let mut entries = Vec::new();
        for key in &keys {
            let Some(secret) = secrets
                .get_opt(&key_secret_name(&key.name_any()))
                .await
                .map_err(cluster_failure)?
            else {
                if key.spec.state != KeyState::Retired {
                    eprintln!(
                        "warning: {} has no private key Secret in {}; not in the backup",
                        key.name_any(),
                        args.namespace
                    );
                }
                continue;
            };
            let identity = identity_of(&secret).ok_or_else(|| {
                cluster_failure(format!(
                    "key Secret of {} holds no valid identity",
                    key.name_any()
                ))
            })?;
            let created = key
                .status
                .as_ref()
                .and_then(|s| s.created.as_ref())
                .map(|t| t.0.to_string());
            entries.push(BundleKey::new(
                &key.name_any(),
                key.spec.state,
                created,
                &identity,
            ));
        }
        if entries.is_empty() {
            return Err(cluster_failure(
                "no private keys found: is the controller running, and is --namespace right?",
            ));
        }
        let n = entries.len();
        let file = Bundle::new(entries)
            .seal(&recipients)
            .map_err(|e| Failure::input(e.to_string()))?;
        write_atomic(&args.output, &file, PRIVATE_MODE)?;
        eprintln!(
            "backed up {n} key(s) to {} (age-encrypted to {} recipient(s))",
            args.output.display(),
            recipients.len()
        );
        Ok(exit::OK)
    })
}

pub fn restore(args: KeysRestoreArgs) -> CmdResult {
    let identities = super::unseal::read_identities(&args.identities)?;
    let file = std::fs::read(&args.file)
        .map_err(|e| Failure::input(format!("{}: {e}", args.file.display())))?;
    let bundle =
        Bundle::open(&file, &identities.iter().collect::<Vec<_>>()).map_err(|e| Failure {
            code: exit::DECRYPT,
            message: format!("{}: {e}", args.file.display()),
        })?;
    block_on(async {
        let client = client(&args.kube).await?;
        let keys: Api<SealingKey> = Api::all(client.clone());
        let secrets: Api<Secret> = Api::namespaced(client, &args.namespace);
        for entry in &bundle.keys {
            let identity = entry
                .identity()
                .map_err(|e| Failure::input(e.to_string()))?;
            let key = match keys.get_opt(&entry.name).await.map_err(cluster_failure)? {
                Some(k) => k,
                None => {
                    let k = SealingKey::new(
                        &entry.name,
                        SealingKeySpec {
                            state: entry.state,
                            force: false,
                        },
                    );
                    keys.create(&PostParams::default(), &k)
                        .await
                        .map_err(cluster_failure)?
                }
            };
            match secrets
                .get_opt(&key_secret_name(&entry.name))
                .await
                .map_err(cluster_failure)?
            {
                Some(existing)
                    if identity_of(&existing).map(|i| i.key_id()) == Some(entry.key_id.clone()) => {
                }
                Some(_) => {
                    return Err(cluster_failure(format!(
                        "{}: a different private key is already stored for this SealingKey; refusing to overwrite it",
                        entry.name
                    )));
                }
                None => {
                    secrets
                        .create(
                            &PostParams::default(),
                            &key_secret(&key, &identity, &args.namespace),
                        )
                        .await
                        .map_err(cluster_failure)?;
                }
            }
            let created = entry
                .created
                .as_deref()
                .and_then(|c| c.parse::<jiff::Timestamp>().ok())
                .map(Time);
            let status = serde_json::json!({"status": {"publicKey": entry.public_key, "keyId": entry.key_id, "created": created}});
            keys.patch_status(&entry.name, &PatchParams::default(), &Patch::Merge(&status))
                .await
                .map_err(cluster_failure)?;
            eprintln!(
                "restored {} ({}, key id {})",
                entry.name, entry.state, entry.key_id
            );
        }
        Ok(exit::OK)
    })
}
