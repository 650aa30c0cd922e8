//! The test cluster's real node (`scripts/cluster up --node`, tests/support/node.rs): the
//! kubelet registers and becomes Ready on containerd, and a Pod scheduled onto it — uid 65532,
//! read-only root filesystem, no capabilities, a locally built FROM-scratch image — gets an
//! address in 198.18.0.0/15 and reaches the API server through the `kubernetes` Service's
//! ClusterIP with its service account token, verifying the serving certificate for that IP;
//! and a pod reaches another pod, Ready through its own probe, through a ClusterIP Service.

#[path = "support/node.rs"]
mod node;

use std::{net::Ipv4Addr, time::Duration};

use k8s_openapi::{
    api::core::v1::{
        Capabilities, Container, HTTPGetAction, Node, Pod, PodSecurityContext, PodSpec, Probe,
        SeccompProfile, SecurityContext, Service, ServicePort, ServiceSpec,
    },
    apimachinery::pkg::util::intstr::IntOrString,
};
use kube::{
    Api,
    api::{LogParams, ObjectMeta, PostParams},
    runtime::wait::{Condition, await_condition},
};
use node::{NODE_IP, NODE_NAME, NodeNamespace};
use serde::Deserialize;

/// Pod start on a loaded 2-core machine: image already present, but sandbox, CNI and
/// container creation can take a while.
const POD_TIMEOUT: Duration = Duration::from_secs(180);

/// What the probe (tests/cluster/probe) prints.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    service_host: String,
    service_port: String,
    local_addr: Option<String>,
    remote_addr: Option<String>,
    server_version: Option<String>,
    user: Option<String>,
    error: Option<String>,
    uid: u32,
    gid: u32,
    root_writable: bool,
    cap_eff: String,
    cap_prm: String,
}

fn in_test_range(ip: &str) -> bool {
    let ip: Ipv4Addr = ip.parse().unwrap_or_else(|e| panic!("{ip:?}: {e}"));
    let o = ip.octets();
    o[0] == 198 && (o[1] == 18 || o[1] == 19)
}

fn host(addr: &str) -> &str {
    addr.rsplit_once(':').map_or(addr, |(h, _)| h)
}

