//! Envelopes (one data key wrapped to each recipient, keyed by key id) and the seal / open /
//! re-wrap operations that tie values, envelopes and identities together.

use super::limits::MAX_WRAPPED_KEY_TEXT;
use super::{FormatError, MAX_VALUE_LEN, Map, Scope, SealedValue, Target, aad};
use crate::crypto::{self, DataKey, Identity, Plaintext, Recipient};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::collections::HashMap;

/// All envelopes of one object: envelope id → (key id → base64 of a binary age file).
pub type Envelopes = Map<Map<String>>;

/// One envelope: a data key's id and its wrappings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub id: String,
    pub wrapped: Map<String>,
}

/// Seals values of one seal operation under one fresh data key.
pub struct Sealer {
    key: DataKey,
    scope: Scope,
    envelope: Envelope,
}

impl Sealer {
    /// A fresh data key wrapped to every recipient (duplicates collapse by key id).
    pub fn new(recipients: &[Recipient], scope: Scope) -> Result<Self, FormatError> {
        Self::with_key(DataKey::generate(), recipients, scope)
    }

    /// With a given data key (known-answer tests).
    pub fn with_key(
        key: DataKey,
        recipients: &[Recipient],
        scope: Scope,
    ) -> Result<Self, FormatError> {
        let mut wrapped = Map::new();
        for r in recipients {
            if let litemap::Entry::Vacant(slot) = wrapped.entry(r.key_id()) {
                slot.insert(STANDARD.encode(crypto::wrap(&key, r)?));
            }
        }
        let envelope = Envelope {
            id: crypto::envelope_id(&key),
            wrapped,
        };
        Ok(Self {
            key,
            scope,
            envelope,
        })
    }

    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// Seal one value for `key` in `target`.
    pub fn seal(
        &self,
        target: Target<'_>,
        key: &str,
        plaintext: &[u8],
    ) -> Result<String, FormatError> {
        if plaintext.len() > MAX_VALUE_LEN {
            return Err(FormatError::Malformed(format!(
                "value is larger than {MAX_VALUE_LEN} bytes"
            )));
        }
        let aad = aad(self.scope, target, key)?;
        let blob = crypto::seal(&self.key, &aad, plaintext);
        Ok(SealedValue {
            scope: self.scope,
            envelope_id: self.envelope.id.clone(),
            blob,
        }
        .emit())
    }
}

/// Opens values with a set of identities, unwrapping each wrapping once. Unwrapped data keys
/// are remembered by envelope id *and* the wrapped key they came from, so one file's good
/// envelope never vouches for another file's envelope of the same id with a different
/// (corrupted or substituted) wrapping: that one is unwrapped, and fails, on its own.
pub struct Opener<'a> {
    identities: Vec<(String, &'a Identity)>,
    /// Envelope id → (wrapped key text, its data key), usually one entry per id.
    keys: HashMap<String, Vec<(String, DataKey)>>,
}

impl<'a> Opener<'a> {
    pub fn new(identities: impl IntoIterator<Item = &'a Identity>) -> Self {
        let identities = identities.into_iter().map(|i| (i.key_id(), i)).collect();
        Self {
            identities,
            keys: HashMap::new(),
        }
    }

    /// Key ids of the identities this opener holds.
    pub fn key_ids(&self) -> Vec<String> {
        self.identities.iter().map(|(id, _)| id.clone()).collect()
    }

    /// The data key of envelope `id`: picked by key id (no trial decryption), unwrapped,
    /// and checked against the envelope id (key commitment). When the envelope wraps to
    /// several held keys and one wrapping is bad (anyone can add a stanza under a key id),
    /// the next held key is tried; the first failure is reported if none opens it.
    pub fn data_key(&mut self, envelopes: &Envelopes, id: &str) -> Result<&DataKey, FormatError> {
        let wrapped = envelopes
            .get(id)
            .ok_or_else(|| FormatError::MissingEnvelope(id.to_string()))?;
        let mut first_error = None;
        for (kid, identity) in self
            .identities
            .iter()
            .filter(|(kid, _)| wrapped.contains_key(kid))
        {
            let text = &wrapped[kid];
            let known = self
                .keys
                .get(id)
                .and_then(|seen| seen.iter().position(|(w, _)| w == text));
            let index = match known {
                Some(i) => i,
                None => match unwrap_checked(id, text, identity) {
                    Ok(key) => {
                        let seen = self.keys.entry(id.to_string()).or_default();
                        seen.push((text.clone(), key));
                        seen.len() - 1
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                        continue;
                    }
                },
            };
            return Ok(&self.keys[id][index].1);
        }
        Err(first_error.unwrap_or_else(|| FormatError::NotARecipient {
            envelope: id.to_string(),
            wanted: wrapped.keys().cloned().collect::<Vec<_>>().join(", "),
            have: self.key_ids().join(", "),
        }))
    }

