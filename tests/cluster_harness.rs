//! The test cluster itself (tests/cluster, scripts/cluster, tests/support/cluster.rs): a real
//! kube-apiserver + etcd + controller manager, with the project's CRDs. These tests check the
//! behaviour the controller and CLI tests rely on: CRD schema validation, the status
//! subresource, watches, the garbage collector, namespace deletion, RBAC, and that objects
//! survive an API server restart.

#[path = "support/cluster.rs"]
mod cluster;

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use gitseal::api::{SealedSecret, SealedSecretSpec, SealedSecretStatus};
use gitseal::format::Map;
use k8s_openapi::{
    api::core::v1::{ConfigMap, Namespace, Secret},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, OwnerReference, Time},
};
use kube::{
    Api, Client, ResourceExt,
    api::{
        DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent,
        WatchParams,
    },
    core::{ApiResource, GroupVersionKind},
};
use serde_json::json;

use cluster::{Grant, TIMEOUT, api_code, eventually, rule, test_env};

fn sealed_secret(name: &str) -> SealedSecret {
    SealedSecret::new(
        name,
        SealedSecretSpec {
            encrypted_data: Map::from_iter([(
                "password".to_owned(),
                "gs1:strict:e1:AAAA".to_owned(),
            )]),
            envelopes: Map::from_iter([(
                "e1".to_owned(),
                Map::from_iter([("k1".to_owned(), "YWdl".to_owned())]),
            )]),
            ..Default::default()
        },
    )
}

#[tokio::test]
async fn server_reports_its_version() {
    let client = cluster::cluster().client().await;
    let info = client.apiserver_version().await.expect("GET /version");
    assert_eq!(
        (info.major.as_str(), info.minor.as_str()),
        ("1", "34"),
        "{info:?}"
    );
    // scripts/cluster stamps the pinned release (tests/cluster/go.mod) into the binary.
    assert!(info.git_version.starts_with("v1.34."), "{info:?}");
}

#[tokio::test]
async fn crds_install_and_are_established() {
    let env = test_env("crds").await;
    let api: Api<CustomResourceDefinition> = Api::all(env.client.clone());
    for crd in gitseal::api::crds() {
        let live = api.get(&crd.name_any()).await.expect("CRD exists");
        let conditions = live.status.and_then(|s| s.conditions).unwrap_or_default();
        assert!(
            conditions
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True"),
            "{}: {conditions:?}",
            crd.name_any()
        );
        assert_eq!(live.spec.versions[0].name, gitseal::api::VERSION);
    }
    // Applying again (as a second test binary or a rerun against a reused cluster does) is a no-op.
    cluster::apply_crds(env.client.clone()).await;
}

