//! The pure rules of the key set: which key is Active, what every other key effectively is,
//! when a retirement or a deletion may go ahead, when a new key is due, what it is called and
//! what it looks like when created.
//! `spec.state` is what users (or Git) want; what these rules decide goes in status only, so
//! the controller never fights a GitOps agent over spec.

use crate::api::{KeyState, Reason, SealingKey, SealingKeySpec};
use kube::{Resource, ResourceExt};

/// What the rules need to know of one SealingKey.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyView {
    pub name: String,
    /// `spec.state`: what users want.
    pub wanted: KeyState,
    pub force: bool,
    /// Creation time, seconds since the epoch.
    pub created: i64,
    /// Being deleted (a deletion timestamp is set).
    pub deleting: bool,
    /// Whether the controller holds its private key.
    pub held: Held,
    /// The controller already retired it (deleted its private key): final.
    pub retired: bool,
    /// Its status names a public key (sealed files may name its key id).
    pub published: bool,
    /// SealedSecrets whose envelopes unwrap with this key; `None` while not every object has
    /// been checked yet (then nothing is retired or released).
    pub used_by: Option<i64>,
}

/// Whether the controller holds a key's private half.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Held {
    Trusted,
    Missing,
    /// A key Secret exists but fails the trust rules; the text says which.
    Untrusted(String),
}

impl KeyView {
    /// The view of `key` given what the caller knows of its private key and usage.
    pub fn of(key: &SealingKey, held: Held, used_by: Option<i64>) -> Self {
        let status = key.status.as_ref();
        Self {
            name: key.name_any(),
            wanted: key.spec.state,
            force: key.spec.force,
            created: created(key),
            deleting: key.meta().deletion_timestamp.is_some(),
            held,
            retired: status.and_then(|s| s.state) == Some(KeyState::Retired),
            published: status.is_some_and(|s| s.public_key.is_some()),
            used_by,
        }
    }

    fn may_be_active(&self) -> bool {
        self.wanted == KeyState::Active
            && !self.deleting
            && !self.retired
            && self.held == Held::Trusted
    }

    /// A new key whose private half the controller is about to make: it will be Active.
    fn is_pending(&self) -> bool {
        self.wanted == KeyState::Active
            && !self.deleting
            && !self.retired
            && self.held == Held::Missing
            && !self.published
    }
}

/// What the rules decide for one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The effective state (`status.state`).
    pub state: KeyState,
    /// Why the state differs from spec, or what it waits for (`status.stateReason`).
    pub reason: Option<String>,
    /// The `Retired` condition, for keys whose retirement or deletion was asked for.
    pub retired: Option<Retirement>,
    /// Delete the private key Secret now.
    pub delete_private_key: bool,
    /// The SealingKey is being deleted and may go: remove its finalizer.
    pub release: bool,
}

/// The `Retired` condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Retirement {
    Done,
    /// Not (yet): [`Reason::RetireRefused`], [`Reason::DeletionBlocked`] or
    /// [`Reason::RetirePending`], and why.
    Refused {
        reason: Reason,
        message: String,
    },
}

/// The key that is Active: the newest (by creation time, then name) that users want Active,
/// whose private key the controller holds, and that is neither retired nor being deleted.
pub fn active(keys: &[KeyView]) -> Option<&KeyView> {
    keys.iter()
        .filter(|k| k.may_be_active())
        .max_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)))
}

/// The verdict for every key, in order.
pub fn decide(keys: &[KeyView]) -> Vec<Verdict> {
    let active = active(keys).map(|k| k.name.as_str());
    keys.iter().map(|k| verdict(k, active)).collect()
}

