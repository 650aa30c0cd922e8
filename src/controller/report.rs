//! Status and Events, written behind the data path: reconcilers queue a report per object
//! (latest status wins, Events accumulate) and a small pool of workers writes them. Secrets
//! are what workloads wait for, so under load they reach the API server first; status follows
//! within moments: while Secrets are being written (one in flight, or one within the last
//! second) one report is written at a time with a pause after each, and the whole pool runs
//! once the data path is quiet. One object's
//! reports are never written concurrently or out of order.

use super::Context;
use crate::api::{SealedSecret, SealedSecretStatus};
use crate::format::Envelopes;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Concurrent status writers when no Secret write is in flight.
const WORKERS: usize = 16;
/// Concurrent status writers while Secret writes are in flight, and their pause between writes.
const WORKERS_WHEN_BUSY: usize = 1;
const BUSY_PAUSE: Duration = Duration::from_millis(100);
/// How long after the last Secret write the whole pool may run again.
const QUIET: Duration = Duration::from_secs(1);

/// Which object a report is about: just enough to address it (queued reports don't keep
/// whole objects alive next to the cache's newer copies).
pub struct Subject {
    key: ObjectRef<SealedSecret>,
    uid: Option<String>,
    generation: Option<i64>,
    reference: ObjectReference,
}

impl Subject {
    pub fn of(sealed: &SealedSecret) -> Self {
        Subject {
            key: ObjectRef::from_obj(sealed),
            uid: sealed.meta().uid.clone(),
            generation: sealed.meta().generation,
            reference: sealed.object_ref(&()),
        }
    }
}

/// What one reconcile has to say about its object.
pub struct Report {
    pub object: Subject,
    pub condition: Condition,
    pub key_ids: Vec<String>,
    /// Envelopes re-wrapped to the Active key; `None` keeps what status has.
    pub rewrapped: Option<Envelopes>,
    pub events: Vec<(EventType, String, String, String)>,
}

/// Reports waiting, and objects whose write is in flight.
#[derive(Default)]
struct Queue {
    pending: HashMap<ObjectRef<SealedSecret>, Report>,
    in_flight: HashSet<ObjectRef<SealedSecret>>,
}

#[derive(Default)]
pub struct Reports {
    pending: Mutex<Queue>,
    wake: Notify,
    /// Secret writes in flight (see [`Reports::busy`]), and when the last one ended.
    busy: AtomicUsize,
    last_write: Mutex<Option<Instant>>,
}

/// Marks one Secret write in flight until dropped.
pub struct Busy<'a>(&'a Reports);

impl Busy<'_> {
    /// Hold the mark while `write` runs.
    pub async fn during<T>(self, write: impl std::future::Future<Output = T>) -> T {
        write.await
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        *self.0.last_write.lock().expect("reports lock") = Some(Instant::now());
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Reports {
    /// Queue a report; a newer one replaces the older status and keeps its Events.
    pub fn push(&self, mut report: Report) {
        let key = report.object.key.clone();
        let mut guard = self.pending.lock().expect("reports lock");
        if let Some(old) = guard.pending.remove(&key) {
            let mut events = old.events;
            events.append(&mut report.events);
            report.events = events;
        }
        guard.pending.insert(key, report);
        drop(guard);
        self.wake.notify_one();
    }

    /// Hold while writing a Secret: status writes then give way.
    pub fn busy(&self) -> Busy<'_> {
        self.busy.fetch_add(1, Ordering::AcqRel);
        Busy(self)
    }

    /// Whether Secrets are being written: one is in flight, or one ended within [`QUIET`].
    fn pressured(&self) -> bool {
        self.busy.load(Ordering::Acquire) > 0
            || self
                .last_write
                .lock()
                .expect("reports lock")
                .is_some_and(|t| t.elapsed() < QUIET)
    }

    /// Take one report whose object has no write in flight, if the pool may grow.
    fn take(&self) -> Option<(ObjectRef<SealedSecret>, Report)> {
        let limit = if self.pressured() {
            WORKERS_WHEN_BUSY
        } else {
            WORKERS
        };
        let mut guard = self.pending.lock().expect("reports lock");
        let Queue { pending, in_flight } = &mut *guard;
        if in_flight.len() >= limit {
            return None;
        }
        let key = pending.keys().find(|k| !in_flight.contains(*k))?.clone();
        let report = pending.remove(&key)?;
        in_flight.insert(key.clone());
        let more = !pending.is_empty() && in_flight.len() < limit;
        drop(guard);
        if more {
            self.wake.notify_one(); // let another worker start
        }
        Some((key, report))
    }

    fn done(&self, key: &ObjectRef<SealedSecret>) {
        let mut guard = self.pending.lock().expect("reports lock");
        guard.in_flight.remove(key);
        let more = !guard.pending.is_empty();
        drop(guard);
        if more {
            self.wake.notify_one();
        }
    }
}

