//! The key manager (leader only): every SealingKey gets a key pair whose private half lives
//! in a Secret it owns; the rules of [`crate::keyring::lifecycle`] decide which key is Active,
//! what the others effectively are, and when a retirement or deletion may go ahead. Spec is
//! the users' (Git's): this writes only status, its own finalizer, and key Secrets.
//!
//! A reconciler per SealingKey in kube-runtime's shape (`reconcile`, `error_policy`), and
//! the set's own pass (`manage_set`): the decisions are about the set (exactly one Active,
//! the next key when none may be Active, usage across every SealedSecret), so each key is
//! judged with all the others, and the first key is created when there is no object to
//! reconcile at all. Both read only the caches.

use super::Context;
use super::events::Event;
use crate::api::{
    KeyState, PRIVATE_KEY_CONDITION, RETIRED_CONDITION, Reason, SealingKey, SealingKeyStatus,
};
use crate::crypto::Identity;
use crate::keyring::lifecycle::{self, Held, KeyView, Retirement, Verdict};
use crate::keyring::{
    KEY_FIELD_MANAGER, KEY_FINALIZER, key_secret, key_secret_name, trusted_identity,
};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use std::sync::Arc;

/// What the key rules decide for one cached SealingKey, judged with the whole set.
struct Judged {
    key: Arc<SealingKey>,
    view: KeyView,
    verdict: Verdict,
    secret: Option<Arc<Secret>>,
    identity: Option<Identity>,
}

/// Judge every cached key together (the rules are about the set: one Active, usage, renewal).
fn judge(ctx: &Context) -> (Vec<Judged>, Vec<KeyView>) {
    let keys = ctx.sealing_keys.state();
    let secrets = ctx.key_secrets.state();
    let usage = ctx.key_usage();
    let mut held = Vec::with_capacity(keys.len());
    let mut views = Vec::with_capacity(keys.len());
    for key in &keys {
        let secret = key_secret_of(&secrets, key);
        let (h, identity) = match secret.map(|s| trusted_identity(s.as_ref(), [key.as_ref()])) {
            None => (Held::Missing, None),
            Some(Ok((_, identity))) => (Held::Trusted, Some(identity)),
            Some(Err(why)) => (Held::Untrusted(why.to_string()), None),
        };
        let key_id = identity
            .as_ref()
            .map(Identity::key_id)
            .or_else(|| key.status.as_ref().and_then(|s| s.key_id.clone()));
        let used_by = key_id.as_deref().map_or(Some(0), |id| usage.of(id));
        views.push(KeyView::of(key, h, used_by));
        held.push((secret.cloned(), identity));
    }
    let verdicts = lifecycle::decide(&views);
    let judged = keys
        .into_iter()
        .zip(views.iter().cloned())
        .zip(verdicts)
        .zip(held)
        .map(|(((key, view), verdict), (secret, identity))| Judged {
            key,
            view,
            verdict,
            secret,
            identity,
        })
        .collect();
    (judged, views)
}

/// The set's own work, from the caches: a new Active key when none may be or the Active one
/// is due for renewal (also the cluster's first key, when there is no key to reconcile at
/// all), and the key metrics. Idempotent; the key manager runs it on every key change, on
/// usage changes and periodically, then has every key reconciled.
pub async fn manage_set(ctx: &Context) -> Result<(), kube::Error> {
    let (judged, views) = judge(ctx);
    let now = jiff::Timestamp::now().as_second();
    let renew = i64::try_from(ctx.config.key_renew_interval.as_secs()).unwrap_or(i64::MAX);
    if lifecycle::needs_new_key(&views, now, renew) {
        let name = lifecycle::next_key_name(views.iter().map(|v| v.name.as_str()));
        create_key(ctx, &name).await?;
        // The watch brings us back with the new key in the cache.
    }
    let mut counts: std::collections::HashMap<KeyState, i64> = Default::default();
    for j in &judged {
        *counts.entry(j.verdict.state).or_default() += 1;
    }
    for state in [KeyState::Active, KeyState::DecryptOnly, KeyState::Retired] {
        let label = super::metrics::StateLabel {
            state: state.to_string(),
        };
        let n = counts.get(&state).copied().unwrap_or(0);
        ctx.metrics.keys.get_or_create(&label).set(n);
    }
    let active_created = lifecycle::active(&views).map_or(0, |k| k.created);
    ctx.metrics.active_key_created.set(active_created);
    let refused = judged
        .iter()
        .filter(|j| {
            matches!(&j.verdict.retired, Some(Retirement::Refused { reason, .. })
                if matches!(reason, Reason::RetireRefused | Reason::DeletionBlocked))
        })
        .count();
    ctx.metrics
        .keys_retire_refused
        .set(i64::try_from(refused).unwrap_or(i64::MAX));
    Ok(())
}