    /// Open value `key` of an object in `target` whose `spec.scope` is `scope`.
    pub fn open(
        &mut self,
        envelopes: &Envelopes,
        scope: Scope,
        target: Target<'_>,
        key: &str,
        value: &str,
    ) -> Result<Plaintext, FormatError> {
        let sealed = SealedValue::parse(value)?;
        if sealed.scope != scope {
            return Err(FormatError::ScopeMismatch {
                value: sealed.scope,
                spec: scope,
            });
        }
        let aad = aad(scope, target, key)?;
        let data_key = self.data_key(envelopes, &sealed.envelope_id)?;
        Ok(crypto::open(data_key, &aad, &sealed.blob)?)
    }
}

/// Unwrap one wrapped key of envelope `id` and check it commits to `id`.
fn unwrap_checked(id: &str, text: &str, identity: &Identity) -> Result<DataKey, FormatError> {
    let unwrap_error = |source| FormatError::Unwrap {
        envelope: id.to_string(),
        source,
    };
    if text.len() > MAX_WRAPPED_KEY_TEXT {
        return Err(unwrap_error(crypto::CryptoError::WrappedKeyTooLarge {
            len: text.len() / 4 * 3,
        }));
    }
    let bytes = STANDARD
        .decode(text)
        .map_err(|_| FormatError::BadWrappedEncoding(id.to_string()))?;
    let key = crypto::unwrap(&bytes, &[identity]).map_err(unwrap_error)?;
    if crypto::envelope_id(&key) != id {
        return Err(unwrap_error(crypto::CryptoError::CommitmentMismatch));
    }
    Ok(key)
}