/// The writer pool; runs as long as the controller leads.
pub async fn run(ctx: Arc<Context>) {
    let workers = (0..WORKERS).map(|_| {
        let ctx = ctx.clone();
        async move {
            loop {
                match ctx.reports.take() {
                    Some((key, report)) => {
                        write(&ctx, report).await;
                        ctx.reports.done(&key);
                        if ctx.reports.pressured() {
                            // Under load, a trickle: Secrets first.
                            tokio::time::sleep(BUSY_PAUSE).await;
                        }
                    }
                    // Woken by new reports, or to see whether the Secret writes are over.
                    None => {
                        let _ = tokio::time::timeout(QUIET, ctx.reports.wake.notified()).await;
                    }
                }
            }
        }
    });
    futures::future::join_all(workers).await;
}

async fn write(ctx: &Context, report: Report) {
    if let Err(e) = update_status(
        ctx,
        &report.object,
        report.condition,
        report.key_ids,
        report.rewrapped,
    )
    .await
    {
        tracing::warn!(object = %report.object.key, error = %e, "could not write status");
    }
    let reference = report.object.reference;
    for (type_, reason, action, note) in report.events {
        let ev = Event {
            type_,
            reason,
            note: Some(note),
            action,
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&ev, &reference).await {
            tracing::warn!(error = %e, "could not publish an Event");
        }
    }
}

/// Patch status only when something in it changes (keeps the transition time otherwise).
async fn update_status(
    ctx: &Context,
    subject: &Subject,
    mut condition: Condition,
    key_ids: Vec<String>,
    rewrapped: Option<Envelopes>,
) -> Result<(), kube::Error> {
    // The cached object may be newer than the one reconciled.
    let Some(current) = ctx.sealed_object(&subject.key) else {
        return Ok(()); // deleted meanwhile
    };
    if current.meta().uid != subject.uid {
        return Ok(()); // deleted and recreated meanwhile; its own reconcile reports
    }
    let old = current.status.clone().unwrap_or_default();
    if let Some(o) = old.conditions.iter().find(|c| c.type_ == "Ready")
        && o.status == condition.status
        && o.reason == condition.reason
    {
        condition.last_transition_time = o.last_transition_time.clone();
    }
    let status = SealedSecretStatus {
        conditions: vec![condition],
        observed_generation: subject.generation,
        key_ids,
        rewrapped_envelopes: rewrapped.unwrap_or_else(|| old.rewrapped_envelopes.clone()),
    };
    if status == old {
        return Ok(());
    }
    let api: Api<SealedSecret> = Api::namespaced(
        ctx.client.clone(),
        current.namespace().as_deref().unwrap_or_default(),
    );
    let mut patch = serde_json::json!({ "status": status });
    for emptied in ["keyIds", "rewrappedEnvelopes"] {
        if patch["status"].get(emptied).is_none() {
            patch["status"][emptied] = serde_json::Value::Null; // a merge patch keeps absent fields
        }
    }
    api.patch_status(
        &current.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}
