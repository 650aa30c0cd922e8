//! Key backups: every private key with its SealingKey's name, state, id and creation time,
//! serialized and encrypted to admin age recipients as one age file. The plain bundle only
//! ever exists in memory, in zeroizing buffers.
//!
//! A bundle proves nothing about who made it: anyone can encrypt a file to the admin's public
//! key. [`Bundle::check`] therefore holds every entry to what restore may create: an identity
//! that is the private half of the stated public key and key id, a valid name, a creation
//! time not in the future, and (unless the admin trusts the bundle) a key id the committed
//! keyring already lists.

use crate::api::{API_VERSION, KeyState};
use crate::crypto::{CryptoError, Identity, Recipient, decrypt_file, encrypt_file, key_id};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use zeroize::{Zeroize, Zeroizing};

pub const BUNDLE_KIND: &str = "KeyBackup";

/// How far in the future a bundle entry's `created` may lie (clocks of two machines differ):
/// 5 minutes.
pub const MAX_CLOCK_SKEW_SECS: i64 = 300;

/// Longest SealingKey name restore accepts: its key Secret `gitseal-key-<name>` must still be
/// a valid object name (253 characters).
pub const MAX_KEY_NAME_LEN: usize = 253 - "gitseal-key-".len();

/// The decrypted content of a backup.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    pub api_version: String,
    pub kind: String,
    pub keys: Vec<BundleKey>,
}

/// One key of a backup. Its identity is zeroized on drop; there is no `Debug`.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleKey {
    pub name: String,
    pub state: KeyState,
    pub key_id: String,
    pub public_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    identity: String,
}

impl Drop for BundleKey {
    fn drop(&mut self) {
        self.identity.zeroize();
    }
}

/// Why one entry of a bundle is refused: `keys[<index>] (<name>):<field>: <message>`.
/// Names no key material.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("keys[{index}] ({name}):{field}: {message}")]
pub struct EntryError {
    pub index: usize,
    pub name: String,
    pub field: &'static str,
    pub message: String,
}

impl BundleKey {
    pub fn new(name: &str, state: KeyState, created: Option<String>, identity: &Identity) -> Self {
        Self {
            name: name.to_string(),
            state,
            key_id: identity.key_id(),
            public_key: identity.recipient().as_str().to_string(),
            created,
            identity: identity.to_secret_string().to_string(),
        }
    }

    /// The private key, checked against the stated public key and key id.
    pub fn identity(&self) -> Result<Identity, (&'static str, String)> {
        let identity = Identity::parse(&self.identity)
            .map_err(|_| ("identity", "not a valid age X25519 identity".to_string()))?;
        let stated = Recipient::parse(&self.public_key).map_err(|_| {
            (
                "publicKey",
                format!("{:?} is not an age recipient", self.public_key),
            )
        })?;
        if identity.recipient() != stated {
            return Err((
                "publicKey",
                format!(
                    "the identity is not the private key of {} (forged or corrupted bundle)",
                    stated.as_str()
                ),
            ));
        }
        if key_id(stated.as_str()) != self.key_id {
            return Err((
                "keyId",
                format!(
                    "key id {} does not belong to public key {} (whose id is {})",
                    self.key_id,
                    stated.as_str(),
                    stated.key_id()
                ),
            ));
        }
        Ok(identity)
    }

