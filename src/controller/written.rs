//! The statuses this controller wrote, for as long as its cache may not show them yet.
//!
//! A status write is judged against the cached SealedSecret. The cache lags the controller's
//! own writes: by milliseconds normally, by seconds after an API-server restart or a relist
//! (the watches reconnect while reconciles already run). A reconcile in that window would
//! find the object without the status just written and write it again, with a new
//! transition time. So each write is remembered (hashes only: a few dozen bytes per object)
//! with the resourceVersion it was based on; while the cache still shows that version, the
//! remembered status is what the object holds.

use crate::api::SealedSecretStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A remembered write is dropped this long after it was made (the cache has caught up long
/// before: this only bounds the memory).
const KEEP: Duration = Duration::from_secs(120);

/// One object's last status write.
struct Write {
    /// The resourceVersion the write was based on.
    before: u64,
    /// The whole status written, and its Ready condition's status + reason.
    status: u64,
    ready: u64,
    since: Time,
    at: Instant,
}

#[derive(Default)]
pub struct Written(Mutex<HashMap<u64, Write>>);

fn hash(value: impl Hash) -> u64 {
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

fn ready_of(c: &Condition) -> u64 {
    hash((&c.status, &c.reason))
}

fn status_of(s: &SealedSecretStatus) -> u64 {
    // Serialised: the status types do not implement Hash; no secret is in a status.
    hash(serde_json::to_vec(s).unwrap_or_default())
}

/// What the object holds according to this controller's last write, while the cache shows
/// the version that write was based on.
pub struct Lagging {
    status: u64,
    ready: u64,
    since: Time,
}

impl Lagging {
    /// The transition time to keep: the written one when the Ready status and reason stay.
    pub fn since(&self, condition: &Condition) -> Option<Time> {
        (ready_of(condition) == self.ready).then(|| self.since.clone())
    }

    /// Whether `status` is what was written.
    pub fn holds(&self, status: &SealedSecretStatus) -> bool {
        status_of(status) == self.status
    }
}

impl Written {
    /// The last write to object `uid` if the cache (at `version`) does not show it yet; a
    /// write the cache has moved past is forgotten.
    pub fn lagging(&self, uid: &str, version: Option<&str>) -> Option<Lagging> {
        let mut map = self.0.lock().expect("written lock");
        let key = hash(uid);
        let w = map.get(&key)?;
        if w.before != hash(version) {
            map.remove(&key);
            return None;
        }
        Some(Lagging {
            status: w.status,
            ready: w.ready,
            since: w.since.clone(),
        })
    }

    /// Remember that `status` was written over the object `uid` at `version`.
    pub fn wrote(&self, uid: &str, version: Option<&str>, status: &SealedSecretStatus) {
        let Some(ready) = status.conditions.iter().find(|c| c.type_ == "Ready") else {
            return;
        };
        let write = Write {
            before: hash(version),
            status: status_of(status),
            ready: ready_of(ready),
            since: ready.last_transition_time.clone(),
            at: Instant::now(),
        };
        self.0
            .lock()
            .expect("written lock")
            .insert(hash(uid), write);
    }

    /// Forget writes older than [`KEEP`], giving the memory back.
    pub fn prune(&self) {
        let mut map = self.0.lock().expect("written lock");
        map.retain(|_, w| w.at.elapsed() < KEEP);
        map.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(reason: &str, at: i64) -> SealedSecretStatus {
        SealedSecretStatus {
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: "True".into(),
                reason: reason.into(),
                message: String::new(),
                last_transition_time: Time(jiff::Timestamp::from_second(at).unwrap()),
                observed_generation: None,
            }],
            observed_generation: Some(1),
            ..Default::default()
        }
    }

    #[test]
    fn a_write_is_what_the_object_holds_until_the_cache_moves_past_its_version() {
        let written = Written::default();
        let first = status("Unsealed", 100);
        written.wrote("u", Some("7"), &first);
        // The cache still shows version 7: the written status (and its time) is what holds.
        let lag = written.lagging("u", Some("7")).expect("lagging");
        assert!(lag.holds(&first));
        assert!(
            !lag.holds(&status("Unsealed", 200)),
            "another transition time"
        );
        let again = &status("Unsealed", 200).conditions[0];
        assert_eq!(
            lag.since(again),
            Some(first.conditions[0].last_transition_time.clone())
        );
        assert_eq!(lag.since(&status("KeyNotFound", 200).conditions[0]), None);
        assert!(written.lagging("other", Some("7")).is_none());
        // The cache moved on (to our write or past it): judge by the cache, and forget.
        assert!(written.lagging("u", Some("8")).is_none());
        assert!(written.lagging("u", Some("7")).is_none(), "forgotten");
    }
}
