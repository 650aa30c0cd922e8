//! The install manifests in deploy/: the CRDs match the Rust types byte for byte, and the
//! Deployment, RBAC and kustomization keep the properties the docs promise (hardened pod,
//! least-privilege controller role, no Secrets for users, every file installed).

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// Every `*.yaml` / `*.yml` file in deploy/, sorted by name.
fn yaml_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy_dir())
        .expect("read deploy/")
        .map(|e| e.expect("deploy/ entry").path())
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml") | Some("yml")
                )
        })
        .collect();
    files.sort();
    files
}

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// Every document of every YAML file in deploy/, with the file it came from.
fn documents() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for path in yaml_files() {
        let text = std::fs::read_to_string(&path).expect("read manifest");
        let docs = gitseal::yaml::from_multiple::<Value>(&text)
            .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
        for doc in docs {
            if doc.is_null() {
                continue;
            }
            out.push((file_name(&path), doc));
        }
    }
    out
}

fn find(kind: &str, name: &str) -> Value {
    let found: Vec<Value> = documents()
        .into_iter()
        .map(|(_, d)| d)
        .filter(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {kind} {name} in deploy/"
    );
    found.into_iter().next().unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().expect("string list item").to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn rules(role: &Value) -> Vec<Value> {
    role["rules"].as_array().cloned().unwrap_or_default()
}

/// Rules that apply to core Secrets (group "" or "*", resource "secrets", a subresource of it,
/// or "*").
fn secret_rules(role: &Value) -> Vec<Value> {
    rules(role)
        .into_iter()
        .filter(|r| {
            let groups = strings(&r["apiGroups"]);
            let resources = strings(&r["resources"]);
            groups.iter().any(|g| g.is_empty() || g == "*")
                && resources
                    .iter()
                    .any(|res| res == "*" || res == "secrets" || res.starts_with("secrets/"))
        })
        .collect()
}

fn assert_no_wildcards(role: &Value) {
    let name = role["metadata"]["name"].as_str().unwrap_or("?");
    assert!(
        role.get("aggregationRule").is_none(),
        "{name}: must not aggregate other roles"
    );
    for rule in rules(role) {
        for field in ["apiGroups", "resources", "verbs", "nonResourceURLs"] {
            for item in strings(&rule[field]) {
                assert!(
                    !item.contains('*'),
                    "{name}: wildcard {item:?} in {field} of rule {rule}"
                );
            }
        }
        assert!(
            rule.get("nonResourceURLs").is_none(),
            "{name}: nonResourceURLs in rule {rule}"
        );
        for verb in strings(&rule["verbs"]) {
            assert!(
                !["escalate", "bind", "impersonate", "deletecollection"].contains(&verb.as_str()),
                "{name}: dangerous verb {verb:?} in rule {rule}"
            );
        }
    }
}

#[test]
fn crds_match_the_rust_types() {
    let committed = std::fs::read_to_string(deploy_dir().join("crds.yaml")).unwrap_or_default();
    assert!(
        committed == gitseal::api::crds_yaml(),
        "deploy/crds.yaml drifted from the Rust types: run `cargo run -q -- crds > deploy/crds.yaml`"
    );
}

#[test]
fn admission_policy_matches_the_rust_code() {
    let committed =
        std::fs::read_to_string(deploy_dir().join("admission-policy.yaml")).unwrap_or_default();
    assert!(
        committed == gitseal::api::admission::policy_yaml(),
        "deploy/admission-policy.yaml drifted from src/api/admission.rs: run \
         `cargo run -q -- crds --admission-policy > deploy/admission-policy.yaml`"
    );
}

#[test]
fn every_manifest_parses_and_has_kind_and_name() {
    let docs = documents();
    assert!(!docs.is_empty());
    for (file, doc) in docs {
        assert!(
            doc["apiVersion"].is_string(),
            "{file}: document without apiVersion"
        );
        assert!(doc["kind"].is_string(), "{file}: document without kind");
        if doc["kind"] != "Kustomization" {
            assert!(
                doc["metadata"]["name"].is_string(),
                "{file}: {} without metadata.name",
                doc["kind"]
            );
        }
    }
}

#[test]
fn deployment_is_hardened() {
    let d = find("Deployment", "gitseal-controller");
    assert_eq!(d["spec"]["replicas"], 2, "two replicas (leader + standby)");
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "gitseal-controller");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert!(
        pod["topologySpreadConstraints"].is_array()
            || pod["affinity"]["podAntiAffinity"].is_object(),
        "replicas are spread across nodes"
    );

    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(strings(&c["args"])[0], "controller");

    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["runAsUser"], 65532);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    assert!(sc["capabilities"]["add"].is_null(), "no added capabilities");
    assert_ne!(sc["privileged"], true);

    let limits = c["resources"]["limits"]
        .as_object()
        .expect("resources.limits");
    assert!(limits.contains_key("memory"), "memory limit set");
    assert!(c["resources"]["requests"]["cpu"].is_string());
    assert!(c["resources"]["requests"]["memory"].is_string());

    let env: BTreeSet<(String, String)> = c["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["valueFrom"]["fieldRef"]["fieldPath"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    assert!(env.contains(&("POD_NAME".into(), "metadata.name".into())));
    assert!(env.contains(&("POD_NAMESPACE".into(), "metadata.namespace".into())));

    let port = c["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .find(|p| p["name"] == "metrics")
        .expect("port named metrics");
    assert_eq!(port["containerPort"], 8080);
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe} path");
        assert!(
            get["port"] == "metrics" || get["port"] == 8080,
            "{probe} port is the metrics port"
        );
    }

    let pdb = find("PodDisruptionBudget", "gitseal-controller");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        d["spec"]["selector"]["matchLabels"]
    );
}

