//! Kubernetes Events (`events.k8s.io/v1`), with repeats folded into a series.
//!
//! kube-runtime's `Recorder` keeps every Event it published for six minutes and sweeps that
//! whole cache under one write lock on every publish: with 10,000 objects that is ~16 MiB and
//! O(n²) work on a cold start. This recorder keeps, per recent Event, only a 64-bit hash of
//! what makes it "the same Event again" and the Event's name and count, and sweeps at most
//! once a minute. A repeat within the window (a failing object retried with back-off, a
//! Secret someone keeps editing) patches the existing Event's `series`, as client-go does.

use crate::api::Reason;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Client;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a published Event can be continued as a series (client-go uses the same).
const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);
/// How often the memory of published Events is swept.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// One Event to publish about an object.
pub struct Event {
    pub type_: EventType,
    pub reason: Reason,
    pub action: &'static str,
    pub note: String,
}

/// What is remembered of a recently published Event.
struct Seen {
    name: Box<str>,
    count: i32,
    last: Instant,
}

#[derive(Default)]
struct Memory {
    seen: HashMap<u64, Seen>,
    swept: Option<Instant>,
}

impl Memory {
    fn sweep(&mut self, now: Instant) {
        if self.swept.is_some_and(|t| now - t < SWEEP_EVERY) {
            return;
        }
        self.seen.retain(|_, s| now - s.last < SERIES_WINDOW);
        self.seen.shrink_to_fit();
        self.swept = Some(now);
    }
}

/// Publishes Events as one reporting controller instance.
pub struct Recorder {
    client: Client,
    controller: String,
    instance: String,
    /// Where Events about cluster-scoped objects (SealingKeys) go: the controller's namespace.
    cluster_events_namespace: String,
    memory: Mutex<Memory>,
}

impl Recorder {
    pub fn new(client: Client, controller: &str, instance: &str, namespace: &str) -> Self {
        Self {
            client,
            controller: controller.to_string(),
            instance: instance.to_string(),
            cluster_events_namespace: namespace.to_string(),
            memory: Mutex::default(),
        }
    }

    /// Publish `ev` about `regarding`. Events about cluster-scoped objects (SealingKeys) go to
    /// the controller's namespace, next to the key Secrets, rather than `default`; the API
    /// server accepts that only when the reference names that namespace too, so it does
    /// (`kubectl get events -n <ns> --field-selector involvedObject.kind=SealingKey`).
    pub async fn publish(&self, ev: &Event, regarding: &ObjectReference) -> kube::Result<()> {
        let mut placed;
        let regarding = if regarding.namespace.is_none() {
            placed = regarding.clone();
            placed.namespace = Some(self.cluster_events_namespace.clone());
            &placed
        } else {
            regarding
        };
        let key = identity(ev, regarding);
        let now = Instant::now();
        let repeat = {
            let mut memory = self.memory.lock().expect("event memory lock");
            memory.sweep(now);
            memory
                .seen
                .get(&key)
                .filter(|s| now - s.last < SERIES_WINDOW)
                .map(|s| (s.name.clone(), s.count + 1))
        };
        let namespace = regarding.namespace.as_deref().unwrap_or_default();
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        let stamp = jiff::Timestamp::now();
        let (name, count) = match repeat {
            Some((name, count)) => {
                let patch = serde_json::json!({
                    "series": EventSeries { count, last_observed_time: MicroTime(stamp) },
                });
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
                (name, count)
            }
            None => {
                let name = format!(
                    "{}.{:x}",
                    regarding.name.as_deref().unwrap_or(&self.controller),
                    stamp.as_nanosecond()
                );
                api.create(
                    &PostParams::default(),
                    &self.event(ev, regarding, namespace, &name, stamp),
                )
                .await?;
                (name.into_boxed_str(), 1)
            }
        };
        let seen = Seen {
            name,
            count,
            last: now,
        };
        self.memory
            .lock()
            .expect("event memory lock")
            .seen
            .insert(key, seen);
        Ok(())
    }

