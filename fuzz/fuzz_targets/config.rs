//! The two small YAML files a repository commits, on arbitrary text: `.gitseal.yaml`
//! (`Config::parse`, then rule lookup, `verify.exclude` and `resolve`, whose keyring paths
//! point into a directory that does not exist) and keyring files (`KeyringFile::parse`).
//! None may panic; errors render. A keyring that was read is written back (`to_yaml`) and
//! reads back equal, and its usable key ids are ids of keys it lists.
#![no_main]

use gitseal::manifest::{Config, KeyringFile};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

/// Where the fuzzed `.gitseal.yaml` "lives": keyrings it names are read from below it, and
/// nothing exists there.
const DIR: &str = "/nonexistent/gitseal-fuzz";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    match Config::parse(Path::new(DIR), ".gitseal.yaml", &text) {
        Ok(config) => {
            for path in ["a.yaml", "clusters/prod/db.yaml", "x/testdata/s.yaml", ""] {
                let path = Path::new(DIR).join(path);
                let _ = config.rule_for(Some(&path));
                let _ = config.excluded(&path);
            }
            if let Some(rule) = config.rule_for(None) {
                match config.resolve(rule) {
                    Ok(resolved) => assert!(
                        !rule.keyrings.is_empty() || resolved.recipients.len() == rule.recipients.len(),
                        "resolve invented recipients"
                    ),
                    Err(e) => {
                        let _ = e.to_string();
                    }
                }
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }

    match KeyringFile::parse("keyring.yaml", &text) {
        Ok(ring) => {
            let written = ring.to_yaml();
            let back = KeyringFile::parse("written.yaml", &written)
                .unwrap_or_else(|e| panic!("a written keyring does not read back: {e}\n{written}"));
            assert!(back == ring, "keyring round trip changed it:\n{written}");
            for id in ring.usable_key_ids() {
                assert!(ring.keys.iter().any(|k| k.key_id == id), "usable id {id} not listed");
            }
            let _ = ring.active("keyring.yaml").map_err(|e| e.to_string());
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
