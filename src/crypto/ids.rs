//! Key ids (which recipient) and envelope ids (which data key, committing to it).

use super::DataKey;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Length in hex characters of a key id.
pub const KEY_ID_LEN: usize = 16;
/// Length in hex characters of an envelope id.
pub const ENVELOPE_ID_LEN: usize = 32;

const ENVELOPE_ID_LABEL: &[u8] = b"gitseal.dev/envelope-id/v1";

/// The key id of an age recipient: the first 8 bytes of SHA-256 over its canonical
/// `age1…` string, as 16 lowercase hex characters.
pub fn key_id(recipient: &str) -> String {
    let digest = Sha256::digest(recipient.as_bytes());
    hex(&digest[..KEY_ID_LEN / 2])
}

/// The envelope id of a data key: HMAC-SHA-256 keyed by the data key over a fixed label,
/// first 16 bytes as 32 lowercase hex characters. It commits to the data key: after
/// unwrapping, the reader recomputes it and rejects a mismatch, so two recipients of one
/// envelope cannot be handed different keys unnoticed.
pub fn envelope_id(key: &DataKey) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key.expose()).expect("HMAC takes any key length");
    mac.update(ENVELOPE_ID_LABEL);
    let tag = mac.finalize().into_bytes();
    hex(&tag[..ENVELOPE_ID_LEN / 2])
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_fixed_shape() {
        let id = key_id("age1example");
        assert_eq!(id.len(), KEY_ID_LEN);
        assert!(
            id.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        let env = envelope_id(&DataKey::from_bytes([7; 32]));
        assert_eq!(env.len(), ENVELOPE_ID_LEN);
        assert_ne!(env, envelope_id(&DataKey::from_bytes([8; 32])));
    }
}
