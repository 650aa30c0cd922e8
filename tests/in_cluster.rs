//! The controller as users run it: the image built from the Dockerfile (`scripts/image`),
//! loaded into the test cluster's node (a real kubelet + containerd, `scripts/cluster up
//! --node`), installed with the unmodified kustomize base (only the image overridden by an
//! overlay) and, separately, with the Helm chart and the real helm.
//!
//! Checked: both replicas Ready through their own probes; exactly one leads (the Lease
//! holder); a sealed example becomes a Secret; the controller authenticates with its service
//! account token through the in-cluster config only; /metrics through the Service from a pod;
//! leader Pod deleted -> the standby leads within the lease duration and repairs drift right
//! after; `kubectl rollout restart` under the PDB never leaves the cluster without a leader
//! for longer than the lease duration; the container process runs as 65532, with a read-only
//! root filesystem and no capabilities (read from /proc on the node); upgrading from the
//! previous image tag keeps every Secret's resourceVersion.
//!
//! The installs are cluster-wide (CRDs, ClusterRoles, the gitseal-system namespace), so the
//! tests run one at a time. Figures (handover, leaderless gaps) are printed with `figure:`.

#[path = "support/cluster.rs"]
mod cluster;
#[path = "support/deploy.rs"]
mod deploy;
#[path = "support/node.rs"]
mod node;

#[path = "support/install.rs"]
mod install;

