//! Key backups: every private key with its SealingKey's name, state, id and creation time,
//! serialized and encrypted to admin age recipients as one age file. The plain bundle only
//! ever exists in memory, in zeroizing buffers.

use crate::api::{API_VERSION, KeyState};
use crate::crypto::{CryptoError, Identity, Recipient, decrypt_file, encrypt_file};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

pub const BUNDLE_KIND: &str = "KeyBackup";

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

    /// The private key, checked against the recorded key id.
    pub fn identity(&self) -> Result<Identity, BackupError> {
        let identity = Identity::parse(&self.identity)
            .map_err(|_| BackupError::Invalid(format!("key {}: invalid identity", self.name)))?;
        if identity.key_id() != self.key_id {
            return Err(BackupError::Invalid(format!(
                "key {}: identity does not match key id {}",
                self.name, self.key_id
            )));
        }
        Ok(identity)
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

    /// Decrypt and check a backup file.
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
        for key in &bundle.keys {
            key.identity()?;
        }
        Ok(bundle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(matches!(
            Bundle::open(&file, &[&other]),
            Err(BackupError::Crypto(CryptoError::NoMatchingIdentity))
        ));
    }
}
