//! Status and Events, written behind the data path: reconcilers queue a report per object
//! (latest status wins, Events accumulate) and a small pool of workers writes them. Secrets
//! are what workloads wait for, so under load they reach the API server first; status follows
//! within moments: while Secrets are being written (one in flight, or one within the last
//! second) one report is written at a time with a pause after each, and the whole pool runs
//! once the data path is quiet. Statuses go before Events (Argo CD and Flux wait on the
//! status; an Event only tells): a written status queues its Events behind every pending
//! status. Reports are written in the order their objects first queued (a churning object
//! cannot starve the others); one object's reports are never written concurrently or out of
//! order. A write the API server refused for a passing reason (down, throttling, timeouts)
//! is queued again after a backoff, so every object gets its status and its Events.

use super::events::Event;
use super::written::Written;
use super::{Context, FIELD_MANAGER};
use crate::api::{Reason, SealedSecret, SealedSecretStatus};
use crate::format::Envelopes;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use std::collections::{HashMap, HashSet, VecDeque};
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
/// A status or Event write the API server has not answered within this is retried (the
/// client sets no read timeout; a write never answered would hold its object for good).
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Backoff of a failed write: doubles from the first to the last.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_LAST: Duration = Duration::from_secs(30);

/// What one reconcile has to say about its object. Compact (ten thousand can be queued on a
/// cold start): the object is addressed by the queue's key, and the Ready condition and
/// Event reference are built when written.
pub struct Report {
    /// The reconciled object's uid and generation (a newer object gets its own report).
    pub uid: Option<String>,
    pub generation: Option<i64>,
    pub ready: Ready,
    pub key_ids: Vec<String>,
    /// Envelopes re-wrapped to the Active key; `None` (a failed reconcile) keeps those in
    /// status that the spec still lacks.
    pub rewrapped: Option<Envelopes>,
    pub events: Vec<Event>,
}

/// The Ready condition a reconcile found: unsealed (with the time it was), or why not.
pub enum Ready {
    Unsealed {
        at: jiff::Timestamp,
    },
    Failed {
        reason: Reason,
        message: String,
        at: jiff::Timestamp,
    },
}

impl Ready {
    fn condition(&self, name: &str) -> Condition {
        let (status, reason, message, at) = match self {
            Ready::Unsealed { at } => (
                "True",
                Reason::Unsealed,
                format!("Secret {name} is up to date"),
                at,
            ),
            Ready::Failed {
                reason,
                message,
                at,
            } => ("False", *reason, message.chars().take(1024).collect(), at),
        };
        Condition {
            type_: "Ready".into(),
            status: status.into(),
            reason: reason.as_str().into(),
            message,
            last_transition_time: Time(*at),
            observed_generation: None,
        }
    }
}

/// Reports waiting (each object once in `order`, oldest first), objects whose status write
/// is in flight, the retry state of objects whose last status write failed, the Events of
/// written statuses, and the writes in flight.
#[derive(Default)]
struct Queue {
    pending: HashMap<ObjectRef<SealedSecret>, Report>,
    order: VecDeque<ObjectRef<SealedSecret>>,
    in_flight: HashSet<ObjectRef<SealedSecret>>,
    retries: HashMap<ObjectRef<SealedSecret>, Retry>,
    outbox: VecDeque<Outbox>,
    active: usize,
}

/// A failed write's next attempt: not before `due`, then after `delay` doubled.
#[derive(Clone, Copy)]
struct Retry {
    due: Instant,
    delay: Duration,
}

impl Retry {
    /// The attempt after `last` failed (the first failure: `None`).
    fn after(last: Option<Retry>) -> Retry {
        let delay = last.map_or(RETRY_FIRST, |r| (r.delay * 2).min(RETRY_LAST));
        Retry {
            due: Instant::now() + delay,
            delay,
        }
    }
}

/// Events of a written status, for the object they regard.
struct Outbox {
    regarding: ObjectReference,
    events: Vec<Event>,
    /// Set after a failed publish.
    retry: Option<Retry>,
}

/// What a worker writes next.
enum Job {
    Status(ObjectRef<SealedSecret>, Report),
    Events(Outbox),
}

impl Queue {
    /// Queue a report again whose write failed for a passing reason, after a backoff; a newer
    /// report queued meanwhile wins (its status is newer), keeping both Events.
    fn retry(&mut self, key: ObjectRef<SealedSecret>, mut report: Report) {
        let retry = Retry::after(self.retries.get(&key).copied());
        self.retries.insert(key.clone(), retry);
        match self.pending.get_mut(&key) {
            Some(newer) => {
                report.events.append(&mut newer.events);
                newer.events = report.events;
            }
            None => {
                self.pending.insert(key.clone(), report);
                self.order.push_back(key);
            }
        }
    }

