//! age encryption: wrapping data keys (each a standard binary age file whose payload
//! is the 32-byte data key, so `age -d -i identity` recovers it) and whole files (key backups).

use super::{CryptoError, DataKey, Plaintext, key_id};
use secrecy::ExposeSecret;
use std::fmt;
use std::io::{Read, Write};
use std::str::FromStr;
use zeroize::Zeroizing;

/// A public X25519 age recipient (`age1…`).
#[derive(Clone)]
pub struct Recipient {
    inner: age::x25519::Recipient,
    text: String,
}

impl Recipient {
    pub fn parse(text: &str) -> Result<Self, CryptoError> {
        let text = text.trim();
        let inner = age::x25519::Recipient::from_str(text)
            .map_err(|_| CryptoError::InvalidRecipient(text.to_string()))?;
        Ok(Self {
            text: inner.to_string(),
            inner,
        })
    }

    /// The canonical `age1…` string.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Short hash of the public key that names this recipient in envelopes.
    pub fn key_id(&self) -> String {
        key_id(&self.text)
    }
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Recipient({})", self.text)
    }
}

impl PartialEq for Recipient {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

/// A private X25519 age identity. Zeroized by the age crate; `Debug` is redacted. Its
/// recipient (public) is derived once, so key ids cost nothing on the controller's hot path.
pub struct Identity {
    inner: age::x25519::Identity,
    recipient: Recipient,
}

impl Identity {
    fn new(inner: age::x25519::Identity) -> Self {
        let public = inner.to_public();
        let recipient = Recipient {
            text: public.to_string(),
            inner: public,
        };
        Self { inner, recipient }
    }

    pub fn generate() -> Self {
        Self::new(age::x25519::Identity::generate())
    }

    /// Parse one `AGE-SECRET-KEY-1…` line.
    pub fn parse(text: &str) -> Result<Self, CryptoError> {
        age::x25519::Identity::from_str(text.trim())
            .map(Self::new)
            .map_err(|_| CryptoError::InvalidIdentity)
    }

    /// Every identity in an age-keygen style file (comments and blank lines skipped).
    pub fn parse_file(text: &str) -> Result<Vec<Self>, CryptoError> {
        let ids = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(Self::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if ids.is_empty() {
            return Err(CryptoError::InvalidIdentity);
        }
        Ok(ids)
    }

    pub fn recipient(&self) -> Recipient {
        self.recipient.clone()
    }

    pub fn key_id(&self) -> String {
        self.recipient.key_id()
    }

    /// The `AGE-SECRET-KEY-1…` string, in a zeroizing buffer. Only for writing key files.
    pub fn to_secret_string(&self) -> Zeroizing<String> {
        Zeroizing::new(self.inner.to_string().expose_secret().to_string())
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity([REDACTED], key id {})", self.key_id())
    }
}

/// Wrap `key` to one recipient: a binary age file holding the 32 key bytes.
pub fn wrap(key: &DataKey, recipient: &Recipient) -> Result<Vec<u8>, CryptoError> {
    encrypt_file(key.expose(), std::slice::from_ref(recipient))
}

/// Encrypt `plain` to every recipient as one binary age file.
pub fn encrypt_file(plain: &[u8], recipients: &[Recipient]) -> Result<Vec<u8>, CryptoError> {
    let encryptor =
        age::Encryptor::with_recipients(recipients.iter().map(|r| &r.inner as &dyn age::Recipient))
            .map_err(|e| CryptoError::Wrap(e.to_string()))?;
    let mut out = Vec::with_capacity(plain.len() + 256);
    let mut writer = encryptor
        .wrap_output(&mut out)
        .map_err(|e| CryptoError::Wrap(e.to_string()))?;
    writer
        .write_all(plain)
        .map_err(|e| CryptoError::Wrap(e.to_string()))?;
    writer
        .finish()
        .map_err(|e| CryptoError::Wrap(e.to_string()))?;
    Ok(out)
}

/// Decrypt an age file with any of `identities`.
pub fn decrypt_file(file: &[u8], identities: &[&Identity]) -> Result<Plaintext, CryptoError> {
    let decryptor =
        age::Decryptor::new(file).map_err(|e| CryptoError::MalformedWrappedKey(e.to_string()))?;
    let ids = identities.iter().map(|i| &i.inner as &dyn age::Identity);
    let mut reader = decryptor.decrypt(ids).map_err(|e| match e {
        age::DecryptError::NoMatchingKeys => CryptoError::NoMatchingIdentity,
        other => CryptoError::MalformedWrappedKey(other.to_string()),
    })?;
    let mut bytes = Zeroizing::new(Vec::new());
    reader
        .read_to_end(&mut bytes)
        .map_err(|e| CryptoError::MalformedWrappedKey(e.to_string()))?;
    Ok(Plaintext::new(std::mem::take(&mut *bytes)))
}

/// Unwrap a data key from an age file with any of `identities`.
pub fn unwrap(wrapped: &[u8], identities: &[&Identity]) -> Result<DataKey, CryptoError> {
    let plain = decrypt_file(wrapped, identities)?;
    let key: [u8; 32] = plain
        .expose()
        .try_into()
        .map_err(|_| CryptoError::BadDataKeyLength)?;
    Ok(DataKey::from_bytes(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_unwrap() {
        let id = Identity::generate();
        let other = Identity::generate();
        let key = DataKey::generate();
        let wrapped = wrap(&key, &id.recipient()).unwrap();
        assert!(wrapped.starts_with(b"age-encryption.org/v1\n"));
        assert_eq!(unwrap(&wrapped, &[&id]).unwrap().expose(), key.expose());
        assert!(matches!(
            unwrap(&wrapped, &[&other]),
            Err(CryptoError::NoMatchingIdentity)
        ));
        assert!(matches!(
            unwrap(b"garbage", &[&id]),
            Err(CryptoError::MalformedWrappedKey(_))
        ));
    }

    #[test]
    fn identity_debug_is_redacted() {
        let id = Identity::generate();
        let shown = format!("{id:?}");
        assert!(shown.contains("REDACTED"));
        assert!(!shown.contains("AGE-SECRET-KEY"));
    }

    #[test]
    fn recipient_round_trip_and_key_id() {
        let id = Identity::generate();
        let r = Recipient::parse(id.recipient().as_str()).unwrap();
        assert_eq!(r, id.recipient());
        assert_eq!(r.key_id(), id.key_id());
        assert!(Recipient::parse("age1nope").is_err());
        assert!(Identity::parse("AGE-SECRET-KEY-1NOPE").is_err());
    }
}
