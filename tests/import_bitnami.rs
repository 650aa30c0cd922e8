//! `gitseal import sealed-secrets` against the real Bitnami kubeseal v0.36.6 (built by
//! `scripts/bitnami`) and keys made by openssl in the Bitnami controller's format: every
//! scope, the template (labels, annotations, type, immutable, data), keys after a renewal
//! given as one `v1 List`, agreement with kubeseal's own `--recovery-unseal`, and bad input
//! (wrong key, truncation, a moved value, other kinds) failing with nothing written.

mod clitool;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clitool::Scratch;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Command;

/// The Secret every test seals (user admin, password hunter2), with metadata kubeseal copies
/// into `spec.template`: labels, an annotation, a type and immutable.
fn secret() -> String {
    clitool::SECRET.replace(
        "type: Opaque\n",
        "type: kubernetes.io/basic-auth\nimmutable: true\n",
    )
}

fn kubeseal() -> PathBuf {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("bash")
        .arg(format!("{root}/scripts/bitnami"))
        .args(["path", "kubeseal"])
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "the real kubeseal is missing: run `bash scripts/bitnami build` (builds Sealed Secrets \
         v0.36.6 from its Go module; needs Go >= 1.26): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn yaml_docs(text: &str) -> Vec<Value> {
    gitseal::yaml::from_multiple(text).unwrap()
}

/// Run a command in the scratch directory with `stdin`; its stdout, asserting success.
fn run_tool(s: &Scratch, program: &std::path::Path, args: &[&str], stdin: &str) -> String {
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(s.dir.path());
    let out = clitool::run_command(cmd, Some(stdin));
    assert_eq!(
        out.code,
        0,
        "{} {args:?}: {}",
        program.display(),
        out.stderr
    );
    out.stdout
}

/// A Bitnami controller key `name`: `name.key` (PKCS#8 from openssl), `name.crt`, and the
/// key Secret the controller keeps (type kubernetes.io/tls, PKCS#1 `tls.key`).
fn bitnami_key(s: &Scratch, name: &str) -> Value {
    let openssl = std::path::Path::new("openssl");
    let (key, crt) = (format!("{name}.key"), format!("{name}.crt"));
    run_tool(
        s,
        openssl,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &crt,
            "-days",
            "3650",
            "-subj",
            "/CN=sealed-secret/O=sealed-secret",
        ],
        "",
    );
    let pkcs1 = run_tool(s, openssl, &["rsa", "-in", &key, "-traditional"], "");
    assert!(pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {
            "name": format!("sealed-secrets-{name}"),
            "namespace": "kube-system",
            "labels": {"sealedsecrets.bitnami.com/sealed-secrets-key": "active"}
        },
        "data": {
            "tls.crt": STANDARD.encode(s.read(&crt)),
            "tls.key": STANDARD.encode(pkcs1)
        }
    })
}

/// Keys as `kubectl get secret -l sealedsecrets.bitnami.com/sealed-secrets-key -o yaml`
/// prints them: one `v1 List`.
fn key_list(s: &Scratch, file: &str, keys: &[&Value]) {
    let list = json!({"apiVersion": "v1", "kind": "List", "items": keys, "metadata": {"resourceVersion": ""}});
    s.write(file, &gitseal::yaml::to_string(&list).unwrap());
}

/// `secret` sealed by kubeseal with `key`'s certificate in `scope`.
fn kubeseal_seal(s: &Scratch, key: &str, scope: &str, secret: &str) -> String {
    let crt = format!("{key}.crt");
    run_tool(
        s,
        &kubeseal(),
        &["--cert", &crt, "--scope", scope, "-o", "yaml"],
        secret,
    )
}

fn secret_named(name: &str) -> String {
    secret().replace("  name: db\n", &format!("  name: {name}\n"))
}

/// `gitseal unseal` of `file` with the scratch's age key: the one Secret.
fn unseal(s: &Scratch, file: &str) -> Value {
    let out = s.run(&["unseal", file, "-i", "key.txt"], None);
    assert_eq!(out.code, 0, "unseal {file}: {}", out.stderr);
    yaml_docs(&out.stdout).remove(0)
}

