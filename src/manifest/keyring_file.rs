//! The keyring file: a committed list of one cluster's public keys (format in
//! docs/format.md §Keyring). `gitseal keys fetch` writes it; `gitseal seal --keyring` seals
//! to its Active key and `gitseal verify` accepts envelopes for any key it lists as usable.

use super::{Location, ManifestError, Result};
use crate::api::{API_VERSION, KeyState};
use crate::crypto::{Recipient, key_id};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// `kind` of a keyring file.
pub const KEYRING_KIND: &str = "Keyring";

/// A cluster's public keys, as committed to Git.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyringFile {
    pub api_version: String,
    pub kind: String,
    pub metadata: KeyringMeta,
    #[serde(default)]
    pub keys: Vec<KeyringEntry>,
}

/// Which cluster the keyring describes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyringMeta {
    pub name: String,
}

/// One public key of the cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyringEntry {
    /// First 8 bytes of SHA-256 of `publicKey`, hex; checked on read.
    pub key_id: String,
    /// The age X25519 recipient `age1…`.
    pub public_key: String,
    pub state: KeyState,
    /// RFC 3339 creation time, informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
}

impl KeyringFile {
    pub fn new(name: &str, keys: Vec<KeyringEntry>) -> Self {
        Self {
            api_version: API_VERSION.to_string(),
            kind: KEYRING_KIND.to_string(),
            metadata: KeyringMeta {
                name: name.to_string(),
            },
            keys,
        }
    }

    /// Parse and check a keyring file: kind, every public key, every key id.
    pub fn parse(file: &str, text: &str) -> Result<Self> {
        let at = Location::new(file, 1);
        let ring: KeyringFile = super::docs::parse_one(text, super::MAX_NODES)
            .map_err(|e| super::docs::parse_error(Location::new(file, 0), "keyring file", &e))?;
        if ring.api_version != API_VERSION || ring.kind != KEYRING_KIND {
            return Err(ManifestError::input(
                at.field("kind"),
                format!(
                    "not a keyring file: expected apiVersion {API_VERSION}, kind {KEYRING_KIND}"
                ),
            ));
        }
        for (i, entry) in ring.keys.iter().enumerate() {
            let recipient = Recipient::parse(&entry.public_key).map_err(|e| {
                ManifestError::input(at.field(format!("keys[{i}].publicKey")), e.to_string())
            })?;
            if recipient.key_id() != entry.key_id {
                return Err(ManifestError::input(
                    at.field(format!("keys[{i}].keyId")),
                    format!(
                        "key id {} does not match the public key (whose id is {})",
                        entry.key_id,
                        recipient.key_id()
                    ),
                ));
            }
        }
        Ok(ring)
    }

    /// The keys new seals go to. An error when there is none.
    pub fn active(&self, file: &str) -> Result<Vec<Recipient>> {
        let active: Vec<Recipient> = self
            .keys
            .iter()
            .filter(|k| k.state == KeyState::Active)
            .filter_map(|k| Recipient::parse(&k.public_key).ok())
            .collect();
        if active.is_empty() {
            return Err(ManifestError::input(
                Location::new(file, 1).field("keys"),
                "the keyring has no Active key: run `gitseal keys fetch` again",
            ));
        }
        Ok(active)
    }

    /// Key ids the cluster can still open (Active and DecryptOnly).
    pub fn usable_key_ids(&self) -> BTreeSet<String> {
        self.keys
            .iter()
            .filter(|k| k.state != KeyState::Retired)
            .map(|k| k.key_id.clone())
            .collect()
    }

    pub fn to_yaml(&self) -> String {
        crate::yaml::to_string(self).expect("keyring serializes")
    }
}

impl KeyringEntry {
    pub fn new(recipient: &Recipient, state: KeyState, created: Option<String>) -> Self {
        Self {
            key_id: key_id(recipient.as_str()),
            public_key: recipient.as_str().to_string(),
            state,
            created,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Identity;

    #[test]
    fn round_trip_and_checks() {
        let id = Identity::generate();
        let ring = KeyringFile::new(
            "prod",
            vec![KeyringEntry::new(&id.recipient(), KeyState::Active, None)],
        );
        let parsed = KeyringFile::parse("k.yaml", &ring.to_yaml()).unwrap();
        assert_eq!(parsed, ring);
        assert_eq!(parsed.active("k.yaml").unwrap()[0], id.recipient());

        let bad = ring.to_yaml().replace(&id.key_id(), "0000000000000000");
        let err = KeyringFile::parse("k.yaml", &bad).unwrap_err().to_string();
        assert!(
            err.starts_with("k.yaml:1:keys[0].keyId: key id 0000000000000000 does not match"),
            "{err}"
        );

        let retired = ring.to_yaml().replace("Active", "Retired");
        let parsed = KeyringFile::parse("k.yaml", &retired).unwrap();
        assert!(
            parsed
                .active("k.yaml")
                .unwrap_err()
                .to_string()
                .contains("no Active key")
        );
        assert!(parsed.usable_key_ids().is_empty());
    }
}
