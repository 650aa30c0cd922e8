//! The SealedSecret reconciler, in kube-runtime's shape: `reconcile(obj, ctx) -> Action` and
//! `error_policy`. The decisions are the core's ([`crate::unsealer`]): open the object with
//! the cluster's trusted keys, plan the write; this file carries them out against the API
//! server and queues status and Events. A check whose inputs are unchanged since the last
//! unseal compares digests and decrypts nothing. `error_policy` backs off per object, so one
//! bad object never blocks the others.

use super::events::Event;
use super::memo;
use super::report::{Ready, Report};
use super::{Context, FIELD_MANAGER};
use crate::api::{Reason, SealedSecret};
use crate::format::Envelopes;
use crate::keyring::PrivateKeys;
use crate::manifest::wanted_key_ids;
use crate::unsealer::policy::Policy;
use crate::unsealer::secret::{Digest, ManagedSecret, data_digest, desired, mark, wipe};
use crate::unsealer::{Failure, Unsealing, Write, earlier_rewraps, plan, unseal, was_unsealed};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why an object is not Ready: the core's verdict, or the API server's refusal. Messages name
/// the cause and never hold plain text.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {}", .0.reason, .0.message())]
    Unseal(#[from] Failure),
    #[error("API request failed: {0}")]
    Kube(#[from] kube::Error),
    /// The API server did not answer within [`TIMEOUT`]; retried.
    #[error("the API server did not answer within {}s", TIMEOUT.as_secs())]
    TimedOut,
}

/// A reconcile's API requests end within this (the client sets no read timeout: a request
/// the server never answers would hold that object, and a worker, for good).
pub const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

impl Error {
    pub fn reason(&self) -> Reason {
        match self {
            Error::Unseal(f) => f.reason,
            Error::Kube(_) | Error::TimedOut => Reason::ApiError,
        }
    }

    /// What status and Events say: never the API server's own text (see [`super::scrub`]).
    fn message(&self) -> String {
        match self {
            Error::Unseal(f) => f.message(),
            Error::Kube(k) => format!("{} (retrying)", super::scrub(k)),
            Error::TimedOut => format!("{self} (retrying)"),
        }
    }
}

/// What a successful reconcile did to the Secret.
#[derive(Debug, PartialEq, Eq)]
enum Wrote {
    Nothing,
    Created,
    Updated,
    Repaired,
    TakenOver,
}

impl Wrote {
    /// The Normal Event that says so.
    fn event(&self, name: &str) -> Option<Event> {
        let (reason, action, note) = match self {
            Wrote::Nothing => return None,
            Wrote::Created => (
                Reason::Unsealed,
                "Created",
                format!("created Secret {name}"),
            ),
            Wrote::Updated => (
                Reason::Unsealed,
                "Updated",
                format!("updated Secret {name}"),
            ),
            Wrote::Repaired => (
                Reason::DriftRepaired,
                "Restored",
                format!("restored Secret {name} to what the SealedSecret says"),
            ),
            Wrote::TakenOver => (
                Reason::TakenOver,
                "TakeOver",
                format!(
                    "took over Secret {name} from the Sealed Secrets (bitnami.com) SealedSecret \
                     {name}: the owner reference is now this SealedSecret's"
                ),
            ),
        };
        Some(Event {
            type_: EventType::Normal,
            reason,
            action,
            note,
        })
    }
}

pub async fn reconcile(sealed: Arc<SealedSecret>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = tokio::time::timeout(TIMEOUT, apply(&sealed, &ctx))
        .await
        .unwrap_or(Err(Error::TimedOut));
    ctx.metrics
        .reconcile_seconds
        .observe(started.elapsed().as_secs_f64());
    let inputs = ctx.memo_inputs(&sealed);
    let uid = sealed.meta().uid.clone().unwrap_or_default();
    // Key ids in status: those whose wrapping unwrapped, not merely those named.
    let used = ctx.memo.used(&uid, inputs).unwrap_or_default();
    let key_ids: Vec<String> = wanted_key_ids(&sealed)
        .into_iter()
        .filter(|id| used.contains(&memo::key_id_hash(id)))
        .collect();
    let at = jiff::Timestamp::now();
    let (ready, event, rewrapped) = match &result {
        Ok((wrote, rewrapped)) => {
            ctx.metrics.reconciled(Reason::Unsealed);
            let event = wrote.event(&sealed.name_any());
            (Ready::Unsealed { at }, event, Some(rewrapped.clone()))
        }
        Err(e) => {
            ctx.metrics.reconciled(e.reason());
            let message = e.message();
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
            (ready, Some(event), None)
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
    tracing::info!(object = %ObjectRef::from_obj(&*sealed), reason = %error.reason(), retry_in = ?delay, "not ready");
    // What the API server said goes to the operator's log only (status and Events carry the
    // scrubbed form), at debug level: a webhook's or server's message can quote request data.
    if let Error::Kube(e) = error {
        tracing::debug!(object = %ObjectRef::from_obj(&*sealed), error = %e, "API request failed");
    }
    Action::requeue(delay)
}

/// Make the Secret say `sealed`'s values, and re-wrap the envelopes the Active key cannot
/// open yet (for `gitseal reseal`). Whatever the outcome, which key ids unwrap this object's
/// envelopes is remembered (key usage).
async fn apply(sealed: &SealedSecret, ctx: &Context) -> Result<(Wrote, Envelopes), Error> {
    let active = ctx.active_key();
    let inputs = ctx.memo_inputs(sealed);
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
    let (keys, _) = ctx.private_keys();
    let (opened, mut unsealing, used) = open(sealed, &keys, &ctx.config.policy);
    ctx.metrics.opened("reconcile");
    let written = match opened {
        Ok((mut secret, digest)) => {
            let wrote = write(sealed, ctx, cached, &mut secret, &digest).await;
            wipe(&mut secret);
            wrote.map(|w| (w, digest))
        }
        Err(failure) => Err(failure.into()),
    };
    ctx.memo
        .put(&uid, inputs, written.as_ref().ok().map(|(_, d)| *d), &used);
    let (wrote, _) = written?;
    let active = active.as_ref().map(|(id, r)| (id.as_str(), r));
    Ok((wrote, unsealing.rewraps(sealed, active)))
}

/// Open `sealed` with the cluster's trusted keys under the policy (the core's [`unseal`]):
/// the Secret the controller writes and its data digest, or the core's verdict; how it was
/// opened (re-wraps reuse it); and the key ids that verifiably unwrapped, as the memo keeps
/// them. The leader's reconcile and the standby's read-only pass (`standby.rs`) both open here.
pub(super) fn open<'k>(
    sealed: &SealedSecret,
    keys: &'k PrivateKeys,
    policy: &Policy,
) -> (Result<(Secret, Digest), Failure>, Unsealing<'k>, Vec<u64>) {
    let (opened, unsealing) = unseal(sealed, &keys.identities(), Some(policy));
    let used = unsealing
        .used
        .iter()
        .map(|id| memo::key_id_hash(id))
        .collect();
    let opened = opened.map(|mut secret| {
        mark(&mut secret, sealed);
        let digest = data_digest(secret.data.as_ref());
        (secret, digest)
    });
    (opened, unsealing, used)
}

impl Context {
    /// What `sealed`'s unsealed data depends on besides itself, now.
    pub(super) fn memo_inputs(&self, sealed: &SealedSecret) -> memo::Inputs {
        let (_, keys_version) = self.private_keys();
        let active = self.active_key();
        memo_inputs(
            sealed,
            keys_version,
            active.as_ref().map(|(id, _)| id.as_str()),
        )
    }
}

/// What `sealed`'s unsealed data depends on besides itself: its spec, the private keys and
/// the Active one.
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
    actual: &ManagedSecret,
    ctx: &Context,
    inputs: memo::Inputs,
) -> bool {
    let uid = sealed.meta().uid.as_deref().unwrap_or_default();
    ctx.memo.get(uid, inputs).is_some_and(|digest| {
        let want = desired(sealed, BTreeMap::new());
        plan(sealed, &want, &digest, Some(actual), &ctx.config.take_over) == Ok(Write::Nothing)
    })
}

/// Whether a change to a managed Secret (from the cache) needs its owner reconciled: not
/// when it is the echo of the controller's own write, or otherwise matches what the owner
/// unsealed to. Edits, and Secrets whose owner is not cached yet, do.
pub fn secret_changed(
    ctx: &Context,
    secret: &ManagedSecret,
    owner: &ObjectRef<SealedSecret>,
) -> bool {
    let Some(sealed) = ctx.sealed_object(owner) else {
        return true;
    };
    !known_in_sync(&sealed, secret, ctx, ctx.memo_inputs(&sealed))
}

/// Carry out the core's plan for `want`: from the cache's view of the Secret, or, when the
/// cache has none and creating finds one (409), from the server's.
async fn write(
    sealed: &SealedSecret,
    ctx: &Context,
    cached: Option<Arc<ManagedSecret>>,
    want: &mut Secret,
    digest: &Digest,
) -> Result<Wrote, Error> {
    let name = sealed.name_any();
    let api: Api<Secret> =
        Api::namespaced(ctx.client.clone(), &sealed.namespace().unwrap_or_default());
    let mut existing = cached;
    loop {
        // Secret writes (only real requests, never an in-sync check) make status writes give
        // way (see report.rs).
        let planned = plan(
            sealed,
            want,
            digest,
            existing.as_deref(),
            &ctx.config.take_over,
        )?;
        let replace = match planned {
            Write::Nothing => return Ok(Wrote::Nothing),
            Write::Create => {
                let params = PostParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..Default::default()
                };
                match ctx.reports.busy().during(api.create(&params, want)).await {
                    Ok(_) => {
                        ctx.metrics.wrote("create");
                        return Ok(if was_unsealed(sealed) {
                            repaired(ctx)
                        } else {
                            Wrote::Created
                        });
                    }
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        // One exists that the cache has not seen: judge the server's copy
                        // (gone again meanwhile: apply creates it).
                        let server: Api<ManagedSecret> = Api::namespaced(
                            ctx.client.clone(),
                            &sealed.namespace().unwrap_or_default(),
                        );
                        match server.get_opt(&name).await? {
                            Some(found) => {
                                existing = Some(Arc::new(found));
                                continue;
                            }
                            None => (None, None),
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Write::TakeOver {
                resource_version,
                from,
            } => {
                // Planned only over an existing Secret: `existing` is that one.
                let Some(actual) = existing.as_deref() else {
                    continue;
                };
                let mut taking = take_over(want, actual, &from, resource_version);
                let params = PostParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..Default::default()
                };
                let _writing = ctx.reports.busy();
                let written = api.replace(&name, &params, &taking).await;
                wipe(&mut taking);
                if let Ok(mut secret) = written {
                    wipe(&mut secret);
                } else {
                    written?;
                }
                ctx.metrics.wrote("takeover");
                return Ok(Wrote::TakenOver);
            }
            Write::Apply { resource_version } => (None, resource_version),
            Write::Replace {
                uid,
                resource_version,
            } => (Some((uid, resource_version)), None),
        };
        let _writing = ctx.reports.busy();
        // Preconditions: only the Secret that was judged (owned or adoptable, at this
        // version) is deleted or overwritten; one replaced in between is never taken over.
        let (delete, resource_version) = replace;
        if let Some((uid, resource_version)) = delete {
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid,
                    resource_version,
                }),
                ..Default::default()
            };
            api.delete(&name, &params).await?;
            ctx.metrics.wrote("delete");
        }
        want.metadata.resource_version = resource_version;
        let params = PatchParams::apply(FIELD_MANAGER).force();
        api.patch(&name, &params, &Patch::Apply(&*want)).await?;
        ctx.metrics.wrote("apply");
        return Ok(if was_unsealed(sealed) {
            repaired(ctx)
        } else {
            Wrote::Updated
        });
    }
}

