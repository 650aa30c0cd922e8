//! SealedSecret → Secret: pick private keys by key id, open every value, write the Secret
//! with server-side apply when it differs, and report status and Events. `error_policy`
//! backs off per object, so one bad object never blocks the others.

use super::events::Event;
use super::memo;
use super::report::{Ready, Report};
use super::secret::{Digest, Source, adoptable, data_digest, desired, in_sync, owned_by};
use super::{Context, FIELD_MANAGER};
use crate::api::SealedSecret;
use crate::crypto::Recipient;
use crate::format::{Envelopes, Opener, rewrap};
use crate::keyring::PrivateKeys;
use crate::manifest::{ErrorKind, Location, check_sealed, open_values, wanted_key_ids};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why an object is not Ready. The message names the cause and never holds plain text.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{reason}: {message}")]
    Unseal {
        reason: &'static str,
        message: String,
    },
    #[error("API request failed: {0}")]
    Kube(#[from] kube::Error),
}

impl Error {
    fn reason(&self) -> &'static str {
        match self {
            Error::Unseal { reason, .. } => reason,
            Error::Kube(_) => "ApiError",
        }
    }
}

fn unseal_error(reason: &'static str, message: impl Into<String>) -> Error {
    Error::Unseal {
        reason,
        message: message.into(),
    }
}

/// What a successful reconcile did to the Secret.
#[derive(Debug, PartialEq, Eq)]
enum Wrote {
    Nothing,
    Created,
    Updated,
    Repaired,
}

pub async fn reconcile(sealed: Arc<SealedSecret>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = apply(&sealed, &ctx).await;
    let rewrapped = result.as_ref().ok().map(|(_, r)| r.clone());
    let result = result.map(|(wrote, _)| wrote);
    ctx.metrics
        .reconcile_seconds
        .observe(started.elapsed().as_secs_f64());
    // Key ids in status: those whose wrapping unwrapped, not merely those named.
    let (_, keys_version) = ctx.private_keys();
    let active = ctx.active_key();
    let inputs = memo_inputs(
        &sealed,
        keys_version,
        active.as_ref().map(|(id, _)| id.as_str()),
    );
    let uid = sealed.meta().uid.clone().unwrap_or_default();
    let used = ctx.memo.used(&uid, inputs).unwrap_or_default();
    let key_ids: Vec<String> = wanted_key_ids(&sealed)
        .into_iter()
        .filter(|id| used.contains(&memo::key_id_hash(id)))
        .collect();
    let name = sealed.name_any();
    let at = jiff::Timestamp::now();
    let (ready, event) = match &result {
        Ok(wrote) => {
            ctx.metrics.reconciled("Unsealed");
            let event = match wrote {
                Wrote::Nothing => None,
                Wrote::Created => Some(("Unsealed", "Created", format!("created Secret {name}"))),
                Wrote::Updated => Some(("Unsealed", "Updated", format!("updated Secret {name}"))),
                Wrote::Repaired => Some((
                    "DriftRepaired",
                    "Restored",
                    format!("restored Secret {name} to what the SealedSecret says"),
                )),
            };
            (
                Ready::Unsealed { at },
                event.map(|(reason, action, note)| Event {
                    type_: EventType::Normal,
                    reason,
                    action,
                    note,
                }),
            )
        }
        Err(e) => {
            ctx.metrics.reconciled(e.reason());
            let message = match e {
                Error::Unseal { message, .. } => message.clone(),
                Error::Kube(k) => format!("{} (retrying)", super::scrub(k)),
            };
            let event = Event {
                type_: EventType::Warning,
                reason: e.reason(),
                action: "Unseal",
                note: message.clone(),
            };
            let ready = Ready::Failed {
                reason: e.reason(),
                message,
                at,
            };
            (ready, Some(event))
        }
    };
    ctx.reports.push(
        ObjectRef::from_obj(&*sealed),
        Report {
            uid: sealed.meta().uid.clone(),
            generation: sealed.meta().generation,
            ready,
            key_ids,
            rewrapped,
            events: event.into_iter().collect(),
        },
    );
    match result {
        Ok(_) => {
            ctx.forget_failures(&ObjectRef::from_obj(&*sealed));
            Ok(Action::await_change())
        }
        Err(e) => Err(e),
    }
}

