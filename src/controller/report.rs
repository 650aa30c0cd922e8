//! Status and Events, written behind the data path: reconcilers queue a report per object
//! (latest status wins, Events accumulate) and a small pool of workers writes them. Secrets
//! are what workloads wait for, so under load they reach the API server first; status follows
//! within moments: while any reconcile is in flight one report is written at a time (with a
//! pause after each), and the whole pool runs once the data path is idle. One object's reports are never written
//! concurrently or out of order.

use super::Context;
use crate::api::{SealedSecret, SealedSecretStatus};
use crate::format::Envelopes;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Concurrent status writers when no reconcile is running.
const WORKERS: usize = 8;
/// Concurrent status writers while reconciles are running, and their pause between writes.
const WORKERS_WHEN_BUSY: usize = 1;
const BUSY_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// What one reconcile has to say about its object.
pub struct Report {
    pub object: Arc<SealedSecret>,
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
    /// Reconciles in flight (see [`Reports::busy`]).
    busy: AtomicUsize,
}

/// Marks one reconcile in flight until dropped.
pub struct Busy<'a>(&'a Reports);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        if self.0.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.wake.notify_waiters(); // the data path went idle: the whole pool may run
        }
    }
}

impl Reports {
    /// Queue a report; a newer one replaces the older status and keeps its Events.
    pub fn push(&self, mut report: Report) {
        let key = ObjectRef::from_obj(&*report.object);
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

    /// Hold while reconciling: status writes then give way to Secret writes.
    pub fn busy(&self) -> Busy<'_> {
        self.busy.fetch_add(1, Ordering::AcqRel);
        Busy(self)
    }

    /// Take one report whose object has no write in flight, if the pool may grow.
    fn take(&self) -> Option<(ObjectRef<SealedSecret>, Report)> {
        let limit = if self.busy.load(Ordering::Acquire) > 0 {
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
                        if ctx.reports.busy.load(Ordering::Acquire) > 0 {
                            // Under load, a trickle: Secrets first.
                            tokio::time::sleep(BUSY_PAUSE).await;
                        }
                    }
                    None => ctx.reports.wake.notified().await,
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
        tracing::warn!(object = %ObjectRef::from_obj(&*report.object), error = %e, "could not write status");
    }
    let reference = report.object.object_ref(&());
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
    sealed: &SealedSecret,
    mut condition: Condition,
    key_ids: Vec<String>,
    rewrapped: Option<Envelopes>,
) -> Result<(), kube::Error> {
    // The cached object may be newer than the one reconciled.
    let current = ctx
        .sealed_object(&ObjectRef::from_obj(sealed))
        .unwrap_or_else(|| Arc::new(sealed.clone()));
    if current.meta().uid != sealed.meta().uid {
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
        observed_generation: sealed.meta().generation,
        key_ids,
        rewrapped_envelopes: rewrapped.unwrap_or_else(|| old.rewrapped_envelopes.clone()),
    };
    if status == old {
        return Ok(());
    }
    let api: Api<SealedSecret> =
        Api::namespaced(ctx.client.clone(), &sealed.namespace().unwrap_or_default());
    let mut patch = serde_json::json!({ "status": status });
    for emptied in ["keyIds", "rewrappedEnvelopes"] {
        if patch["status"].get(emptied).is_none() {
            patch["status"][emptied] = serde_json::Value::Null; // a merge patch keeps absent fields
        }
    }
    api.patch_status(
        &sealed.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}
