//! age encryption: wrapping data keys (each a standard binary age file whose payload
//! is the 32-byte data key, so `age -d -i identity` recovers it) and whole files (key backups).
//!
//! A wrapped key is read only within limits checked before any X25519 work: at most
//! [`MAX_WRAPPED_KEY_LEN`] bytes, and a header of exactly one X25519 stanza plus at most one
//! other (the "grease" stanza the age crate adds). The stanza check runs on age's own parse of
//! the header, in [`age::Identity::unwrap_stanzas`], the hook age documents for file-level
//! stanza checks, so a file with thousands of stanzas costs a header parse, not thousands of
//! Diffie-Hellman operations.

use super::{CryptoError, DataKey, Plaintext, key_id};
use age_core::format::{FileKey, Stanza};
use secrecy::ExposeSecret;
use std::cell::Cell;
use std::fmt;
use std::io::{Read, Write};
use std::str::FromStr;
use zeroize::Zeroizing;

/// Largest wrapped data key read, in bytes of the binary age file. One gitseal wrapping (header
/// with one X25519 stanza and age's grease stanza, nonce, one payload chunk) is 200-450 bytes.
pub const MAX_WRAPPED_KEY_LEN: usize = 1024;
/// Most stanzas a wrapped key's header may hold: its one X25519 stanza and one other (age's
/// grease stanza; Go's age writes none).
pub const MAX_WRAPPED_KEY_STANZAS: usize = 2;
/// The stanza tag of age's X25519 recipients.
const X25519_TAG: &str = "X25519";

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

/// Unwrap a data key from an age file with any of `identities`, within the wrapped-key limits
/// (checked before any X25519 work).
pub fn unwrap(wrapped: &[u8], identities: &[&Identity]) -> Result<DataKey, CryptoError> {
    unwrap_counting(wrapped, identities, &Cell::new(0))
}

/// [`unwrap`], counting the X25519 stanzas handed to an identity in `attempts`.
fn unwrap_counting(
    wrapped: &[u8],
    identities: &[&Identity],
    attempts: &Cell<usize>,
) -> Result<DataKey, CryptoError> {
    let guards: Vec<Guarded<'_>> = identities
        .iter()
        .map(|i| Guarded::new(Some(&i.inner), attempts))
        .collect();
    let plain = decrypt_guarded(wrapped, &guards)?;
    let key: [u8; 32] = plain
        .expose()
        .try_into()
        .map_err(|_| CryptoError::BadDataKeyLength)?;
    Ok(DataKey::from_bytes(key))
}

/// Check a wrapped key's shape without any identity: its size, age's parse of its header, and
/// the stanza rule. No Diffie-Hellman, no decryption (`gitseal verify`, the controller's spec
/// check).
pub fn check_wrapped(wrapped: &[u8]) -> Result<(), CryptoError> {
    let attempts = Cell::new(0);
    match decrypt_guarded(wrapped, &[Guarded::new(None, &attempts)]) {
        Err(CryptoError::NoMatchingIdentity) => Ok(()),
        Err(e) => Err(e),
        Ok(_) => unreachable!("an identity without a key opens nothing"),
    }
}

fn decrypt_guarded(wrapped: &[u8], guards: &[Guarded<'_>]) -> Result<Plaintext, CryptoError> {
    if wrapped.len() > MAX_WRAPPED_KEY_LEN {
        return Err(CryptoError::WrappedKeyTooLarge { len: wrapped.len() });
    }
    let decryptor = age::Decryptor::new_buffered(wrapped)
        .map_err(|e| CryptoError::MalformedWrappedKey(e.to_string()))?;
    let ids = guards.iter().map(|g| g as &dyn age::Identity);
    let result = decryptor.decrypt(ids);
    if let Some(refusal) = guards.iter().find_map(|g| g.refusal.take()) {
        return Err(refusal);
    }
    let mut reader = result.map_err(|e| match e {
        age::DecryptError::NoMatchingKeys => CryptoError::NoMatchingIdentity,
        other => CryptoError::MalformedWrappedKey(other.to_string()),
    })?;
    let mut bytes = Zeroizing::new(Vec::new());
    reader
        .read_to_end(&mut bytes)
        .map_err(|e| CryptoError::MalformedWrappedKey(e.to_string()))?;
    Ok(Plaintext::new(std::mem::take(&mut *bytes)))
}

/// The stanza rule of a wrapped key: exactly one X25519 stanza, at most
/// [`MAX_WRAPPED_KEY_STANZAS`] in all.
fn check_stanzas(stanzas: &[Stanza]) -> Result<(), CryptoError> {
    let x25519 = stanzas.iter().filter(|s| s.tag == X25519_TAG).count();
    if x25519 != 1 || stanzas.len() > MAX_WRAPPED_KEY_STANZAS {
        return Err(CryptoError::WrappedKeyStanzas {
            x25519,
            total: stanzas.len(),
        });
    }
    Ok(())
}

/// An X25519 identity (or none: check only) that refuses a header breaking the stanza rule
/// before handing any stanza to the key.
struct Guarded<'a> {
    inner: Option<&'a age::x25519::Identity>,
    refusal: Cell<Option<CryptoError>>,
    attempts: &'a Cell<usize>,
}

