//! Bad input, table-driven: every case exits non-zero with a message naming the file,
//! document and field, and leaves no output file behind.

mod clitool;

use clitool::{SECRET, Scratch};

struct Case {
    name: &'static str,
    files: Vec<(&'static str, String)>,
    args: Vec<String>,
    stdin: Option<String>,
    code: i32,
    stderr: String,
}

fn secret_with(from: &str, to: &str) -> String {
    assert!(SECRET.contains(from), "fixture has {from:?}");
    SECRET.replacen(from, to, 1)
}

fn cases(s: &Scratch, sealed: &str) -> Vec<Case> {
    let r = s.public.clone();
    let seal = |file: &str| -> Vec<String> {
        ["seal", "-r", &r, file, "-w", "out.yaml"]
            .iter()
            .map(|x| x.to_string())
            .collect()
    };
    let unseal = |file: &str| -> Vec<String> {
        ["unseal", file, "-i", "key.txt", "-w", "out.yaml"]
            .iter()
            .map(|x| x.to_string())
            .collect()
    };
    let verify = |file: &str| -> Vec<String> {
        ["verify", "-r", &r, file]
            .iter()
            .map(|x| x.to_string())
            .collect()
    };
    let kid = gitseal::crypto::key_id(&s.public);
    let other = gitseal::crypto::Identity::generate();
    let first_value = sealed
        .lines()
        .find(|l| l.trim_start().starts_with("password: gs1:"))
        .unwrap()
        .to_string();
    let envelope_id = first_value.split(':').nth(3).unwrap().to_string();
    let case = |name, files: Vec<(&'static str, String)>, args, code, stderr: &str| Case {
        name,
        files,
        args,
        stdin: None,
        code,
        stderr: stderr.to_string(),
    };
    vec![
        case(
            "not a Secret",
            vec![("in.yaml", secret_with("kind: Secret", "kind: ConfigMap"))],
            seal("in.yaml"),
            3,
            "in.yaml:1:kind: not a Secret (apiVersion v1, kind Secret): found kind ConfigMap",
        ),
        case(
            "truncated YAML",
            vec![("in.yaml", "apiVersion: v1\nkind: Secret\ndata: [\n".into())],
            seal("in.yaml"),
            3,
            "in.yaml:1: invalid YAML",
        ),
        case(
            "truncated JSON",
            vec![(
                "in.json",
                "{\"apiVersion\": \"v1\", \"kind\": \"Secret\"".into(),
            )],
            seal("in.json"),
            3,
            "in.json: invalid JSON",
        ),
        case(
            "bad base64 in data",
            vec![("in.yaml", secret_with("aHVudGVyMg==", "not*base64"))],
            seal("in.yaml"),
            3,
            "in.yaml:1:data.password: invalid base64",
        ),
        case(
            "duplicate YAML keys",
            vec![(
                "in.yaml",
                secret_with("  user: admin", "  user: admin\n  user: root"),
            )],
            seal("in.yaml"),
            3,
            "in.yaml:1: invalid YAML: line 15 column 3: duplicate mapping key: user",
        ),
        case(
            "key in data and stringData",
            vec![("in.yaml", secret_with("  user: admin", "  password: again"))],
            seal("in.yaml"),
            3,
            "in.yaml:1:stringData.password: duplicate key \"password\": present in both data and stringData",
        ),
        case(
            "no namespace under strict",
            vec![("in.yaml", secret_with("  namespace: prod\n", ""))],
            seal("in.yaml"),
            3,
            "in.yaml:1:metadata.namespace: strict scope binds the namespace: set metadata.namespace, pass -n, or use --scope cluster",
        ),
        case(
            "empty data",
            vec![(
                "in.yaml",
                "apiVersion: v1\nkind: Secret\nmetadata: {name: a, namespace: b}\n".into(),
            )],
            seal("in.yaml"),
            3,
            "in.yaml:1:data: the Secret has no data (pass --allow-empty to seal it anyway)",
        ),
        case(
            "value over 1 MiB",
            vec![(
                "in.yaml",
                secret_with(
                    "  user: admin",
                    &format!("  big: {}", "x".repeat(1024 * 1024 + 1)),
                ),
            )],
            seal("in.yaml"),
            3,
            "in.yaml:1:stringData.big: value is 1048577 bytes, over the 1 MiB limit",
        ),
        case(
            "second document is bad",
            vec![(
                "in.yaml",
                format!("{SECRET}---\n{}", secret_with("aHVudGVyMg==", "abc$def")),
            )],
            seal("in.yaml"),
            3,
            "in.yaml:2:data.password: invalid base64",
        ),
        case(
            "invalid key name",
            vec![("in.yaml", secret_with("  user: admin", "  \"bad key\": x"))],
            seal("in.yaml"),
            3,
            "in.yaml:1:stringData.bad key: invalid key name \"bad key\"",
        ),
        case(
            "label is not a string",
            vec![("in.yaml", secret_with("app: db", "app: 3"))],
            seal("in.yaml"),
            3,
            "in.yaml:1:metadata.labels.app: expected a string, found a number (quote it)",
        ),
        case(
            "no name",
            vec![("in.yaml", secret_with("  name: db\n", ""))],
            seal("in.yaml"),
            3,
            "in.yaml:1:metadata.name: a Secret needs a name",
        ),
        case(
            "immutable is not a boolean",
            vec![("in.yaml", format!("{SECRET}immutable: sometimes\n"))],
            seal("in.yaml"),
            3,
            "in.yaml:1:immutable: expected a boolean, found a string",
        ),
        case(
            "bad scope annotation",
            vec![(
                "in.yaml",
                secret_with("note: hello", "gitseal.dev/scope: galaxy"),
            )],
            seal("in.yaml"),
            3,
            "in.yaml:1:metadata.annotations.gitseal.dev/scope: unknown scope \"galaxy\"",
        ),
        case(
            "-n disagrees with the document",
            vec![("in.yaml", SECRET.into())],
            [seal("in.yaml"), vec!["-n".into(), "staging".into()]].concat(),
            3,
            "in.yaml:1:metadata.namespace: the document says namespace \"prod\" but -n says \"staging\"",
        ),
        case(
            "no recipients configured",
            vec![("in.yaml", SECRET.into())],
            ["seal", "in.yaml", "-w", "out.yaml"]
                .iter()
                .map(|x| x.to_string())
                .collect(),
            3,
            "in.yaml: no recipients configured",
        ),
        case(
            "bad recipient flag",
            vec![("in.yaml", SECRET.into())],
            ["seal", "-r", "age1nope", "in.yaml", "-w", "out.yaml"]
                .iter()
                .map(|x| x.to_string())
                .collect(),
            2,
            "-r age1nope: invalid age recipient",
        ),
        case(
            "missing input file",
            vec![],
            seal("nothere.yaml"),
            3,
            "nothere.yaml: No such file",
        ),
        case(
            "unknown format version",
            vec![(
                "s.yaml",
                sealed.replacen(": gs1:strict:", ": gs9:strict:", 1),
            )],
            unseal("s.yaml"),
            3,
            "s.yaml:1:spec.encryptedData.password: unknown format version \"gs9\"",
        ),
        case(
            "missing envelope",
            vec![(
                "s.yaml",
                sealed.replacen(
                    &format!(":{envelope_id}:"),
                    ":00000000000000000000000000000000:",
                    1,
                ),
            )],
            unseal("s.yaml"),
            3,
            "s.yaml:1:spec.encryptedData.password: value references envelope 00000000000000000000000000000000 which is not in spec.envelopes",
        ),
        case(
            "wrong identity",
            vec![
                ("s.yaml", sealed.to_string()),
                ("other.txt", other.to_secret_string().to_string()),
            ],
            ["unseal", "s.yaml", "-i", "other.txt", "-w", "out.yaml"]
                .iter()
                .map(|x| x.to_string())
                .collect(),
            4,
            &format!(
                "s.yaml:1:spec.encryptedData.password: envelope {envelope_id} is sealed for key ids [{}], the given identities are [{}]",
                gitseal::crypto::key_id(&s.public),
                other.key_id()
            ),
        ),
        case(
            "tampered value",
            vec![(
                "s.yaml",
                sealed.replacen(&first_value, &tamper(&first_value), 1),
            )],
            unseal("s.yaml"),
            4,
            "s.yaml:1:spec.encryptedData.password: value does not authenticate",
        ),
        case(
            "moved to another namespace",
            vec![(
                "s.yaml",
                sealed.replacen("namespace: prod", "namespace: staging", 1),
            )],
            unseal("s.yaml"),
            4,
            "s.yaml:1:spec.encryptedData.password: sealed for prod/db, found in staging/db",
        ),
        case(
            "unseal a plain Secret",
            vec![("s.yaml", SECRET.into())],
            unseal("s.yaml"),
            3,
            "s.yaml:1:kind: not a SealedSecret (gitseal.dev/v1alpha1): found apiVersion v1, kind Secret",
        ),
        case(
            "invalid identity file",
            vec![
                ("s.yaml", sealed.to_string()),
                ("bad.txt", "AGE-SECRET-KEY-1NOPE\n".into()),
            ],
            ["unseal", "s.yaml", "-i", "bad.txt", "-w", "out.yaml"]
                .iter()
                .map(|x| x.to_string())
                .collect(),
            3,
            "bad.txt: invalid age identity",
        ),
        case(
            "keyring with a wrong key id",
            vec![
                ("in.yaml", SECRET.into()),
                (
                    "ring.yaml",
                    format!(
                        "apiVersion: gitseal.dev/v1alpha1\nkind: Keyring\nmetadata: {{name: c}}\nkeys:\n  - keyId: 0000000000000000\n    publicKey: {r}\n    state: Active\n"
                    ),
                ),
            ],
            [
                "seal",
                "--keyring",
                "ring.yaml",
                "in.yaml",
                "-w",
                "out.yaml",
            ]
            .iter()
            .map(|x| x.to_string())
            .collect(),
            3,
            "ring.yaml:1:keys[0].keyId: key id 0000000000000000 does not match the public key",
        ),
        case(
            ".gitseal.yaml with an unknown field",
            vec![
                ("in.yaml", SECRET.into()),
                (".gitseal.yaml", "rules:\n  - keyring: [x]\n".into()),
            ],
            ["seal", "in.yaml", "-w", "out.yaml"]
                .iter()
                .map(|x| x.to_string())
                .collect(),
            3,
            ".gitseal.yaml: invalid config: ",
        ),
        case(
            "merge changes scope",
            vec![("in.yaml", SECRET.into()), ("s.yaml", sealed.to_string())],
            [
                "seal",
                "-r",
                &r,
                "in.yaml",
                "--merge-into",
                "s.yaml",
                "--scope",
                "cluster",
            ]
            .iter()
            .map(|x| x.to_string())
            .collect(),
            3,
            "in.yaml:1: the existing SealedSecret has scope strict; merging cannot change it to cluster",
        ),
        // Denial of service: each refused quickly, as an input error (docs/format.md § Limits).
        case(
            "alias bomb to seal",
            vec![("in.yaml", alias_bomb())],
            seal("in.yaml"),
            3,
            "in.yaml:1: over gitseal's input limits (docs/format.md § Limits): ",
        ),
        case(
            "alias bomb to verify",
            vec![("in.yaml", alias_bomb())],
            verify("in.yaml"),
            3,
            "in.yaml:1: over gitseal's input limits",
        ),
        case(
            "10,000-deep flow nesting to seal",
            vec![("in.yaml", deep_flow())],
            seal("in.yaml"),
            3,
            "in.yaml:1: over gitseal's input limits",
        ),
        case(
            "10,000-deep block nesting to verify",
            vec![("in.yaml", deep_block())],
            verify("in.yaml"),
            3,
            "in.yaml:1: over gitseal's input limits",
        ),
        case(
            "10,000-deep JSON to verify",
            vec![("in.json", deep_json())],
            verify("in.json"),
            3,
            "in.json: over gitseal's input limits",
        ),
        case(
            "10,000-stanza wrapped key to verify",
            vec![("s.yaml", with_wrapped(sealed, &many_stanzas(10_000)))],
            verify("s.yaml"),
            3,
            &format!("s.yaml:1:spec.envelopes.{envelope_id}.{kid}: wrapped key is "),
        ),
        case(
            "10,000-stanza wrapped key to unseal",
            vec![("s.yaml", with_wrapped(sealed, &many_stanzas(10_000)))],
            unseal("s.yaml"),
            3,
            &format!("s.yaml:1:spec.envelopes.{envelope_id}.{kid}: wrapped key is "),
        ),
        case(
            "three-stanza wrapped key to unseal",
            vec![("s.yaml", with_wrapped(sealed, &many_stanzas(3)))],
            unseal("s.yaml"),
            3,
            "s.yaml:1:spec.encryptedData.password: envelope ",
        ),
        case(
            "three-stanza wrapped key to verify",
            vec![("s.yaml", with_wrapped(sealed, &many_stanzas(3)))],
            verify("s.yaml"),
            3,
            &format!(
                "s.yaml:1:spec.envelopes.{envelope_id}.{kid}: wrapped key has 3 recipient stanza(s), 3 of them X25519"
            ),
        ),
        case(
            "too many envelopes",
            vec![(
                "s.yaml",
                edit_sealed(sealed, |spec| {
                    let envelopes = spec["envelopes"].as_object_mut().unwrap();
                    let one = envelopes.values().next().unwrap().clone();
                    for i in 0..256 {
                        envelopes.insert(format!("{i:032x}"), one.clone());
                    }
                }),
            )],
            verify("s.yaml"),
            3,
            "s.yaml:1:spec.envelopes: 257 envelopes, over the limit of 256 per object",
        ),
        case(
            "too many envelopes to unseal",
            vec![(
                "s.yaml",
                edit_sealed(sealed, |spec| {
                    let envelopes = spec["envelopes"].as_object_mut().unwrap();
                    let one = envelopes.values().next().unwrap().clone();
                    for i in 0..256 {
                        envelopes.insert(format!("{i:032x}"), one.clone());
                    }
                }),
            )],
            unseal("s.yaml"),
            3,
            "s.yaml:1:spec.envelopes: 257 envelopes, over the limit of 256 per object",
        ),
        case(
            "too many key ids in an envelope",
            vec![(
                "s.yaml",
                edit_sealed(sealed, |spec| {
                    let envelope = spec["envelopes"]
                        .as_object_mut()
                        .unwrap()
                        .values_mut()
                        .next()
                        .unwrap()
                        .as_object_mut()
                        .unwrap();
                    let one = envelope.values().next().unwrap().clone();
                    for i in 0..32 {
                        envelope.insert(format!("{i:016x}"), one.clone());
                    }
                }),
            )],
            verify("s.yaml"),
            3,
            &format!(
                "s.yaml:1:spec.envelopes.{envelope_id}: 33 wrapped keys, over the limit of 32 per envelope"
            ),
        ),
        case(
            "too many keys to seal",
            vec![("in.yaml", many_keys(4097, 1))],
            seal("in.yaml"),
            3,
            "in.yaml:1:data: 4097 keys, over the limit of 4096 per object",
        ),
        case(
            "data over 1 MiB in all",
            vec![("in.yaml", many_keys(3, 400_000))],
            seal("in.yaml"),
            3,
            "in.yaml:1:data: keys and values add up to 1200006 bytes, over the 1048576-byte limit",
        ),
        Case {
            stdin: Some(
                "kind: Secret\napiVersion: v1\nmetadata: {name: x}\nstringData: {a: b}\n".into(),
            ),
            ..case(
                "stdin without namespace",
                vec![],
                ["seal", "-r", &r, "-w", "out.yaml"]
                    .iter()
                    .map(|x| x.to_string())
                    .collect(),
                3,
                "<stdin>:1:metadata.namespace: strict scope binds the namespace",
            )
        },
    ]
}

/// A "billion laughs" Secret: nine levels of ten aliases each (10^9 strings if expanded).
fn alias_bomb() -> String {
    let mut text = String::from(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: prod}\nstringData:\n  a: &a \"lol\"\n",
    );
    let mut prev = "a".to_string();
    for level in 0..9 {
        let name = format!("l{level}");
        let refs = vec![format!("*{prev}"); 10].join(", ");
        text.push_str(&format!("  {name}: &{name} [{refs}]\n"));
        prev = name;
    }
    text
}

