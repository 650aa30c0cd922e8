//! `gitseal keys backup` and `gitseal keys restore`: the cluster's private keys into one
//! age-encrypted bundle, and back into a (new) cluster. A bundle can be made by anyone who
//! knows an admin's public key, so restore checks every entry first (identity against its
//! public key and key id, name, creation time, key id listed in the committed keyring) and
//! creates nothing when any entry is refused. Key ids, not names, are what sealed files
//! reference: a restored key whose name is taken by another key gets a new name, never a new
//! key id.

use super::io::{PRIVATE_MODE, write_atomic};
use super::kube::{block_on, client, cluster_failure, sealing_keys};
use super::{CmdResult, Failure, KeysBackupArgs, KeysRestoreArgs, exit};
use crate::api::{KeyState, SealingKey, SealingKeySpec};
use crate::crypto::{Identity, Recipient};
use crate::keyring::backup::{Bundle, BundleKey, valid_key_name};
use crate::keyring::{identity_of, key_secret, key_secret_name};
use crate::manifest::read_keyring;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use std::collections::BTreeSet;
use std::time::Duration;

/// Suffix of the name a restored key gets when its own name is taken by another key.
const RENAMED_SUFFIX: &str = "-restored";
/// How often restore starts over when the controller generated a key pair for a key it had
/// just created (see [`create_key`]).
const CREATE_ATTEMPTS: usize = 3;

/// The identity in `secret` if the controller would trust it as `key`'s private half.
fn trusted_identity(key: &SealingKey, secret: &Secret) -> Result<Identity, String> {
    crate::keyring::trusted_identity(secret, [key])
        .map(|(_, identity)| identity)
        .map_err(|e| e.to_string())
}

