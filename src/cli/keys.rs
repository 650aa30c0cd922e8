//! `gitseal keys fetch|list|retire` and `gitseal rotate`: the cluster's SealingKeys through
//! the plain API (no service proxy). `keys backup|restore` live in `backup.rs`.

use super::io::{PUBLIC_MODE, write_atomic};
use super::kube::{block_on, client, cluster_failure};
use super::{CmdResult, KeysFetchArgs, KeysListArgs, KeysRetireArgs, exit};
use crate::api::{KeyState, SealingKey, SealingKeySpec};
use crate::crypto::Recipient;
use crate::keyring::{KeyView, next_key_name};
use crate::manifest::{KeyringEntry, KeyringFile};
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
        let views: Vec<KeyView> = keys.iter().map(KeyView::of).collect();
        let name = next_key_name(&views);
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
