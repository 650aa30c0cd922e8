//! Limits on sealed input (docs/format.md § Limits), sized from Kubernetes' own: a Secret's
//! data (keys plus values) is at most 1 MiB, and an object at most ~1.5 MiB in etcd. Every
//! reader of sealed objects checks them before doing work proportional to them — the CLI
//! (`verify`, `unseal`, `seal --merge-into`) and the controller alike, through
//! `manifest::check_sealed` and [`super::Opener`] — so no single object can make gitseal do
//! more than a bounded amount of parsing and Diffie-Hellman.

use crate::crypto::{ENVELOPE_ID_LEN, MAX_WRAPPED_KEY_LEN, NONCE_LEN, TAG_LEN};

/// Largest plain value (one key's data).
pub const MAX_VALUE_LEN: usize = 1024 * 1024;
/// Largest sum of key name and plain value lengths over one object: Kubernetes refuses a
/// Secret whose data adds up to more (`data: Too long: must have at most 1048576 bytes`).
pub const MAX_DATA_LEN: usize = 1024 * 1024;
/// Most values (keys of `spec.encryptedData`) in one object.
pub const MAX_VALUES: usize = 4096;
/// Most envelopes in one object. Each is one data key (one seal or `--merge-into`) and costs
/// the reader one X25519 operation; an unused envelope is already an error.
pub const MAX_ENVELOPES: usize = 256;
/// Most wrapped keys (recipients) in one envelope: cluster keys, recovery keys, other
/// clusters sealed to by the same rule.
pub const MAX_KEY_IDS: usize = 32;
/// Longest base64 text of one wrapped key (a binary age file of at most
/// [`MAX_WRAPPED_KEY_LEN`] bytes).
pub const MAX_WRAPPED_KEY_TEXT: usize = base64_len(MAX_WRAPPED_KEY_LEN);
/// Longest sealed value string: `gs1:namespace:<envelope id>:` and the base64 of nonce, a
/// [`MAX_VALUE_LEN`] ciphertext and tag.
pub const MAX_SEALED_VALUE_TEXT: usize =
    "gs1:namespace:".len() + ENVELOPE_ID_LEN + 1 + base64_len(NONCE_LEN + MAX_VALUE_LEN + TAG_LEN);

/// What is wrong with a Secret whose keys and values add up to `total` bytes, if anything:
/// the one check of [`MAX_DATA_LEN`], for sealing (the input Secret) and reading (what a
/// SealedSecret would unseal to) alike.
pub fn data_len_problem(total: usize) -> Option<String> {
    (total > MAX_DATA_LEN).then(|| {
        format!(
            "keys and values add up to {total} bytes, over the {MAX_DATA_LEN}-byte limit of a Kubernetes Secret's data"
        )
    })
}

/// Length of padded standard base64 of `n` bytes.
const fn base64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// The plain length a sealed value's base64 part decodes to (minus nonce and tag), computed
/// from the text alone; `None` when the text is not a sealed value's shape.
pub fn plain_len_of(value: &str) -> Option<usize> {
    let b64 = value.splitn(4, ':').nth(3)?;
    if b64.len() % 4 != 0 {
        return None;
    }
    let padding = b64.bytes().rev().take_while(|&b| b == b'=').count();
    (b64.len() / 4 * 3)
        .checked_sub(padding)?
        .checked_sub(NONCE_LEN + TAG_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{DataKey, Identity};
    use crate::format::{Scope, Sealer, Target};

    #[test]
    fn limits_fit_what_gitseal_writes() {
        let id = Identity::generate();
        let sealer =
            Sealer::with_key(DataKey::generate(), &[id.recipient()], Scope::Namespace).unwrap();
        let target = Target {
            namespace: Some("ns"),
            name: "n",
        };
        for len in [0, 1, 2, 3, 100, MAX_VALUE_LEN] {
            let v = sealer.seal(target, "k", &vec![7; len]).unwrap();
            assert_eq!(plain_len_of(&v), Some(len));
            assert!(v.len() <= MAX_SEALED_VALUE_TEXT, "{len}: {}", v.len());
            if len == MAX_VALUE_LEN {
                assert_eq!(v.len(), MAX_SEALED_VALUE_TEXT);
            }
        }
        let wrapped = &sealer.envelope().wrapped[&id.key_id()];
        assert!(
            wrapped.len() <= MAX_WRAPPED_KEY_TEXT / 2,
            "{}",
            wrapped.len()
        );
        assert_eq!(plain_len_of("gs1:strict:x"), None);
        assert_eq!(plain_len_of("gs1:strict:x:AAA"), None);
        assert_eq!(plain_len_of("gs1:strict:x:AAAA"), None);
    }
}
