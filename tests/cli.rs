//! The offline CLI end to end, through the real binary: keygen, seal/unseal round trips,
//! JSON, directories, --merge-into minimal diffs, --from-* flags, .gitseal.yaml rules, verify.

mod clitool;

use clitool::{SECRET, Scratch};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;

fn yaml_docs(text: &str) -> Vec<Value> {
    gitseal::yaml::from_multiple(text).unwrap()
}

#[test]
fn keygen_writes_an_age_keygen_style_0600_file_and_refuses_to_overwrite() {
    let s = Scratch::new();
    let meta = std::fs::metadata(s.path("key.txt")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let text = s.read("key.txt");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("# created: 20"), "{text}");
    assert_eq!(lines[1], format!("# public key: {}", s.public));
    assert!(lines[2].starts_with("AGE-SECRET-KEY-1"));
    assert!(s.public.starts_with("age1"));
    let again = s.run(&["keygen", "-o", "key.txt"], None);
    assert_eq!(again.code, 3);
    assert_eq!(s.read("key.txt"), text);
}

#[test]
fn seal_unseal_round_trip_keeps_everything_but_last_applied() {
    let s = Scratch::new();
    let input = SECRET.replace(
        "    note: hello\n",
        "    note: hello\n    kubectl.kubernetes.io/last-applied-configuration: '{\"stringData\":{\"user\":\"admin\"}}'\n",
    );
    let sealed = s.seal(&input);
    assert!(
        !sealed.contains("admin") && !sealed.contains("aHVudGVyMg"),
        "plain text leaked:\n{sealed}"
    );
    assert!(!sealed.contains("last-applied"));
    let doc = &yaml_docs(&sealed)[0];
    assert_eq!(doc["spec"]["scope"], "strict");
    assert_eq!(doc["spec"]["boundTo"], "prod/db");
    assert_eq!(doc["spec"]["template"]["type"], "Opaque");
    assert_eq!(doc["spec"]["template"]["metadata"]["labels"]["app"], "db");
    s.write("s.yaml", &sealed);
    let out = s.run(&["unseal", "s.yaml", "-i", "key.txt"], None);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let secret = &yaml_docs(&out.stdout)[0];
    assert_eq!(secret["kind"], "Secret");
    assert_eq!(secret["metadata"]["name"], "db");
    assert_eq!(secret["metadata"]["namespace"], "prod");
    assert_eq!(
        secret["metadata"]["annotations"],
        serde_json::json!({"note": "hello"})
    );
    assert_eq!(
        secret["data"],
        serde_json::json!({"password": "aHVudGVyMg==", "user": "YWRtaW4="})
    );
    assert_eq!(secret["type"], "Opaque");

    // -w writes plain text 0600.
    let out = s.run(
        &["unseal", "s.yaml", "-i", "key.txt", "-w", "plain.yaml"],
        None,
    );
    assert_eq!(out.code, 0);
    assert_eq!(
        std::fs::metadata(s.path("plain.yaml"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
}

#[test]
fn json_in_json_out_and_lists() {
    let s = Scratch::new();
    let json = r#"{"apiVersion":"v1","kind":"List","items":[
        {"apiVersion":"v1","kind":"Secret","metadata":{"name":"a","namespace":"n"},"stringData":{"k":"v1"}},
        {"apiVersion":"v1","kind":"Secret","metadata":{"name":"b","namespace":"n"},"stringData":{"k":"v2"}}]}"#;
    s.write("in.json", json);
    let out = s.run(
        &[
            "seal", "-r", &s.public, "in.json", "-o", "json", "-w", "out.json",
        ],
        None,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let list: Value = serde_json::from_str(&s.read("out.json")).unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    let out = s.run(&["unseal", "out.json", "-i", "key.txt", "-o", "json"], None);
    let back: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(back["items"][1]["data"]["k"], "djI=");
}

#[test]
fn directory_in_mirrored_directory_out() {
    let s = Scratch::new();
    for (i, dir) in ["a", "a/b", "c"].iter().enumerate() {
        s.write(
            &format!("in/{dir}/s{i}.yaml"),
            &SECRET.replace("name: db", &format!("name: db{i}")),
        );
    }
    s.write("in/notes.txt", "not a manifest");
    let out = s.run(&["seal", "-r", &s.public, "in", "-w", "out"], None);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("sealed 3 files"), "{}", out.stderr);
    for (i, dir) in ["a", "a/b", "c"].iter().enumerate() {
        let doc = &yaml_docs(&s.read(&format!("out/{dir}/s{i}.yaml")))[0];
        assert_eq!(doc["metadata"]["name"], format!("db{i}"));
    }
    assert!(!s.path("out/notes.txt").exists());
    // Without -w, everything goes to stdout as one stream.
    let out = s.run(&["seal", "-r", &s.public, "in"], None);
    assert_eq!(yaml_docs(&out.stdout).len(), 3);
}

#[test]
fn merge_into_changes_only_the_new_lines() {
    let s = Scratch::new();
    let sealed = s.seal(SECRET);
    s.write("s.yaml", &sealed);
    let out = s.run(
        &[
            "seal",
            "-r",
            &s.public,
            "--merge-into",
            "s.yaml",
            "--from-literal",
            "api-token=t0k3n",
        ],
        None,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("added [api-token], replaced []"),
        "{}",
        out.stderr
    );
    let after = s.read("s.yaml");
    // Every line of the old file is still there, byte for byte and in order.
    let mut new_lines = after.lines();
    for old in sealed.lines() {
        assert!(new_lines.any(|l| l == old), "line changed or moved: {old}");
    }
    let added: Vec<&str> = after
        .lines()
        .filter(|l| !sealed.lines().any(|o| o == *l))
        .collect();
    assert_eq!(
        added.len(),
        3,
        "value, envelope id and wrapped key lines: {added:#?}"
    );
    assert!(added[0].trim_start().starts_with("api-token: gs1:strict:"));

    // Replacing a key: its old envelope is no longer used by it, but still by `user`.
    let out = s.run(
        &[
            "seal",
            "-r",
            &s.public,
            "--merge-into",
            "s.yaml",
            "--from-literal",
            "password=new",
        ],
        None,
    );
    assert!(out.stderr.contains("replaced [password]"), "{}", out.stderr);
    let out = s.run(&["unseal", "s.yaml", "-i", "key.txt"], None);
    let secret = &yaml_docs(&out.stdout)[0];
    assert_eq!(secret["data"]["password"], "bmV3");
    assert_eq!(secret["data"]["user"], "YWRtaW4=");
    assert_eq!(secret["data"]["api-token"], "dDBrM24=");

    // Replacing every key of the first seal drops its envelope.
    let out = s.run(
        &[
            "seal",
            "-r",
            &s.public,
            "--merge-into",
            "s.yaml",
            "--from-literal",
            "user=u2",
        ],
        None,
    );
    assert!(
        out.stderr.contains("dropped 1 unused envelope"),
        "{}",
        out.stderr
    );
    assert_eq!(
        s.run(
            &["verify", "-r", &s.public, "-i", "key.txt", "s.yaml"],
            None
        )
        .code,
        0
    );
}

#[test]
fn from_flags_and_generate_never_prints_the_value() {
    let s = Scratch::new();
    s.write("ca.pem", "-----BEGIN CERTIFICATE-----\n");
    let out = s.run(
        &[
            "seal",
            "-r",
            &s.public,
            "--name",
            "app",
            "-n",
            "dev",
            "--from-literal",
            "user=me",
            "--from-file",
            "ca.crt=ca.pem",
            "--generate",
            "password",
            "--generate",
            "pin=6",
            "--type",
            "Opaque",
        ],
        None,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    s.write("s.yaml", &out.stdout);
    let open = s.run(&["unseal", "s.yaml", "-i", "key.txt"], None);
    let data = &yaml_docs(&open.stdout)[0]["data"];
    use base64::Engine;
    let get = |k: &str| {
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(data[k].as_str().unwrap())
                .unwrap(),
        )
        .unwrap()
    };
    let password = get("password");
    assert_eq!(password.len(), 32);
    assert!(password.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(get("pin").len(), 6);
    assert_eq!(get("user"), "me");
    assert_eq!(get("ca.crt"), "-----BEGIN CERTIFICATE-----\n");
    assert!(!out.stdout.contains(&password) && !out.stderr.contains(&password));
    // A second run generates a different value.
    let again = s.run(
        &[
            "seal",
            "-r",
            &s.public,
            "--name",
            "app",
            "-n",
            "dev",
            "--generate",
            "password",
        ],
        None,
    );
    s.write("s2.yaml", &again.stdout);
    let open2 = s.run(&["unseal", "s2.yaml", "-i", "key.txt"], None);
    assert_ne!(
        yaml_docs(&open2.stdout)[0]["data"]["password"],
        data["password"]
    );
}

#[test]
fn gitseal_yaml_rules_pick_keyrings_recovery_keys_and_scope() {
    let s = Scratch::new();
    let prod = gitseal::crypto::Identity::generate();
    let staging = gitseal::crypto::Identity::generate();
    let ring = |name: &str, id: &gitseal::crypto::Identity| {
        gitseal::manifest::KeyringFile::new(
            name,
            vec![gitseal::manifest::KeyringEntry::new(
                &id.recipient(),
                gitseal::api::KeyState::Active,
                None,
            )],
        )
        .to_yaml()
    };
    s.write("repo/clusters/prod/keyring.yaml", &ring("prod", &prod));
    s.write(
        "repo/clusters/staging/keyring.yaml",
        &ring("staging", &staging),
    );
    s.write(
        "repo/.gitseal.yaml",
        &format!(
            "rules:\n  - path: 'clusters/prod/**'\n    keyrings: [clusters/prod/keyring.yaml]\n    recipients: [{r}]\n  - path: 'clusters/staging/**'\n    keyrings: [clusters/staging/keyring.yaml]\n    scope: namespace\n",
            r = s.public
        ),
    );
    s.write("repo/clusters/prod/secrets/db.yaml", SECRET);
    s.write(
        "repo/clusters/staging/secrets/db.yaml",
        &SECRET.replace("prod", "staging"),
    );
    let repo = s.path("repo/clusters");
    let run = |args: &[&str]| clitool::run_in(&repo, args, None);
    let out = run(&[
        "seal",
        "prod/secrets/db.yaml",
        "-w",
        "prod/secrets/db.sealed.yaml",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc =
        &yaml_docs(&std::fs::read_to_string(repo.join("prod/secrets/db.sealed.yaml")).unwrap())[0];
    let envelope = doc["spec"]["envelopes"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap();
    let kids: Vec<&String> = envelope.as_object().unwrap().keys().collect();
    let mut want = [prod.key_id(), gitseal::crypto::key_id(&s.public)];
    want.sort();
    assert_eq!(
        kids,
        want.iter().collect::<Vec<_>>(),
        "prod keyring + recovery key"
    );
    assert_eq!(doc["spec"]["scope"], "strict");

    let out = run(&["seal", "staging/secrets/db.yaml"]);
    let doc = &yaml_docs(&out.stdout)[0];
    assert_eq!(doc["spec"]["scope"], "namespace");
    assert_eq!(doc["spec"]["boundTo"], "staging");

    // The recovery key opens the prod file offline.
    let key = s.path("key.txt");
    let out = run(&[
        "unseal",
        "prod/secrets/db.sealed.yaml",
        "-i",
        key.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);

    // stdin matches no path rule here.
    let out = clitool::run_in(&repo, &["seal", "-"], Some(SECRET));
    assert_eq!(out.code, 3);
    assert!(
        out.stderr.contains("<stdin>: no recipients configured"),
        "{}",
        out.stderr
    );
}

#[test]
fn verify_reports_one_line_per_problem() {
    let s = Scratch::new();
    let other = gitseal::crypto::Identity::generate();
    s.write(
        ".gitseal.yaml",
        &format!(
            "rules:\n  - recipients: [{}]\nverify:\n  exclude: ['fixtures/**']\n",
            s.public
        ),
    );
    let good = s.seal(SECRET);
    s.write("tree/good.yaml", &good);
    s.write("fixtures/plain.yaml", SECRET);
    s.write(
        "tree/chart/templates/x.yaml",
        "{{ if .Values.x }}\nkind: Deployment\n{{ end }}\n",
    );
    let out = s.run(&["verify", "tree"], None);
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("0 problem(s); checked 2 file(s), 1 SealedSecret(s)"),
        "{}",
        out.stderr
    );

    s.write("tree/plain.yaml", SECRET);
    s.write(
        "tree/moved.yaml",
        &good.replace("namespace: prod", "namespace: staging"),
    );
    let stranger = clitool::run_in(
        s.dir.path(),
        &["seal", "-r", other.recipient().as_str(), "-"],
        Some(SECRET),
    );
    s.write("tree/stranger.yaml", &stranger.stdout);
    s.write(
        "tree/broken.yaml",
        &good.replacen("gs1:strict:", "gs2:strict:", 1),
    );
    let out = s.run(&["verify", "tree"], None);
    assert_eq!(out.code, 1);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", out.stdout);
    assert!(
        lines[0].starts_with(
            "tree/broken.yaml:1:spec.encryptedData.password: unknown format version \"gs2\""
        ),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with(
            "tree/moved.yaml:1:spec.boundTo: sealed for prod/db, but the metadata says staging/db"
        ),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with("tree/plain.yaml:1:data: plain Secret with data"),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].contains("tree/stranger.yaml:1:spec.envelopes.")
            && lines[3].contains(&format!(
                "wrapped for key id {}, which is not a known recipient",
                other.key_id()
            )),
        "{}",
        lines[3]
    );

    // With -i, values are decrypted too: a tampered value is found.
    std::fs::remove_dir_all(s.path("tree")).unwrap();
    let value_line = good.lines().find(|l| l.contains("user: gs1:")).unwrap();
    let tampered = format!("{}A==", &value_line[..value_line.len() - 3]);
    s.write("tree/t.yaml", &good.replace(value_line, &tampered));
    let plain = s.run(&["verify", "tree"], None);
    let deep = s.run(&["verify", "-i", "key.txt", "tree"], None);
    assert_eq!(plain.code, 0, "{}", plain.stdout);
    assert_eq!(deep.code, 1);
    assert!(
        deep.stdout
            .starts_with("tree/t.yaml:1:spec.encryptedData.user: value does not authenticate"),
        "{}",
        deep.stdout
    );
}

#[test]
fn crds_and_completions() {
    let s = Scratch::new();
    let out = s.run(&["crds"], None);
    let docs = yaml_docs(&out.stdout);
    let names: Vec<&str> = docs
        .iter()
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["sealedsecrets.gitseal.dev", "sealingkeys.gitseal.dev"]
    );
    let out = s.run(&["completions", "bash"], None);
    assert!(out.stdout.contains("_gitseal"));
    assert!(out.stdout.contains("--merge-into"));
}

/// The single wrapped key of a one-envelope, one-recipient SealedSecret text.
fn only_wrapped_key(sealed: &str) -> String {
    let doc: Value = gitseal::yaml::from_str(sealed).unwrap();
    let envelopes = doc["spec"]["envelopes"].as_object().unwrap();
    let wrapped = envelopes.values().next().unwrap().as_object().unwrap();
    wrapped
        .values()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn verify_decrypts_each_file_with_its_own_wrapping() {
    let s = Scratch::new();
    let good = s.seal(SECRET);
    // Same envelope id and values, but the wrapping holds another data key: a corrupted
    // or substituted envelope. A good file with the same envelope id must not vouch for it.
    let other = s.seal(SECRET);
    let bad = good.replace(&only_wrapped_key(&good), &only_wrapped_key(&other));
    assert_ne!(bad, good);
    s.write("tree/a-good.yaml", &good);
    s.write("tree/b-bad.yaml", &bad);
    let out = s.run(&["verify", "-r", &s.public, "-i", "key.txt", "tree"], None);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", out.stdout);
    assert!(
        lines[0].starts_with("tree/b-bad.yaml:1:spec.encryptedData.")
            && lines[0].contains("data key does not match its envelope id"),
        "{}",
        lines[0]
    );
    // Each alone: the good one is clean, the bad one is not.
    let alone = s.run(
        &[
            "verify",
            "-r",
            &s.public,
            "-i",
            "key.txt",
            "tree/a-good.yaml",
        ],
        None,
    );
    assert_eq!(alone.code, 0, "{}", alone.stdout);
}

#[test]
fn keygen_never_replaces_anything_at_the_path() {
    let s = Scratch::new();
    // A dangling symlink: nothing "exists" there for a check, yet it must not be replaced.
    std::os::unix::fs::symlink("nowhere", s.path("link.key")).unwrap();
    let out = s.run(&["keygen", "-o", "link.key"], None);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("link.key: already exists"),
        "{}",
        out.stderr
    );
    assert_eq!(
        std::fs::read_link(s.path("link.key")).unwrap(),
        std::path::Path::new("nowhere")
    );
    assert!(!s.path("nowhere").exists());
    let stray: Vec<_> = std::fs::read_dir(s.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".gitseal-"))
        .collect();
    assert!(stray.is_empty(), "left a temp file behind");
    // A new path works (its directory is made) and is 0600.
    let out = s.run(&["keygen", "-o", "keys/new.key"], None);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let meta = std::fs::metadata(s.path("keys/new.key")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}

#[test]
fn gitseal_yaml_is_trusted_only_below_the_git_root_and_when_only_we_can_write_it() {
    let s = Scratch::new();
    let rule = format!("rules:\n  - recipients: [{}]\n", s.public);
    // Above the repository's root: not used.
    s.write(".gitseal.yaml", &rule);
    std::fs::create_dir_all(s.path("repo/.git")).unwrap();
    s.write("repo/in.yaml", SECRET);
    let repo = s.path("repo");
    let out = clitool::run_in(&repo, &["seal", "in.yaml"], None);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("in.yaml: no recipients configured"),
        "{}",
        out.stderr
    );
    // In the root: used.
    s.write("repo/.gitseal.yaml", &rule);
    let out = clitool::run_in(&repo, &["seal", "in.yaml"], None);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // World-writable: ignored, with a warning naming it.
    std::fs::set_permissions(
        s.path("repo/.gitseal.yaml"),
        std::fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    let out = clitool::run_in(&repo, &["seal", "in.yaml"], None);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "warning: ignoring {}: it is world-writable",
            s.path("repo/.gitseal.yaml").display()
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("no recipients configured"),
        "{}",
        out.stderr
    );
}

#[test]
fn out_of_range_durations_are_usage_errors() {
    let s = Scratch::new();
    for bad in [
        "99999999999999d",
        "18446744073709551616",
        "3651d",
        "-1s",
        "soon",
    ] {
        let flag = format!("--key-renew-interval={bad}");
        let out = s.run(&["controller", &flag], None);
        assert_eq!(out.code, 2, "{bad}: {}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{bad}: {}", out.stderr);
        assert!(
            out.stderr.contains("--key-renew-interval"),
            "{bad}: {}",
            out.stderr
        );
    }
    let out = s.run(
        &["keys", "retire", "k", "--timeout", "99999999999999d"],
        None,
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
}

/// A lease of 0 (or under 2 s, or fractional) would make leader election spin or the Lease
/// store a different duration than the flag says: refused before anything connects.
#[test]
fn lease_durations_are_whole_seconds_of_at_least_two() {
    let s = Scratch::new();
    for bad in ["0", "0s", "1s", "1500ms", "2.5s"] {
        let flag = format!("--lease-duration={bad}");
        let out = s.run(&["controller", &flag], None);
        assert_eq!(out.code, 2, "{bad}: {}", out.stderr);
        assert!(
            out.stderr.contains("--lease-duration"),
            "{bad}: {}",
            out.stderr
        );
    }
}

/// `sealed` with `spec.template.data` set to `data`.
fn with_template_data(sealed: &str, data: &[(&str, &str)]) -> String {
    let mut doc = yaml_docs(sealed).remove(0);
    let spec = doc["spec"].as_object_mut().unwrap();
    let template = spec
        .entry("template")
        .or_insert_with(|| serde_json::json!({}));
    template["data"] = data
        .iter()
        .map(|(k, v)| (k.to_string(), Value::from(*v)))
        .collect::<serde_json::Map<_, _>>()
        .into();
    gitseal::yaml::to_string(&doc).unwrap()
}

#[test]
fn template_data_renders_offline_survives_merges_and_is_verified() {
    use base64::Engine;
    let b64 = |v: &Value| {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        String::from_utf8(bytes).unwrap()
    };
    let s = Scratch::new();
    let sealed = with_template_data(
        &s.seal(SECRET),
        &[("dsn", "{{ .user }}:{{ .password | upper }}@db")],
    );
    s.write("s.yaml", &sealed);
    let out = s.run(&["unseal", "s.yaml", "-i", "key.txt"], None);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let secret = &yaml_docs(&out.stdout)[0];
    let (user, password) = (
        b64(&secret["data"]["user"]),
        b64(&secret["data"]["password"]),
    );
    assert_eq!(
        b64(&secret["data"]["dsn"]),
        format!("{user}:{}@db", password.to_uppercase())
    );
    let check = |file: &str| s.run(&["verify", "-r", &s.public, file], None);
    assert_eq!(check("s.yaml").code, 0, "{}", check("s.yaml").stdout);

    // Sealing more keys into the file keeps the templates.
    let out = s.run(
        &[
            "seal",
            "-r",
            &s.public,
            "--merge-into",
            "s.yaml",
            "--from-literal",
            "extra=x",
        ],
        None,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let merged = &yaml_docs(&s.read("s.yaml"))[0];
    assert_eq!(
        merged["spec"]["template"]["data"]["dsn"],
        "{{ .user }}:{{ .password | upper }}@db"
    );

    // A forbidden function: verify names file, document and field offline; unseal refuses.
    s.write(
        "bad.yaml",
        &with_template_data(&s.seal(SECRET), &[("dsn", "{{ env \"HOME\" }}")]),
    );
    let out = check("bad.yaml");
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("bad.yaml:")
            && out
                .stdout
                .contains("spec.template.data.dsn: function \"env\" is not available"),
        "{}",
        out.stdout
    );
    let out = s.run(&["unseal", "bad.yaml", "-i", "key.txt"], None);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("function \"env\""), "{}", out.stderr);
    assert!(!out.stdout.contains("data"), "{}", out.stdout);
}