    fn event(
        &self,
        ev: &Event,
        regarding: &ObjectReference,
        namespace: &str,
        name: &str,
        stamp: jiff::Timestamp,
    ) -> K8sEvent {
        K8sEvent {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(namespace.to_string()),
                ..Default::default()
            },
            action: Some(ev.action.to_string()),
            reason: Some(ev.reason.as_str().to_string()),
            note: Some(cut_note(&ev.note)),
            type_: Some(type_name(ev.type_).to_string()),
            event_time: Some(MicroTime(stamp)),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..Default::default()
        }
    }
}

fn type_name(t: EventType) -> &'static str {
    match t {
        EventType::Normal => "Normal",
        EventType::Warning => "Warning",
    }
}

/// What makes two Events "the same one again": the object (by uid, else by name), type,
/// reason, action and note.
fn identity(ev: &Event, regarding: &ObjectReference) -> u64 {
    super::hash64(&(
        (
            &regarding.kind,
            &regarding.namespace,
            &regarding.name,
            &regarding.uid,
        ),
        (
            type_name(ev.type_),
            ev.reason.as_str(),
            &ev.action,
            &ev.note,
        ),
    ))
}

/// The API server refuses an Event whose note exceeds this many bytes; a message naming an
/// author's oversized field would otherwise lose the object every Event.
const NOTE_LIMIT: usize = 1024;

/// `note` cut to [`NOTE_LIMIT`] bytes at a character boundary, marked with an ellipsis.
fn cut_note(note: &str) -> String {
    if note.len() <= NOTE_LIMIT {
        return note.to_string();
    }
    let mut end = NOTE_LIMIT - '…'.len_utf8();
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &note[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_cut_to_what_the_api_server_takes() {
        assert_eq!(cut_note("short"), "short");
        let long = "é".repeat(2000);
        let cut = cut_note(&long);
        assert!(cut.len() <= NOTE_LIMIT && cut.ends_with('…'));
        assert!(cut.starts_with("éé"));
        assert_eq!(cut_note(&"a".repeat(NOTE_LIMIT)).len(), NOTE_LIMIT);
    }

    fn ev(note: &str) -> Event {
        Event {
            type_: EventType::Warning,
            reason: Reason::KeyNotFound,
            action: "Unseal",
            note: note.into(),
        }
    }

    fn obj(uid: &str) -> ObjectReference {
        ObjectReference {
            kind: Some("SealedSecret".into()),
            namespace: Some("prod".into()),
            name: Some("db".into()),
            uid: Some(uid.into()),
            ..Default::default()
        }
    }

    #[test]
    fn repeats_are_the_same_event_and_others_are_not() {
        assert_eq!(identity(&ev("a"), &obj("1")), identity(&ev("a"), &obj("1")));
        assert_ne!(identity(&ev("a"), &obj("1")), identity(&ev("b"), &obj("1")));
        assert_ne!(identity(&ev("a"), &obj("1")), identity(&ev("a"), &obj("2")));
        let mut normal = ev("a");
        normal.type_ = EventType::Normal;
        assert_ne!(identity(&ev("a"), &obj("1")), identity(&normal, &obj("1")));
    }

    #[test]
    fn sweep_forgets_old_events_at_most_once_a_minute() {
        let start = Instant::now();
        let mut m = Memory::default();
        let seen = |last| Seen {
            name: "x".into(),
            count: 1,
            last,
        };
        m.seen.insert(1, seen(start));
        m.sweep(start);
        assert_eq!(m.seen.len(), 1);
        let later = start + SERIES_WINDOW + Duration::from_secs(1);
        m.seen.insert(2, seen(later));
        m.sweep(start + Duration::from_secs(30)); // too soon: nothing swept
        assert_eq!(m.seen.len(), 2);
        m.sweep(later);
        assert_eq!(m.seen.keys().collect::<Vec<_>>(), [&2]);
    }
}