    /// Whether `key`'s report may be written now.
    fn ready(&self, key: &ObjectRef<SealedSecret>, now: Instant) -> bool {
        !self.in_flight.contains(key) && self.retries.get(key).is_none_or(|r| r.due <= now)
    }

    /// The next write: the oldest writable status, else the oldest due Events (failed ones
    /// queue again at the back, so the front is the oldest).
    fn next(&mut self) -> Option<Job> {
        let now = Instant::now();
        if let Some(at) = self.order.iter().position(|k| self.ready(k, now)) {
            let key = self.order.remove(at)?;
            let report = self.pending.remove(&key)?;
            self.in_flight.insert(key.clone());
            return Some(Job::Status(key, report));
        }
        if self.outbox.front()?.retry.is_none_or(|r| r.due <= now) {
            return self.outbox.pop_front().map(Job::Events);
        }
        None
    }

    fn has_work(&self) -> bool {
        !self.pending.is_empty() || !self.outbox.is_empty()
    }
}

#[derive(Default)]
pub struct Reports {
    pending: Mutex<Queue>,
    /// Statuses written, while the cache may not show them (see written.rs).
    written: Written,
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
    pub fn push(&self, key: ObjectRef<SealedSecret>, mut report: Report) {
        let mut guard = self.pending.lock().expect("reports lock");
        let queued = guard.pending.remove(&key).map(|old| {
            let mut events = old.events;
            events.append(&mut report.events);
            report.events = events;
            if report.rewrapped.is_none() && report.generation == old.generation {
                report.rewrapped = old.rewrapped; // not yet written: still to say
            }
        });
        guard.pending.insert(key.clone(), report);
        if queued.is_none() {
            guard.order.push_back(key); // a queued object keeps its place
        }
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

    /// Take the next write (see [`Queue::next`]), if the pool may grow.
    fn take(&self) -> Option<Job> {
        let limit = if self.pressured() {
            WORKERS_WHEN_BUSY
        } else {
            WORKERS
        };
        let mut guard = self.pending.lock().expect("reports lock");
        if guard.active >= limit {
            return None;
        }
        let job = guard.next()?;
        guard.active += 1;
        let more = guard.has_work() && guard.active < limit;
        drop(guard);
        if more {
            self.wake.notify_one(); // let another worker start
        }
        Some(job)
    }

    /// A status write of `key` ended: `failed` holds the report to try again; `sent` the
    /// Events to publish now that the status is written.
    fn status_done(
        &self,
        key: &ObjectRef<SealedSecret>,
        failed: Option<Report>,
        sent: Option<Outbox>,
    ) {
        let mut guard = self.pending.lock().expect("reports lock");
        match failed {
            Some(report) => guard.retry(key.clone(), report),
            None => drop(guard.retries.remove(key)),
        }
        guard.outbox.extend(sent);
        guard.in_flight.remove(key);
        self.finish(guard);
    }

    /// A publish of Events ended; `unsent` holds those to try again.
    fn events_done(&self, unsent: Option<Outbox>) {
        let mut guard = self.pending.lock().expect("reports lock");
        if let Some(mut out) = unsent {
            out.retry = Some(Retry::after(out.retry));
            guard.outbox.push_back(out);
        }
        self.finish(guard);
    }

    fn finish(&self, mut guard: std::sync::MutexGuard<'_, Queue>) {
        guard.active -= 1;
        let more = guard.has_work();
        if !more && guard.active == 0 {
            self.written.prune();
            // A cold start queues a report per object: give that memory back once written.
            guard.pending.shrink_to_fit();
            guard.order.shrink_to_fit();
            guard.in_flight.shrink_to_fit();
            guard.retries.shrink_to_fit();
            guard.outbox.shrink_to_fit();
        }
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
                let job = ctx.reports.take();
                match job {
                    Some(Job::Status(key, report)) => {
                        let (failed, sent) = match write(&ctx, &key, report).await {
                            Outcome::Status(events) => (None, events),
                            Outcome::Failed(report) => (Some(report), None),
                        };
                        ctx.reports.status_done(&key, failed, sent);
                    }
                    Some(Job::Events(out)) => {
                        let unsent = publish(&ctx, out).await;
                        ctx.reports.events_done(unsent);
                    }
                    // Woken by new reports, or to see whether the Secret writes are over.
                    None => {
                        let _ = tokio::time::timeout(QUIET, ctx.reports.wake.notified()).await;
                        continue;
                    }
                }
                if ctx.reports.pressured() {
                    // Under load, a trickle: Secrets first.
                    tokio::time::sleep(BUSY_PAUSE).await;
                }
            }
        }
    });
    futures::future::join_all(workers).await;
}