/// Re-wrap envelope `id` to `recipients` without touching any value: the data key is
/// unwrapped with `opener` and wrapped anew. Values, and so their scope binding, are
/// unchanged; the envelope id stays the same.
pub fn rewrap(
    opener: &mut Opener<'_>,
    envelopes: &Envelopes,
    id: &str,
    recipients: &[Recipient],
) -> Result<Map<String>, FormatError> {
    let key = opener.data_key(envelopes, id)?;
    let mut wrapped = Map::new();
    for r in recipients {
        wrapped.insert(r.key_id(), STANDARD.encode(crypto::wrap(key, r)?));
    }
    Ok(wrapped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (Identity, Sealer, Envelopes) {
        let id = Identity::generate();
        let sealer = Sealer::new(&[id.recipient()], Scope::Strict).unwrap();
        let env = sealer.envelope().clone();
        (id, sealer, Map::from_iter([(env.id, env.wrapped)]))
    }

    const T: Target<'static> = Target {
        namespace: Some("prod"),
        name: "db",
    };

    #[test]
    fn seal_open() {
        let (id, sealer, envs) = setup();
        let v = sealer.seal(T, "pw", b"s3cret").unwrap();
        let mut opener = Opener::new([&id]);
        assert_eq!(
            opener
                .open(&envs, Scope::Strict, T, "pw", &v)
                .unwrap()
                .expose(),
            b"s3cret"
        );
        let staging = Target {
            namespace: Some("staging"),
            name: "db",
        };
        assert!(matches!(
            opener.open(&envs, Scope::Strict, staging, "pw", &v),
            Err(FormatError::Crypto(crypto::CryptoError::Authentication))
        ));
        assert!(matches!(
            opener.open(&envs, Scope::Cluster, T, "pw", &v),
            Err(FormatError::ScopeMismatch { .. })
        ));
    }

    #[test]
    fn wrong_identity_names_key_ids() {
        let (id, sealer, envs) = setup();
        let v = sealer.seal(T, "pw", b"x").unwrap();
        let other = Identity::generate();
        let err = Opener::new([&other])
            .open(&envs, Scope::Strict, T, "pw", &v)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&id.key_id()) && err.contains(&other.key_id()),
            "{err}"
        );
    }

    #[test]
    fn commitment_is_checked() {
        let (id, sealer, mut envs) = setup();
        let v = sealer.seal(T, "pw", b"x").unwrap();
        // Swap in a wrapping of a different key under the same envelope id.
        let wrong = crypto::wrap(&DataKey::generate(), &id.recipient()).unwrap();
        let env_id = sealer.envelope().id.clone();
        envs.get_mut(&env_id)
            .unwrap()
            .insert(id.key_id(), STANDARD.encode(wrong));
        let err = Opener::new([&id])
            .open(&envs, Scope::Strict, T, "pw", &v)
            .unwrap_err();
        assert!(
            matches!(
                err,
                FormatError::Unwrap {
                    source: crypto::CryptoError::CommitmentMismatch,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_good_envelope_does_not_vouch_for_another_with_the_same_id() {
        let (id, sealer, good) = setup();
        let v = sealer.seal(T, "pw", b"x").unwrap();
        let env_id = sealer.envelope().id.clone();
        // The same envelope id, its wrapping replaced by one of another data key.
        let mut bad = good.clone();
        let wrong = crypto::wrap(&DataKey::generate(), &id.recipient()).unwrap();
        bad.get_mut(&env_id)
            .unwrap()
            .insert(id.key_id(), STANDARD.encode(wrong));
        let mut opener = Opener::new([&id]);
        assert_eq!(
            opener
                .open(&good, Scope::Strict, T, "pw", &v)
                .unwrap()
                .expose(),
            b"x"
        );
        let err = opener.open(&bad, Scope::Strict, T, "pw", &v).unwrap_err();
        assert!(
            matches!(
                err,
                FormatError::Unwrap {
                    source: crypto::CryptoError::CommitmentMismatch,
                    ..
                }
            ),
            "{err}"
        );
        // A truncated wrapping fails too; the good one still opens from memory.
        let mut cut = good.clone();
        let text = cut[&env_id][&id.key_id()].clone();
        cut.get_mut(&env_id)
            .unwrap()
            .insert(id.key_id(), text[..text.len() - 8].to_string());
        assert!(opener.open(&cut, Scope::Strict, T, "pw", &v).is_err());
        assert!(opener.open(&good, Scope::Strict, T, "pw", &v).is_ok());
    }

    #[test]
    fn oversized_wrapped_keys_are_refused_before_decoding() {
        let (id, sealer, mut envs) = setup();
        let v = sealer.seal(T, "pw", b"x").unwrap();
        let env_id = sealer.envelope().id.clone();
        envs.get_mut(&env_id)
            .unwrap()
            .insert(id.key_id(), "A".repeat(MAX_WRAPPED_KEY_TEXT + 4));
        let err = Opener::new([&id])
            .open(&envs, Scope::Strict, T, "pw", &v)
            .unwrap_err();
        assert!(
            matches!(
                err,
                FormatError::Unwrap {
                    source: crypto::CryptoError::WrappedKeyTooLarge { .. },
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn rewrap_keeps_values() {
        let (id, sealer, envs) = setup();
        let v = sealer.seal(T, "pw", b"x").unwrap();
        let new = Identity::generate();
        let env_id = sealer.envelope().id.clone();
        let wrapped = rewrap(&mut Opener::new([&id]), &envs, &env_id, &[new.recipient()]).unwrap();
        let envs2 = Map::from_iter([(env_id, wrapped)]);
        assert_eq!(
            Opener::new([&new])
                .open(&envs2, Scope::Strict, T, "pw", &v)
                .unwrap()
                .expose(),
            b"x"
        );
        assert!(
            Opener::new([&id])
                .open(&envs2, Scope::Strict, T, "pw", &v)
                .is_err()
        );
        // A re-wrap cannot widen the scope: the binding is in the value, not the envelope.
        let mut opener = Opener::new([&new]);
        let elsewhere = Target {
            namespace: Some("staging"),
            name: "db",
        };
        assert!(
            opener
                .open(&envs2, Scope::Strict, elsewhere, "pw", &v)
                .is_err()
        );
        assert!(
            opener
                .open(&envs2, Scope::Strict, T, "other-key", &v)
                .is_err()
        );
        assert!(matches!(
            opener.open(&envs2, Scope::Cluster, T, "pw", &v),
            Err(FormatError::ScopeMismatch { .. })
        ));
    }
}