use install::*;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kustomize_install_runs_hardened_elects_one_leader_and_fails_over() {
    let _serial = SERIAL.lock().await;
    let image = current_image().clone();
    let client = client().await;
    uninstall(&client, &["in-cluster-kustomize"]).await;
    let overlay = overlay(&image);
    let applied = Instant::now();
    kubectl(&[
        "apply",
        "--server-side",
        "-k",
        overlay.path().to_str().unwrap(),
    ]);

    // Both replicas Ready through their own probes; exactly one leads.
    let pods = rolled_out(&client, &image.reference).await;
    let leader = the_leader(&client, &pods).await;
    let ready_after = applied.elapsed();
    // Server-side: each Pod's creation to its Ready condition.
    let pod_ready: Vec<String> = pods
        .iter()
        .map(|p| {
            let created = p.metadata.creation_timestamp.as_ref().unwrap().0;
            let ready = p
                .status
                .as_ref()
                .unwrap()
                .conditions
                .as_ref()
                .unwrap()
                .iter()
                .find(|c| c.type_ == "Ready")
                .and_then(|c| c.last_transition_time.as_ref())
                .unwrap()
                .0;
            format!("{} s", ready.as_second() - created.as_second())
        })
        .collect();
    for p in &pods {
        let c = &p.spec.as_ref().unwrap().containers[0];
        assert_eq!(
            c.readiness_probe
                .as_ref()
                .unwrap()
                .http_get
                .as_ref()
                .unwrap()
                .path
                .as_deref(),
            Some("/readyz")
        );
    }

    // The process as the node runs it: uid/gid 65532, no capabilities in any set, / read-only,
    // in-cluster config (no kubeconfig in env or args; the service account token mounted).
    for p in &pods {
        let proc = process_of(p);
        assert_eq!(proc.uid, "65532 65532 65532 65532", "{}", p.name_any());
        assert_eq!(proc.gid, "65532 65532 65532 65532", "{}", p.name_any());
        for (set, value) in &proc.caps {
            assert_eq!(value, "0000000000000000", "{set} of {}", p.name_any());
        }
        assert!(
            proc.root_read_only,
            "root filesystem of {} is writable",
            p.name_any()
        );
        assert!(
            !proc.env_names.iter().any(|e| e == "KUBECONFIG"),
            "KUBECONFIG in the environment: {:?}",
            proc.env_names
        );
        assert!(
            proc.env_names
                .iter()
                .any(|e| e == "KUBERNETES_SERVICE_HOST")
        );
        assert!(
            proc.mounts
                .iter()
                .any(|m| m == "/var/run/secrets/kubernetes.io/serviceaccount"),
            "service account token mounted: {:?}",
            proc.mounts
        );
        let args = p.spec.as_ref().unwrap().containers[0]
            .args
            .clone()
            .unwrap_or_default();
        assert!(!args.iter().any(|a| a.contains("kubeconfig")), "{args:?}");
    }

    // A sealed example becomes a Secret.
    key_published(&client).await;
    let apps = app_namespace(&client, "in-cluster-kustomize").await;
    seal_example(&apps, "db");
    let secret = unsealed(&client, &apps, "db").await;
    eprintln!(
        "figure: kubectl apply -k -> both replicas Ready and one leading {:.1} s (Pod created -> Ready: {pod_ready:?}); first Secret unsealed {:.1} s (includes the /proc checks, keys fetch and seal)",
        ready_after.as_secs_f64(),
        applied.elapsed().as_secs_f64()
    );

    // Its service account's RBAC is what the controller runs with: without the
    // ClusterRoleBinding a new SealedSecret is not unsealed; with it back, it is.
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    let mut binding = bindings.get("gitseal-controller").await.unwrap();
    bindings
        .delete("gitseal-controller", &DeleteParams::default())
        .await
        .unwrap();
    seal_example(&apps, "db-revoked");
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(
        Api::<Secret>::namespaced(client.clone(), &apps)
            .get_opt("db-revoked")
            .await
            .unwrap()
            .is_none(),
        "unsealed without the service account's ClusterRoleBinding: the controller has other credentials"
    );
    binding.metadata.resource_version = None;
    binding.metadata.uid = None;
    bindings
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    unsealed(&client, &apps, "db-revoked").await;

    // /metrics through the Service, from a Pod.
    let svc = Api::<Service>::namespaced(client.clone(), NS)
        .get("gitseal-controller-metrics")
        .await
        .unwrap();
    let ip = svc.spec.unwrap().cluster_ip.unwrap();
    let text = get_from_pod(&client, &apps, &format!("http://{ip}:8080/metrics")).await;
    assert!(text.contains("# TYPE gitseal_leader gauge"), "{text}");
    assert!(metric(&text, "gitseal_leader").is_some(), "{text}");

    // Leader Pod deleted: the standby leads within the lease duration, and repairs drift.
    let standby = pods
        .iter()
        .map(|p| p.name_any())
        .find(|n| *n != leader)
        .unwrap();
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), NS);
    let deleted = Instant::now();
    pods_api
        .delete(&leader, &DeleteParams::default())
        .await
        .unwrap();
    let (new_leader, lease_after) = eventually("the standby takes the Lease", SLOW, || async {
        let (holder, current, l) = lease(&client).await?;
        (current && holder != leader).then_some((holder, l))
    })
    .await;
    let handover = deleted.elapsed();
    assert_eq!(
        new_leader, standby,
        "the standby, not the replacement Pod, takes over"
    );
    eprintln!(
        "figure: leader Pod deleted -> standby holds the Lease after {:.1} s (lease duration {} s; transitions {:?})",
        handover.as_secs_f64(),
        LEASE.as_secs(),
        lease_after.spec.as_ref().unwrap().lease_transitions
    );
    // The deleted leader releases the Lease on SIGTERM: the standby takes it at its next
    // try (every lease/5), well within one lease duration even on a loaded machine.
    assert!(
        handover <= LEASE,
        "handover took {handover:?}, lease duration {LEASE:?}"
    );
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &apps);
    let repaired_from = Instant::now();
    secrets
        .delete("db", &DeleteParams::default())
        .await
        .unwrap();
    let repaired = eventually(
        "the new leader restores the deleted Secret",
        SLOW,
        || async {
            let s = secrets.get_opt("db").await.ok()??;
            (s.uid() != secret.uid()).then_some(s)
        },
    )
    .await;
    eprintln!(
        "figure: drift repair right after failover: {:.1} s",
        repaired_from.elapsed().as_secs_f64()
    );
    assert_eq!(
        repaired.data.unwrap()["password"].0,
        b"correct-horse-battery-staple"
    );
    rolled_out(&client, &image.reference).await;

    // `kubectl rollout restart` under the PDB: never without a current leader for longer
    // than the lease duration.
    let before: Vec<String> = controller_pods(&client)
        .await
        .iter()
        .map(|p| p.name_any())
        .collect();
    let restarted = Instant::now();
    kubectl(&[
        "-n",
        NS,
        "rollout",
        "restart",
        &format!("deployment/{DEPLOYMENT}"),
    ]);
    let (mut longest, mut gap_start): (Duration, Option<Instant>) = (Duration::ZERO, None);
    let deadline = Instant::now() + SLOW;
    loop {
        let pods = controller_pods(&client).await;
        let names: Vec<String> = pods
            .iter()
            .filter(|p| is_ready(p) || p.metadata.deletion_timestamp.is_some())
            .map(|p| p.name_any())
            .collect();
        let led = match lease(&client).await {
            Some((holder, current, _)) => current && names.contains(&holder),
            None => false,
        };
        match (led, gap_start) {
            (false, None) => gap_start = Some(Instant::now()),
            (true, Some(t)) => {
                longest = longest.max(t.elapsed());
                gap_start = None;
            }
            _ => {}
        }
        let replaced = pods.len() == 2
            && pods
                .iter()
                .all(|p| is_ready(p) && !before.contains(&p.name_any()));
        if replaced && led {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rollout restart did not finish within {SLOW:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!(
        "figure: rollout restart took {:.1} s; longest time without a current leader {:.1} s (lease duration {} s)",
        restarted.elapsed().as_secs_f64(),
        longest.as_secs_f64(),
        LEASE.as_secs()
    );
    assert!(
        longest <= LEASE,
        "no leader for {longest:?} during the rollout (lease duration {LEASE:?})"
    );
    uninstall(&client, &[&apps]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_unseals_and_an_upgrade_rewrites_no_secret() {
    let _serial = SERIAL.lock().await;
    let (previous, current) = (previous_image().clone(), current_image().clone());
    let client = client().await;
    uninstall(&client, &["in-cluster-helm"]).await;
    let chart = deploy::chart_dir();
    let chart = chart.to_str().unwrap();
    let tag = |img: &deploy::Image| img.reference.split_once(':').unwrap().1.to_string();
    let prev_tag = format!("image.tag={}", tag(&previous));
    helm(&[
        "install",
        "gitseal",
        chart,
        "--namespace",
        NS,
        "--create-namespace",
        "--set",
        "image.repository=gitseal",
        "--set",
        &prev_tag,
    ]);
    let pods = rolled_out(&client, &previous.reference).await;
    the_leader(&client, &pods).await;

    key_published(&client).await;
    let apps = app_namespace(&client, "in-cluster-helm").await;
    let names = ["db-1", "db-2", "db-3"];
    for n in names {
        seal_example(&apps, n);
    }
    for n in names {
        unsealed(&client, &apps, n).await;
    }

    // Every Secret (the unsealed ones and the private key Secrets) before the upgrade.
    let versions = |client: Client, apps: String| async move {
        let mut all = BTreeMap::new();
        for ns in [apps.as_str(), NS] {
            for s in Api::<Secret>::namespaced(client.clone(), ns)
                .list(&ListParams::default())
                .await
                .unwrap()
            {
                // helm's own release records change with every upgrade, by design.
                if s.type_.as_deref() == Some("helm.sh/release.v1") {
                    continue;
                }
                all.insert(
                    format!("{ns}/{}", s.name_any()),
                    s.resource_version().unwrap(),
                );
            }
        }
        all
    };
    let before = versions(client.clone(), apps.clone()).await;
    assert!(
        before
            .keys()
            .any(|k| k.starts_with(&format!("{NS}/gitseal-key-"))),
        "{before:?}"
    );

    let cur_tag = format!("image.tag={}", tag(&current));
    helm(&[
        "upgrade",
        "gitseal",
        chart,
        "--namespace",
        NS,
        "--reuse-values",
        "--set",
        &cur_tag,
    ]);
    let pods = rolled_out(&client, &current.reference).await;
    let leader = the_leader(&client, &pods).await;

    // The new leader has gone over every SealedSecret (its reconcile counter covers them) and
    // wrote nothing; a new SealedSecret still unseals.
    let leader_ip = pods
        .iter()
        .find(|p| p.name_any() == leader)
        .unwrap()
        .status
        .as_ref()
        .unwrap()
        .pod_ip
        .clone()
        .unwrap();
    let text = eventually("the new leader reconciled every SealedSecret", SLOW, || {
        let (client, apps, url) = (
            client.clone(),
            apps.clone(),
            format!("http://{leader_ip}:8080/metrics"),
        );
        async move {
            let text = get_from_pod(&client, &apps, &url).await;
            (metric(&text, "gitseal_reconciles_total").unwrap_or(0.0) >= names.len() as f64)
                .then_some(text)
        }
    })
    .await;
    assert_eq!(
        metric(&text, "gitseal_secret_writes_total").unwrap_or(0.0),
        0.0,
        "{text}"
    );
    assert_eq!(
        before,
        versions(client.clone(), apps.clone()).await,
        "the upgrade rewrote Secrets"
    );
    seal_example(&apps, "db-after");
    unsealed(&client, &apps, "db-after").await;

    helm(&["uninstall", "gitseal", "--namespace", NS, "--wait"]);
    uninstall(&client, &[&apps]).await;
}