/// Exponential backoff per object: 0.5 s doubling to 5 min.
pub fn error_policy(sealed: Arc<SealedSecret>, error: &Error, ctx: Arc<Context>) -> Action {
    let n = ctx.count_failure(ObjectRef::from_obj(&*sealed));
    let delay = Duration::from_millis(500)
        .saturating_mul(1u32 << n.min(10))
        .min(Duration::from_secs(300));
    tracing::info!(object = %ObjectRef::from_obj(&*sealed), reason = error.reason(), retry_in = ?delay, "not ready");
    // What the API server said goes to the operator's log only (status and Events carry the
    // scrubbed form), at debug level: a webhook's or server's message can quote request data.
    if let Error::Kube(e) = error {
        tracing::debug!(object = %ObjectRef::from_obj(&*sealed), error = %e, "API request failed");
    }
    Action::requeue(delay)
}

/// Open the values and make the Secret say them; also re-wrap envelopes the Active key
/// cannot open yet (for `gitseal reseal`). A check whose inputs are unchanged since the last
/// unseal compares digests and decrypts nothing. Whatever the outcome, which key ids unwrap
/// this object's envelopes is remembered (key usage).
async fn apply(sealed: &SealedSecret, ctx: &Context) -> Result<(Wrote, Envelopes), Error> {
    let (keys, keys_version) = ctx.private_keys();
    let active = ctx.active_key();
    let inputs = memo_inputs(
        sealed,
        keys_version,
        active.as_ref().map(|(id, _)| id.as_str()),
    );
    let uid = sealed.meta().uid.clone().unwrap_or_default();
    let cached = ctx.managed_secret(&sealed.namespace().unwrap_or_default(), &sealed.name_any());
    if let Some(actual) = &cached
        && known_in_sync(sealed, actual, ctx, inputs)
    {
        // Nothing to decrypt; re-wraps too are known unless the Active key changed.
        let rewrapped = match &active {
            Some((active, _)) => earlier_rewraps(sealed, active),
            None => Some(Envelopes::new()),
        };
        if let Some(rewrapped) = rewrapped {
            return Ok((Wrote::Nothing, rewrapped));
        }
    }
    let whole = ctx.whole(sealed).await?;
    let sealed = whole.as_ref().map_or(sealed, |(s, _)| s);
    let mut used = Vec::new();
    let result = open_and_write(sealed, ctx, cached, &keys, active, &mut used).await;
    let digest = result.as_ref().ok().map(|(_, _, d)| *d);
    ctx.memo.put(&uid, inputs, digest, &used);
    result.map(|(wrote, rewrapped, _)| (wrote, rewrapped))
}

async fn open_and_write(
    sealed: &SealedSecret,
    ctx: &Context,
    cached: Option<Arc<Secret>>,
    keys: &PrivateKeys,
    active: Option<(String, Recipient)>,
    used: &mut Vec<u64>,
) -> Result<(Wrote, Envelopes, Digest), Error> {
    let at = location(sealed);
    // A binding that disagrees with the metadata is reported by opening (BindingMismatch).
    let problems = check_sealed(sealed, &at, None)
        .into_iter()
        .filter(|p| p.at.field != "spec.boundTo");
    if let Some(problem) = problems.into_iter().next() {
        return Err(unseal_error(
            "InvalidSpec",
            format!("{}: {}", problem.at.field, problem.message),
        ));
    }
    let wanted = wanted_key_ids(sealed);
    let picked = keys.pick(&wanted);
    if picked.is_empty() {
        return Err(unseal_error(
            "KeyNotFound",
            format!(
                "sealed for key ids [{}]; this cluster has [{}]",
                wanted.into_iter().collect::<Vec<_>>().join(", "),
                keys.ids().join(", ")
            ),
        ));
    }
    let mut opener = Opener::new(picked.iter().copied());
    *used = verified_key_ids(sealed, &picked, &mut opener);
    // Policy before any value is decrypted: a refused object gets nothing written.
    if let Err(denied) = ctx.config.policy.check(sealed) {
        return Err(unseal_error("PolicyDenied", denied.to_string()));
    }
    let (wrote, digest) = write_secret(sealed, ctx, cached, &mut opener).await?;
    let rewrapped = rewraps(sealed, active, &mut opener);
    Ok((wrote, rewrapped, digest))
}