/// A Secret whose value is nested 10,000 flow sequences deep.
fn deep_flow() -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: db, namespace: prod}}\nstringData:\n  a: {}{}\n",
        "[".repeat(10_000),
        "]".repeat(10_000)
    )
}

/// A document nested 10,000 block sequences deep (`- - - … x`), after a Secret header line.
fn deep_block() -> String {
    format!("# kind: Secret\n{}x\n", "- ".repeat(10_000))
}

/// A JSON document nested 10,000 arrays deep, mentioning a Secret.
fn deep_json() -> String {
    format!(
        "{{\"kind\": \"Secret\", \"x\": {}{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    )
}

/// A binary age header of `n` well-formed X25519 stanzas (random-looking, opening for
/// nobody), a MAC line and a nonce and payload of zeros.
fn many_stanzas(n: usize) -> Vec<u8> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
    let mut out = b"age-encryption.org/v1\n".to_vec();
    for i in 0..n {
        let share = b64.encode([(i % 251) as u8; 32]);
        let body = b64.encode([7u8; 32]);
        out.extend_from_slice(format!("-> X25519 {share}\n{body}\n").as_bytes());
    }
    out.extend_from_slice(format!("--- {}\n", b64.encode([0u8; 32])).as_bytes());
    out.extend_from_slice(&[0u8; 64]);
    out
}

