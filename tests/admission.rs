//! Admission-time validation against the real kube-apiserver: the CRD's own CEL rules and
//! schema limits, and the shipped ValidatingAdmissionPolicy (deploy/admission-policy.yaml),
//! refuse malformed SealedSecrets with a 422 naming the field, and admit everything
//! `gitseal seal` makes (every scope, several keys, merged files, template data, empty).
//!
//! The policy is bound here to this test's namespace only (the shipped binding covers every
//! namespace): other test binaries share the API server and create malformed objects on
//! purpose to test the controller's reasons.

mod ctrltool;

use ctrltool::*;
use gitseal::crypto::Identity;
use gitseal::manifest::{SealOptions, merge_into, parse_documents, parse_secret};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

const ID: &str = "6fd4a72d98aedfb872f30581a7012bd8";
const OTHER_ID: &str = "758cad1361d6f4865a1a062a2496211b";
/// Base64 of nonce + ciphertext + tag of a 4-byte value: the shape of a real one.
const CT: &str = "AAAAAAAAAAAAAAABfaPRiCGGArFhOseBpfPXkNieLeuC450=";

fn sealed_api(env: &Env, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("gitseal.dev", "v1alpha1", "SealedSecret");
    Api::namespaced_with(env.client.clone(), ns, &ApiResource::from_gvk(&gvk))
}

async fn create(api: &Api<DynamicObject>, doc: &Value) -> Result<(), kube::Error> {
    let obj: DynamicObject = serde_json::from_value(doc.clone()).unwrap();
    api.create(&PostParams::default(), &obj).await.map(|_| ())
}

/// The shipped policy bound to `ns`, once the API server's policy informer has it: a
/// known-bad object (an unused envelope) is refused.
async fn bind_policy(env: &Env, ns: &str) {
    let mut probe = base(ns, "probe");
    doc_set(
        &mut probe,
        &["spec", "envelopes", OTHER_ID],
        json!({"0123456789abcdef": "YWdl"}),
    );
    bind_admission_policy(env, ns, &probe).await;
}

/// A well-formed object (not decryptable: admission never decrypts) to break one field of.
fn base(ns: &str, name: &str) -> Value {
    json!({
        "apiVersion": "gitseal.dev/v1alpha1", "kind": "SealedSecret",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "scope": "strict",
            "boundTo": format!("{ns}/{name}"),
            "encryptedData": {"password": format!("gs1:strict:{ID}:{CT}")},
            "envelopes": {ID: {"0123456789abcdef": "YWdlLWVuY3J5cHRpb24ub3Jn"}},
        },
    })
}

fn value(doc: &mut Value, key: &str, v: Value) {
    doc["spec"]["encryptedData"][key] = v;
}