pub fn backup(args: KeysBackupArgs) -> CmdResult {
    let recipients = args
        .recipients
        .iter()
        .map(|r| Recipient::parse(r).map_err(|e| Failure::usage(format!("-r {r}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    block_on(async {
        let client = client(&args.kube).await?;
        let keys = sealing_keys(&client).await?;
        let secrets: Api<Secret> = Api::namespaced(client, &args.namespace);
        let (mut entries, mut missing) = (Vec::new(), 0);
        for key in &keys {
            let name = key.name_any();
            let secret_name = key_secret_name(&name);
            let why = match secrets
                .get_opt(&secret_name)
                .await
                .map_err(cluster_failure)?
            {
                None => format!(
                    "it has no private key Secret {secret_name} in {}",
                    args.namespace
                ),
                Some(secret) => match trusted_identity(key, &secret) {
                    Ok(identity) => {
                        let created = key
                            .status
                            .as_ref()
                            .and_then(|s| s.created.as_ref())
                            .map(|t| t.0.to_string());
                        entries.push(BundleKey::new(&name, key.spec.state, created, &identity));
                        continue;
                    }
                    Err(why) => format!("Secret {secret_name} is not its private key: {why}"),
                },
            };
            let retired = key.spec.state == KeyState::Retired
                || key.status.as_ref().and_then(|s| s.state) == Some(KeyState::Retired);
            if !retired {
                missing += 1;
                eprintln!("warning: {name}: {why}; not in the backup");
            }
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
        if missing > 0 {
            eprintln!("{missing} key(s) that are not Retired are missing from the backup");
            return Ok(exit::PROBLEMS);
        }
        Ok(exit::OK)
    })
}

/// What restore does for one bundle entry, decided before anything is written.
enum Step {
    /// A SealingKey with this key id and its trusted private key are already there.
    Present { name: String },
    /// A SealingKey with this key id exists but its private key Secret is gone.
    SecretOnly { key: Box<SealingKey> },
    /// Create SealingKey `name` (the entry's name, or a new one when that is taken).
    Create { name: String },
}

pub fn restore(args: KeysRestoreArgs) -> CmdResult {
    let file_name = args.file.display().to_string();
    let identities = super::unseal::read_identities(&args.identities)?;
    let file = std::fs::read(&args.file)
        .map_err(|e| Failure::input(format!("{file_name}: cannot read: {e}")))?;
    let bundle = Bundle::open(&file, &identities.iter().collect::<Vec<_>>()).map_err(|e| {
        use crate::keyring::backup::BackupError;
        Failure {
            code: match e {
                BackupError::Crypto(_) => exit::DECRYPT,
                BackupError::Invalid(_) => exit::INPUT,
            },
            message: format!("{file_name}: {e}"),
        }
    })?;
    let trusted = if args.trust_bundle {
        None
    } else {
        let mut ids = BTreeSet::new();
        for path in &args.keyrings {
            ids.extend(read_keyring(path)?.keys.into_iter().map(|k| k.key_id));
        }
        Some(ids)
    };
    let refused = bundle.check(trusted.as_ref(), jiff::Timestamp::now());
    if !refused.is_empty() {
        for e in &refused {
            eprintln!("error: {file_name}:{e}");
        }
        let entries: BTreeSet<usize> = refused.iter().map(|e| e.index).collect();
        return Err(Failure::input(format!(
            "{file_name}: {} of {} key(s) refused; nothing restored",
            entries.len(),
            bundle.keys.len()
        )));
    }
    let identities: Vec<Identity> = bundle
        .keys
        .iter()
        .map(|k| k.identity().expect("checked"))
        .collect();
    block_on(async {
        let client = client(&args.kube).await?;
        let keys_api: Api<SealingKey> = Api::all(client.clone());
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &args.namespace);
        let steps = plan(&client, &secrets, &bundle).await?;
        for ((entry, identity), step) in bundle.keys.iter().zip(&identities).zip(steps) {
            match step {
                Step::Present { name } => {
                    eprintln!("{name}: key id {} is already restored", entry.key_id)
                }
                Step::SecretOnly { key } => {
                    secrets
                        .create(
                            &PostParams::default(),
                            &key_secret(&key, identity, &args.namespace),
                        )
                        .await
                        .map_err(|e| {
                            cluster_failure(format!(
                                "{}: cannot create its key Secret: {e}",
                                key.name_any()
                            ))
                        })?;
                    eprintln!(
                        "{}: restored the private key of key id {}",
                        key.name_any(),
                        entry.key_id
                    );
                }
                Step::Create { name } => {
                    create_key(&keys_api, &secrets, &args.namespace, entry, identity, &name)
                        .await?;
                    let renamed = if name == entry.name {
                        String::new()
                    } else {
                        format!(
                            " as {name} (the name {} is taken by another key)",
                            entry.name
                        )
                    };
                    eprintln!(
                        "restored {}{renamed}: key id {}, spec.state {}",
                        entry.name, entry.key_id, entry.state
                    );
                }
            }
        }
        eprintln!(
            "the controller decides which key is Active (the newest spec-Active key it holds): see `gitseal keys list`"
        );
        Ok(exit::OK)
    })
}

/// Decide every entry's step, reading the cluster only. Any conflict fails the whole restore.
async fn plan(
    client: &Client,
    secrets: &Api<Secret>,
    bundle: &Bundle,
) -> Result<Vec<Step>, Failure> {
    let existing = sealing_keys(client).await?;
    let mut taken: BTreeSet<String> = existing.iter().map(|k| k.name_any()).collect();
    // A new name never takes one a later entry of the bundle has.
    let reserved: BTreeSet<&str> = bundle.keys.iter().map(|k| k.name.as_str()).collect();
    let mut steps = Vec::new();
    for entry in &bundle.keys {
        let same_id = existing.iter().find(|k| {
            k.status
                .as_ref()
                .is_some_and(|s| s.key_id.as_deref() == Some(&entry.key_id))
        });
        if let Some(key) = same_id {
            let name = key.name_any();
            let secret_name = key_secret_name(&name);
            steps.push(match secrets.get_opt(&secret_name).await.map_err(cluster_failure)? {
                None => Step::SecretOnly {
                    key: Box::new(key.clone()),
                },
                Some(secret) => match trusted_identity(key, &secret) {
                    Ok(id) if id.key_id() == entry.key_id => Step::Present { name },
                    Ok(_) => {
                        return Err(cluster_failure(format!(
                            "{name}: its status names key id {} but its key Secret holds another key; fix it by hand, nothing restored",
                            entry.key_id
                        )));
                    }
                    Err(why) => {
                        return Err(cluster_failure(format!(
                            "{name} (key id {}): Secret {secret_name} is in the way: {why}; delete it, nothing restored",
                            entry.key_id
                        )));
                    }
                },
            });
            continue;
        }
        let mut name = entry.name.clone();
        let mut n = 1;
        while taken.contains(&name)
            || (name != entry.name && reserved.contains(name.as_str()))
            || secrets
                .get_opt(&key_secret_name(&name))
                .await
                .map_err(cluster_failure)?
                .is_some()
        {
            n += 1;
            name = match n {
                2 => format!("{}{RENAMED_SUFFIX}", entry.name),
                n => format!("{}{RENAMED_SUFFIX}-{}", entry.name, n - 1),
            };
            valid_key_name(&name).map_err(|why| {
                cluster_failure(format!(
                    "{}: its name is taken and {why}; nothing restored",
                    entry.name
                ))
            })?;
        }
        taken.insert(name.clone());
        steps.push(Step::Create { name });
    }
    Ok(steps)
}

/// Create SealingKey `name` for `entry`, give it the entry's public key, id and creation time
/// in status (before its private key exists, so a running controller knows not to generate
/// one), then its key Secret built from the SealingKey as created (with its uid).
///
/// A controller that looked at the new key in the moment between its creation and the status
/// write may have generated a key pair for it all the same; then the fresh SealingKey (and
/// with it that key pair, which nothing can have used) is deleted and made again.
async fn create_key(
    keys: &Api<SealingKey>,
    secrets: &Api<Secret>,
    namespace: &str,
    entry: &BundleKey,
    identity: &Identity,
    name: &str,
) -> Result<(), Failure> {
    let fail = |what: &str, e: kube::Error| cluster_failure(format!("{name}: cannot {what}: {e}"));
    for _ in 0..CREATE_ATTEMPTS {
        let spec = SealingKeySpec {
            state: entry.state,
            force: false,
        };
        keys.create(&PostParams::default(), &SealingKey::new(name, spec))
            .await
            .map_err(|e| fail("create the SealingKey", e))?;
        let mut status = serde_json::json!({"publicKey": entry.public_key, "keyId": entry.key_id});
        if let Some(t) = entry.created_at() {
            status["created"] = serde_json::to_value(Time(t)).expect("time serializes");
        }
        // The SealingKey as the API server has it now, with its uid.
        let created = keys
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(&serde_json::json!({ "status": status })),
            )
            .await
            .map_err(|e| fail("write the SealingKey's status", e))?;
        let secret = key_secret(&created, identity, namespace);
        match secrets.create(&PostParams::default(), &secret).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(fail("create its key Secret", e)),
        }
        let theirs = secrets
            .get(&key_secret_name(name))
            .await
            .map_err(|e| fail("read its key Secret", e))?;
        let ours = theirs
            .owner_references()
            .iter()
            .any(|o| Some(&o.uid) == created.uid().as_ref());
        if !ours {
            return Err(cluster_failure(format!(
                "{name}: Secret {} appeared in the way while restoring; SealingKey {name} was created without its private key",
                key_secret_name(name)
            )));
        }
        if identity_of(&theirs).is_some_and(|i| i.key_id() == entry.key_id) {
            return Ok(());
        }
        eprintln!(
            "{name}: the controller generated a key pair while the key was being restored; deleting it and starting over"
        );
        keys.delete(name, &DeleteParams::background())
            .await
            .map_err(|e| fail("delete the SealingKey", e))?;
        gone(keys, secrets, name).await?;
    }
    Err(cluster_failure(format!(
        "{name}: the controller generated its own key pair {CREATE_ATTEMPTS} times; stop the controller (scale it to 0) and restore again"
    )))
}

/// Wait until SealingKey `name` and its key Secret are deleted.
async fn gone(keys: &Api<SealingKey>, secrets: &Api<Secret>, name: &str) -> Result<(), Failure> {
    let start = std::time::Instant::now();
    loop {
        let key = keys.get_opt(name).await.map_err(cluster_failure)?;
        let secret = secrets
            .get_opt(&key_secret_name(name))
            .await
            .map_err(cluster_failure)?;
        if key.is_none() && secret.is_none() {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(120) {
            return Err(cluster_failure(format!(
                "{name}: still not deleted after 120 s; delete SealingKey {name} and Secret {} by hand, then restore again",
                key_secret_name(name)
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
