//! What each SealedSecret unsealed to last time, as a digest, and which key ids its envelopes
//! verifiably unwrap with. The digest lets a reconcile that only checks (woken by its own
//! Secret write echoing back, or by a status write) skip unwrapping and decrypting when
//! nothing that decides the Secret's data has changed; the key ids are the key usage that
//! decides whether a key may be retired (a key id merely named in an envelope counts for
//! nothing: anyone can write one). Digests of the data, never the data; memory only.

use super::secret::Digest;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// What the unsealed data depends on: the object (uid), its spec (generation), and the keys
/// (private keys and which one is Active).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inputs {
    pub generation: Option<i64>,
    pub keys: u64,
}

/// What one reconcile found for one object.
struct Entry {
    inputs: Inputs,
    /// The data's digest, when it unsealed.
    digest: Option<Digest>,
    /// [`key_id_hash`]es of the key ids whose wrapping unwrapped.
    used: Box<[u64]>,
}

#[derive(Default)]
pub struct Memo {
    by_uid: Mutex<HashMap<u64, Entry>>,
}

fn key(uid: &str) -> u64 {
    super::hash64(&uid)
}

/// How key ids are remembered (eight bytes each, not the string).
pub fn key_id_hash(key_id: &str) -> u64 {
    super::hash64(&key_id)
}

/// Key usage over a set of objects.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Objects per [`key_id_hash`].
    pub by_key: HashMap<u64, i64>,
    /// Objects not yet checked with the current inputs: while any is, usage is a guess.
    pub unchecked: usize,
}

impl Usage {
    /// How many objects use `key_id`, or `None` while some object is unchecked.
    pub fn of(&self, key_id: &str) -> Option<i64> {
        (self.unchecked == 0).then(|| self.by_key.get(&key_id_hash(key_id)).copied().unwrap_or(0))
    }
}

impl Memo {
    /// The digest `uid` unsealed to from exactly these inputs, if remembered.
    pub fn get(&self, uid: &str, inputs: Inputs) -> Option<Digest> {
        let memo = self.by_uid.lock().expect("memo lock");
        memo.get(&key(uid))
            .filter(|e| e.inputs == inputs)
            .and_then(|e| e.digest)
    }

    /// Remember a reconcile: the digest if it unsealed, and the key ids that unwrapped.
    pub fn put(&self, uid: &str, inputs: Inputs, digest: Option<Digest>, used: &[u64]) {
        let mut memo = self.by_uid.lock().expect("memo lock");
        let entry = Entry {
            inputs,
            digest,
            used: used.into(),
        };
        memo.insert(key(uid), entry);
    }

    /// The key ids (hashed) `uid` was found to use with these inputs.
    pub fn used(&self, uid: &str, inputs: Inputs) -> Option<Box<[u64]>> {
        let memo = self.by_uid.lock().expect("memo lock");
        memo.get(&key(uid))
            .filter(|e| e.inputs == inputs)
            .map(|e| e.used.clone())
    }

    /// Key usage over `objects` (uid and current inputs of each).
    pub fn usage<'a>(&self, objects: impl IntoIterator<Item = (&'a str, Inputs)>) -> Usage {
        let memo = self.by_uid.lock().expect("memo lock");
        let mut usage = Usage::default();
        for (uid, inputs) in objects {
            match memo.get(&key(uid)).filter(|e| e.inputs == inputs) {
                Some(e) => {
                    for id in e.used.iter() {
                        *usage.by_key.entry(*id).or_default() += 1;
                    }
                }
                None => usage.unchecked += 1,
            }
        }
        usage
    }

    /// Forget objects that no longer exist.
    pub fn retain<'a>(&self, uids: impl IntoIterator<Item = &'a str>) {
        let live: HashSet<u64> = uids.into_iter().map(key).collect();
        let mut memo = self.by_uid.lock().expect("memo lock");
        memo.retain(|k, _| live.contains(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_per_object_and_inputs() {
        let memo = Memo::default();
        let at = |generation, keys| Inputs { generation, keys };
        memo.put("u1", at(Some(1), 7), Some([1; 32]), &[]);
        assert_eq!(memo.get("u1", at(Some(1), 7)), Some([1; 32]));
        assert_eq!(memo.get("u1", at(Some(2), 7)), None, "spec changed");
        assert_eq!(memo.get("u1", at(Some(1), 8)), None, "keys changed");
        assert_eq!(memo.get("u2", at(Some(1), 7)), None);
        memo.put("u3", at(Some(1), 7), None, &[]);
        assert_eq!(
            memo.get("u3", at(Some(1), 7)),
            None,
            "a failure has no digest"
        );
        memo.retain(["u2"]);
        assert_eq!(memo.get("u1", at(Some(1), 7)), None);
    }

    #[test]
    fn usage_counts_verified_key_ids_and_knows_when_it_is_complete() {
        let memo = Memo::default();
        let now = Inputs {
            generation: Some(1),
            keys: 7,
        };
        let (a, b) = (key_id_hash("ka"), key_id_hash("kb"));
        memo.put("u1", now, Some([0; 32]), &[a]);
        memo.put("u2", now, None, &[a, b]);
        let usage = memo.usage([("u1", now), ("u2", now)]);
        assert_eq!(
            (usage.of("ka"), usage.of("kb"), usage.of("fake")),
            (Some(2), Some(1), Some(0))
        );
        // An object not yet checked with the current keys makes usage unknown.
        let later = Inputs { keys: 8, ..now };
        let usage = memo.usage([("u1", now), ("u2", later), ("u9", now)]);
        assert_eq!((usage.unchecked, usage.of("ka")), (2, None));
    }
}