fn repaired(ctx: &Context) -> Wrote {
    ctx.metrics.drift_repairs.inc();
    Wrote::Repaired
}

/// The takeover write (a whole-object update, so its resourceVersion is its precondition):
/// the Secret `want` describes, over the metadata of the one judged (`actual`, at
/// `resource_version`): the owner reference of uid `from` (the other controller's) and every
/// other reference to a Bitnami SealedSecret replaced by `want`'s, the Bitnami controller's
/// `managed`/`patch` annotations dropped (without them and without its owner reference,
/// Bitnami's controller no longer writes the Secret, and the garbage collector no longer
/// deletes it with the Bitnami object); labels, annotations and finalizers others put on it
/// are kept.
fn take_over(
    want: &Secret,
    actual: &ManagedSecret,
    from: &str,
    resource_version: Option<String>,
) -> Secret {
    use crate::unsealer::plan::{BITNAMI_ANNOTATIONS, BITNAMI_GROUP};
    let mut meta = actual.metadata.clone();
    meta.resource_version = resource_version;
    let mut owners: Vec<_> = meta
        .owner_references
        .take()
        .into_iter()
        .flatten()
        .filter(|o| {
            o.uid != from
                && !(o.kind == "SealedSecret"
                    && o.api_version.split_once('/').map(|(g, _)| g) == Some(BITNAMI_GROUP))
        })
        .collect();
    owners.extend(want.metadata.owner_references.iter().flatten().cloned());
    meta.owner_references = Some(owners);
    let mut annotations = meta.annotations.take().unwrap_or_default();
    for a in BITNAMI_ANNOTATIONS {
        annotations.remove(a);
    }
    annotations.extend(want.metadata.annotations.clone().unwrap_or_default());
    meta.annotations = (!annotations.is_empty()).then_some(annotations);
    let mut labels = meta.labels.take().unwrap_or_default();
    labels.extend(want.metadata.labels.clone().unwrap_or_default());
    meta.labels = Some(labels);
    Secret {
        metadata: meta,
        ..want.clone()
    }
}
