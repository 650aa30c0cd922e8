//! One YAML dialect for the whole crate: block style, no folding of long lines (sealed values
//! and wrapped keys must stay on one line each so diffs stay minimal), duplicate keys rejected.

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use serde_saphyr::{Error as DeError, SerializeError};

fn ser_options() -> serde_saphyr::SerializerOptions {
    let mut o = serde_saphyr::SerializerOptions::default();
    o.prefer_block_scalars = false;
    o
}

/// Serialize one document (no leading `---`).
pub fn to_string<T: Serialize>(value: &T) -> Result<String, SerializeError> {
    serde_saphyr::to_string_with_options(value, ser_options())
}

/// Parse every document of a YAML stream.
pub fn from_multiple<T: DeserializeOwned>(text: &str) -> Result<Vec<T>, DeError> {
    serde_saphyr::from_multiple(text)
}

/// Parse one YAML document.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, DeError> {
    serde_saphyr::from_str(text)
}