#[tokio::test]
async fn malformed_sealed_secrets_are_refused_at_admission_naming_the_field() {
    let env = Env::start().await;
    let ns = env.namespace().await;
    bind_policy(&env, &ns).await;
    let api = sealed_api(&env, &ns);

    let long = |n: usize| "A".repeat(n);
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Edit, String)> = vec![
        // The CRD's own rules and limits.
        ("plain-text", Box::new(|d| value(d, "password", json!("hunter2"))),
         "spec.encryptedData[password]: Invalid value: \"string\": not a gitseal value".into()),
        ("unknown-version", Box::new(|d| value(d, "password", json!(format!("gs2:strict:{ID}:{CT}")))),
         "spec.encryptedData[password]: Invalid value: \"string\": not a gitseal value".into()),
        ("other-scope", Box::new(|d| value(d, "password", json!(format!("gs1:cluster:{ID}:{CT}")))),
         "spec.encryptedData.password: not sealed for spec.scope strict".into()),
        ("bad-scope", Box::new(|d| d["spec"]["scope"] = json!("global")),
         "spec.scope: Unsupported value: \"global\"".into()),
        ("bound-elsewhere", Box::new(|d| { let ns = d["metadata"]["namespace"].as_str().unwrap().to_string(); d["spec"]["boundTo"] = json!(format!("{ns}/other")) }),
         "spec.boundTo: Invalid value: \"object\": spec.boundTo must be <namespace>/<metadata.name>".into()),
        ("bound-cluster", Box::new(|d| { d["spec"]["scope"] = json!("cluster"); value(d, "password", json!(format!("gs1:cluster:{ID}:{CT}"))) }),
         "spec.boundTo must be <namespace>/<metadata.name> for scope strict, <namespace> for scope namespace, and absent for scope cluster".into()),
        ("too-many-values", Box::new(|d| for i in 0..4097 { value(d, &format!("k{i}"), json!(format!("gs1:strict:{ID}:{CT}"))) }),
         "spec.encryptedData: Too many: 4098: must have at most 4096 items".into()),
        ("value-too-long", Box::new(move |d| value(d, "password", json!(format!("gs1:strict:{ID}:{}", long(1_398_187))))),
         "spec.encryptedData.password: Too long: may not be more than 1398187 bytes".into()),
        ("too-many-envelopes", Box::new(|d| for i in 0..257 { doc_set(d, &["spec", "envelopes", &format!("{i:032x}")], json!({})) }),
         "spec.envelopes: Too many: 258: must have at most 256 items".into()),
        ("too-many-wrappings", Box::new(|d| for i in 0..33 { doc_set(d, &["spec", "envelopes", ID, &format!("{i:016x}")], json!("YWdl")) }),
         format!("spec.envelopes.{ID}: Too many: 34: must have at most 32 items")),
        ("wrapped-too-long", Box::new(move |d| doc_set(d, &["spec", "envelopes", ID, "0123456789abcdef"], json!(long(1369)))),
         "Too long: may not be more than 1368 bytes".into()),
        ("too-many-labels", Box::new(|d| for i in 0..65 { doc_set(d, &["spec", "template", "metadata", "labels", &format!("l{i}")], json!("v")) }),
         "spec.template.metadata.labels: Too many: 65: must have at most 64 items".into()),
        ("template-too-long", Box::new(move |d| doc_set(d, &["spec", "template", "data", "dsn"], json!(long(65_537)))),
         "spec.template.data.dsn: Too long: may not be more than 65536 bytes".into()),
        // The ValidatingAdmissionPolicy.
        ("short-envelope-id", Box::new(|d| value(d, "password", json!(format!("gs1:strict:abc:{CT}")))),
         "spec.encryptedData.password: not a gitseal value gs1:<scope>:<32 hex envelope id>:<base64>".into()),
        ("uppercase-envelope-id", Box::new(|d| value(d, "password", json!(format!("gs1:strict:{}:{CT}", ID.to_uppercase())))),
         "spec.encryptedData.password: not a gitseal value".into()),
        ("not-base64", Box::new(|d| value(d, "password", json!(format!("gs1:strict:{ID}:not*base64!")))),
         "spec.encryptedData.password: not a gitseal value".into()),
        ("no-ciphertext", Box::new(|d| value(d, "password", json!(format!("gs1:strict:{ID}:")))),
         "spec.encryptedData.password: not a gitseal value".into()),
        ("missing-envelope", Box::new(|d| value(d, "password", json!(format!("gs1:strict:{OTHER_ID}:{CT}")))),
         "spec.encryptedData.password: names an envelope that spec.envelopes does not hold".into()),
        ("unused-envelope", Box::new(|d| doc_set(d, &["spec", "envelopes", OTHER_ID], json!({"0123456789abcdef": "YWdl"}))),
         format!("spec.envelopes.{OTHER_ID}: no value uses this envelope")),
        ("envelope-id-not-hex", Box::new(|d| doc_set(d, &["spec", "envelopes", "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"], json!({"0123456789abcdef": "YWdl"}))),
         "spec.envelopes.zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz: an envelope id is 32 lowercase hex characters".into()),
        ("bad-key-id", Box::new(|d| doc_set(d, &["spec", "envelopes", ID], json!({"k1": "YWdl"}))),
         format!("spec.envelopes.{ID}: wrappings are keyed by 16 lowercase hex key ids")),
        ("empty-envelope", Box::new(|d| doc_set(d, &["spec", "envelopes", ID], json!({}))),
         "wrappings are keyed by 16 lowercase hex key ids (and there is at least one)".into()),
        ("bound-other-namespace", Box::new(|d| d["spec"]["boundTo"] = json!(format!("prod/{}", d["metadata"]["name"].as_str().unwrap()))),
         "spec.boundTo: prod/bound-other-namespace does not match this object (expected ".into()),
        ("key-with-slash", Box::new(|d| value(d, "a/b", json!(format!("gs1:strict:{ID}:{CT}")))),
         "spec.encryptedData.a/b: not a valid Secret key".into()),
        ("key-dotdot", Box::new(|d| value(d, "..", json!(format!("gs1:strict:{ID}:{CT}")))),
         "spec.encryptedData...: not a valid Secret key".into()),
        ("template-key", Box::new(|d| doc_set(d, &["spec", "template", "data", "a b"], json!("{{ .password }}"))),
         "spec.template.data.a b: not a valid Secret key".into()),
    ];
    assert!(cases.len() >= 20);
    let mut wrong = vec![];
    for (name, edit, want) in &cases {
        let mut doc = base(&ns, name);
        edit(&mut doc);
        match create(&api, &doc).await {
            Ok(()) => wrong.push(format!("{name}: a malformed object was admitted")),
            Err(err) if api_status(&err) != 422 || !err.to_string().contains(want.as_str()) => {
                wrong.push(format!(
                    "{name}: expected 422 with {want:?}, got: {}",
                    message(&err)
                ))
            }
            Err(_) => {}
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // An update that breaks spec is refused too; one that leaves spec alone is not judged.
    create(&api, &base(&ns, "ok"))
        .await
        .expect("well-formed object admitted");
    let err = api
        .patch(
            "ok",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"envelopes": {OTHER_ID: {"0123456789abcdef": "YWdl"}}}})),
        )
        .await
        .expect_err("an update adding an unused envelope");
    assert!(
        err.to_string().contains("no value uses this envelope"),
        "{err}"
    );
    api.patch(
        "ok",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"team": "a"}}})),
    )
    .await
    .expect("a metadata-only update");
    println!(
        "refused {} malformed SealedSecrets, each naming its field",
        cases.len()
    );
}

