//! Interop with the real age tools (Debian's `age` and `age-keygen`): a gitseal envelope is a
//! standard age file, an age-keygen identity opens gitseal files, and gitseal's identities
//! work with `age -d -i`. Fails (never skips) when the tools are missing.

mod clitool;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clitool::{SECRET, Scratch};
use std::process::Command;

fn tool(name: &str) -> &str {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "`{name}` is not installed: the interop tests need Debian's age tools (apt-get install age); .ci/run installs them"
    );
    name
}

/// The first wrapped key of the first envelope, and the envelope id.
fn first_envelope(sealed: &str) -> (String, Vec<u8>) {
    let doc: serde_json::Value = gitseal::yaml::from_str(sealed).unwrap();
    let (id, wrapped) = doc["spec"]["envelopes"]
        .as_object()
        .unwrap()
        .iter()
        .next()
        .unwrap();
    let b64 = wrapped
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .as_str()
        .unwrap();
    (id.clone(), STANDARD.decode(b64).unwrap())
}

fn age_decrypt(identity_file: &std::path::Path, wrapped: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("wrapped.age");
    std::fs::write(&input, wrapped).unwrap();
    let out = Command::new(tool("age"))
        .arg("-d")
        .arg("-i")
        .arg(identity_file)
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "age -d: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn age_decrypts_a_gitseal_envelope_to_the_data_key() {
    let s = Scratch::new();
    let sealed = s.seal(SECRET);
    let (envelope_id, wrapped) = first_envelope(&sealed);
    let key = age_decrypt(&s.path("key.txt"), &wrapped);
    assert_eq!(key.len(), 32);
    // The recovered key is the one the envelope id commits to.
    let key = gitseal::crypto::DataKey::from_bytes(key.try_into().unwrap());
    assert_eq!(gitseal::crypto::envelope_id(&key), envelope_id);
}

#[test]
fn an_age_keygen_identity_seals_and_unseals_with_gitseal() {
    let s = Scratch::new();
    let out = Command::new(tool("age-keygen"))
        .arg("-o")
        .arg(s.path("age-key.txt"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let public = String::from_utf8(
        Command::new("age-keygen")
            .arg("-y")
            .arg(s.path("age-key.txt"))
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let public = public.trim();
    let sealed = s.run(&["seal", "-r", public, "-"], Some(SECRET));
    assert_eq!(sealed.code, 0, "{}", sealed.stderr);
    s.write("s.yaml", &sealed.stdout);
    let opened = s.run(&["unseal", "s.yaml", "-i", "age-key.txt"], None);
    assert_eq!(opened.code, 0, "{}", opened.stderr);
    assert!(
        opened.stdout.contains("password: aHVudGVyMg=="),
        "{}",
        opened.stdout
    );
    // And age itself agrees with gitseal's key id choice: the wrapped key is under the
    // key id of age-keygen's public key.
    let doc: serde_json::Value = gitseal::yaml::from_str(&sealed.stdout).unwrap();
    let kid = gitseal::crypto::key_id(public);
    assert!(
        doc["spec"]["envelopes"]
            .as_object()
            .unwrap()
            .values()
            .all(|w| w.get(&kid).is_some())
    );
}

#[test]
fn a_gitseal_identity_is_a_valid_age_identity() {
    let s = Scratch::new();
    let derived = Command::new(tool("age-keygen"))
        .arg("-y")
        .arg(s.path("key.txt"))
        .output()
        .unwrap();
    assert!(
        derived.status.success(),
        "{}",
        String::from_utf8_lossy(&derived.stderr)
    );
    assert_eq!(String::from_utf8(derived.stdout).unwrap().trim(), s.public);
    // age encrypts to it, gitseal's own key file decrypts with age.
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("p.txt");
    std::fs::write(&plain, b"interop").unwrap();
    let enc = Command::new("age")
        .arg("-r")
        .arg(&s.public)
        .arg(&plain)
        .output()
        .unwrap();
    assert!(enc.status.success());
    assert_eq!(age_decrypt(&s.path("key.txt"), &enc.stdout), b"interop");
}
