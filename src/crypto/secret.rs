//! Secret-holding types: zeroized on drop, redacted in `Debug`, never `Display`.

use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox, SecretSlice};
use std::fmt;

/// A 256-bit data key. One per seal operation; wrapped to every recipient with age.
pub struct DataKey(SecretBox<[u8; 32]>);

impl DataKey {
    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut key = Box::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut key[..]);
        Self(SecretBox::new(key))
    }

    /// A key from given bytes (unwrapping, test vectors).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(SecretBox::new(Box::new(bytes)))
    }

    /// Borrow the raw key bytes. Keep the borrow short and never log it.
    pub fn expose(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey([REDACTED])")
    }
}

/// Plain text of one Secret value. Zeroized on drop; `Debug` is redacted.
pub struct Plaintext(SecretSlice<u8>);

impl Plaintext {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(SecretSlice::from(bytes))
    }

    pub fn expose(&self) -> &[u8] {
        self.0.expose_secret()
    }

    pub fn len(&self) -> usize {
        self.expose().len()
    }

    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }
}

impl Clone for Plaintext {
    fn clone(&self) -> Self {
        Self::new(self.expose().to_vec())
    }
}

impl PartialEq for Plaintext {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for Plaintext {}

impl fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Plaintext([REDACTED {} bytes])", self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let key = DataKey::from_bytes([0x41; 32]);
        let text = Plaintext::new(b"hunter2-password".to_vec());
        let shown = format!("{key:?} {text:?}");
        assert!(shown.contains("REDACTED"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("65, 65"), "{shown}");
        assert!(!shown.contains("AAAA"), "{shown}");
    }

    #[test]
    fn generated_keys_differ() {
        assert_ne!(DataKey::generate().expose(), DataKey::generate().expose());
    }
}