#[test]
fn controller_cluster_role_is_least_privilege() {
    let role = find("ClusterRole", "gitseal-controller");
    assert_no_wildcards(&role);

    let allowed: BTreeSet<&str> = [
        "get", "list", "watch", "create", "patch", "update", "delete",
    ]
    .into_iter()
    .collect();
    let secret_rules = secret_rules(&role);
    assert!(!secret_rules.is_empty(), "the controller needs Secrets");
    for rule in secret_rules {
        assert_eq!(
            strings(&rule["resources"]),
            ["secrets"],
            "no Secret subresources: {rule}"
        );
        assert!(rule.get("resourceNames").is_none() || rule["resourceNames"].is_null());
        for verb in strings(&rule["verbs"]) {
            assert!(
                allowed.contains(verb.as_str()),
                "verb {verb:?} on secrets: {rule}"
            );
        }
    }

    // Events only through events.k8s.io; no core events, no other groups than expected.
    for rule in rules(&role) {
        for group in strings(&rule["apiGroups"]) {
            assert!(
                ["", "gitseal.dev", "events.k8s.io"].contains(&group.as_str()),
                "unexpected API group {group:?}: {rule}"
            );
        }
        if strings(&rule["apiGroups"]).contains(&String::new()) {
            assert_eq!(
                strings(&rule["resources"]),
                ["secrets"],
                "core group: only secrets"
            );
        }
    }

    // Leases are namespaced, not cluster-wide.
    for rule in rules(&role) {
        assert!(
            !strings(&rule["resources"]).contains(&"leases".to_string()),
            "leases belong in the namespaced Role"
        );
    }
    let leader = find("Role", "gitseal-controller-leader");
    assert_eq!(leader["metadata"]["namespace"], "gitseal-system");
    assert_no_wildcards(&leader);
    for rule in rules(&leader) {
        assert_eq!(strings(&rule["apiGroups"]), ["coordination.k8s.io"]);
        assert_eq!(strings(&rule["resources"]), ["leases"]);
    }

    let binding = find("ClusterRoleBinding", "gitseal-controller");
    assert_eq!(binding["roleRef"]["name"], "gitseal-controller");
    assert_eq!(binding["subjects"][0]["name"], "gitseal-controller");
    assert_eq!(binding["subjects"][0]["namespace"], "gitseal-system");
    let rb = find("RoleBinding", "gitseal-controller-leader");
    assert_eq!(rb["roleRef"]["kind"], "Role");
    assert_eq!(rb["roleRef"]["name"], "gitseal-controller-leader");
}

