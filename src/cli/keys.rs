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
        let entries: Vec<KeyringEntry> = keys
            .iter()
            .filter_map(|k| {
                let status = k.status.as_ref()?;
                let recipient = Recipient::parse(status.public_key.as_deref()?).ok()?;
                Some(KeyringEntry::new(
                    &recipient,
                    k.spec.state,
                    status.created.as_ref().map(|t| t.0.to_string()),
                ))
            })
            .collect();
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
        let text = KeyringFile::new(&name, entries).to_yaml();
        match &args.output {
            Some(path) => {
                write_atomic(path, text.as_bytes(), PUBLIC_MODE)?;
                eprintln!("wrote {} key(s) to {}", keys.len(), path.display());
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
        println!(
            "{:<20} {:<18} {:<12} {:>6} {:>6}",
            "NAME", "KEY ID", "STATE", "AGE", "USERS"
        );
        for k in &keys {
            let status = k.status.clone().unwrap_or_default();
            let age = k
                .creation_timestamp()
                .map_or("-".into(), |t| human_age(now.as_second() - t.0.as_second()));
            println!(
                "{:<20} {:<18} {:<12} {:>6} {:>6}",
                k.name_any(),
                status.key_id.as_deref().unwrap_or("-"),
                k.spec.state.to_string(),
                age,
                status.used_by
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
            .create(&PostParams::default(), &key)
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

pub fn retire(args: KeysRetireArgs) -> CmdResult {
    block_on(async {
        let api: Api<SealingKey> = Api::all(client(&args.kube).await?);
        let patch = serde_json::json!({"spec": {"state": "Retired", "force": args.force}});
        api.patch(&args.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| cluster_failure(format!("cannot retire {}: {e}", args.name)))?;
        eprintln!(
            "{}: state Retired requested; `gitseal keys list` shows whether the controller accepted it",
            args.name
        );
        Ok(exit::OK)
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
