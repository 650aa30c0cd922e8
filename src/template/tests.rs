use super::*;
use serde::Deserialize;

/// tests/fixtures/templates.json: {name, template, values, expected}, the expected output
/// rendered by Go's text/template with sprig.GenericFuncMap() (tests/go/templates).
#[derive(Deserialize)]
struct Case {
    name: String,
    template: String,
    values: BTreeMap<String, String>,
    expected: String,
}

fn values(v: &[(&str, &str)]) -> BTreeMap<String, Plaintext> {
    v.iter()
        .map(|(k, v)| (k.to_string(), Plaintext::new(v.as_bytes().to_vec())))
        .collect()
}

fn one(template: &str, v: &[(&str, &str)]) -> Result<String, TemplateProblem> {
    let t: Map<String> = [("out".to_string(), template.to_string())]
        .into_iter()
        .collect();
    let out = render(&t, values(v))?;
    Ok(String::from_utf8(out["out"].expose().to_vec()).unwrap())
}

#[test]
fn renders_as_go_and_sprig_do() {
    let text = include_str!("../../tests/fixtures/templates.json");
    let cases: Vec<Case> = serde_json::from_str(text).unwrap();
    assert!(cases.len() >= 40);
    let mut failed = Vec::new();
    for c in &cases {
        let t: Map<String> = [(c.name.clone(), c.template.clone())].into_iter().collect();
        let v = c
            .values
            .iter()
            .map(|(k, v)| (k.clone(), Plaintext::new(v.as_bytes().to_vec())))
            .collect();
        match render(&t, v) {
            Ok(out) => {
                let got = String::from_utf8(out[&c.name].expose().to_vec()).unwrap();
                if got != c.expected {
                    failed.push(format!("{}: got {got:?}, Go says {:?}", c.name, c.expected));
                }
            }
            Err(e) => failed.push(format!("{}: {}", c.name, e.message)),
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn every_registered_function_is_covered_by_a_vector() {
    let text = include_str!("../../tests/fixtures/templates.json");
    for f in SUPPORTED {
        assert!(text.contains(f), "no vector uses {f}");
    }
}

#[test]
fn forbidden_and_unknown_functions_are_refused_before_rendering() {
    for f in [
        "env",
        "expandenv",
        "getHostByName",
        "now",
        "randAlphaNum",
        "uuidv4",
        "htpasswd",
    ] {
        let t: Map<String> = [("dsn".to_string(), format!("{{{{ {f} \"HOME\" }}}}"))]
            .into_iter()
            .collect();
        let problems = check(&t);
        assert_eq!(problems.len(), 1, "{f}");
        assert_eq!(problems[0].field(), "spec.template.data.dsn");
        assert!(
            problems[0].message.contains(&format!("function \"{f}\"")),
            "{}",
            problems[0].message
        );
        assert!(
            problems[0].message.contains("environment"),
            "{}",
            problems[0].message
        );
    }
    // Nested in pipelines, branches and defines too; unsupported sprig names say so.
    for t in [
        "{{ if true }}{{ .a | sortAlpha }}{{ end }}",
        "{{ define \"x\" }}{{ sortAlpha . }}{{ end }}{{ template \"x\" . }}",
        "{{ (sortAlpha .) }}",
    ] {
        let e = one(t, &[("a", "v")]).unwrap_err();
        assert!(
            e.message.contains("\"sortAlpha\" is not available (not a"),
            "{t}: {}",
            e.message
        );
    }
    assert!(
        one("{{ .a ", &[])
            .unwrap_err()
            .message
            .starts_with("does not parse")
    );
}

#[test]
fn errors_hold_no_values() {
    // gotmpl's comparison error would print its operands.
    let e = one("{{ if lt .a 3 }}x{{ end }}", &[("a", "s3cr3t")]).unwrap_err();
    assert!(!e.message.contains("s3cr3t"), "{}", e.message);
    let e = one("{{ index .a 99 }}", &[("a", "s3cr3t")]).unwrap_err();
    assert!(!e.message.contains("s3cr3t"), "{}", e.message);
}

#[test]
fn output_is_bounded() {
    let e = one("{{ repeat 2000000 .a }}", &[("a", "x")]).unwrap_err();
    assert!(e.message.contains("limit"), "{}", e.message);
    let e = one("{{ indent 2000000 .a }}", &[("a", "x")]).unwrap_err();
    assert!(e.message.contains("limit"), "{}", e.message);
    let e = one(
        "{{ range $i, $v := list 1 2 3 4 5 6 7 8 9 10 11 12 }}{{ repeat 100000 $.a }}{{ end }}",
        &[("a", "x")],
    )
    .unwrap_err();
    assert!(e.message.contains("limit"), "{}", e.message);
    let e = one("{{ range 1000000 }}x{{ end }}", &[]).unwrap_err();
    assert!(e.message.contains("range"), "{}", e.message);
    // Each key under the limit, the whole Secret over it.
    let big = "x".repeat(600 * 1024);
    let t: Map<String> = [
        ("a".to_string(), "{{ .v }}".to_string()),
        ("b".to_string(), "{{ .v }}".to_string()),
    ]
    .into_iter()
    .collect();
    assert!(render(&t, values(&[("v", &big)])).is_err());
}

#[test]
fn a_template_key_replaces_a_decrypted_one() {
    let t: Map<String> = [("password".to_string(), "[{{ .password }}]".to_string())]
        .into_iter()
        .collect();
    let out = render(&t, values(&[("password", "p"), ("user", "u")])).unwrap();
    assert_eq!(out["password"].expose(), b"[p]");
    assert_eq!(out["user"].expose(), b"u");
    assert!(render(&Map::new(), values(&[("k", "v")])).unwrap().len() == 1);
}

#[test]
fn binary_values_are_refused_for_templates_only() {
    let t: Map<String> = [("o".to_string(), "x".to_string())].into_iter().collect();
    let v = BTreeMap::from([("bin".to_string(), Plaintext::new(vec![0xff, 0xfe]))]);
    let e = render(&t, v.clone()).unwrap_err();
    assert_eq!(e.field(), "spec.encryptedData.bin");
    assert!(render(&Map::new(), v).is_ok());
}

#[test]
fn string_parameters_refuse_other_values_as_go_does() {
    // Go: `invalid value; expected string` and `expected string; found 3`.
    for t in [
        "{{ upper .missing }}",
        "{{ upper 3 }}",
        "{{ repeat \"3\" .a }}",
    ] {
        let e = one(t, &[("a", "s3cr3t")]).unwrap_err();
        assert!(e.message.contains("expected"), "{t}: {}", e.message);
        assert!(!e.message.contains("s3cr3t"), "{}", e.message);
    }
    // interface{} parameters take anything, as sprig's do.
    assert_eq!(
        one("{{ toString .missing }}|{{ quote 3 }}", &[]).unwrap(),
        "<nil>|\"3\""
    );
}
