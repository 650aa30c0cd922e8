//! The Helm chart (deploy/helm/gitseal) with the real helm (built from helm.sh/helm/v3 by
//! `scripts/helm`): `helm lint`, `helm template` with default and non-default values, the
//! values schema rejecting bad values, and the drift check against the kustomize base in
//! deploy/ (rendered by the real kustomize in the test cluster's kubectl): the objects that
//! matter are the same whichever way users install.

#[path = "support/cluster.rs"]
mod cluster;
#[path = "support/deploy.rs"]
mod deploy;

use deploy::{chart_dir, find, helm, helm_template, kustomize, root, run, run_ok};
use serde_json::Value;
use std::collections::BTreeSet;

const NS: &str = "gitseal-system";

fn all_features() -> String {
    chart_dir()
        .join("ci/all-features-values.yaml")
        .to_string_lossy()
        .into_owned()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

fn kinds_and_names(docs: &[Value]) -> BTreeSet<(String, String)> {
    docs.iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_string(),
                d["metadata"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn container(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]["containers"][0]
}

#[test]
fn helm_lint_passes_with_default_and_all_features_values() {
    let out = run_ok(helm().args(["lint", "--strict"]).arg(chart_dir()));
    assert!(
        out.contains("1 chart(s) linted, 0 chart(s) failed"),
        "{out}"
    );
    let out = run_ok(
        helm()
            .args(["lint", "--strict", "--namespace", NS])
            .arg(chart_dir())
            .args(["--values", &all_features()]),
    );
    assert!(out.contains("0 chart(s) failed"), "{out}");
}

#[test]
fn chart_admission_policy_is_deploys_byte_for_byte() {
    let chart = std::fs::read_to_string(chart_dir().join("admission-policy.yaml")).unwrap();
    let base = std::fs::read_to_string(root().join("deploy/admission-policy.yaml")).unwrap();
    assert!(
        chart == base,
        "deploy/helm/gitseal/admission-policy.yaml differs from deploy/admission-policy.yaml: \
         cp deploy/admission-policy.yaml deploy/helm/gitseal/admission-policy.yaml"
    );
    let off = helm_template(NS, &["--set", "admissionPolicy.enabled=false"]);
    assert!(
        !off.iter().any(|d| d["kind"] == "ValidatingAdmissionPolicy"),
        "admissionPolicy.enabled=false renders no policy"
    );
}

#[test]
fn chart_crds_are_deploy_crds_byte_for_byte() {
    let chart = std::fs::read_to_string(chart_dir().join("crds/crds.yaml")).unwrap();
    let base = std::fs::read_to_string(root().join("deploy/crds.yaml")).unwrap();
    assert!(
        chart == base,
        "deploy/helm/gitseal/crds/crds.yaml differs from deploy/crds.yaml: \
         cp deploy/crds.yaml deploy/helm/gitseal/crds/crds.yaml"
    );
    let crds: Vec<String> = std::fs::read_dir(chart_dir().join("crds"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        crds,
        ["crds.yaml"],
        "the chart's crds/ holds only deploy's CRDs"
    );
}

/// The drift check: everything `kubectl apply -k deploy/` creates, the chart's default render
/// creates too (but the Namespace: `helm install --create-namespace` makes that), with the same
/// Deployment (but the image), RBAC, Service, PDB, NetworkPolicy, CRDs and admission policy.
#[test]
fn kustomize_base_and_chart_default_render_agree() {
    let base = kustomize(&cluster::binary(), &root().join("deploy"));
    let chart = helm_template(NS, &[]);

    let mut base_objects = kinds_and_names(&base);
    assert!(base_objects.remove(&("Namespace".into(), NS.into())));
    assert_eq!(
        base_objects,
        kinds_and_names(&chart),
        "the kustomize base and the chart's default render create different objects"
    );

    for doc in &chart {
        let kind = doc["kind"].as_str().unwrap();
        let name = doc["metadata"]["name"].as_str().unwrap();
        let b = find(&base, kind, name);
        assert_eq!(
            doc["apiVersion"], b["apiVersion"],
            "{kind} {name}: apiVersion"
        );
        // kustomize's namespace transformer does not know the admission policy kinds are
        // cluster-scoped and stamps the namespace on them; kubectl and the API server drop it.
        if !kind.starts_with("ValidatingAdmissionPolicy") {
            assert_eq!(
                doc["metadata"]["namespace"], b["metadata"]["namespace"],
                "{kind} {name}: namespace"
            );
        }
        // The chart adds the usual instance/version/chart labels, never changes the base's.
        for (k, v) in b["metadata"]["labels"].as_object().into_iter().flatten() {
            assert_eq!(&doc["metadata"]["labels"][k], v, "{kind} {name}: label {k}");
        }
        match kind {
            "CustomResourceDefinition" => assert_eq!(doc, b, "CRD {name}"),
            "ClusterRole" | "Role" => assert_eq!(doc["rules"], b["rules"], "{kind} {name} rules"),
            "ClusterRoleBinding" | "RoleBinding" => {
                assert_eq!(doc["roleRef"], b["roleRef"], "{kind} {name} roleRef");
                assert_eq!(doc["subjects"], b["subjects"], "{kind} {name} subjects");
            }
            "Service"
            | "PodDisruptionBudget"
            | "NetworkPolicy"
            | "ValidatingAdmissionPolicy"
            | "ValidatingAdmissionPolicyBinding" => {
                assert_eq!(doc["spec"], b["spec"], "{kind} {name} spec")
            }
            "ServiceAccount" => {}
            "Deployment" => {
                let mut chart_spec = doc["spec"].clone();
                let mut base_spec = b["spec"].clone();
                for spec in [&mut chart_spec, &mut base_spec] {
                    // Compared separately: the image, and the template's extra chart labels.
                    spec["template"]["spec"]["containers"][0]["image"] = Value::Null;
                    spec["template"]["metadata"]["labels"] = Value::Null;
                }
                assert_eq!(
                    chart_spec, base_spec,
                    "Deployment spec (args, securityContext, probes, ports, resources, ...)"
                );
                for (k, v) in b["spec"]["template"]["metadata"]["labels"]
                    .as_object()
                    .unwrap()
                {
                    assert_eq!(
                        &doc["spec"]["template"]["metadata"]["labels"][k], v,
                        "pod label {k}"
                    );
                }
                assert_eq!(container(doc)["image"], "gitseal:0.1.0");
            }
            other => panic!("the drift check does not know how to compare a {other}"),
        }
    }
}

#[test]
fn default_render_has_no_monitoring_objects_and_args_the_cli_accepts() {
    let docs = helm_template(NS, &[]);
    for kind in ["ServiceMonitor", "PrometheusRule", "ConfigMap"] {
        assert!(
            docs.iter().all(|d| d["kind"] != kind),
            "{kind} rendered by default (it needs the Prometheus Operator / Grafana)"
        );
    }
    let args = strings(&container(find(&docs, "Deployment", "gitseal-controller"))["args"]);
    assert_eq!(
        args,
        [
            "controller",
            "--log-format=json",
            "--lease-duration=15s",
            "--key-renew-interval=30d"
        ]
    );
    accepted_by_the_cli(&args);
}

/// `gitseal ARGS --help` parses every flag first: an unknown flag or bad value fails.
fn accepted_by_the_cli(args: &[String]) {
    let out = run(std::process::Command::new(env!("CARGO_BIN_EXE_gitseal"))
        .args(args)
        .arg("--help"));
    assert!(
        out.status.success(),
        "gitseal {args:?} --help: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn all_features_values_render_every_object_and_flag() {
    let docs = helm_template("monitoring-test", &["--values", &all_features()]);
    let d = find(&docs, "Deployment", "gitseal-controller");
    assert_eq!(d["metadata"]["namespace"], "monitoring-test");
    assert_eq!(d["spec"]["replicas"], 3);
    let c = container(d);
    assert_eq!(
        c["image"],
        "registry.example/gitseal@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    );
    assert_eq!(c["resources"]["limits"]["memory"], "256Mi");
    let args = strings(&c["args"]);
    for flag in [
        "--log-format=text",
        "--lease-duration=20s",
        "--key-renew-interval=12h",
        "--concurrency=8",
        "--watch-namespace=apps",
        "--watch-namespace=payments",
        "--allow-secret-type=bootstrap.kubernetes.io/token",
        "--deny-secret-type=kubernetes.io/basic-auth",
        "--allow-template-key=argocd.argoproj.io/secret-type",
        "--deny-template-key=example.com/",
        "--allow-namespace=kube-public",
        "--deny-namespace=legacy",
        "--take-over-from=sealed-secrets",
        "--take-over-namespace=apps",
    ] {
        assert!(
            args.contains(&flag.to_string()),
            "{flag} missing from {args:?}"
        );
    }
    // Leases and RBAC follow the release namespace.
    let role = find(&docs, "Role", "gitseal-controller-leader");
    assert_eq!(role["metadata"]["namespace"], "monitoring-test");
    let binding = find(&docs, "ClusterRoleBinding", "gitseal-controller");
    assert_eq!(binding["subjects"][0]["namespace"], "monitoring-test");

    assert!(docs.iter().all(|d| d["kind"] != "PodDisruptionBudget"));
    let np = find(&docs, "NetworkPolicy", "gitseal-controller");
    assert_eq!(
        np["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "monitoring"
    );

    let sm = find(&docs, "ServiceMonitor", "gitseal-controller");
    assert_eq!(sm["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(sm["spec"]["endpoints"][0]["interval"], "15s");
    let svc = find(&docs, "Service", "gitseal-controller-metrics");
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(
            &svc["metadata"]["labels"][k], v,
            "ServiceMonitor selects the Service"
        );
    }

    let rule = find(&docs, "PrometheusRule", "gitseal-controller");
    let alerts: Vec<&Value> = rule["spec"]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    let names: BTreeSet<&str> = alerts
        .iter()
        .map(|a| a["alert"].as_str().unwrap())
        .collect();
    for name in [
        "GitsealUnsealFailures",
        "GitsealNoLeader",
        "GitsealSealingKeyTooOld",
        "GitsealRetireRefused",
    ] {
        assert!(names.contains(name), "alert {name} missing: {names:?}");
    }
    let too_old = alerts
        .iter()
        .find(|a| a["alert"] == "GitsealSealingKeyTooOld")
        .unwrap();
    assert!(
        too_old["expr"].as_str().unwrap().contains("> 43200 + 3600"),
        "the key age alert follows keyRenewInterval (12h): {}",
        too_old["expr"]
    );
    for a in &alerts {
        let expr = a["expr"].as_str().unwrap();
        assert!(
            expr.contains(r#"namespace="monitoring-test""#),
            "{}: {expr}",
            a["alert"]
        );
        assert!(a["annotations"]["description"].is_string());
    }

    let cm = find(&docs, "ConfigMap", "gitseal-controller-dashboard");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    let dashboard: Value =
        serde_json::from_str(cm["data"]["gitseal.json"].as_str().unwrap()).expect("JSON");
    assert_eq!(dashboard["uid"], "gitseal");
    assert!(dashboard["panels"].as_array().unwrap().len() >= 8);
}

/// Every series the alerts and the dashboard query is one the controller exports
/// (src/controller/metrics.rs registers them; counters get `_total`, histograms `_bucket`).
#[test]
fn alerts_and_dashboard_use_metrics_the_controller_exports() {
    let source = std::fs::read_to_string(root().join("src/controller/metrics.rs")).unwrap();
    let mut exported = BTreeSet::new();
    for part in source.split("registry.register(").skip(1) {
        let name = part.split('"').nth(1).unwrap();
        let kind_hint = part.split(')').next().unwrap_or_default();
        let base = format!("gitseal_{name}");
        exported.insert(base.clone());
        exported.insert(format!("{base}_total"));
        for suffix in ["_bucket", "_sum", "_count"] {
            if kind_hint.contains("seconds") || name.ends_with("_seconds") {
                exported.insert(format!("{base}{suffix}"));
            }
        }
    }
    let docs = helm_template(NS, &["--values", &all_features()]);
    let rule = find(&docs, "PrometheusRule", "gitseal-controller");
    let cm = find(&docs, "ConfigMap", "gitseal-controller-dashboard");
    let mut text = rule["spec"].to_string();
    text.push_str(cm["data"]["gitseal.json"].as_str().unwrap());
    let used: BTreeSet<String> = text
        .match_indices("gitseal_")
        .map(|(i, _)| {
            text[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect();
    let missing: Vec<&String> = used.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "the chart queries series the controller does not export: {missing:?} \
         (exported: {exported:?})"
    );
}

/// values.schema.json rejects values the controller or Kubernetes would reject later.
#[test]
fn schema_rejects_bad_values() {
    for (set, field) in [
        ("replicas=0", "replicas"),
        ("controller.logFormat=xml", "logFormat"),
        ("controller.leaseDuration=15x", "leaseDuration"),
        ("controller.keyRenewInterval=monthly", "keyRenewInterval"),
        ("controller.watchNamespaces[0]=Bad_Name", "watchNamespaces"),
        ("image.digest=latest", "digest"),
        ("image.pullPolicy=Sometimes", "pullPolicy"),
        ("replica=2", "replica"),
        ("controller.policy.allowSecretType[0]=x", "allowSecretType"),
        ("metricsPort=70000", "metricsPort"),
    ] {
        let out = run(helm()
            .args(["template", "gitseal"])
            .arg(chart_dir())
            .args(["--set", set]));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "--set {set} was accepted");
        assert!(
            stderr.contains("values don't meet the specifications of the schema")
                && stderr.contains(field),
            "--set {set}: the error names the schema and {field}: {stderr}"
        );
    }
    // And good non-default values pass it.
    let docs = helm_template(
        NS,
        &[
            "--set",
            "controller.keyRenewInterval=0",
            "--set",
            "prometheusRule.enabled=true",
        ],
    );
    let rule = find(&docs, "PrometheusRule", "gitseal-controller");
    let alerts = rule["spec"]["groups"][0]["rules"].to_string();
    assert!(
        !alerts.contains("GitsealSealingKeyTooOld"),
        "no key age alert when renewal is off"
    );
}
