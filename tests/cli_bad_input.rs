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
