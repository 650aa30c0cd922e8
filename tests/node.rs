//! The test cluster's real node (`scripts/cluster up --node`, tests/support/node.rs): the
//! kubelet registers and becomes Ready on containerd, and a Pod scheduled onto it — uid 65532,
//! read-only root filesystem, no capabilities, a locally built FROM-scratch image — gets an
//! address in 198.18.0.0/15 and reaches the API server through the `kubernetes` Service's
//! ClusterIP with its service account token, verifying the serving certificate for that IP.

#[path = "support/node.rs"]
mod node;

use std::{net::Ipv4Addr, time::Duration};

use k8s_openapi::api::core::v1::{
    Capabilities, Container, Node, Pod, PodSecurityContext, PodSpec, SeccompProfile,
    SecurityContext, Service,
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

    let pod = Pod {
        metadata: ObjectMeta {
            name: Some("probe".into()),
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
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let started = std::time::Instant::now();
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
    let finished = |p: Option<&Pod>| {
        p.and_then(|p| p.status.as_ref()?.phase.as_deref())
            .is_some_and(|ph| ph == "Succeeded" || ph == "Failed")
    };
    let done = tokio::time::timeout(
        POD_TIMEOUT,
        await_condition(pods.clone(), "probe", finished),
    )
    .await;
    eprintln!("probe pod: created -> finished in {:?}", started.elapsed());
    let pod = pods.get("probe").await.expect("get pod");
    let status = pod.status.clone().unwrap_or_default();
    assert!(
        done.is_ok() && finished.matches_object(Some(&pod)),
        "probe pod did not finish within {POD_TIMEOUT:?}: {status:?}"
    );
    let logs = pods
        .logs("probe", &LogParams::default())
        .await
        .expect("probe logs (API server -> kubelet by InternalIP)");
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