fn decoded(secret: &Value) -> Vec<(String, String)> {
    secret["data"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let bytes = STANDARD.decode(v.as_str().unwrap()).unwrap();
            (k.clone(), String::from_utf8(bytes).unwrap())
        })
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn every_scope_and_the_template_carry_over_and_unseal_to_the_input() {
    let s = Scratch::new();
    let key = bitnami_key(&s, "k1");
    key_list(&s, "keys.yaml", &[&key]);
    for (file, name, scope) in [
        ("strict.yaml", "db", "strict"),
        ("sub/ns.yaml", "db-ns", "namespace-wide"),
        ("cluster.yaml", "db-cl", "cluster-wide"),
    ] {
        s.write(
            &format!("bitnami/{file}"),
            &kubeseal_seal(&s, "k1", scope, &secret_named(name)),
        );
    }
    // Template data as Bitnami users add it to kubeseal's output.
    let mut doc = yaml_docs(&s.read("bitnami/strict.yaml")).remove(0);
    doc["spec"]["template"]["data"] = json!({"dsn": "{{ .user }}:{{ .password }}"});
    s.write(
        "bitnami/strict.yaml",
        &gitseal::yaml::to_string(&doc).unwrap(),
    );
    // A file with no Bitnami SealedSecret in the directory is skipped and listed.
    s.write(
        "bitnami/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
    );

    let out = import(&s, "keys.yaml", &["bitnami", "-w", "out"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("skipped bitnami/config.yaml"),
        "{}",
        out.stderr
    );
    assert!(!s.path("out/config.yaml").exists());
    for (file, name, scope, bound) in [
        ("strict.yaml", "db", "strict", Some("prod/db")),
        ("sub/ns.yaml", "db-ns", "namespace", Some("prod")),
        ("cluster.yaml", "db-cl", "cluster", None),
    ] {
        let text = s.read(&format!("out/{file}"));
        assert!(
            !text.contains("hunter2") && !text.contains("aHVudGVyMg"),
            "{text}"
        );
        let sealed = yaml_docs(&text).remove(0);
        assert_eq!(sealed["apiVersion"], "gitseal.dev/v1alpha1");
        assert_eq!(sealed["spec"]["scope"], scope, "{file}");
        assert_eq!(sealed["spec"]["boundTo"].as_str(), bound, "{file}");
        let template = &sealed["spec"]["template"];
        assert_eq!(
            template["metadata"]["annotations"],
            json!({"note": "hello"}),
            "{file}"
        );

        let secret = unseal(&s, &format!("out/{file}"));
        assert_eq!(secret["metadata"]["name"], name);
        assert_eq!(secret["metadata"]["namespace"], "prod");
        assert_eq!(secret["metadata"]["labels"], json!({"app": "db"}));
        assert_eq!(secret["metadata"]["annotations"], json!({"note": "hello"}));
        assert_eq!(secret["type"], "kubernetes.io/basic-auth");
        assert_eq!(secret["immutable"], true);
        let mut want = vec![("password", "hunter2"), ("user", "admin")];
        if name == "db" {
            want.insert(0, ("dsn", "admin:hunter2"));
        }
        assert_eq!(decoded(&secret), pairs(&want), "{file}");
    }
}

#[test]
fn keys_after_a_renewal_open_every_file_as_kubeseal_recovery_does() {
    let s = Scratch::new();
    let (old, new) = (bitnami_key(&s, "old"), bitnami_key(&s, "new"));
    key_list(&s, "keys.yaml", &[&old, &new]);
    let mut names = Vec::new();
    for (i, (key, scope)) in [
        ("old", "strict"),
        ("new", "strict"),
        ("old", "cluster-wide"),
        ("new", "namespace-wide"),
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("app{i}");
        let secret =
            secret_named(&name).replace("  user: admin\n", &format!("  user: admin-{i}\n"));
        s.write(
            &format!("in/{name}.yaml"),
            &kubeseal_seal(&s, key, scope, &secret),
        );
        names.push(name);
    }
    let out = import(&s, "keys.yaml", &["in", "-w", "out"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for name in &names {
        let file = format!("in/{name}.yaml");
        let theirs = run_tool(
            &s,
            &kubeseal(),
            &[
                "--recovery-unseal",
                "--recovery-private-key",
                "keys.yaml",
                "-o",
                "yaml",
            ],
            &s.read(&file),
        );
        let theirs = yaml_docs(&theirs).remove(0);
        let ours = unseal(&s, &format!("out/{name}.yaml"));
        assert_eq!(decoded(&ours), decoded(&theirs), "{name}");
        for field in ["type", "immutable"] {
            assert_eq!(ours[field], theirs[field], "{name} {field}");
        }
        assert_eq!(ours["metadata"]["labels"], theirs["metadata"]["labels"]);
        // Bitnami's Secret keeps its scope annotation; gitseal's scope is in the spec.
        let mut annotations = theirs["metadata"]["annotations"]
            .as_object()
            .unwrap()
            .clone();
        annotations.retain(|k, _| !k.starts_with("sealedsecrets.bitnami.com/"));
        assert_eq!(ours["metadata"]["annotations"], Value::Object(annotations));
    }
    // The keys also work as PEM files, PKCS#8 (openssl's) and the PKCS#1 of a Secret.
    let out = import(&s, "old.key", &["in", "--keys", "new.key"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(yaml_docs(&out.stdout).len(), names.len());
}

/// `gitseal import sealed-secrets ARGS… --keys KEYS -r <the scratch's age key>`.
fn import(s: &Scratch, keys: &str, args: &[&str]) -> clitool::Run {
    let mut all = vec!["import", "sealed-secrets", "--keys", keys, "-r", &s.public];
    all.extend_from_slice(args);
    s.run(&all, None)
}

/// A value of `doc` with its last `cut` bytes cut off.
fn truncate(doc: &mut Value, key: &str, cut: usize) {
    let value = &mut doc["spec"]["encryptedData"][key];
    let bytes = STANDARD.decode(value.as_str().unwrap()).unwrap();
    *value = Value::from(STANDARD.encode(&bytes[..bytes.len() - cut]));
}

#[test]
fn bad_input_fails_with_its_exit_code_naming_the_field_and_writes_nothing() {
    let s = Scratch::new();
    let (k1, k2) = (bitnami_key(&s, "k1"), bitnami_key(&s, "k2"));
    key_list(&s, "keys.yaml", &[&k1]);
    key_list(&s, "other.yaml", &[&k2]);
    let good = kubeseal_seal(&s, "k1", "strict", &secret());
    let ns_wide = kubeseal_seal(&s, "k1", "namespace-wide", &secret());
    // A wrong key: exit 4, file:doc:field.
    s.write("one/db.yaml", &good);
    let out = import(&s, "other.yaml", &["one/db.yaml"]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("one/db.yaml:1:spec.encryptedData.password: none of the 1 key(s)"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("hunter2"));

    // (case, file, exit code, message, whether a directory skips it rather than failing)
    let mut cases: Vec<(&str, String, i32, &str, bool)> = Vec::new();
    // Truncated inside the RSA part (2 + 256 bytes) and inside the AES part.
    for cut in [200, 1] {
        let mut doc = yaml_docs(&good).remove(0);
        truncate(&mut doc, "user", cut);
        cases.push((
            "truncated",
            gitseal::yaml::to_string(&doc).unwrap(),
            4,
            "spec.encryptedData.user: ",
            false,
        ));
    }
    // Moved to another name (strict) and to another namespace (namespace-wide): refused as
    // Bitnami's controller refuses them (the OAEP label no longer matches).
    cases.push((
        "renamed",
        good.replace("name: db\n", "name: db2\n"),
        4,
        "spec.encryptedData.",
        false,
    ));
    cases.push((
        "moved",
        ns_wide.replace("namespace: prod\n", "namespace: dev\n"),
        4,
        "spec.encryptedData.",
        false,
    ));
    // Another kind or apiVersion, named on the command line: exit 3.
    cases.push((
        "v1beta1",
        good.replace("bitnami.com/v1alpha1", "bitnami.com/v1beta1"),
        3,
        "no Bitnami SealedSecret",
        true,
    ));
    cases.push((
        "gitseal",
        s.seal(&secret()),
        3,
        "no Bitnami SealedSecret",
        true,
    ));
    // Mixed with other documents; the deprecated whole-Secret format.
    cases.push((
        "mixed",
        format!("{good}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\n"),
        3,
        ":2: not a Bitnami SealedSecret",
        false,
    ));
    let list = json!({"apiVersion": "v1", "kind": "List", "items": [yaml_docs(&good).remove(0)]});
    cases.push((
        "list",
        gitseal::yaml::to_string(&list).unwrap(),
        3,
        ":1:items: a List of Bitnami SealedSecrets",
        false,
    ));
    let mut old = yaml_docs(&good).remove(0);
    old["spec"] = json!({"data": "AAAA"});
    cases.push((
        "v1data",
        gitseal::yaml::to_string(&old).unwrap(),
        3,
        ":1:spec.data: the deprecated",
        false,
    ));

    for (what, text, code, message, skipped_in_dir) in &cases {
        // Named, and in a directory beside a good file: -w FILE and -w DIR write nothing,
        // --in-place changes nothing, stdout gets nothing.
        let dir = format!("case-{what}");
        s.write(&format!("{dir}/a-good.yaml"), &good);
        s.write(&format!("{dir}/b-bad.yaml"), text);
        let named = format!("{dir}/b-bad.yaml");
        let mut runs = vec![vec![named.as_str()], vec![named.as_str(), "-w", "out.yaml"]];
        if !skipped_in_dir {
            runs.push(vec![dir.as_str(), "-w", "mirror"]);
            runs.push(vec![dir.as_str(), "--in-place"]);
        }
        for args in runs {
            let out = import(&s, "keys.yaml", &args);
            assert_eq!(out.code, *code, "{what} {args:?}: {}", out.stderr);
            assert!(
                out.stderr.contains(message),
                "{what} {args:?}: {}",
                out.stderr
            );
            assert!(out.stdout.is_empty(), "{what}: {}", out.stdout);
        }
        assert!(
            !s.path("out.yaml").exists() && !s.path("mirror").exists(),
            "{what}"
        );
        assert_eq!(s.read(&format!("{dir}/a-good.yaml")), good, "{what}");
        assert_eq!(&s.read(&format!("{dir}/b-bad.yaml")), text, "{what}");
        let stray: Vec<_> = std::fs::read_dir(s.path(&dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with(".gitseal-"))
            .collect();
        assert!(stray.is_empty(), "{what}: {stray:?}");
    }
}

#[test]
fn in_place_rewrites_every_bitnami_file_and_leaves_the_rest() {
    let s = Scratch::new();
    let key = bitnami_key(&s, "k1");
    key_list(&s, "keys.yaml", &[&key]);
    s.write("repo/a.yaml", &kubeseal_seal(&s, "k1", "strict", &secret()));
    let json_sealed = run_tool(
        &s,
        &kubeseal(),
        &["--cert", "k1.crt", "-o", "json"],
        &secret_named("j"),
    );
    s.write("repo/deep/b.json", &json_sealed);
    let other = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n";
    s.write("repo/c.yaml", other);
    let out = import(&s, "k1.key", &["repo", "--in-place"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("imported 2 files in place"),
        "{}",
        out.stderr
    );
    assert_eq!(s.read("repo/c.yaml"), other);
    assert!(
        s.read("repo/deep/b.json").trim_start().starts_with('{'),
        "JSON stays JSON"
    );
    for (file, name) in [("repo/a.yaml", "db"), ("repo/deep/b.json", "j")] {
        let secret = unseal(&s, file);
        assert_eq!(secret["metadata"]["name"], name);
        assert_eq!(
            decoded(&secret),
            pairs(&[("password", "hunter2"), ("user", "admin")])
        );
    }
    // Run again: nothing left to import (exit 3), nothing changed.
    let before = s.read("repo/a.yaml");
    let out = import(&s, "k1.key", &["repo", "--in-place"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_eq!(s.read("repo/a.yaml"), before);
    // --in-place needs files; -w and --in-place exclude each other.
    let out = s.run(
        &[
            "import",
            "sealed-secrets",
            "-",
            "--keys",
            "k1.key",
            "-r",
            &s.public,
            "--in-place",
        ],
        Some(&before),
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    let out = s.run(
        &[
            "import",
            "sealed-secrets",
            "repo",
            "--keys",
            "k1.key",
            "--in-place",
            "-w",
            "x",
        ],
        None,
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
}
