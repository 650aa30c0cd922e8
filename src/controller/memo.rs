//! What each SealedSecret unsealed to last time, as a digest: lets a reconcile that only
//! checks (woken by its own Secret write echoing back, or by a status write) skip unwrapping
//! and decrypting when nothing that decides the Secret's data has changed. The digest is of
//! the data, never the data; it lives only in memory.

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

#[derive(Default)]
pub struct Memo {
    by_uid: Mutex<HashMap<u64, (Inputs, Digest)>>,
}

fn key(uid: &str) -> u64 {
    super::hash64(&uid)
}

impl Memo {
    /// The digest `uid` unsealed to from exactly these inputs, if remembered.
    pub fn get(&self, uid: &str, inputs: Inputs) -> Option<Digest> {
        let memo = self.by_uid.lock().expect("memo lock");
        memo.get(&key(uid))
            .filter(|(i, _)| *i == inputs)
            .map(|(_, d)| *d)
    }

    pub fn put(&self, uid: &str, inputs: Inputs, digest: Digest) {
        let mut memo = self.by_uid.lock().expect("memo lock");
        memo.insert(key(uid), (inputs, digest));
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
        memo.put("u1", at(Some(1), 7), [1; 32]);
        assert_eq!(memo.get("u1", at(Some(1), 7)), Some([1; 32]));
        assert_eq!(memo.get("u1", at(Some(2), 7)), None, "spec changed");
        assert_eq!(memo.get("u1", at(Some(1), 8)), None, "keys changed");
        assert_eq!(memo.get("u2", at(Some(1), 7)), None);
        memo.retain(["u2"]);
        assert_eq!(memo.get("u1", at(Some(1), 7)), None);
    }
}