/// A Pod of the probe image, as restricted as the gitseal Deployment: uid/gid 65532,
/// non-root, read-only root filesystem, no capabilities, no privilege escalation,
/// RuntimeDefault seccomp, never pulled. `args` select the probe's mode; `app` labels it.
fn probe_pod(image: &str, name: &str, args: &[&str], app: Option<&str>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: app.map(|a| [("app".to_owned(), a.to_owned())].into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            restart_policy: Some("Never".into()),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(65532),
                run_as_group: Some(65532),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            containers: vec![Container {
                name: "probe".into(),
                image: Some(image.into()),
                image_pull_policy: Some("Never".into()),
                args: (!args.is_empty()).then(|| args.iter().map(|a| a.to_string()).collect()),
                security_context: Some(SecurityContext {
                    read_only_root_filesystem: Some(true),
                    allow_privilege_escalation: Some(false),
                    capabilities: Some(Capabilities {
                        drop: Some(vec!["ALL".into()]),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Waits until pod `name` has finished (Succeeded or Failed) and returns it with its logs.
async fn finished_pod(pods: &Api<Pod>, name: &str) -> (Pod, String) {
    let finished = |p: Option<&Pod>| {
        p.and_then(|p| p.status.as_ref()?.phase.as_deref())
            .is_some_and(|ph| ph == "Succeeded" || ph == "Failed")
    };
    let started = std::time::Instant::now();
    let done =
        tokio::time::timeout(POD_TIMEOUT, await_condition(pods.clone(), name, finished)).await;
    eprintln!(
        "pod {name}: finished {:?} after the wait began",
        started.elapsed()
    );
    let pod = pods.get(name).await.expect("get pod");
    assert!(
        done.is_ok() && finished.matches_object(Some(&pod)),
        "pod {name} did not finish within {POD_TIMEOUT:?}: {:?}",
        pod.status
    );
    let logs = pods
        .logs(name, &LogParams::default())
        .await
        .expect("pod logs (API server -> kubelet by InternalIP)");
    (pod, logs)
}

#[tokio::test]
async fn node_registers_ready_with_the_same_release_on_containerd() {
    let client = node::client().await;
    let n = Api::<Node>::all(client).get(NODE_NAME).await.expect("node");
    let status = n.status.expect("node status");
    let ready = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready condition");
    assert_eq!(ready.status, "True", "node Ready: {ready:?}");
    let info = status.node_info.expect("nodeInfo");
    assert!(
        info.kubelet_version.starts_with("v1.34."),
        "kubelet {}",
        info.kubelet_version
    );
    assert!(
        info.container_runtime_version
            .starts_with("containerd://1."),
        "runtime {}",
        info.container_runtime_version
    );
    let addrs = status.addresses.unwrap_or_default();
    assert!(
        addrs
            .iter()
            .any(|a| a.type_ == "InternalIP" && a.address == NODE_IP),
        "node addresses {addrs:?}"
    );
    let taints = n.spec.and_then(|s| s.taints).unwrap_or_default();
    assert!(taints.is_empty(), "node taints {taints:?}");
}

#[tokio::test]
async fn restricted_pod_reaches_the_api_server_through_the_kubernetes_service() {
    let image = node::probe_image();
    let client = node::client().await;
    let ns = NodeNamespace::create(&client, "node-probe").await;
    let svc = Api::<Service>::namespaced(client.clone(), "default")
        .get("kubernetes")
        .await
        .expect("kubernetes Service");
    let cluster_ip = svc
        .spec
        .and_then(|s| s.cluster_ip)
        .expect("kubernetes ClusterIP");
    assert!(in_test_range(&cluster_ip), "ClusterIP {cluster_ip}");

    let pod = probe_pod(image, "probe", &[], None);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
    let (pod, logs) = finished_pod(&pods, "probe").await;
    let status = pod.status.clone().unwrap_or_default();
    let report: Report =
        serde_json::from_str(logs.trim()).unwrap_or_else(|e| panic!("probe output {logs:?}: {e}"));
    assert_eq!(
        status.phase.as_deref(),
        Some("Succeeded"),
        "probe failed: {report:?}"
    );
    assert_eq!(report.error, None);

    // Scheduled onto the node, addressed from the pod range.
    assert_eq!(
        pod.spec.and_then(|s| s.node_name).as_deref(),
        Some(NODE_NAME)
    );
    let pod_ip = status.pod_ip.expect("pod IP");
    assert!(in_test_range(&pod_ip), "pod IP {pod_ip}");
    assert_ne!(pod_ip, NODE_IP);

    // In-cluster config pointed at the Service, and the connection went to the ClusterIP
    // from the pod's own address.
    assert_eq!(report.service_host, cluster_ip);
    assert_eq!(report.service_port, "443");
    assert_eq!(
        report.remote_addr.as_deref(),
        Some(format!("{cluster_ip}:443").as_str())
    );
    assert_eq!(
        report.local_addr.as_deref().map(host),
        Some(pod_ip.as_str())
    );
    // It was the API server, and it authenticated the pod's service account token.
    assert!(
        report
            .server_version
            .as_deref()
            .is_some_and(|v| v.starts_with("v1.34.")),
        "{report:?}"
    );
    assert_eq!(
        report.user.as_deref(),
        Some(format!("system:serviceaccount:{}:default", ns.name).as_str())
    );

    // Restricted as asked.
    assert_eq!((report.uid, report.gid), (65532, 65532));
    assert!(!report.root_writable, "root filesystem writable");
    assert_eq!(report.cap_eff, "0000000000000000");
    assert_eq!(report.cap_prm, "0000000000000000");
}

#[tokio::test]
async fn pod_reaches_another_pod_through_a_cluster_ip_service() {
    let image = node::probe_image();
    let client = node::client().await;
    let ns = NodeNamespace::create(&client, "node-svc").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let pp = PostParams::default();

    // A server pod, Ready through its own HTTP readiness probe (kubelet -> pod IP).
    let mut server = probe_pod(image, "server", &["serve", ":8080"], Some("probe-server"));
    let c = &mut server.spec.as_mut().expect("spec").containers[0];
    c.readiness_probe = Some(Probe {
        http_get: Some(HTTPGetAction {
            port: IntOrString::Int(8080),
            path: Some("/ready".into()),
            ..Default::default()
        }),
        period_seconds: Some(1),
        ..Default::default()
    });
    pods.create(&pp, &server).await.expect("create server pod");
    let svc = Service {
        metadata: ObjectMeta {
            name: Some("probe-server".into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            selector: Some([("app".to_owned(), "probe-server".to_owned())].into()),
            ports: Some(vec![ServicePort {
                port: 80,
                target_port: Some(IntOrString::Int(8080)),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let svc = Api::<Service>::namespaced(client.clone(), &ns.name)
        .create(&pp, &svc)
        .await
        .expect("create Service");
    let ip = svc.spec.and_then(|s| s.cluster_ip).expect("ClusterIP");
    assert!(in_test_range(&ip), "ClusterIP {ip}");
    let ready = |p: Option<&Pod>| {
        p.and_then(|p| p.status.as_ref()?.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    };
    tokio::time::timeout(POD_TIMEOUT, await_condition(pods.clone(), "server", ready))
        .await
        .unwrap_or_else(|_| panic!("server pod not Ready within {POD_TIMEOUT:?}"))
        .expect("watching server pod");
    let server_ip = pods
        .get("server")
        .await
        .expect("server pod")
        .status
        .and_then(|s| s.pod_ip)
        .expect("server pod IP");

    // A client pod on the same bridge: pod -> ClusterIP -> pod needs kube-proxy's NAT both
    // ways (br_netfilter for the reply).
    let url = format!("http://{ip}:80/metrics");
    let client_pod = probe_pod(image, "client", &["get", &url], None);
    pods.create(&pp, &client_pod)
        .await
        .expect("create client pod");
    let (pod, logs) = finished_pod(&pods, "client").await;
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Get {
        status: u16,
        body: String,
        remote_addr: Option<String>,
        error: Option<String>,
    }
    let got: Get =
        serde_json::from_str(logs.trim()).unwrap_or_else(|e| panic!("client output {logs:?}: {e}"));
    let phase = pod.status.and_then(|s| s.phase);
    assert_eq!(
        phase.as_deref(),
        Some("Succeeded"),
        "client failed: {got:?}"
    );
    assert_eq!(got.error, None);
    assert_eq!(got.status, 200);
    assert_eq!(got.body, "probe-ok server\n", "answered by the server pod");
    assert_eq!(
        got.remote_addr.as_deref(),
        Some(format!("{ip}:80").as_str())
    );
    assert_ne!(ip, server_ip, "went through the ClusterIP, not to the pod");
}