impl<'a> Guarded<'a> {
    fn new(inner: Option<&'a age::x25519::Identity>, attempts: &'a Cell<usize>) -> Self {
        Self {
            inner,
            refusal: Cell::new(None),
            attempts,
        }
    }
}

impl age::Identity for Guarded<'_> {
    fn unwrap_stanza(&self, stanza: &Stanza) -> Option<Result<FileKey, age::DecryptError>> {
        let inner = self.inner?;
        if stanza.tag == X25519_TAG {
            self.attempts.set(self.attempts.get() + 1);
        }
        age::Identity::unwrap_stanza(inner, stanza)
    }

    fn unwrap_stanzas(&self, stanzas: &[Stanza]) -> Option<Result<FileKey, age::DecryptError>> {
        if let Err(refusal) = check_stanzas(stanzas) {
            self.refusal.set(Some(refusal));
            return Some(Err(age::DecryptError::InvalidHeader));
        }
        stanzas.iter().find_map(|s| self.unwrap_stanza(s))
    }
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

    /// An age header of `n` well-formed X25519 stanzas (random shares and bodies) followed
    /// by a MAC line and a nonce: parses as age, opens for nobody.
    fn many_stanzas(n: usize) -> Vec<u8> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
        let mut out = b"age-encryption.org/v1\n".to_vec();
        for i in 0..n {
            let share = b64.encode([i as u8; 32]);
            let body = b64.encode([7u8; 32]);
            out.extend_from_slice(format!("-> X25519 {share}\n{body}\n").as_bytes());
        }
        out.extend_from_slice(format!("--- {}\n", b64.encode([0u8; 32])).as_bytes());
        out.extend_from_slice(&[0u8; 16 + 48]);
        out
    }

    #[test]
    fn many_stanzas_are_refused_before_any_x25519_work() {
        let id = Identity::generate();
        // 10,000 stanzas: refused on size, before age parses anything.
        let attempts = Cell::new(0);
        let big = many_stanzas(10_000);
        assert!(matches!(
            unwrap_counting(&big, &[&id], &attempts),
            Err(CryptoError::WrappedKeyTooLarge { len }) if len == big.len()
        ));
        assert!(matches!(
            check_wrapped(&big),
            Err(CryptoError::WrappedKeyTooLarge { .. })
        ));
        // Small enough to parse but more than one X25519 stanza: refused on age's parse of the
        // header, with no stanza handed to the key.
        let few = many_stanzas(5);
        assert!(few.len() <= MAX_WRAPPED_KEY_LEN);
        assert!(matches!(
            unwrap_counting(&few, &[&id], &attempts),
            Err(CryptoError::WrappedKeyStanzas {
                x25519: 5,
                total: 5
            })
        ));
        assert_eq!(attempts.get(), 0, "X25519 work was done");
        // A real file for three recipients, one of which we hold, is refused the same way.
        let key = DataKey::generate();
        let others = [Identity::generate(), Identity::generate()];
        let three = encrypt_file(
            key.expose(),
            &[others[0].recipient(), others[1].recipient(), id.recipient()],
        )
        .unwrap();
        let err = unwrap_counting(&three, &[&id], &attempts).unwrap_err();
        assert!(
            matches!(
                err,
                CryptoError::WrappedKeyStanzas {
                    x25519: 3,
                    total: 4
                }
            ),
            "{err}"
        );
        assert_eq!(attempts.get(), 0, "X25519 work was done");
        assert!(
            err.to_string().contains("exactly one X25519 stanza"),
            "{err}"
        );
        assert!(check_wrapped(&three).is_err());
        // Its decryption without the guard would have worked: the refusal is the rule's.
        assert_eq!(decrypt_file(&three, &[&id]).unwrap().expose(), key.expose());
    }

    #[test]
    fn one_stanza_files_pass_the_guard() {
        let id = Identity::generate();
        let key = DataKey::generate();
        let wrapped = wrap(&key, &id.recipient()).unwrap();
        assert!(wrapped.len() <= MAX_WRAPPED_KEY_LEN, "{}", wrapped.len());
        check_wrapped(&wrapped).unwrap();
        let attempts = Cell::new(0);
        let got = unwrap_counting(&wrapped, &[&id], &attempts).unwrap();
        assert_eq!(got.expose(), key.expose());
        assert_eq!(attempts.get(), 1);
        assert!(matches!(
            check_wrapped(b"age-encryption.org/v1\n--- x\n"),
            Err(CryptoError::MalformedWrappedKey(_))
        ));
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
