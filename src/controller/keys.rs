//! The key manager (leader only): every SealingKey gets a key pair whose private half lives
//! in a Secret it owns; exactly one key is Active; the Active key is renewed on schedule; each
//! key's status carries its public key, id, creation time and how many SealedSecrets use it.

use super::Context;
use super::events::Event;
use crate::api::{KeyState, SealingKey, SealingKeySpec, SealingKeyStatus};
use crate::crypto::Identity;
use crate::keyring::{
    KeyView, demotions, identity_of, key_secret, key_secret_name, needs_new_key, next_key_name,
};
use crate::manifest::wanted_key_id_refs;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use std::collections::{BTreeMap, BTreeSet};

/// One pass over the key set. Idempotent; run on every key change and periodically.
pub async fn manage(ctx: &Context) -> Result<(), kube::Error> {
    let keys_api: Api<SealingKey> = Api::all(ctx.client.clone());
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.config.namespace);
    let keys = keys_api.list(&Default::default()).await?.items;
    let views: Vec<KeyView> = keys.iter().map(KeyView::of).collect();

    // A new Active key when there is none, or the Active one is due for renewal.
    let now = jiff::Timestamp::now().as_second();
    if needs_new_key(&views, now, ctx.config.key_renew_interval.as_secs() as i64) {
        let name = next_key_name(&views);
        let key = SealingKey::new(
            &name,
            SealingKeySpec {
                state: KeyState::Active,
                force: false,
            },
        );
        match keys_api
            .create(
                &PostParams {
                    field_manager: Some(super::FIELD_MANAGER.into()),
                    ..Default::default()
                },
                &key,
            )
            .await
        {
            Ok(_) => tracing::info!(key = %name, "created a new Active SealingKey"),
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e),
        }
        return Ok(()); // the watch brings us back with the new key in the list
    }
    for name in demotions(&views) {
        let patch = serde_json::json!({"spec": {"state": "DecryptOnly"}});
        keys_api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        tracing::info!(key = %name, "demoted to DecryptOnly: a newer key is Active");
    }

    let usage = usage_by_key_id(ctx);
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    for key in &keys {
        *counts.entry(key.spec.state.to_string()).or_default() += 1;
        let secret = secrets.get_opt(&key_secret_name(&key.name_any())).await?;
        let identity = match (&secret, key.spec.state) {
            (Some(s), _) => identity_of(s),
            (None, KeyState::Retired) => None,
            (None, _) if key.status.as_ref().is_some_and(|s| s.public_key.is_some()) => {
                // Its private half is gone (deleted by hand?): say so, never invent a new one
                // under an id that sealed files already name.
                condition(
                    ctx,
                    key,
                    "False",
                    "PrivateKeyMissing",
                    "the private key Secret is missing; restore it from a backup",
                )
                .await?;
                continue;
            }
            (None, _) => Some(create_key_secret(ctx, &secrets, key).await?),
        };
        let used_by = identity.as_ref().map_or_else(
            || {
                key.status
                    .as_ref()
                    .and_then(|s| s.key_id.as_ref())
                    .and_then(|id| usage.get(id).copied())
                    .unwrap_or(0)
            },
            |i| usage.get(&i.key_id()).copied().unwrap_or(0),
        );
        if key.spec.state == KeyState::Retired {
            retire(ctx, &secrets, key, secret.is_some(), used_by).await?;
        }
        publish_status(&keys_api, key, identity.as_ref(), used_by).await?;
    }
    for state in [KeyState::Active, KeyState::DecryptOnly, KeyState::Retired] {
        let n = counts.get(&state.to_string()).copied().unwrap_or(0);
        ctx.metrics
            .keys
            .get_or_create(&super::metrics::StateLabel {
                state: state.to_string(),
            })
            .set(n);
    }
    Ok(())
}

