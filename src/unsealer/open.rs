//! Opening a SealedSecret: which held keys its envelopes are wrapped for, which of those
//! verifiably unwrap (key usage), the template policy, the values, and the Secret they make.
//! The order is the trust order: the spec (and every Secret key) is checked and the policy
//! consulted before any value is decrypted, so a refused object gets nothing opened but its
//! data keys.

use super::policy::Policy;
use super::{Failure, Reason, secret};
use crate::api::SealedSecret;
use crate::crypto::{Identity, Recipient};
use crate::format::{Envelopes, Opener, SealedValue, rewrap};
use crate::manifest::{Location, check_sealed, check_secret_keys, open_values, wanted_key_ids};
use k8s_openapi::api::core::v1::Secret;
use std::collections::BTreeSet;

/// What opening learnt besides the Secret, whatever the outcome.
pub struct Unsealing<'k> {
    /// Holds the data keys unwrapped so far: re-wraps reuse them.
    opener: Opener<'k>,
    /// The held key ids whose wrapping of an envelope a value references unwraps to that
    /// envelope's committed data key. A key id merely named, or wrapping garbage, counts for
    /// nothing (so a fake stanza cannot keep a key from being retired).
    pub used: BTreeSet<String>,
}

/// Open `sealed` with `held` (the identities that may open it: the cluster's trusted
/// private keys, or `gitseal unseal -i` files). `policy` is the controller's: with one, the
/// whole spec is checked first (`InvalidSpec`) and the template policy consulted before any
/// value is decrypted (`PolicyDenied`). Offline (`None`: the CLI writes nothing into a
/// cluster) opening reports the first problem it meets, where it meets it. The Secret is the
/// one [`secret::describe`] builds.
pub fn unseal<'k>(
    sealed: &SealedSecret,
    held: &[&'k Identity],
    policy: Option<&Policy>,
) -> (Result<Secret, Failure>, Unsealing<'k>) {
    // Ids pick keys (no trial decryption), so the opener may hold every key.
    let mut unsealing = Unsealing {
        opener: Opener::new(held.iter().copied()),
        used: BTreeSet::new(),
    };
    let result = open(sealed, held, policy, &mut unsealing);
    (result, unsealing)
}

fn open(
    sealed: &SealedSecret,
    held: &[&Identity],
    policy: Option<&Policy>,
    unsealing: &mut Unsealing<'_>,
) -> Result<Secret, Failure> {
    // Field paths only: the caller knows where the object came from.
    let at = Location::new("", 0);
    if policy.is_some() {
        // A binding that disagrees with the metadata is reported by opening (BindingMismatch).
        let problem = check_sealed(sealed, &at, None)
            .into_iter()
            .find(|p| p.at.field != "spec.boundTo");
        if let Some(problem) = problem {
            return Err(Failure::new(
                Reason::InvalidSpec,
                problem.at.field,
                problem.message,
            ));
        }
    }
    check_keys(sealed, &at)?;
    let wanted = wanted_key_ids(sealed);
    let picked: Vec<&Identity> = held
        .iter()
        .copied()
        .filter(|i| wanted.contains(&i.key_id()))
        .collect();
    // No key at hand: opening names the first value and envelope that none opens
    // (KeyNotFound), decrypting nothing.
    if !picked.is_empty() {
        unsealing.used = verified_key_ids(sealed, &picked, &mut unsealing.opener);
        if let Some(policy) = policy
            && let Err(denied) = policy.check(sealed)
        {
            return Err(Failure::new(
                Reason::PolicyDenied,
                denied.field,
                denied.message,
            ));
        }
    }
    let values = open_values(sealed, &at, &mut unsealing.opener).map_err(Failure::from_manifest)?;
    // `spec.template.data`: rendered over the opened values (checked with the spec above
    // when there is a policy; offline, rendering reports its own first problem).
    let values = match sealed.spec.template.as_ref() {
        Some(t) => crate::template::render(&t.data, values)
            .map_err(|p| Failure::new(Reason::InvalidSpec, p.field(), p.message))?,
        None => values,
    };
    Ok(secret::describe(sealed, values))
}

/// The first key the API server would refuse ([`check_secret_keys`]): the object's fault,
/// reported as InvalidSpec naming the key before anything is unwrapped or decrypted, not as an
/// ApiError from the Secret write.
fn check_keys(sealed: &SealedSecret, at: &Location) -> Result<(), Failure> {
    match check_secret_keys(sealed, at).into_iter().next() {
        Some(problem) => Err(Failure::from_manifest(problem)),
        None => Ok(()),
    }
}

/// See [`Unsealing::used`]. Warms `opener` with each referenced envelope's data key.
fn verified_key_ids(
    sealed: &SealedSecret,
    picked: &[&Identity],
    opener: &mut Opener<'_>,
) -> BTreeSet<String> {
    let referenced: BTreeSet<&str> = sealed
        .spec
        .encrypted_data
        .values()
        .filter_map(|v| SealedValue::envelope_id_of(v))
        .collect();
    let mut used = BTreeSet::new();
    for id in referenced {
        let Some(wrapped) = sealed.spec.envelopes.get(id) else {
            continue;
        };
        let held: Vec<&Identity> = picked
            .iter()
            .copied()
            .filter(|i| wrapped.contains_key(&i.key_id()))
            .collect();
        // One held wrapping (the usual case): the opener's own unwrap verifies it. Several
        // (during a rotation): each is verified on its own, so a bad one counts for nothing.
        let opened = opener.data_key(&sealed.spec.envelopes, id).is_ok();
        match held.as_slice() {
            [only] if opened => {
                used.insert(only.key_id());
            }
            [_] | [] => {}
            several => {
                for identity in several {
                    if Opener::new([*identity])
                        .data_key(&sealed.spec.envelopes, id)
                        .is_ok()
                    {
                        used.insert(identity.key_id());
                    }
                }
            }
        }
    }
    used
}

impl Unsealing<'_> {
    /// Envelopes of `sealed` without a wrapping for the Active key, re-wrapped to it alone
    /// (the cluster's own key: never a caller's), for `gitseal reseal`. Re-wraps already in
    /// status are kept, so status stays put across reconciles. Values, and so their scope
    /// binding, are untouched. An envelope that cannot be opened is left out.
    pub fn rewraps(
        &mut self,
        sealed: &SealedSecret,
        active: Option<(&str, &Recipient)>,
    ) -> Envelopes {
        let Some((active, recipient)) = active else {
            return Envelopes::new();
        };
        let old = status_rewraps(sealed);
        let mut out = Envelopes::new();
        for (id, wrapped) in &sealed.spec.envelopes {
            if wrapped.contains_key(active) {
                continue;
            }
            if let Some(previous) = old.get(id).filter(|m| m.contains_key(active)) {
                out.insert(id.clone(), previous.clone());
                continue;
            }
            match rewrap(
                &mut self.opener,
                &sealed.spec.envelopes,
                id,
                std::slice::from_ref(recipient),
            ) {
                Ok(m) => {
                    out.insert(id.clone(), m);
                }
                Err(e) => tracing::warn!(envelope = %id, error = %e, "could not re-wrap"),
            }
        }
        out
    }
}

/// The re-wraps [`Unsealing::rewraps`] would return, when status already holds every one
/// of them (then nothing needs opening).
pub fn earlier_rewraps(sealed: &SealedSecret, active: &str) -> Option<Envelopes> {
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
