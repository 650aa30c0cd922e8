//! The sealed wire format (spec: docs/format.md): scopes and their AES-GCM associated data,
//! sealed value strings (`gs1:<scope>:<envelope id>:<base64>`), envelopes of age-wrapped data
//! keys, and the seal / open / re-wrap operations over them. Versioned; no Kubernetes here.

mod envelope;
mod scope;
mod value;

pub use envelope::{Envelope, Envelopes, Opener, Sealer, rewrap};
pub use scope::{Scope, Target, aad};
pub use value::{FORMAT_VERSION, SealedValue};

use crate::crypto::CryptoError;

/// The maps of a sealed object (key → value, envelope id → wrappings, key id → wrapped key):
/// sorted, so output is deterministic and diffs stay minimal, and flat (a sorted `Vec`), so
/// the one or two entries an object usually has cost a few dozen bytes rather than a B-tree
/// node of ~540 (the controller caches every SealedSecret of the cluster).
pub type Map<V> = litemap::LiteMap<String, V>;

/// Largest plain value gitseal seals (Kubernetes caps a whole Secret at 1 MiB).
pub const MAX_VALUE_LEN: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("unknown format version {0:?} (this gitseal reads gs1); upgrade gitseal")]
    UnknownVersion(String),
    #[error("malformed sealed value: {0}")]
    Malformed(String),
    #[error("value is sealed with scope {value} but spec.scope is {spec}")]
    ScopeMismatch { value: Scope, spec: Scope },
    #[error("{scope} scope needs a namespace")]
    MissingNamespace { scope: Scope },
    #[error("value references envelope {0} which is not in spec.envelopes")]
    MissingEnvelope(String),
    #[error(
        "envelope {envelope} is sealed for key ids [{wanted}], the given identities are [{have}]"
    )]
    NotARecipient {
        envelope: String,
        wanted: String,
        have: String,
    },
    #[error("envelope {0}: wrapped key base64 is invalid")]
    BadWrappedEncoding(String),
    #[error("envelope {envelope}: {source}")]
    Unwrap {
        envelope: String,
        source: CryptoError,
    },
    #[error("{0}")]
    Crypto(#[from] CryptoError),
}