fn verdict(k: &KeyView, active: Option<&str>) -> Verdict {
    let keep = |state, reason: Option<String>| Verdict {
        state,
        reason,
        retired: None,
        delete_private_key: false,
        release: false,
    };
    let gone = k.retired || (k.held == Held::Missing && k.wanted == KeyState::Retired);
    if gone || k.deleting || k.wanted == KeyState::Retired {
        let blocked = if k.deleting {
            Reason::DeletionBlocked
        } else {
            Reason::RetireRefused
        };
        let refusal = match k.used_by {
            _ if gone || k.force => None,
            None => Some((
                Reason::RetirePending,
                "waiting until every SealedSecret has been checked for this key".to_string(),
            )),
            Some(0) => None,
            Some(n) => Some((
                blocked,
                format!(
                    "{n} SealedSecret(s) still use this key: reseal them (gitseal reseal \
                     --drop-old) and apply them first, or set spec.force"
                ),
            )),
        };
        return match refusal {
            Some((reason, message)) => Verdict {
                state: KeyState::DecryptOnly,
                reason: Some(format!(
                    "{} refused: {message}",
                    if k.deleting { "deletion" } else { "retirement" }
                )),
                retired: Some(Retirement::Refused { reason, message }),
                delete_private_key: false,
                release: false,
            },
            None => Verdict {
                state: KeyState::Retired,
                reason: (k.wanted != KeyState::Retired && !k.deleting)
                    .then(|| "retired earlier: its private key is gone".to_string()),
                retired: Some(Retirement::Done),
                delete_private_key: k.held != Held::Missing,
                release: k.deleting,
            },
        };
    }
    if active == Some(k.name.as_str()) {
        return keep(KeyState::Active, None);
    }
    let why = match (&k.held, active) {
        (Held::Missing, _) => Some("private key missing: restore it from a backup".to_string()),
        (Held::Untrusted(why), _) => Some(format!("private key not trusted: {why}")),
        (Held::Trusted, Some(a)) if k.wanted == KeyState::Active => {
            Some(format!("superseded by {a}"))
        }
        (Held::Trusted, _) => None,
    };
    keep(KeyState::DecryptOnly, why)
}

/// When `key` was created (its status says, else its metadata), seconds since the epoch.
pub fn created(key: &SealingKey) -> i64 {
    key.status
        .as_ref()
        .and_then(|s| s.created.as_ref())
        .or(key.meta().creation_timestamp.as_ref())
        .map_or(0, |t| t.0.as_second())
}

/// Whether a new key must be created: none may be Active, or the Active one is older than
/// `renew_after` seconds (0 disables renewal) — and no new key is already on its way (one
/// created a moment ago, whose private half is being made).
pub fn needs_new_key(keys: &[KeyView], now: i64, renew_after: i64) -> bool {
    if keys.iter().any(KeyView::is_pending) {
        return false;
    }
    match active(keys) {
        None => true,
        Some(k) => renew_after > 0 && now.saturating_sub(k.created) >= renew_after,
    }
}

/// Name for the next key the controller creates: one past the highest `gitseal-N`. Two
/// replicas racing pick the same name, so only one creation succeeds.
pub fn next_key_name<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let n = names
        .into_iter()
        .filter_map(|name| {
            name.strip_prefix(super::KEY_NAME_PREFIX)?
                .parse::<u64>()
                .ok()
        })
        .max()
        .unwrap_or(0);
    format!("{}{}", super::KEY_NAME_PREFIX, n.saturating_add(1))
}