/// The SealingKey reconciler (kube-runtime's shape): this key's verdict, judged with the
/// whole set from the caches, carried out: its key pair, finalizers, private-key deletion
/// on retirement, status and Events. Every key is reconciled whenever any key, key Secret
/// or key usage changes (one key's change can change another's verdict) and every 30 s.
pub async fn reconcile(key: Arc<SealingKey>, ctx: Arc<Context>) -> Result<Action, kube::Error> {
    let (judged, _) = judge(&ctx);
    let Some(j) = judged
        .into_iter()
        .find(|j| j.key.metadata.uid == key.metadata.uid)
    else {
        return Ok(Action::await_change()); // gone from the cache meanwhile
    };
    manage_key(
        &ctx,
        &j.key,
        &j.view,
        &j.verdict,
        j.secret.as_deref(),
        j.identity.as_ref(),
    )
    .await?;
    Ok(Action::await_change())
}

/// A failed key reconcile is retried in 5 s (keys are few; the next reconcile-all comes
/// sooner on any change).
pub fn error_policy(key: Arc<SealingKey>, error: &kube::Error, _: Arc<Context>) -> Action {
    tracing::warn!(key = %key.name_any(), error = %error, "could not manage key; retrying");
    Action::requeue(std::time::Duration::from_secs(5))
}

/// The key Secret of `key`, by its one name (other Secrets are never looked at).
fn key_secret_of<'a>(secrets: &'a [Arc<Secret>], key: &SealingKey) -> Option<&'a Arc<Secret>> {
    let name = key_secret_name(&key.name_any());
    secrets
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some(name.as_str()))
}

async fn manage_key(
    ctx: &Context,
    key: &SealingKey,
    view: &KeyView,
    verdict: &Verdict,
    secret: Option<&Secret>,
    identity: Option<&Identity>,
) -> Result<(), kube::Error> {
    let keys_api: Api<SealingKey> = Api::all(ctx.client.clone());
    let name = key.name_any();
    let has_finalizer = key.finalizers().iter().any(|f| f == KEY_FINALIZER);
    if !view.deleting && !view.retired && !has_finalizer {
        add_finalizer(&keys_api, &name).await?;
    }
    // A key without a private half yet: make one (never under an id sealed files already
    // name: a published key whose Secret is gone stays missing until restored).
    let published = key.status.as_ref().is_some_and(|s| s.public_key.is_some());
    if view.held == Held::Missing
        && !published
        && !view.deleting
        && !view.retired
        && view.wanted != KeyState::Retired
    {
        return create_key_secret(ctx, key).await;
    }
    // Key Secrets made before the finalizer existed get it.
    if let Some(secret) = secret
        && view.held == Held::Trusted
        && !verdict.delete_private_key
        && !secret.finalizers().iter().any(|f| f == KEY_FINALIZER)
    {
        let mut finalizers = secret.finalizers().to_vec();
        finalizers.push(KEY_FINALIZER.to_string());
        let patch = serde_json::json!({
            "metadata": {"resourceVersion": secret.metadata.resource_version, "finalizers": finalizers},
        });
        let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.config.namespace);
        api.patch(
            &secret.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    }
    if verdict.delete_private_key
        && let Some(secret) = secret
    {
        delete_key_secret(ctx, secret).await?;
        tracing::info!(key = %name, "retired: private key deleted");
        publish_event(
            ctx,
            key,
            EventType::Normal,
            Reason::Retired,
            "private key deleted",
        )
        .await;
    }
    if verdict.release && has_finalizer {
        // Its private key is gone (above): let the deletion finish; no status to write.
        remove_finalizer(&keys_api, key).await?;
        tracing::info!(key = %name, "deleted SealingKey released");
        return Ok(());
    }
    publish_status(ctx, &keys_api, key, view, verdict, identity).await
}