/// The key ids (hashed, see [`memo::key_id_hash`]) among `picked` whose wrapping of an
/// envelope that a value references unwraps to that envelope's committed data key. Warms
/// `opener` with each envelope's data key; a key id merely named, or wrapping garbage,
/// counts for nothing (so a fake stanza cannot keep a key from being retired).
fn verified_key_ids(
    sealed: &SealedSecret,
    picked: &[&crate::crypto::Identity],
    opener: &mut Opener<'_>,
) -> Vec<u64> {
    let referenced: std::collections::BTreeSet<&str> = sealed
        .spec
        .encrypted_data
        .values()
        .filter_map(|v| crate::format::SealedValue::envelope_id_of(v))
        .collect();
    let mut used = std::collections::BTreeSet::new();
    for id in referenced {
        let Some(wrapped) = sealed.spec.envelopes.get(id) else {
            continue;
        };
        let held: Vec<&crate::crypto::Identity> = picked
            .iter()
            .copied()
            .filter(|i| wrapped.contains_key(&i.key_id()))
            .collect();
        // One held wrapping (the usual case): the opener's own unwrap verifies it. Several
        // (during a rotation): each is verified on its own, so a bad one counts for nothing.
        let opened = opener.data_key(&sealed.spec.envelopes, id).is_ok();
        match held.as_slice() {
            [only] if opened => {
                used.insert(memo::key_id_hash(&only.key_id()));
            }
            [_] | [] => {}
            several => {
                for identity in several {
                    if Opener::new([*identity])
                        .data_key(&sealed.spec.envelopes, id)
                        .is_ok()
                    {
                        used.insert(memo::key_id_hash(&identity.key_id()));
                    }
                }
            }
        }
    }
    used.into_iter().collect()
}

/// What `sealed`'s unsealed data depends on besides itself: the private keys and the Active one.
pub(super) fn memo_inputs(
    sealed: &SealedSecret,
    keys_version: u64,
    active: Option<&str>,
) -> memo::Inputs {
    memo::Inputs {
        generation: sealed.meta().generation,
        keys: super::hash64(&(keys_version, active)),
    }
}

/// Whether the cached Secret `actual` still says what `sealed` unsealed to last time from the
/// same spec and keys (so there is nothing to decrypt or write).
fn known_in_sync(
    sealed: &SealedSecret,
    actual: &Secret,
    ctx: &Context,
    inputs: memo::Inputs,
) -> bool {
    let uid = sealed.meta().uid.as_deref().unwrap_or_default();
    ctx.memo.get(uid, inputs).is_some_and(|digest| {
        owned_by(actual, sealed)
            && in_sync(
                actual,
                Source::Cache,
                &desired(sealed, BTreeMap::new()),
                &digest,
            )
    })
}

/// Whether a change to a managed Secret (from the cache) needs its owner reconciled: not
/// when it is the echo of the controller's own write, or otherwise matches what the owner
/// unsealed to. Edits, and Secrets whose owner is not cached yet, do.
pub fn secret_changed(ctx: &Context, secret: &Secret, owner: &ObjectRef<SealedSecret>) -> bool {
    let Some(sealed) = ctx.sealed_object(owner) else {
        return true;
    };
    let (_, keys_version) = ctx.private_keys();
    let active = ctx.active_key();
    let inputs = memo_inputs(
        &sealed,
        keys_version,
        active.as_ref().map(|(id, _)| id.as_str()),
    );
    !known_in_sync(&sealed, secret, ctx, inputs)
}

fn location(sealed: &SealedSecret) -> Location {
    Location::new(
        format!(
            "{}/{}",
            sealed.namespace().unwrap_or_default(),
            sealed.name_any()
        ),
        1,
    )
}

/// Envelopes of `sealed` without a wrapping for the Active key, re-wrapped to it alone (the
/// cluster's own key: never a caller's). Earlier re-wraps in status are kept, so status
/// stays put across reconciles. Values, and so their scope binding, are untouched.
fn rewraps(
    sealed: &SealedSecret,
    active: Option<(String, Recipient)>,
    opener: &mut Opener<'_>,
) -> Envelopes {
    let Some((active, recipient)) = active else {
        return Envelopes::new();
    };
    let old = status_rewraps(sealed);
    let mut out = Envelopes::new();
    for (id, wrapped) in &sealed.spec.envelopes {
        if wrapped.contains_key(&active) {
            continue;
        }
        if let Some(previous) = old.get(id).filter(|m| m.contains_key(&active)) {
            out.insert(id.clone(), previous.clone());
            continue;
        }
        match rewrap(
            opener,
            &sealed.spec.envelopes,
            id,
            std::slice::from_ref(&recipient),
        ) {
            Ok(m) => {
                out.insert(id.clone(), m);
            }
            Err(e) => tracing::warn!(envelope = %id, error = %e, "could not re-wrap"),
        }
    }
    out
}

