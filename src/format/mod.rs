//! The sealed wire format (spec: docs/format.md): scopes and their AES-GCM associated data,
//! sealed value strings (`gs1:<scope>:<envelope id>:<base64>`), envelopes of age-wrapped data
//! keys, and the seal / open / re-wrap operations over them. Versioned; no Kubernetes here.

mod envelope;
pub mod limits;
mod scope;
mod value;

pub use envelope::{Envelope, Envelopes, Opener, Sealer, rewrap};
pub use limits::MAX_VALUE_LEN;
pub use scope::{Scope, Target, aad};
pub use value::{FORMAT_VERSION, SealedValue};

use crate::crypto::CryptoError;

/// The maps of a sealed object (key → value, envelope id → wrappings, key id → wrapped key):
/// sorted, so output is deterministic and diffs stay minimal, and flat (a sorted `Vec`), so
/// the one or two entries an object usually has cost a few dozen bytes rather than a B-tree
/// node of ~540 (the controller caches every SealedSecret of the cluster).
pub type Map<V> = litemap::LiteMap<String, V>;

/// `serialize_with` helpers for [`Map`] fields: always a mapping. (litemap writes an *empty*
/// map as a sequence in human-readable formats, `[]`, which no Kubernetes schema accepts.)
pub mod map_serde {
    use super::Map;
    use serde::{Serialize, Serializer};

    /// A map of plain values.
    pub fn flat<S: Serializer, V: Serialize>(map: &Map<V>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(map.iter())
    }

    /// A map of maps (envelopes).
    pub fn nested<S: Serializer, V: Serialize>(map: &Map<Map<V>>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(map.iter().map(|(k, v)| (k, Flat(v))))
    }

    struct Flat<'a, V>(&'a Map<V>);

    /// A map of maps where the API server may have stored `null` for the map or for one of
    /// its members: read as absent. (Server-side apply leaves `null` where it removed the
    /// last members of a map another field manager still claims, kubernetes#103011; the
    /// schema marks such maps nullable so that write is not refused.)
    pub fn nested_or_null<'de, D, V>(d: D) -> Result<Map<Map<V>>, D::Error>
    where
        D: serde::Deserializer<'de>,
        V: serde::Deserialize<'de>,
    {
        use serde::Deserialize;
        let read = Option::<Map<Option<Map<V>>>>::deserialize(d)?;
        Ok(read
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect())
    }

    impl<V: Serialize> Serialize for Flat<'_, V> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            flat(self.0, s)
        }
    }
}

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