/// Add the key manager's finalizer with server-side apply: it owns only its own entry of
/// the list, so other finalizers and every other field stay as they are.
async fn add_finalizer(api: &Api<SealingKey>, name: &str) -> Result<(), kube::Error> {
    let patch = serde_json::json!({
        "apiVersion": "gitseal.dev/v1alpha1",
        "kind": "SealingKey",
        "metadata": {"name": name, "finalizers": [KEY_FINALIZER]},
    });
    api.patch(
        name,
        &PatchParams::apply(KEY_FIELD_MANAGER),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// Remove the key manager's finalizer from `key` (whoever added the entry: the creator owns
/// it when the key was created with it), keeping the others; only if `key` is still the
/// version that was judged (resourceVersion precondition).
async fn remove_finalizer(api: &Api<SealingKey>, key: &SealingKey) -> Result<(), kube::Error> {
    let others: Vec<&String> = key
        .finalizers()
        .iter()
        .filter(|f| *f != KEY_FINALIZER)
        .collect();
    let patch = serde_json::json!({
        "metadata": {"resourceVersion": key.metadata.resource_version, "finalizers": others},
    });
    api.patch(
        &key.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

/// Create SealingKey `name`, Active; two replicas racing make one (409 for the other).
async fn create_key(ctx: &Context, name: &str) -> Result<(), kube::Error> {
    let key = lifecycle::new_active_key(name);
    let api: Api<SealingKey> = Api::all(ctx.client.clone());
    let params = PostParams {
        field_manager: Some(super::FIELD_MANAGER.into()),
        ..Default::default()
    };
    match api.create(&params, &key).await {
        Ok(_) => tracing::info!(key = %name, "created a new Active SealingKey"),
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e),
    }
    Ok(())
}

async fn create_key_secret(ctx: &Context, key: &SealingKey) -> Result<(), kube::Error> {
    let identity = Identity::generate();
    let secret = key_secret(key, &identity, &ctx.config.namespace);
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.config.namespace);
    let params = PostParams {
        field_manager: Some(KEY_FIELD_MANAGER.into()),
        ..Default::default()
    };
    match api.create(&params, &secret).await {
        Ok(_) => {
            tracing::info!(key = %key.name_any(), key_id = %identity.key_id(), "generated a key pair");
        }
        // Another replica, or someone else, was first: the trust rules judge that Secret.
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e),
    }
    Ok(())
}

/// Release the key Secret's finalizer and delete it, both only if it is still the Secret
/// that was judged (uid and resourceVersion preconditions).
async fn delete_key_secret(ctx: &Context, secret: &Secret) -> Result<(), kube::Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.config.namespace);
    let name = secret.name_any();
    let others: Vec<&String> = secret
        .finalizers()
        .iter()
        .filter(|f| *f != KEY_FINALIZER)
        .collect();
    if others.len() != secret.finalizers().len() {
        let patch = serde_json::json!({
            "metadata": {
                "uid": secret.metadata.uid,
                "resourceVersion": secret.metadata.resource_version,
                "finalizers": others,
            },
        });
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: secret.metadata.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

async fn publish_status(
    ctx: &Context,
    api: &Api<SealingKey>,
    key: &SealingKey,
    view: &KeyView,
    verdict: &Verdict,
    identity: Option<&Identity>,
) -> Result<(), kube::Error> {
    let old = key.status.clone().unwrap_or_default();
    let generation = key.meta().generation;
    let mut status = SealingKeyStatus {
        state: Some(verdict.state),
        state_reason: verdict.reason.clone(),
        observed_generation: generation,
        used_by: view.used_by.unwrap_or(old.used_by),
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
    let (held, reason, message) = match &view.held {
        Held::Trusted => ("True", Reason::Held, String::new()),
        Held::Missing if verdict.state == KeyState::Retired => (
            "False",
            Reason::Retired,
            "deleted on retirement".to_string(),
        ),
        Held::Missing => (
            "False",
            Reason::PrivateKeyMissing,
            "the private key Secret is missing; restore it from a backup".to_string(),
        ),
        Held::Untrusted(why) => (
            "False",
            Reason::PrivateKeyUntrusted,
            format!("key Secret {why}"),
        ),
    };
    let mut conditions = Vec::new();
    conditions.push(condition(
        &old,
        PRIVATE_KEY_CONDITION,
        held,
        reason,
        &message,
        generation,
    ));
    let mut warn = None;
    match &verdict.retired {
        Some(Retirement::Done) => conditions.push(condition(
            &old,
            RETIRED_CONDITION,
            "True",
            Reason::Retired,
            "private key deleted",
            generation,
        )),
        Some(Retirement::Refused { reason, message }) => {
            let c = condition(
                &old,
                RETIRED_CONDITION,
                "False",
                *reason,
                message,
                generation,
            );
            let known = old
                .conditions
                .iter()
                .any(|o| o.type_ == c.type_ && o.reason == c.reason && o.message == c.message);
            if !known && *reason != Reason::RetirePending {
                warn = Some((*reason, message.clone()));
            }
            conditions.push(c);
        }
        None => {}
    }
    status.conditions = conditions;
    if status != old {
        // Server-side apply: status is the controller's, and a field it no longer sets
        // (a reason that stopped applying) is removed, not left behind.
        let patch = serde_json::json!({
            "apiVersion": "gitseal.dev/v1alpha1",
            "kind": "SealingKey",
            "status": status,
        });
        let params = PatchParams::apply(super::FIELD_MANAGER).force();
        api.patch_status(&key.name_any(), &params, &Patch::Apply(&patch))
            .await?;
    }
    if let Some((reason, message)) = warn {
        publish_event(ctx, key, EventType::Warning, reason, &message).await;
    }
    Ok(())
}

/// A condition, keeping its last transition time when its status did not change.
fn condition(
    old: &SealingKeyStatus,
    type_: &str,
    status: &str,
    reason: Reason,
    message: &str,
    generation: Option<i64>,
) -> Condition {
    let since = old
        .conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or_else(
            || Time(jiff::Timestamp::now()),
            |c| c.last_transition_time.clone(),
        );
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.as_str().into(),
        message: message.into(),
        last_transition_time: since,
        observed_generation: generation,
    }
}

async fn publish_event(
    ctx: &Context,
    key: &SealingKey,
    type_: EventType,
    reason: Reason,
    note: &str,
) {
    let ev = Event {
        type_,
        reason,
        action: "ManageKey",
        note: note.into(),
    };
    if let Err(e) = ctx.recorder.publish(&ev, &key.object_ref(&())).await {
        tracing::warn!(error = %super::scrub(&e), "could not publish an Event");
    }
}