#[tokio::test]
async fn sealed_secret_create_get_list_watch() {
    let env = test_env("crud").await;
    let api: Api<SealedSecret> = Api::namespaced(env.client.clone(), &env.ns.name);
    let pp = PostParams::default();

    let created = api
        .create(&pp, &sealed_secret("first"))
        .await
        .expect("create");
    assert_eq!(
        created.spec,
        sealed_secret("first").spec,
        "round trip keeps the spec"
    );
    assert_eq!(created.metadata.generation, Some(1));
    let got = api.get("first").await.expect("get");
    assert_eq!(
        got.spec.encrypted_data[&"password".to_string()],
        "gs1:strict:e1:AAAA"
    );
    assert_eq!(
        got.spec.scope.to_string(),
        "strict",
        "schema default applied"
    );

    let list = api.list(&ListParams::default()).await.expect("list");
    assert_eq!(
        list.items.iter().map(|s| s.name_any()).collect::<Vec<_>>(),
        ["first"]
    );

    // Watch from the list's resourceVersion: later changes arrive in order.
    let rv = list
        .metadata
        .resource_version
        .expect("list resourceVersion");
    let mut events = api
        .watch(&WatchParams::default().timeout(60), &rv)
        .await
        .expect("watch")
        .boxed();
    api.create(&pp, &sealed_secret("second"))
        .await
        .expect("create second");
    let patch = json!({"spec": {"boundTo": "elsewhere/second"}});
    api.patch("second", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    api.delete("second", &DeleteParams::default())
        .await
        .expect("delete");

    let mut seen = Vec::new();
    while seen.len() < 3 {
        let event = tokio::time::timeout(TIMEOUT, events.try_next())
            .await
            .expect("watch event in time")
            .expect("watch stream")
            .expect("watch not closed");
        match event {
            WatchEvent::Added(s) => seen.push(("added", s.name_any(), s.spec.bound_to)),
            WatchEvent::Modified(s) => seen.push(("modified", s.name_any(), s.spec.bound_to)),
            WatchEvent::Deleted(s) => seen.push(("deleted", s.name_any(), s.spec.bound_to)),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("watch error: {e:?}"),
        }
    }
    let bound = Some("elsewhere/second".to_owned());
    assert_eq!(
        seen,
        [
            ("added", "second".into(), None),
            ("modified", "second".into(), bound.clone()),
            ("deleted", "second".into(), bound)
        ]
    );
}

#[tokio::test]
async fn status_subresource_is_separate_from_spec() {
    let env = test_env("status").await;
    let api: Api<SealedSecret> = Api::namespaced(env.client.clone(), &env.ns.name);
    api.create(&PostParams::default(), &sealed_secret("s"))
        .await
        .expect("create");

    let status = SealedSecretStatus {
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: "False".into(),
            reason: "KeyNotFound".into(),
            message: "no key k1 in this cluster".into(),
            // The API server stores whole seconds.
            last_transition_time: Time(
                k8s_openapi::jiff::Timestamp::from_second(
                    k8s_openapi::jiff::Timestamp::now().as_second(),
                )
                .expect("now"),
            ),
            observed_generation: Some(1),
        }],
        observed_generation: Some(1),
        key_ids: vec!["k1".into()],
        ..Default::default()
    };
    let patched = api
        .patch_status(
            "s",
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": status })),
        )
        .await
        .expect("patch status");
    assert_eq!(patched.status.as_ref(), Some(&status));
    assert_eq!(
        patched.metadata.generation,
        Some(1),
        "status writes don't bump generation"
    );

    // Through the main resource, status is ignored and spec changes bump the generation.
    let patch = json!({"spec": {"boundTo": "x/s"}, "status": {"keyIds": ["other"]}});
    let updated = api
        .patch("s", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    assert_eq!(updated.metadata.generation, Some(2));
    assert_eq!(updated.status.expect("status kept").key_ids, ["k1"]);

    // And through /status, spec is ignored.
    let patch = json!({"spec": {"boundTo": "changed/by-status"}, "status": {"keyIds": ["k2"]}});
    let updated = api
        .patch_status("s", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch status");
    assert_eq!(updated.spec.bound_to.as_deref(), Some("x/s"));
    assert_eq!(updated.status.expect("status").key_ids, ["k2"]);
}

#[tokio::test]
async fn invalid_sealed_secrets_are_rejected_by_the_schema() {
    let env = test_env("invalid").await;
    let gvk = GroupVersionKind::gvk(gitseal::api::GROUP, gitseal::api::VERSION, "SealedSecret");
    let api: Api<DynamicObject> = Api::namespaced_with(
        env.client.clone(),
        &env.ns.name,
        &ApiResource::from_gvk(&gvk),
    );
    let object = |name: &str, spec: serde_json::Value| -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": gitseal::api::API_VERSION,
            "kind": "SealedSecret",
            "metadata": {"name": name},
            "spec": spec,
        }))
        .expect("object")
    };
    let cases = [
        ("bad-scope", json!({"scope": "bogus"}), "spec.scope"),
        (
            "data-not-map",
            json!({"encryptedData": "gs1:strict:e1:AAAA"}),
            "spec.encryptedData",
        ),
        (
            "value-not-string",
            json!({"encryptedData": {"k": 1}}),
            "spec.encryptedData.k",
        ),
        (
            "envelopes-flat",
            json!({"envelopes": {"e1": "abc"}}),
            "spec.envelopes.e1",
        ),
        (
            "immutable-string",
            json!({"template": {"immutable": "yes"}}),
            "spec.template.immutable",
        ),
    ];
    for (name, spec, field) in cases {
        let err = api
            .create(&PostParams::default(), &object(name, spec))
            .await
            .expect_err(name);
        assert_eq!(api_code(&err), 422, "{name}: {err}");
        assert!(
            err.to_string().contains(field),
            "{name}: error should name {field}: {err}"
        );
    }
    // The same object with valid values is accepted (values start with gs1:<spec.scope>: since
    // the CRD's own CEL rules; tests/admission.rs has the rest).
    api.create(
        &PostParams::default(),
        &object(
            "ok",
            json!({"scope": "cluster", "encryptedData": {"k": "gs1:cluster:e1:AAAA"}}),
        ),
    )
    .await
    .expect("valid object accepted");
}

