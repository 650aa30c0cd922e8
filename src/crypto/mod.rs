//! The crypto core: data keys, AES-256-GCM value sealing, age wrapping of data keys,
//! key ids and key-committing envelope ids.
//!
//! Knows nothing of Kubernetes, YAML, the CLI, tokio or the file system. Every secret it
//! handles (data keys, plain text, identities) lives in a zeroizing type whose `Debug`
//! prints a redaction.

mod aead;
mod ids;
mod secret;
mod wrap;

pub use aead::{NONCE_LEN, TAG_LEN, open, seal, seal_with_nonce};
pub use ids::{ENVELOPE_ID_LEN, KEY_ID_LEN, envelope_id, hex, key_id};
pub use secret::{DataKey, Plaintext};
pub use wrap::{
    Identity, MAX_WRAPPED_KEY_LEN, MAX_WRAPPED_KEY_STANZAS, Recipient, check_wrapped, decrypt_file,
    encrypt_file, unwrap, wrap,
};

/// What can go wrong in the crypto core. Messages never contain secret material.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("invalid age recipient {0:?}: expected an X25519 recipient starting with age1")]
    InvalidRecipient(String),
    #[error("invalid age identity: expected an X25519 identity starting with AGE-SECRET-KEY-1")]
    InvalidIdentity,
    #[error("no identity given matches this wrapped key")]
    NoMatchingIdentity,
    #[error("wrapped key is not a valid age file: {0}")]
    MalformedWrappedKey(String),
    #[error(
        "wrapped key is {len} bytes, over the limit of {max} (a gitseal wrapped key is one age X25519 stanza, 200-450 bytes)",
        max = wrap::MAX_WRAPPED_KEY_LEN
    )]
    WrappedKeyTooLarge { len: usize },
    #[error(
        "wrapped key has {total} recipient stanza(s), {x25519} of them X25519: a gitseal wrapped key has exactly one X25519 stanza (and at most {max} in all)",
        max = wrap::MAX_WRAPPED_KEY_STANZAS
    )]
    WrappedKeyStanzas { x25519: usize, total: usize },
    #[error("wrapped key does not hold a 32-byte data key")]
    BadDataKeyLength,
    #[error("data key does not match its envelope id (key commitment failed)")]
    CommitmentMismatch,
    #[error(
        "authentication failed: the value was tampered with, or is bound to another key, name, namespace or scope"
    )]
    Authentication,
    #[error("age encryption failed: {0}")]
    Wrap(String),
}