/// The re-wraps [`rewraps`] would return, when status already holds every one of them.
fn earlier_rewraps(sealed: &SealedSecret, active: &str) -> Option<Envelopes> {
    let old = status_rewraps(sealed);
    sealed
        .spec
        .envelopes
        .iter()
        .filter(|(_, wrapped)| !wrapped.contains_key(active))
        .map(|(id, _)| {
            let previous = old.get(id).filter(|m| m.contains_key(active))?;
            Some((id.clone(), previous.clone()))
        })
        .collect()
}

fn status_rewraps(sealed: &SealedSecret) -> &Envelopes {
    static NONE: Envelopes = Envelopes::new();
    sealed
        .status
        .as_ref()
        .map_or(&NONE, |s| &s.rewrapped_envelopes)
}

/// Make the Secret say `sealed`'s values; returns what was done and the data's digest.
async fn write_secret(
    sealed: &SealedSecret,
    ctx: &Context,
    cached: Option<Arc<Secret>>,
    opener: &mut Opener<'_>,
) -> Result<(Wrote, Digest), Error> {
    let at = location(sealed);
    let values = open_values(sealed, &at, opener).map_err(|e| {
        let reason = match e.kind {
            ErrorKind::KeyNotFound => "KeyNotFound",
            ErrorKind::BindingMismatch => "BindingMismatch",
            ErrorKind::Tampered => "Tampered",
            ErrorKind::Input => "InvalidSpec",
        };
        unseal_error(reason, format!("{}: {}", e.at.field, e.message))
    })?;
    let want = desired(sealed, values);
    let digest = data_digest(want.data.as_ref());
    let name = sealed.name_any();
    let ns = sealed.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    // Secret writes (only real requests, never an in-sync check) make status writes give way
    // (see report.rs).
    let existing = match cached {
        Some(s) => Some((s, Source::Cache)),
        None => match ctx
            .reports
            .busy()
            .during(api.create(
                &PostParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..Default::default()
                },
                &want,
            ))
            .await
        {
            Ok(_) => {
                ctx.metrics.wrote("create");
                let wrote = if was_ready(sealed) {
                    repaired(ctx)
                } else {
                    Wrote::Created
                };
                return Ok((wrote, digest));
            }
            Err(kube::Error::Api(s)) if s.code == 409 => api
                .get_opt(&name)
                .await?
                .map(|s| (Arc::new(s), Source::Server)),
            Err(e) => return Err(e.into()),
        },
    };
    if let Some((actual, from)) = &existing {
        if !owned_by(actual, sealed) && !adoptable(actual) {
            return Err(unseal_error(
                "SecretNotOwned",
                format!(
                    "Secret {ns}/{name} exists and is not managed by this SealedSecret; \
                     annotate it with gitseal.dev/adopt=\"true\" to let gitseal take it over"
                ),
            ));
        }
        if in_sync(actual, *from, &want, &digest) {
            return Ok((Wrote::Nothing, digest));
        }
    }
    let _writing = ctx.reports.busy();
    // Preconditions: only the Secret that was judged (owned or adoptable, at this version)
    // is deleted or overwritten; one replaced in between is never taken over.
    let mut want = want;
    if let Some((actual, _)) = &existing {
        if actual.immutable == Some(true) {
            let params = kube::api::DeleteParams {
                preconditions: Some(kube::api::Preconditions {
                    uid: actual.metadata.uid.clone(),
                    resource_version: actual.metadata.resource_version.clone(),
                }),
                ..Default::default()
            };
            api.delete(&name, &params).await?;
            ctx.metrics.wrote("delete");
        } else {
            want.metadata.resource_version = actual.metadata.resource_version.clone();
        }
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(&name, &params, &Patch::Apply(&want)).await?;
    ctx.metrics.wrote("apply");
    let wrote = if was_ready(sealed) && existing.is_some() {
        repaired(ctx)
    } else {
        Wrote::Updated
    };
    Ok((wrote, digest))
}

/// Whether the object was already unsealed at this generation: then a differing or missing
/// Secret means someone edited or deleted it.
fn was_ready(sealed: &SealedSecret) -> bool {
    let Some(status) = &sealed.status else {
        return false;
    };
    status.observed_generation == sealed.meta().generation
        && status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

fn repaired(ctx: &Context) -> Wrote {
    ctx.metrics.drift_repairs.inc();
    Wrote::Repaired
}