#[tokio::test]
async fn garbage_collector_deletes_owned_objects() {
    let env = test_env("gc").await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns.name);
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.ns.name);
    let pp = PostParams::default();
    let owner = cms
        .create(
            &pp,
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some("owner".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .expect("owner");
    let owned = Secret {
        metadata: ObjectMeta {
            name: Some("owned".into()),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                name: "owner".into(),
                uid: owner.uid().expect("uid"),
                ..Default::default()
            }]),
            ..Default::default()
        },
        string_data: Some([("k".to_owned(), "v".to_owned())].into()),
        ..Default::default()
    };
    secrets.create(&pp, &owned).await.expect("owned secret");
    let unrelated = Secret {
        metadata: ObjectMeta {
            name: Some("unrelated".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    secrets
        .create(&pp, &unrelated)
        .await
        .expect("unrelated secret");

    cms.delete("owner", &DeleteParams::default())
        .await
        .expect("delete owner");
    eventually(
        "the garbage collector to delete the owned Secret",
        TIMEOUT,
        || async {
            secrets
                .get_opt("owned")
                .await
                .expect("get")
                .is_none()
                .then_some(())
        },
    )
    .await;
    assert!(
        secrets.get_opt("unrelated").await.expect("get").is_some(),
        "only dependents are collected"
    );
}

#[tokio::test]
async fn namespace_deletion_completes() {
    let env = test_env("nsdel").await;
    let pp = PostParams::default();
    Api::<SealedSecret>::namespaced(env.client.clone(), &env.ns.name)
        .create(&pp, &sealed_secret("s"))
        .await
        .expect("sealed secret");
    Api::<ConfigMap>::namespaced(env.client.clone(), &env.ns.name)
        .create(
            &pp,
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some("c".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .expect("configmap");

    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    namespaces
        .delete(&env.ns.name, &DeleteParams::default())
        .await
        .expect("delete namespace");
    eventually(
        "the namespace controller to finish deleting the namespace",
        TIMEOUT,
        || async {
            namespaces
                .get_opt(&env.ns.name)
                .await
                .expect("get")
                .is_none()
                .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn restricted_client_gets_exactly_its_role() {
    let env = test_env("rbac").await;
    let admin = &env.client;
    let ns = &env.ns.name;
    Api::<SealedSecret>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &sealed_secret("visible"))
        .await
        .expect("create as admin");
    let reader = cluster::client_with_rules(
        admin,
        &env.ns,
        "sealedsecret-reader",
        vec![rule(
            gitseal::api::GROUP,
            &["sealedsecrets"],
            &["get", "list", "watch"],
        )],
    )
    .await;

    let mine: Api<SealedSecret> = Api::namespaced(reader.clone(), ns);
    assert_eq!(
        mine.get("visible").await.expect("get allowed").name_any(),
        "visible"
    );
    assert_eq!(
        mine.list(&ListParams::default())
            .await
            .expect("list allowed")
            .items
            .len(),
        1
    );

    let err = mine
        .create(&PostParams::default(), &sealed_secret("nope"))
        .await
        .expect_err("create");
    assert_eq!(api_code(&err), 403, "{err}");
    let err = mine
        .patch_status(
            "visible",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {}})),
        )
        .await
        .expect_err("status");
    assert_eq!(api_code(&err), 403, "{err}");
    let err = Api::<Secret>::namespaced(reader.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect_err("secrets");
    assert_eq!(api_code(&err), 403, "{err}");
    let err = Api::<SealedSecret>::namespaced(reader.clone(), "default")
        .list(&ListParams::default())
        .await
        .expect_err("other ns");
    assert_eq!(api_code(&err), 403, "{err}");
    let err = Api::<SealedSecret>::all(reader.clone())
        .list(&ListParams::default())
        .await
        .expect_err("all namespaces");
    assert_eq!(api_code(&err), 403, "{err}");

    // A cluster-wide grant of a built-in ClusterRole (view: read most things, not Secrets).
    let viewer =
        cluster::service_account_client(admin, &env.ns, "viewer", &[Grant::ClusterWide("view")])
            .await;
    Api::<ConfigMap>::all(viewer.clone())
        .list(&ListParams::default())
        .await
        .expect("view lists configmaps everywhere");
    let err = Api::<Secret>::namespaced(viewer, ns)
        .list(&ListParams::default())
        .await
        .expect_err("view can't read secrets");
    assert_eq!(api_code(&err), 403, "{err}");
}

/// Starts a dedicated etcd + apiserver in a temp dir, stops and restarts the API server (and then
/// etcd too) on the same data, and checks objects and the kubeconfig survive.
#[tokio::test]
async fn objects_survive_apiserver_and_etcd_restarts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bin = cluster::binary();
    let start = |what: &str| {
        let mut p = cluster::ControlPlaneProcess::spawn(&bin, &[what], dir.path(), what);
        p.wait_ready(Duration::from_secs(120));
        p
    };
    let mut etcd = start("etcd");
    let mut apiserver = start("apiserver");
    let kubeconfig = dir.path().join("kubeconfig");
    let kubeconfig_before = std::fs::read(&kubeconfig).expect("kubeconfig");

    let client = Client::try_from(cluster::config_from(&kubeconfig).await).expect("client");
    cluster::apply_crds(client.clone()).await;
    let sealed: Api<SealedSecret> = Api::namespaced(client.clone(), "default");
    let created = sealed
        .create(&PostParams::default(), &sealed_secret("durable"))
        .await
        .expect("create");
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("durable".into()),
            ..Default::default()
        },
        data: Some([("k".to_owned(), "v".to_owned())].into()),
        ..Default::default()
    };
    Api::<ConfigMap>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &cm)
        .await
        .expect("cm");
    drop((sealed, client));

    let check = |phase: &'static str| {
        let kubeconfig = kubeconfig.clone();
        let uid = created.uid();
        let spec = created.spec.clone();
        async move {
            let client = Client::try_from(cluster::config_from(&kubeconfig).await).expect("client");
            let got = Api::<SealedSecret>::namespaced(client.clone(), "default")
                .get("durable")
                .await;
            let got = got.unwrap_or_else(|e| panic!("{phase}: SealedSecret gone: {e}"));
            assert_eq!((got.uid(), &got.spec), (uid, &spec), "{phase}");
            let cm = Api::<ConfigMap>::namespaced(client, "default")
                .get("durable")
                .await
                .expect(phase);
            assert_eq!(cm.data.expect("data")["k"], "v", "{phase}");
        }
    };

    apiserver.stop();
    let mut apiserver = start("apiserver");
    assert_eq!(
        std::fs::read(&kubeconfig).expect("kubeconfig"),
        kubeconfig_before,
        "same certs and port"
    );
    check("after apiserver restart").await;

    apiserver.stop();
    etcd.stop();
    let _etcd = start("etcd");
    let _apiserver = start("apiserver");
    check("after etcd and apiserver restart").await;
}
