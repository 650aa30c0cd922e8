//! AES-256-GCM sealing of one value: `nonce(12) ‖ ciphertext ‖ tag(16)`, fresh random nonce.

use super::{CryptoError, DataKey, Plaintext};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;

pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;

/// Seal `plaintext` under `key` with associated data `aad` and a fresh random nonce.
pub fn seal(key: &DataKey, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    seal_with_nonce(key, &nonce, aad, plaintext)
}

/// Seal with a caller-chosen nonce. Only for known-answer tests: a nonce must never repeat
/// under one key.
pub fn seal_with_nonce(
    key: &DataKey,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Vec<u8> {
    let cipher = Aes256Gcm::new_from_slice(key.expose()).expect("32-byte key");
    let ct = cipher
        .encrypt(
            &Nonce::from(*nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("AES-GCM encryption of an in-memory buffer cannot fail");
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(nonce);
    out.extend_from_slice(&ct);
    out
}

/// Open `nonce ‖ ciphertext ‖ tag`; any change to the bytes, key or `aad` fails.
pub fn open(key: &DataKey, aad: &[u8], sealed: &[u8]) -> Result<Plaintext, CryptoError> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(CryptoError::Authentication);
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().expect("split at NONCE_LEN");
    let cipher = Aes256Gcm::new_from_slice(key.expose()).expect("32-byte key");
    cipher
        .decrypt(&Nonce::from(nonce), Payload { msg: ct, aad })
        .map(Plaintext::new)
        .map_err(|_| CryptoError::Authentication)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_aad_binding() {
        let key = DataKey::from_bytes([1; 32]);
        let sealed = seal(&key, b"aad", b"value");
        assert_eq!(sealed.len(), NONCE_LEN + 5 + TAG_LEN);
        assert_eq!(open(&key, b"aad", &sealed).unwrap().expose(), b"value");
        assert!(open(&key, b"other", &sealed).is_err());
        assert!(open(&DataKey::from_bytes([2; 32]), b"aad", &sealed).is_err());
        assert!(open(&key, b"aad", &sealed[..10]).is_err());
    }

    #[test]
    fn nonces_are_fresh() {
        let key = DataKey::from_bytes([1; 32]);
        assert_ne!(seal(&key, b"", b"x"), seal(&key, b"", b"x"));
    }
}
