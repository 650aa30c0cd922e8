//! Wrapped keys (binary age files) on arbitrary bytes: `check_wrapped` (shape only, no key)
//! and `unwrap` (with a fixed test identity) never panic and agree on the input limits — a
//! file refused for its size or its stanzas by one is refused the same way by the other, and
//! nothing the shape check refuses ever opens.
#![no_main]

use gitseal::crypto::{CryptoError, Identity, check_wrapped, unwrap};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// Test-only identity (the manifest target's); it protects nothing.
const IDENTITY: &str = "AGE-SECRET-KEY-1MJDQZMJ2G4FWRRJ0SFD9MVXAR0XHZRVE7CREMQMGKZ9WES95D8MQNZFXCC";

fn identity() -> &'static Identity {
    static ID: OnceLock<Identity> = OnceLock::new();
    ID.get_or_init(|| Identity::parse(IDENTITY).expect("fixture identity parses"))
}

fuzz_target!(|data: &[u8]| {
    let shape = check_wrapped(data);
    let opened = unwrap(data, &[identity()]);
    match &shape {
        Err(CryptoError::WrappedKeyTooLarge { .. }) => assert!(
            matches!(opened, Err(CryptoError::WrappedKeyTooLarge { .. })),
            "size refused by check_wrapped only"
        ),
        Err(CryptoError::WrappedKeyStanzas { .. }) => assert!(
            matches!(opened, Err(CryptoError::WrappedKeyStanzas { .. })),
            "stanzas refused by check_wrapped only"
        ),
        Err(_) => assert!(opened.is_err(), "a file check_wrapped refuses opened"),
        Ok(()) => {}
    }
    if let Ok(key) = &opened {
        assert!(shape.is_ok(), "opened a file check_wrapped refuses");
        let _ = key.expose();
    }
});