/// What became of a status write.
enum Outcome {
    /// Written, unchanged, or no longer to write (the object is gone); its Events, if any.
    Status(Option<Outbox>),
    /// The API server failed for a passing reason: the report, to try again.
    Failed(Report),
}

/// Write one report's status; its Events follow separately (see the module docs).
async fn write(ctx: &Context, key: &ObjectRef<SealedSecret>, mut report: Report) -> Outcome {
    // The cached object may be newer than the one reconciled.
    let Some(current) = ctx.sealed_object(key) else {
        return Outcome::Status(None); // deleted meanwhile
    };
    if current.meta().uid != report.uid {
        return Outcome::Status(None); // deleted and recreated meanwhile; its own reconcile reports
    }
    let condition = report.ready.condition(&current.name_any());
    let update = update_status(
        ctx,
        &current,
        condition,
        report.generation,
        report.key_ids.clone(),
        report.rewrapped.clone(),
    );
    let result = tokio::time::timeout(WRITE_TIMEOUT, update)
        .await
        .unwrap_or_else(|_| Err(kube::Error::Service("no answer in time".into())));
    if let Err(e) = result {
        let again = passing(&e);
        tracing::warn!(object = %key, error = %e, retry = again, "could not write status");
        if again {
            return Outcome::Failed(report);
        }
    }
    let events = std::mem::take(&mut report.events);
    Outcome::Status((!events.is_empty()).then(|| Outbox {
        regarding: current.object_ref(&()),
        events,
        retry: None,
    }))
}

/// Publish one object's Events; returns those to try again.
async fn publish(ctx: &Context, mut out: Outbox) -> Option<Outbox> {
    let mut unsent = Vec::new();
    for ev in std::mem::take(&mut out.events) {
        let published =
            tokio::time::timeout(WRITE_TIMEOUT, ctx.recorder.publish(&ev, &out.regarding))
                .await
                .unwrap_or_else(|_| Err(kube::Error::Service("no answer in time".into())));
        if let Err(e) = published {
            let again = passing(&e);
            tracing::warn!(error = %e, retry = again, "could not publish an Event");
            if again {
                unsent.push(ev);
            }
        }
    }
    (!unsent.is_empty()).then(|| {
        out.events = unsent;
        out
    })
}

/// Whether a failed write may succeed later: the API server unreachable, overloaded (429,
/// 5xx) or timing out. A refusal of the request itself (404 deleted, 422 invalid) is final.
fn passing(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        kube::Error::SerdeError(_) => false,
        _ => true,
    }
}

/// Write status only when something in it changes (keeps the transition time otherwise),
/// by server-side apply of the whole status under [`FIELD_MANAGER`]: a field the controller
/// stops setting (keyIds, rewrappedEnvelopes emptied) is removed, as the controller owned it.
/// Fields another manager owns survive an apply that omits them: status an older gitseal
/// wrote by merge patch (no field manager: the server named the manager after the client's
/// user agent). What the written status still holds beyond what was applied is removed by a
/// merge patch of nulls, once per such object; that patch changes no field, so its manager
/// entry owns nothing and later applies alone decide.
async fn update_status(
    ctx: &Context,
    current: &SealedSecret,
    mut condition: Condition,
    generation: Option<i64>,
    key_ids: Vec<String>,
    rewrapped: Option<Envelopes>,
) -> Result<(), kube::Error> {
    let old = current.status.clone().unwrap_or_default();
    let uid = current.meta().uid.as_deref().unwrap_or_default();
    let version = current.meta().resource_version.as_deref();
    let lagging = ctx.reports.written.lagging(uid, version);
    if let Some(since) = lagging.as_ref().and_then(|l| l.since(&condition)) {
        condition.last_transition_time = since;
    } else if let Some(o) = old.conditions.iter().find(|c| c.type_ == "Ready")
        && o.status == condition.status
        && o.reason == condition.reason
    {
        condition.last_transition_time = o.last_transition_time.clone();
    }
    let status = SealedSecretStatus {
        conditions: vec![condition],
        observed_generation: generation,
        key_ids,
        rewrapped_envelopes: rewrapped
            .unwrap_or_else(|| still_needed(&old.rewrapped_envelopes, &current.spec.envelopes)),
    };
    if status == old || lagging.is_some_and(|l| l.holds(&status)) {
        return Ok(()); // written already (the cache may not show it yet)
    }
    let api: Api<SealedSecret> = Api::namespaced(
        ctx.client.clone(),
        current.namespace().as_deref().unwrap_or_default(),
    );
    let name = current.name_any();
    let applied = serde_json::json!({
        "apiVersion": SealedSecret::api_version(&()),
        "kind": SealedSecret::kind(&()),
        "status": status,
    });
    let written = api
        .patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&applied),
        )
        .await?;
    ctx.reports.written.wrote(uid, version, &status);
    if written.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let written = serde_json::to_value(&written.status).map_err(kube::Error::SerdeError)?;
    if let Some(left) = leftovers(&applied["status"], &written) {
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        let patch = serde_json::json!({ "status": left });
        api.patch_status(&name, &params, &Patch::Merge(&patch))
            .await?;
    }
    Ok(())
}

