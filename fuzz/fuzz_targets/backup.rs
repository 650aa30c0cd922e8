//! Key backups (`gitseal keys backup` files) on arbitrary bytes, two ways: the bytes as the
//! backup file itself (the age layer: `Bundle::open` with a fixed test identity), and the
//! bytes as the decrypted bundle, encrypted to that identity by the harness so they reach the
//! JSON reader and `Bundle::check`. None may panic; errors render. A bundle that opens and
//! passes `check` has, for every entry, an identity that is the private half of the public
//! key and key id it states, and it survives `seal` → `open` unchanged.
#![no_main]

use gitseal::crypto::{Identity, encrypt_file};
use gitseal::keyring::backup::Bundle;
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeSet;
use std::sync::OnceLock;

/// Test-only identity (the manifest target's); it protects nothing.
const IDENTITY: &str = "AGE-SECRET-KEY-1MJDQZMJ2G4FWRRJ0SFD9MVXAR0XHZRVE7CREMQMGKZ9WES95D8MQNZFXCC";

fn identity() -> &'static Identity {
    static ID: OnceLock<Identity> = OnceLock::new();
    ID.get_or_init(|| Identity::parse(IDENTITY).expect("fixture identity parses"))
}

/// A fixed "now" so runs are reproducible (2026-12-01T00:00:00Z).
fn now() -> jiff::Timestamp {
    jiff::Timestamp::from_second(1_796_083_200).expect("fixed time")
}

fn judge(bundle: &Bundle) {
    let all = bundle.check(None, now());
    let trusted = BTreeSet::from([identity().key_id()]);
    let _ = bundle.check(Some(&trusted), now());
    for e in &all {
        let _ = e.to_string();
    }
    if !all.is_empty() {
        return;
    }
    for key in &bundle.keys {
        let id = key.identity().expect("a checked entry has an identity");
        assert_eq!(id.key_id(), key.key_id, "checked entry's identity is another key");
        assert_eq!(id.recipient().as_str(), key.public_key, "checked entry's public key");
    }
    let again = bundle.seal(&[identity().recipient()]).expect("a bundle seals");
    let back = Bundle::open(&again, &[identity()]).expect("a sealed bundle opens");
    assert_eq!(back.keys.len(), bundle.keys.len(), "round trip lost entries");
    assert!(back.check(None, now()).is_empty(), "round trip broke an entry");
}

fuzz_target!(|data: &[u8]| {
    match Bundle::open(data, &[identity()]) {
        Ok(bundle) => judge(&bundle),
        Err(e) => {
            let _ = e.to_string();
        }
    }
    let file = encrypt_file(data, &[identity().recipient()]).expect("encrypts");
    match Bundle::open(&file, &[identity()]) {
        Ok(bundle) => judge(&bundle),
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
