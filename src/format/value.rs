//! One sealed value: `gs1:<scope>:<envelope id>:<base64(nonce ‖ ciphertext ‖ tag)>`.

use super::{FormatError, Scope};
use crate::crypto::{ENVELOPE_ID_LEN, NONCE_LEN, TAG_LEN};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The version tag every value starts with.
pub const FORMAT_VERSION: &str = "gs1";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedValue {
    pub scope: Scope,
    pub envelope_id: String,
    /// `nonce ‖ ciphertext ‖ tag`.
    pub blob: Vec<u8>,
}

impl SealedValue {
    pub fn parse(text: &str) -> Result<Self, FormatError> {
        let mut parts = text.splitn(4, ':');
        let version = parts.next().unwrap_or_default();
        if version != FORMAT_VERSION {
            return match version.strip_prefix("gs") {
                Some(v) if !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()) => {
                    Err(FormatError::UnknownVersion(version.to_string()))
                }
                _ => Err(FormatError::Malformed(
                    "expected gs1:<scope>:<envelope id>:<base64>, found no version tag".into(),
                )),
            };
        }
        let (Some(scope), Some(envelope_id), Some(b64)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(FormatError::Malformed(
                "expected 4 colon-separated fields".into(),
            ));
        };
        let scope: Scope = scope.parse().map_err(FormatError::Malformed)?;
        if envelope_id.len() != ENVELOPE_ID_LEN
            || !envelope_id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(FormatError::Malformed(format!(
                "envelope id must be {ENVELOPE_ID_LEN} lowercase hex characters"
            )));
        }
        let blob = STANDARD
            .decode(b64)
            .map_err(|e| FormatError::Malformed(format!("ciphertext base64: {e}")))?;
        if blob.len() < NONCE_LEN + TAG_LEN {
            return Err(FormatError::Malformed(
                "ciphertext shorter than nonce and tag".into(),
            ));
        }
        Ok(Self {
            scope,
            envelope_id: envelope_id.to_string(),
            blob,
        })
    }

    /// The envelope id a value names, without decoding the value (for counting which keys
    /// objects use); `None` unless it looks like a `gs1` value.
    pub fn envelope_id_of(text: &str) -> Option<&str> {
        let mut parts = text.splitn(4, ':');
        let (Some(FORMAT_VERSION), Some(_scope), Some(id), Some(_)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        (id.len() == ENVELOPE_ID_LEN).then_some(id)
    }

    pub fn emit(&self) -> String {
        format!(
            "{FORMAT_VERSION}:{}:{}:{}",
            self.scope,
            self.envelope_id,
            STANDARD.encode(&self.blob)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn parse_emit_round_trip() {
        let v = SealedValue {
            scope: Scope::Namespace,
            envelope_id: ID.into(),
            blob: vec![9; 30],
        };
        assert_eq!(SealedValue::parse(&v.emit()).unwrap(), v);
        assert_eq!(SealedValue::envelope_id_of(&v.emit()), Some(ID));
        assert_eq!(
            SealedValue::envelope_id_of(&format!("gs2:strict:{ID}:AA")),
            None
        );
        assert_eq!(SealedValue::envelope_id_of("gs1:strict:abc:AA"), None);
    }

    #[test]
    fn rejects_bad_values() {
        let blob = STANDARD.encode([0u8; 28]);
        assert!(matches!(
            SealedValue::parse(&format!("gs2:strict:{ID}:{blob}")),
            Err(FormatError::UnknownVersion(v)) if v == "gs2"
        ));
        for bad in [
            "plain text".to_string(),
            format!("gs1:strict:{ID}"),
            format!("gs1:wide:{ID}:{blob}"),
            format!("gs1:strict:XYZ:{blob}"),
            format!("gs1:strict:{ID}:!!!"),
            format!("gs1:strict:{ID}:AAAA"),
        ] {
            assert!(
                matches!(SealedValue::parse(&bad), Err(FormatError::Malformed(_))),
                "{bad}"
            );
        }
    }
}