/// The merge patch (nulls) that removes what `written` holds beyond `applied`: object
/// members `applied` lacks, at any depth; `None` when there are none. Lists are atomic in
/// the schema: an applied list replaced the written one whole.
fn leftovers(
    applied: &serde_json::Value,
    written: &serde_json::Value,
) -> Option<serde_json::Value> {
    use serde_json::{Map, Value};
    let (Value::Object(applied), Value::Object(written)) = (applied, written) else {
        return None;
    };
    let patch: Map<String, Value> = written
        .iter()
        .filter_map(|(k, w)| match applied.get(k) {
            None => Some((k.clone(), Value::Null)),
            Some(a) => leftovers(a, w).map(|p| (k.clone(), p)),
        })
        .collect();
    (!patch.is_empty()).then_some(Value::Object(patch))
}

/// Re-wraps that still add a wrapping the spec lacks (the spec may have been resealed since).
fn still_needed(rewrapped: &Envelopes, spec: &Envelopes) -> Envelopes {
    rewrapped
        .iter()
        .filter(|(id, wrapped)| {
            spec.get(*id)
                .is_some_and(|have| wrapped.keys().any(|k| !have.contains_key(k)))
        })
        .map(|(id, wrapped)| (id.clone(), wrapped.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelopes(list: &[(&str, &[&str])]) -> Envelopes {
        list.iter()
            .map(|(id, keys)| {
                let wrapped = keys.iter().map(|k| (k.to_string(), "w".into())).collect();
                (id.to_string(), wrapped)
            })
            .collect()
    }

    fn report(generation: i64, notes: &[&str]) -> Report {
        Report {
            uid: Some("u".into()),
            generation: Some(generation),
            ready: Ready::Unsealed {
                at: jiff::Timestamp::UNIX_EPOCH,
            },
            key_ids: Vec::new(),
            rewrapped: None,
            events: notes
                .iter()
                .map(|n| Event {
                    type_: kube::runtime::events::EventType::Normal,
                    reason: Reason::Unsealed,
                    action: "Unseal",
                    note: n.to_string(),
                })
                .collect(),
        }
    }

    fn key(name: &str) -> ObjectRef<SealedSecret> {
        ObjectRef::new(name).within("ns")
    }

    /// The next status job: (name, generation, Event notes).
    fn take(reports: &Reports) -> Option<(String, i64, Vec<String>)> {
        let Some(Job::Status(k, r)) = reports.take() else {
            return None;
        };
        let notes = r.events.iter().map(|e| e.note.clone()).collect();
        Some((k.name, r.generation.unwrap_or_default(), notes))
    }

    fn outbox(notes: &[&str]) -> Outbox {
        Outbox {
            regarding: ObjectReference::default(),
            events: report(1, notes).events,
            retry: None,
        }
    }

    #[test]
    fn reports_are_written_oldest_first_and_a_churning_object_waits_its_turn() {
        let reports = Reports::default();
        for name in ["a", "b", "c"] {
            reports.push(key(name), report(1, &[]));
        }
        // `a` churns: its newer reports keep its place, they do not go ahead of b and c.
        reports.push(key("a"), report(2, &[]));
        assert_eq!(take(&reports).map(|t| (t.0, t.1)), Some(("a".into(), 2)));
        // Written meanwhile: `a`'s next report queues behind the others.
        reports.push(key("a"), report(3, &[]));
        let rest: Vec<_> = std::iter::from_fn(|| take(&reports).map(|t| t.0)).collect();
        assert_eq!(
            rest,
            ["b", "c"],
            "`a` is in flight: never written concurrently"
        );
        reports.status_done(&key("a"), None, None);
        assert_eq!(take(&reports).map(|t| (t.0, t.1)), Some(("a".into(), 3)));
        // Each object is queued once, however often its report was replaced.
        assert!(reports.pending.lock().unwrap().order.is_empty());
        assert!(take(&reports).is_none());
    }

    #[test]
    fn a_failed_write_is_retried_after_a_backoff_and_a_newer_report_wins() {
        let reports = Reports::default();
        reports.push(key("a"), report(1, &["first"]));
        let Some(Job::Status(k, r)) = reports.take() else {
            panic!("queued")
        };
        reports.status_done(&k, Some(r), None);
        assert!(reports.take().is_none(), "backing off");
        // A newer report replaces the failed status and keeps the failed report's Events.
        reports.push(key("a"), report(2, &["second"]));
        assert!(reports.take().is_none(), "still backing off");
        std::thread::sleep(RETRY_FIRST + Duration::from_millis(50));
        let (name, generation, notes) = take(&reports).expect("due");
        assert_eq!((name.as_str(), generation), ("a", 2));
        assert_eq!(notes, ["first", "second"]);
        // The backoff doubles while writes fail, up to its limit, and ends when one succeeds.
        let mut guard = reports.pending.lock().unwrap();
        guard.in_flight.clear();
        for _ in 0..10 {
            guard.retry(key("a"), report(2, &[]));
        }
        assert_eq!(guard.retries[&key("a")].delay, RETRY_LAST);
        guard.active = 1;
        drop(guard);
        reports.status_done(&key("a"), None, None);
        assert!(reports.pending.lock().unwrap().retries.is_empty());
    }

    #[test]
    fn statuses_go_before_events_and_failed_events_back_off() {
        let reports = Reports::default();
        reports.push(key("a"), report(1, &[]));
        reports.push(key("b"), report(1, &[]));
        assert!(take(&reports).is_some());
        // a's status is written: its Events wait behind b's status.
        reports.status_done(&key("a"), None, Some(outbox(&["a created"])));
        assert_eq!(take(&reports).map(|t| t.0), Some("b".into()));
        let Some(Job::Events(out)) = reports.take() else {
            panic!("a's Events next")
        };
        assert_eq!(out.events[0].note, "a created");
        // The publish failed: the Events come back after a backoff, not at once.
        reports.events_done(Some(out));
        assert!(reports.take().is_none(), "backing off");
        std::thread::sleep(RETRY_FIRST + Duration::from_millis(50));
        assert!(matches!(reports.take(), Some(Job::Events(_))));
    }

    #[test]
    fn only_passing_failures_are_retried() {
        let api = |code| {
            kube::Error::Api(Box::new(kube::core::Status {
                code,
                ..Default::default()
            }))
        };
        assert!(passing(&api(429)));
        assert!(passing(&api(503)));
        assert!(!passing(&api(404)));
        assert!(!passing(&api(422)));
    }

    #[test]
    fn leftovers_are_what_the_apply_did_not_set_at_any_depth() {
        use serde_json::json;
        let applied = json!({
            "keyIds": ["new"],
            "rewrappedEnvelopes": {"e1": {"k2": "w"}},
            "conditions": [{"type": "Ready"}],
        });
        let written = json!({
            "keyIds": ["new"],
            "observedGeneration": 3,
            "rewrappedEnvelopes": {"e1": {"k1": "old", "k2": "w"}, "e0": {"k1": "old"}},
            "conditions": [{"type": "Ready"}],
        });
        assert_eq!(
            leftovers(&applied, &written),
            Some(json!({
                "observedGeneration": null,
                "rewrappedEnvelopes": {"e0": null, "e1": {"k1": null}},
            }))
        );
        assert_eq!(leftovers(&applied, &applied), None);
        assert_eq!(
            leftovers(&json!({}), &json!(null)),
            None,
            "no status written"
        );
    }

    #[test]
    fn kept_rewraps_drop_what_the_spec_now_has() {
        let rewrapped = envelopes(&[("e1", &["new"]), ("e2", &["new"]), ("gone", &["new"])]);
        let spec = envelopes(&[("e1", &["old"]), ("e2", &["new"])]);
        assert_eq!(
            still_needed(&rewrapped, &spec),
            envelopes(&[("e1", &["new"])])
        );
    }
}