/// The next Active SealingKey `name`, as both the key manager and `gitseal rotate` create it:
/// spec Active, not forced, and held by [`KEY_FINALIZER`](super::KEY_FINALIZER) from its
/// creation, so it cannot be deleted while in use even before the key manager first sees it.
pub fn new_active_key(name: &str) -> SealingKey {
    let mut key = SealingKey::new(
        name,
        SealingKeySpec {
            state: KeyState::Active,
            force: false,
        },
    );
    key.metadata.finalizers = Some(vec![super::KEY_FINALIZER.to_string()]);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(name: &str, wanted: KeyState, created: i64) -> KeyView {
        KeyView {
            name: name.into(),
            wanted,
            force: false,
            created,
            deleting: false,
            held: Held::Trusted,
            retired: false,
            published: true,
            used_by: Some(0),
        }
    }

    fn states(keys: &[KeyView]) -> Vec<KeyState> {
        decide(keys).into_iter().map(|v| v.state).collect()
    }

    use KeyState::*;

    #[test]
    fn exactly_one_active_and_spec_untouched() {
        let keys = [
            k("gitseal-1", Active, 10),
            k("gitseal-2", Active, 20),
            k("old", DecryptOnly, 1),
        ];
        let v = decide(&keys);
        assert_eq!(states(&keys), [DecryptOnly, Active, DecryptOnly]);
        assert_eq!(v[0].reason.as_deref(), Some("superseded by gitseal-2"));
        let tie = [k("a", Active, 5), k("b", Active, 5)];
        assert_eq!(states(&tie), [DecryptOnly, Active]);
    }

    #[test]
    fn only_a_held_trusted_key_is_active() {
        let mut planted = k("gitseal-2", Active, 20);
        planted.held = Held::Untrusted("not owned".into());
        let mut lost = k("gitseal-3", Active, 30);
        lost.held = Held::Missing;
        let keys = [k("gitseal-1", Active, 10), planted, lost];
        assert_eq!(states(&keys), [Active, DecryptOnly, DecryptOnly]);
        assert_eq!(active(&keys).unwrap().name, "gitseal-1");
        assert!(
            decide(&keys)[1]
                .reason
                .as_ref()
                .unwrap()
                .contains("not trusted")
        );
        let mut deleting = k("gitseal-4", Active, 40);
        deleting.deleting = true;
        deleting.used_by = Some(3);
        assert_eq!(active(&[deleting.clone()]), None);
        assert!(needs_new_key(&[deleting], 50, 0));
    }

    #[test]
    fn retirement_waits_for_usage_and_is_final() {
        let mut r = k("old", Retired, 1);
        r.used_by = Some(2);
        let v = &decide(&[r.clone()])[0];
        assert_eq!(v.state, DecryptOnly);
        assert!(
            matches!(&v.retired, Some(Retirement::Refused { reason, message })
            if *reason == Reason::RetireRefused && message.starts_with("2 SealedSecret(s)"))
        );
        assert!(!v.delete_private_key);
        r.used_by = None; // not every object checked yet: never retire on a guess
        let v = &decide(&[r.clone()])[0];
        assert!(!v.delete_private_key);
        assert!(
            matches!(&v.retired, Some(Retirement::Refused { reason, .. }) if *reason == Reason::RetirePending)
        );
        r.used_by = Some(0);
        let v = &decide(&[r.clone()])[0];
        assert_eq!(
            (v.state, v.delete_private_key, &v.retired),
            (Retired, true, &Some(Retirement::Done))
        );
        r.used_by = Some(5);
        r.force = true;
        assert!(decide(&[r.clone()])[0].delete_private_key);
        // Retired earlier, then Git says DecryptOnly again: the private key is gone for good.
        let mut back = k("old", DecryptOnly, 1);
        back.retired = true;
        back.held = Held::Missing;
        let v = &decide(&[back])[0];
        assert_eq!((v.state, v.delete_private_key), (Retired, false));
    }

    #[test]
    fn deletion_is_blocked_while_used() {
        let mut d = k("gitseal-1", Active, 1);
        d.deleting = true;
        d.used_by = Some(1);
        let v = &decide(&[d.clone()])[0];
        assert!(!v.release && !v.delete_private_key);
        assert!(
            matches!(&v.retired, Some(Retirement::Refused { reason, .. }) if *reason == Reason::DeletionBlocked)
        );
        d.used_by = Some(0);
        let v = &decide(&[d])[0];
        assert!(v.release && v.delete_private_key);
    }

    #[test]
    fn renewal_and_names() {
        assert!(needs_new_key(&[], 100, 0));
        let keys = [
            k("gitseal-1", DecryptOnly, 0),
            k("gitseal-7", Active, 50),
            k("mine", Active, 10),
        ];
        assert!(!needs_new_key(&keys, 100, 0));
        assert!(!needs_new_key(&keys, 100, 60));
        assert!(needs_new_key(&keys, 110, 60));
        assert_eq!(
            next_key_name(keys.iter().map(|k| k.name.as_str())),
            "gitseal-8"
        );
        assert_eq!(next_key_name([]), "gitseal-1");
        // A key created a moment ago, its private half not made yet: no second one.
        let mut fresh = k("gitseal-1", Active, 100);
        fresh.held = Held::Missing;
        fresh.published = false;
        assert!(!needs_new_key(std::slice::from_ref(&fresh), 100, 0));
        fresh.published = true; // published once, its Secret gone: a new key is needed
        assert!(needs_new_key(&[fresh], 100, 0));
        assert_eq!(
            next_key_name([format!("gitseal-{}", u64::MAX).as_str()]),
            format!("gitseal-{}", u64::MAX)
        );
    }

    #[test]
    fn a_new_key_is_active_unforced_and_held() {
        let key = new_active_key("gitseal-3");
        assert_eq!(key.name_any(), "gitseal-3");
        assert_eq!((key.spec.state, key.spec.force), (Active, false));
        assert_eq!(key.finalizers(), [super::super::KEY_FINALIZER]);
        assert!(key.status.is_none() && key.metadata.namespace.is_none());
        // As created, before the controller holds its private half: a key on its way, so no
        // second one is made, and nothing the rules would delete or release.
        let view = KeyView::of(&key, Held::Missing, Some(0));
        assert!(view.is_pending());
        assert!(!needs_new_key(std::slice::from_ref(&view), 0, 0));
        let v = &decide(&[view])[0];
        assert!(!v.delete_private_key && !v.release && v.retired.is_none());
    }
}