#[tokio::test]
async fn everything_gitseal_seal_makes_is_admitted() {
    let env = Env::start().await;
    let ns = env.namespace().await;
    bind_policy(&env, &ns).await;
    let api = sealed_api(&env, &ns);
    let (a, b) = (Identity::generate(), Identity::generate());
    let both = [a.recipient(), b.recipient()];

    let mut objects = vec![];
    for scope in ["strict", "namespace", "cluster"] {
        objects.push(seal_with(
            &both,
            &ns,
            scope,
            &[("password", "p"), ("user.name", "u")],
            scope,
        ));
    }
    // A merged file: two envelopes, each used.
    let mut merged = seal_with(&both[..1], &ns, "merged", &[("a", "1")], "strict");
    let doc = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "merged", "namespace": ns}, "stringData": {"b": "2"}});
    let input = parse_secret(&parse_documents("t", &doc.to_string()).unwrap()[0]).unwrap();
    let opts = SealOptions {
        recipients: &both,
        scope: None,
        default_scope: Default::default(),
        namespace: None,
        allow_empty: false,
    };
    merge_into(&mut merged, &input, &opts).unwrap();
    assert_eq!(merged.spec.envelopes.len(), 2);
    objects.push(merged);
    // Template data over the values, and a 1 MiB value.
    let mut templated = seal_with(&both, &ns, "templated", &[("password", "p")], "strict");
    templated
        .spec
        .template
        .get_or_insert_with(Default::default)
        .data = [(
        "dsn".to_string(),
        "postgres://{{ .password }}@db".to_string(),
    )]
    .into_iter()
    .collect();
    objects.push(templated);
    let big = "x".repeat(1024 * 1024 - 64);
    objects.push(seal_with(&both, &ns, "big", &[("blob", &big)], "strict"));

    for sealed in &objects {
        let name = sealed.metadata.name.clone().unwrap();
        let mut doc = serde_json::to_value(sealed).unwrap();
        doc["metadata"]["namespace"] = json!(ns);
        create(&api, &doc)
            .await
            .unwrap_or_else(|e| panic!("{name}: gitseal's own output was refused: {e}"));
    }
    // And the controller's status writes (a subresource) are never judged by the policy.
    let status = json!({"status": {"observedGeneration": 1}});
    api.patch_status("strict", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("status write");
}

/// Set `path` in `doc`, making objects on the way.
fn doc_set(doc: &mut Value, path: &[&str], v: Value) {
    let mut at = doc;
    for p in &path[..path.len() - 1] {
        if at.get(*p).is_none() {
            at[*p] = json!({});
        }
        at = &mut at[*p];
    }
    at[path[path.len() - 1]] = v;
}

fn message(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(s) => format!("{} {}", s.code, s.message),
        other => other.to_string(),
    }
}

fn api_status(err: &kube::Error) -> u16 {
    match err {
        kube::Error::Api(s) => s.code,
        _ => 0,
    }
}