#[test]
fn user_roles_grant_no_secrets() {
    let view = find("ClusterRole", "gitseal-view");
    assert_eq!(
        view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"],
        "true"
    );
    let edit = find("ClusterRole", "gitseal-edit");
    assert_eq!(
        edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"],
        "true"
    );
    for role in [&view, &edit] {
        assert_no_wildcards(role);
        assert!(
            secret_rules(role).is_empty(),
            "{} grants access to Secrets",
            role["metadata"]["name"]
        );
        for rule in rules(role) {
            assert_eq!(strings(&rule["apiGroups"]), ["gitseal.dev"]);
        }
    }
    for rule in rules(&view) {
        for verb in strings(&rule["verbs"]) {
            assert!(
                ["get", "list", "watch"].contains(&verb.as_str()),
                "view verb {verb:?}"
            );
        }
    }
}

#[test]
fn kustomization_lists_every_file() {
    let text = std::fs::read_to_string(deploy_dir().join("kustomization.yaml")).unwrap();
    let k: Value = gitseal::yaml::from_str(&text).unwrap();
    assert_eq!(k["namespace"], "gitseal-system");
    let listed: BTreeSet<String> = strings(&k["resources"]).into_iter().collect();
    let present: BTreeSet<String> = yaml_files()
        .iter()
        .map(|p| file_name(p))
        .filter(|n| n != "kustomization.yaml")
        .collect();
    assert_eq!(
        listed, present,
        "deploy/kustomization.yaml resources must be exactly the other files in deploy/"
    );
}

#[test]
fn deployment_args_are_accepted_by_the_cli() {
    let d = find("Deployment", "gitseal-controller");
    let args = strings(&d["spec"]["template"]["spec"]["containers"][0]["args"]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gitseal"))
        .args(&args)
        .arg("--help")
        .output()
        .expect("run gitseal");
    assert!(
        out.status.success(),
        "gitseal {args:?} --help: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn network_policy_allows_only_metrics_in_and_api_and_dns_out() {
    let np = find("NetworkPolicy", "gitseal-controller");
    let d = find("Deployment", "gitseal-controller");
    assert_eq!(
        np["spec"]["podSelector"]["matchLabels"],
        d["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(strings(&np["spec"]["policyTypes"]), ["Ingress", "Egress"]);
    let ports = |dir: &str| -> BTreeSet<(String, i64)> {
        np["spec"][dir]
            .as_array()
            .expect("rules")
            .iter()
            .flat_map(|r| {
                r["ports"]
                    .as_array()
                    .expect("every rule names ports")
                    .clone()
            })
            .map(|p| {
                (
                    p["protocol"].as_str().unwrap_or("TCP").to_string(),
                    p["port"].as_i64().expect("numeric port"),
                )
            })
            .collect()
    };
    assert_eq!(ports("ingress"), [("TCP".to_string(), 8080)].into());
    let egress: BTreeSet<(String, i64)> = [("TCP", 443), ("TCP", 6443), ("UDP", 53), ("TCP", 53)]
        .into_iter()
        .map(|(p, n)| (p.to_string(), n))
        .collect();
    assert_eq!(ports("egress"), egress);
}

#[test]
fn gitops_examples_parse_and_point_at_existing_paths() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |p: &str| -> Vec<Value> {
        let text = std::fs::read_to_string(root.join(p)).unwrap();
        gitseal::yaml::from_multiple(&text).unwrap_or_else(|e| panic!("{p}: {e}"))
    };
    let argo = read("examples/argocd/application.yaml");
    assert_eq!(argo[0]["kind"], "Application");
    let path = argo[0]["spec"]["source"]["path"].as_str().unwrap();
    assert!(root.join(path).is_dir(), "Argo CD path {path} exists");

    let flux = read("examples/flux/kustomization.yaml");
    let kustomizations: Vec<&Value> = flux
        .iter()
        .filter(|d| d["kind"] == "Kustomization")
        .collect();
    assert_eq!(kustomizations.len(), 2);
    for k in &kustomizations {
        let path = k["spec"]["path"].as_str().unwrap();
        assert!(root.join(path).is_dir(), "Flux path {path} exists");
    }
    let apps = kustomizations
        .iter()
        .find(|k| k["spec"]["path"] == "./examples/clusters/prod")
        .expect("apps Kustomization");
    let infra = kustomizations
        .iter()
        .find(|k| k["spec"]["path"] == "./deploy")
        .expect("infrastructure Kustomization");
    assert_eq!(
        apps["spec"]["dependsOn"][0]["name"],
        infra["metadata"]["name"]
    );
}