    /// The creation time, if the entry states one.
    pub fn created_at(&self) -> Option<jiff::Timestamp> {
        self.created.as_deref().and_then(|c| c.parse().ok())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Crypto(#[from] CryptoError),
    #[error("not a gitseal key backup: {0}")]
    Invalid(String),
}

impl Bundle {
    pub fn new(keys: Vec<BundleKey>) -> Self {
        Self {
            api_version: API_VERSION.into(),
            kind: BUNDLE_KIND.into(),
            keys,
        }
    }

    /// Encrypt to the admin recipients.
    pub fn seal(&self, recipients: &[Recipient]) -> Result<Vec<u8>, BackupError> {
        let plain = Zeroizing::new(serde_json::to_vec(self).expect("bundle serializes"));
        Ok(encrypt_file(&plain, recipients)?)
    }

    /// Decrypt a backup file and check its kind. Entries are checked by [`Bundle::check`].
    pub fn open(file: &[u8], identities: &[&Identity]) -> Result<Self, BackupError> {
        let plain = decrypt_file(file, identities)?;
        let bundle: Bundle = serde_json::from_slice(plain.expose())
            .map_err(|e| BackupError::Invalid(e.to_string()))?;
        if bundle.api_version != API_VERSION || bundle.kind != BUNDLE_KIND {
            return Err(BackupError::Invalid(format!(
                "kind {} {}",
                bundle.api_version, bundle.kind
            )));
        }
        Ok(bundle)
    }

    /// Every reason to refuse an entry (empty: all may be restored). `trusted_key_ids`: the
    /// key ids of the committed keyring(s); `None` when the admin trusts the bundle itself.
    /// `now`: the current time (a `created` more than [`MAX_CLOCK_SKEW_SECS`] after it is
    /// refused).
    pub fn check(
        &self,
        trusted_key_ids: Option<&BTreeSet<String>>,
        now: jiff::Timestamp,
    ) -> Vec<EntryError> {
        let mut errors = Vec::new();
        let (mut names, mut ids) = (BTreeSet::new(), BTreeSet::new());
        for (index, key) in self.keys.iter().enumerate() {
            let refuse = |field, message: String| EntryError {
                index,
                name: key.name.clone(),
                field,
                message,
            };
            if let Err(why) = valid_key_name(&key.name) {
                errors.push(refuse("name", why));
            } else if !names.insert(key.name.as_str()) {
                errors.push(refuse("name", "a second key of this name".into()));
            }
            if let Err((field, why)) = key.identity() {
                errors.push(refuse(field, why));
                continue;
            }
            if !ids.insert(key.key_id.as_str()) {
                errors.push(refuse("keyId", format!("key id {} twice", key.key_id)));
            }
            if let Some(trusted) = trusted_key_ids
                && !trusted.contains(&key.key_id)
            {
                errors.push(refuse(
                    "keyId",
                    format!(
                        "key id {} is not in the committed keyring (only keys the repository already lists are restored; --trust-bundle skips this check)",
                        key.key_id
                    ),
                ));
            }
            if let Some(text) = &key.created {
                match text.parse::<jiff::Timestamp>() {
                    Err(_) => errors.push(refuse(
                        "created",
                        format!("{text:?} is not an RFC 3339 time"),
                    )),
                    Ok(t) if t.as_second() > now.as_second() + MAX_CLOCK_SKEW_SECS => {
                        errors.push(refuse(
                            "created",
                            format!(
                                "{text} is in the future (now {now:.0}; {} s of clock skew allowed)",
                                MAX_CLOCK_SKEW_SECS
                            ),
                        ))
                    }
                    Ok(_) => {}
                }
            }
        }
        errors
    }
}

/// A SealingKey name restore may create: a DNS subdomain (RFC 1123) short enough for its
/// key Secret's name.
pub fn valid_key_name(name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if name.is_empty()
        || name.len() > MAX_KEY_NAME_LEN
        || !name.chars().all(ok_char)
        || !alnum(name.chars().next())
        || !alnum(name.chars().last())
        || name.split('.').any(|label| {
            label.is_empty() || !alnum(label.chars().next()) || !alnum(label.chars().last())
        })
    {
        return Err(format!(
            "{name:?} is not a valid SealingKey name (lowercase letters, digits, '-' and '.', at most {MAX_KEY_NAME_LEN} characters)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> jiff::Timestamp {
        "2027-01-15T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn round_trip_only_for_the_admin() {
        let key = Identity::generate();
        let admin = Identity::generate();
        let other = Identity::generate();
        let bundle = Bundle::new(vec![BundleKey::new(
            "gitseal-1",
            KeyState::Active,
            None,
            &key,
        )]);
        let file = bundle.seal(&[admin.recipient()]).unwrap();
        assert!(!String::from_utf8_lossy(&file).contains("AGE-SECRET-KEY"));
        let back = Bundle::open(&file, &[&admin]).unwrap();
        assert_eq!(back.keys[0].identity().unwrap().key_id(), key.key_id());
        assert!(back.check(None, now()).is_empty());
        assert!(matches!(
            Bundle::open(&file, &[&other]),
            Err(BackupError::Crypto(CryptoError::NoMatchingIdentity))
        ));
    }

    /// Every check, each failing alone; the messages name entry, name and field.
    #[test]
    fn forged_entries_are_refused() {
        let [a, b, c, d] = [(); 4].map(|_| Identity::generate());
        let entry = |name: &str, created: Option<&str>, id: &Identity| {
            BundleKey::new(name, KeyState::Active, created.map(String::from), id)
        };
        let mut stolen_name = entry("gitseal-2", None, &b);
        stolen_name.public_key = a.recipient().as_str().to_string();
        stolen_name.key_id = a.key_id();
        let mut wrong_id = entry("gitseal-3", None, &b);
        wrong_id.key_id = a.key_id();
        let mut garbage = entry("gitseal-4", None, &b);
        garbage.identity = "AGE-SECRET-KEY-1NOTAKEY".into();
        let bundle = Bundle::new(vec![
            entry("gitseal-1", Some("2027-01-15T12:04:00Z"), &a),
            stolen_name,
            wrong_id,
            garbage,
            entry("gitseal-5", Some("2027-01-15T12:06:00Z"), &b),
            entry("Not_A_Name", None, &c),
            entry("gitseal-1", Some("yesterday"), &d),
            entry("gitseal-7", None, &a),
        ]);
        let trusted = BTreeSet::from([a.key_id()]);
        let errors: Vec<String> = bundle
            .check(Some(&trusted), now())
            .iter()
            .map(ToString::to_string)
            .collect();
        let expect = [
            "keys[1] (gitseal-2):publicKey: the identity is not the private key of",
            "keys[2] (gitseal-3):keyId: key id",
            "keys[3] (gitseal-4):identity: not a valid age X25519 identity",
            "keys[4] (gitseal-5):keyId: key id",
            "keys[4] (gitseal-5):created: 2027-01-15T12:06:00Z is in the future",
            "keys[5] (Not_A_Name):name: \"Not_A_Name\" is not a valid SealingKey name",
            "keys[5] (Not_A_Name):keyId: key id",
            "keys[6] (gitseal-1):name: a second key of this name",
            "keys[6] (gitseal-1):keyId: key id",
            "keys[6] (gitseal-1):created: \"yesterday\" is not an RFC 3339 time",
            "keys[7] (gitseal-7):keyId: key id",
        ];
        assert_eq!(errors.len(), expect.len(), "{errors:#?}");
        for (got, want) in errors.iter().zip(expect) {
            assert!(got.starts_with(want), "{got} does not start with {want}");
        }
        assert!(errors[3].contains("is not in the committed keyring"));
        assert!(errors[10].ends_with("twice"), "{}", errors[10]);
        // Within the skew, and with the keyring check off, entry 0 and 4 pass.
        let ok = Bundle::new(vec![entry("gitseal-1", Some("2027-01-15T12:04:59Z"), &b)]);
        assert!(ok.check(None, now()).is_empty());
        assert_eq!(ok.check(Some(&trusted), now()).len(), 1);
    }

    #[test]
    fn key_names() {
        for good in ["gitseal-1", "prod-2027-01", "a", "a.b-c"] {
            assert!(valid_key_name(good).is_ok(), "{good}");
        }
        let long = "a".repeat(MAX_KEY_NAME_LEN + 1);
        for bad in ["", "-a", "a-", "A", "a_b", "a..b", "../x", long.as_str()] {
            assert!(valid_key_name(bad).is_err(), "{bad}");
        }
    }
}
