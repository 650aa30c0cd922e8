//! Manifest readers on arbitrary text (YAML streams and JSON).
//!
//! `parse_documents`, then for every document `parse_secret` and `parse_sealed`, and for
//! every SealedSecret `check_sealed` (with and without known key ids) and `open_values` with
//! a fixed test identity: none may panic. Beyond that:
//! - a SealedSecret that was read is emitted (YAML and JSON) and read back unchanged
//!   (what gitseal writes, gitseal and its controller read);
//! - a Secret that was read seals (to the test identity), passes `check_sealed` without a
//!   problem, and opens back to the same values.
#![no_main]

use gitseal::crypto::Identity;
use gitseal::format::{Opener, Scope};
use gitseal::manifest::{
    Format, SealOptions, check_sealed, emit_sealed, is_plain_secret_with_data, open_values,
    parse_documents, parse_sealed, parse_secret, seal, wanted_key_ids,
};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeSet;
use std::sync::OnceLock;

/// Test-only identity (made once with `gitseal keygen`); it protects nothing.
const IDENTITY: &str = "AGE-SECRET-KEY-1MJDQZMJ2G4FWRRJ0SFD9MVXAR0XHZRVE7CREMQMGKZ9WES95D8MQNZFXCC";

fn identity() -> &'static Identity {
    static ID: OnceLock<Identity> = OnceLock::new();
    ID.get_or_init(|| Identity::parse(IDENTITY).expect("fixture identity parses"))
}

fn read_back(text: &str, format: Format) -> gitseal::api::SealedSecret {
    let docs = parse_documents("emitted", text)
        .unwrap_or_else(|e| panic!("emitted {format:?} does not parse: {e}\n{text}"));
    assert_eq!(docs.len(), 1, "emitted {format:?} is not one document:\n{text}");
    parse_sealed(&docs[0])
        .unwrap_or_else(|e| panic!("emitted {format:?} is not a SealedSecret: {e}\n{text}"))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(docs) = parse_documents("fuzz.yaml", &text) else {
        return;
    };
    let known = BTreeSet::from([identity().key_id()]);
    for doc in &docs {
        let _ = is_plain_secret_with_data(&doc.value);

        if let Ok(secret) = parse_secret(doc) {
            let _ = format!("{secret:?}");
            let recipients = [identity().recipient()];
            let opts = SealOptions {
                recipients: &recipients,
                scope: None,
                default_scope: Scope::Strict,
                namespace: secret.namespace.is_none().then_some("fuzz"),
                allow_empty: false,
            };
            if let Ok(sealed) = seal(&secret, &opts) {
                let problems = check_sealed(&sealed, &doc.at, Some(&known));
                assert!(
                    problems.is_empty(),
                    "freshly sealed SealedSecret has problems: {problems:?}"
                );
                let opened = open_values(&sealed, &doc.at, &mut Opener::new([identity()]))
                    .expect("freshly sealed SealedSecret opens");
                assert_eq!(
                    opened.keys().collect::<Vec<_>>(),
                    secret.data.keys().collect::<Vec<_>>()
                );
                for (k, v) in &opened {
                    assert!(v.expose() == secret.data[k].expose(), "value {k} changed");
                }
            }
        }

        if let Ok(sealed) = parse_sealed(doc) {
            let _ = check_sealed(&sealed, &doc.at, None);
            let _ = check_sealed(&sealed, &doc.at, Some(&known));
            let _ = wanted_key_ids(&sealed);
            let _ = open_values(&sealed, &doc.at, &mut Opener::new([identity()]));
            for format in [Format::Yaml, Format::Json] {
                let emitted = emit_sealed(std::slice::from_ref(&sealed), format);
                let back = read_back(&emitted, format);
                assert!(
                    back.metadata == sealed.metadata && back.spec == sealed.spec,
                    "{format:?} round trip changed the SealedSecret:\n{emitted}"
                );
            }
        }
    }
});