/// `sealed` with its (one) wrapped key replaced by `file`.
fn with_wrapped(sealed: &str, file: &[u8]) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(file);
    edit_sealed(sealed, |spec| {
        let envelope = spec["envelopes"]
            .as_object_mut()
            .unwrap()
            .values_mut()
            .next()
            .unwrap()
            .as_object_mut()
            .unwrap();
        for w in envelope.values_mut() {
            *w = encoded.clone().into();
        }
    })
}

/// `sealed` (one SealedSecret) with `edit` applied to its spec.
fn edit_sealed(sealed: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut doc: serde_json::Value = gitseal::yaml::from_str(sealed).unwrap();
    edit(&mut doc["spec"]);
    gitseal::yaml::to_string(&doc).unwrap()
}

/// A Secret with `n` keys of `len` bytes each.
fn many_keys(n: usize, len: usize) -> String {
    let mut text = String::from(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: prod}\nstringData:\n",
    );
    for i in 0..n {
        text.push_str(&format!("  k{i}: {}\n", "v".repeat(len)));
    }
    text
}

/// Flip one character of the ciphertext part of a value line.
fn tamper(line: &str) -> String {
    let mut chars: Vec<char> = line.chars().collect();
    let i = chars.len() - 8;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

#[test]
fn bad_input_table() {
    let base = Scratch::new();
    let sealed = base.seal(SECRET);
    let table = cases(&base, &sealed);
    assert!(table.len() >= 20, "only {} cases", table.len());
    let mut failures = Vec::new();
    for case in &table {
        let s = Scratch::new();
        std::fs::copy(base.path("key.txt"), s.path("key.txt")).unwrap();
        let merge_target = case
            .files
            .iter()
            .find(|(n, _)| *n == "s.yaml")
            .map(|(_, t)| t.clone());
        for (name, text) in &case.files {
            s.write(name, text);
        }
        let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
        let out = s.run(&args, case.stdin.as_deref());
        let mut problems = Vec::new();
        if out.code != case.code {
            problems.push(format!("exit {} (wanted {})", out.code, case.code));
        }
        if !out.stderr.contains(&case.stderr) {
            problems.push(format!(
                "stderr {:?} lacks {:?}",
                out.stderr.trim(),
                case.stderr
            ));
        }
        if s.path("out.yaml").exists() {
            problems.push("left out.yaml behind".into());
        }
        if let Some(before) = merge_target
            && s.read("s.yaml") != before
        {
            problems.push("changed the file it failed to merge into".into());
        }
        let stray: Vec<_> = std::fs::read_dir(s.dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".gitseal-"))
            .collect();
        if !stray.is_empty() {
            problems.push("left a temp file behind".into());
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {}", case.name, problems.join("; ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        table.len(),
        failures.join("\n")
    );
}

/// YAML bombs, deep nesting and a 10,000-stanza wrapped key, given to `seal`, `verify` and
/// `unseal`: an input error (exit 3) in bounded memory. Peak memory is measured by GNU time
/// (`/usr/bin/time`, Debian package `time`) around the child, with a generous bound; the
/// elapsed times are printed (goal: well under 1 s), not asserted.
#[test]
fn bombs_are_refused_in_bounded_memory() {
    let time = std::path::Path::new("/usr/bin/time");
    assert!(
        time.exists(),
        "this test measures peak memory with GNU time: install it (apt-get install time)"
    );
    let s = Scratch::new();
    let sealed = s.seal(SECRET);
    s.write("bomb.yaml", &alias_bomb());
    s.write("flow.yaml", &deep_flow());
    s.write("block.yaml", &deep_block());
    s.write("deep.json", &deep_json());
    s.write(
        "stanzas.yaml",
        &with_wrapped(&sealed, &many_stanzas(10_000)),
    );
    let r = s.public.clone();
    let runs: Vec<Vec<&str>> = vec![
        vec!["seal", "-r", &r, "bomb.yaml"],
        vec!["verify", "-r", &r, "bomb.yaml"],
        vec!["seal", "-r", &r, "flow.yaml"],
        vec!["verify", "-r", &r, "flow.yaml"],
        vec!["verify", "-r", &r, "block.yaml"],
        vec!["seal", "-r", &r, "deep.json"],
        vec!["verify", "-r", &r, "stanzas.yaml"],
        vec!["unseal", "-i", "key.txt", "stanzas.yaml"],
    ];
    let mut report = Vec::new();
    for args in &runs {
        let started = std::time::Instant::now();
        let out = std::process::Command::new(time)
            .args(["-f", "%M", "-o", "rss.txt", clitool::bin()])
            .args(args)
            .current_dir(s.dir.path())
            .env_remove("GITSEAL_IDENTITY")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let elapsed = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {stderr}");
        assert!(stderr.contains("over"), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?} printed output");
        let kib: u64 = s
            .read("rss.txt")
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("{args:?}: no peak RSS from GNU time"));
        assert!(kib < 200 * 1024, "{args:?}: peak RSS {kib} KiB");
        report.push(format!("{args:?}: {elapsed:.2?}, peak RSS {} KiB", kib));
    }
    eprintln!("{}", report.join("\n"));
}