/// How many SealedSecrets (in the namespaces this controller watches) use each key id.
fn usage_by_key_id(ctx: &Context) -> BTreeMap<String, i64> {
    let objects: Vec<_> = ctx.sealed_stores.iter().flat_map(|s| s.state()).collect();
    ctx.memo
        .retain(objects.iter().filter_map(|o| o.metadata.uid.as_deref()));
    let mut usage: BTreeMap<&str, i64> = BTreeMap::new();
    for sealed in &objects {
        let ids: BTreeSet<&str> = wanted_key_id_refs(sealed).collect();
        for id in ids {
            *usage.entry(id).or_default() += 1;
        }
    }
    usage.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

async fn create_key_secret(
    ctx: &Context,
    secrets: &Api<Secret>,
    key: &SealingKey,
) -> Result<Identity, kube::Error> {
    let identity = Identity::generate();
    let secret = key_secret(key, &identity, &ctx.config.namespace);
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => {
            tracing::info!(key = %key.name_any(), key_id = %identity.key_id(), "generated a key pair");
            Ok(identity)
        }
        // Another replica won the race: use its key.
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let existing = secrets.get(&key_secret_name(&key.name_any())).await?;
            identity_of(&existing)
                .ok_or_else(|| kube::Error::Api(invalid_key_secret(&key.name_any())))
        }
        Err(e) => Err(e),
    }
}

fn invalid_key_secret(key: &str) -> Box<kube::core::Status> {
    Box::new(kube::core::Status::failure(
        &format!("key Secret of {key} holds no valid identity"),
        "Invalid",
    ))
}

/// Retirement: refused while the key is in use (unless forced); then the private half goes.
async fn retire(
    ctx: &Context,
    secrets: &Api<Secret>,
    key: &SealingKey,
    has_secret: bool,
    used_by: i64,
) -> Result<(), kube::Error> {
    if used_by > 0 && !key.spec.force {
        let msg = format!(
            "{used_by} SealedSecret(s) still use this key: reseal them first, or set spec.force"
        );
        return condition(ctx, key, "False", "RetireRefused", &msg).await;
    }
    if has_secret {
        secrets
            .delete(&key_secret_name(&key.name_any()), &Default::default())
            .await?;
        tracing::info!(key = %key.name_any(), "retired: private key deleted");
        publish_event(
            ctx,
            key,
            EventType::Normal,
            "Retired",
            "private key deleted",
        )
        .await;
    }
    Ok(())
}

async fn publish_status(
    api: &Api<SealingKey>,
    key: &SealingKey,
    identity: Option<&Identity>,
    used_by: i64,
) -> Result<(), kube::Error> {
    let old = key.status.clone().unwrap_or_default();
    let mut status = SealingKeyStatus {
        used_by,
        ..old.clone()
    };
    if let Some(i) = identity {
        status.public_key = Some(i.recipient().as_str().to_string());
        status.key_id = Some(i.key_id());
        if status.created.is_none() {
            status.created = Some(
                key.meta()
                    .creation_timestamp
                    .clone()
                    .unwrap_or(Time(jiff::Timestamp::now())),
            );
        }
    }
    if key.spec.state != KeyState::Retired || used_by == 0 || key.spec.force {
        status.conditions.retain(|c| c.reason != "RetireRefused");
    }
    if status != old {
        let patch = serde_json::json!({"status": status});
        api.patch_status(
            &key.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    }
    Ok(())
}

async fn condition(
    ctx: &Context,
    key: &SealingKey,
    status: &str,
    reason: &'static str,
    message: &str,
) -> Result<(), kube::Error> {
    let old = key.status.clone().unwrap_or_default();
    if old
        .conditions
        .iter()
        .any(|c| c.reason == reason && c.message == message)
    {
        return Ok(());
    }
    let cond = k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
        type_: "Ready".into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: Time(jiff::Timestamp::now()),
        observed_generation: key.meta().generation,
    };
    let api: Api<SealingKey> = Api::all(ctx.client.clone());
    let patch = serde_json::json!({"status": {"conditions": [cond]}});
    api.patch_status(
        &key.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    publish_event(ctx, key, EventType::Warning, reason, message).await;
    Ok(())
}

async fn publish_event(
    ctx: &Context,
    key: &SealingKey,
    type_: EventType,
    reason: &'static str,
    note: &str,
) {
    let ev = Event {
        type_,
        reason,
        action: "ManageKey",
        note: note.into(),
    };
    if let Err(e) = ctx.recorder.publish(&ev, &key.object_ref(&())).await {
        tracing::warn!(error = %e, "could not publish an Event");
    }
}
