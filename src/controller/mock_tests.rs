//! Mock-server unit tests of the SealedSecret reconcile paths: the controller's client talks
//! to a `tower_test` mock service, and each test plays the API server, asserting every request
//! (method, path, query, body) and answering as the API server would, then asserting that no
//! further request came. The caches are real reflector stores seeded as the watchers would
//! seed them; keys are real, trusted key pairs and the values are sealed with the library.
//! The real-server tests (tests/controller.rs, tests/trust.rs, ...) stay; these cover the
//! branches a real server makes awkward to reach (conflicts, 500s, immutable Secrets).

use super::caches::{Stores, slim_sealed, values_cut};
use super::reconcile::{error_policy, reconcile};
use super::*;
use crate::api::{KeyState, Reason, SealedSecret, SealingKey, SealingKeySpec, SealingKeyStatus};
use crate::crypto::{Identity, Plaintext, Recipient};
use crate::manifest::{Location, SealOptions, SecretInput};
use crate::unsealer::secret::ManagedSecret;
use ::http::header::CONTENT_TYPE;
use ::http::{Request, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use k8s_openapi::api::core::v1::Secret;
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use serde_json::{Value, json};
use std::collections::BTreeMap;

type Server = tower_test::mock::Handle<Request<Body>, Response<Body>>;
type Reply = tower_test::mock::SendResponse<Response<Body>>;

/// The controller's namespace (key Secrets; refused for SealedSecrets by default).
const OWN_NS: &str = "gitseal-system";
const NS: &str = "prod";
const NAME: &str = "db";
const SEALED_UID: &str = "sealed-uid-1";
const SECRET: &str = "hunter2";
const SECRETS_PATH: &str = "/api/v1/namespaces/prod/secrets";
const SECRET_PATH: &str = "/api/v1/namespaces/prod/secrets/db";
const SEALED_PATH: &str = "/apis/gitseal.dev/v1alpha1/namespaces/prod/sealedsecrets/db";

/// The reconcilers' shared state around `client` and the given caches. The one place that
/// knows `Context`'s fields: fix this when they change.
fn context(
    client: Client,
    secrets: Store<ManagedSecret>,
    key_secrets: Store<Secret>,
    sealing_keys: Store<SealingKey>,
    sealed: Store<SealedSecret>,
    take_over: crate::unsealer::TakeOver,
) -> Context {
    let config = Config {
        namespace: OWN_NS.into(),
        watch_namespaces: Vec::new(),
        key_renew_interval: Duration::ZERO,
        metrics_addr: "127.0.0.1:0".parse().expect("loopback address"),
        leader_elect: false,
        lease_duration: Duration::from_secs(15),
        identity: "mock-replica".into(),
        concurrency: 4,
        policy: policy::Policy::new(OWN_NS, &policy::PolicyFlags::default())
            .expect("default policy"),
        take_over,
    };
    let stores = Stores {
        secrets: vec![secrets],
        sealed: vec![sealed],
        key_secrets,
        sealing_keys,
    };
    Context::new(
        client,
        &config,
        Arc::new(metrics::Metrics::default()),
        stores,
    )
}

/// A controller context on a mock API server, with one trusted Active key.
struct Fixture {
    ctx: Arc<Context>,
    server: Server,
    secrets: Writer<ManagedSecret>,
    sealed: Writer<SealedSecret>,
    /// The Active key's public half (what `gitseal seal` encrypts to).
    recipient: Recipient,
}

impl Fixture {
    fn new() -> Self {
        Self::taking_over(crate::unsealer::TakeOver::default())
    }

    /// A fixture whose controller runs with `--take-over-from` as `take_over` says.
    fn taking_over(take_over: crate::unsealer::TakeOver) -> Self {
        let (service, server) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let (secrets, secrets_w) = reflector::store::<ManagedSecret>();
        let (key_secrets, mut key_secrets_w) = reflector::store::<Secret>();
        let (sealing_keys, mut sealing_keys_w) = reflector::store::<SealingKey>();
        let (sealed, sealed_w) = reflector::store::<SealedSecret>();

        let identity = Identity::generate();
        let mut key = SealingKey::new(
            "gitseal-1",
            SealingKeySpec {
                state: KeyState::Active,
                force: false,
            },
        );
        key.metadata.uid = Some("key-uid-1".into());
        key.metadata.resource_version = Some("3".into());
        key.status = Some(SealingKeyStatus {
            state: Some(KeyState::Active),
            public_key: Some(identity.recipient().as_str().to_string()),
            key_id: Some(identity.key_id()),
            ..Default::default()
        });
        let mut key_secret = crate::keyring::key_secret(&key, &identity, OWN_NS);
        key_secret.metadata.uid = Some("key-secret-uid-1".into());
        key_secret.metadata.resource_version = Some("4".into());
        key_secrets_w.apply_watcher_event(&watcher::Event::Apply(key_secret));
        sealing_keys_w.apply_watcher_event(&watcher::Event::Apply(key));

        let ctx = Arc::new(context(
            client,
            secrets,
            key_secrets,
            sealing_keys,
            sealed,
            take_over,
        ));
        // The setup itself: the key is trusted and Active (else KeyNotFound would be vacuous).
        assert_eq!(ctx.private_keys().0.ids(), [identity.key_id()]);
        assert_eq!(ctx.active_key().map(|(id, _)| id), Some(identity.key_id()));
        Fixture {
            ctx,
            server,
            secrets: secrets_w,
            sealed: sealed_w,
            recipient: identity.recipient(),
        }
    }

    /// Put `sealed` into the SealedSecret cache as its watcher would (slimmed), and return
    /// the cached copy (what the Controller hands to `reconcile`).
    fn cache_sealed(&mut self, sealed: &SealedSecret) -> Arc<SealedSecret> {
        let mut cached = sealed.clone();
        slim_sealed(&mut cached);
        self.sealed
            .apply_watcher_event(&watcher::Event::Apply(cached.clone()));
        Arc::new(cached)
    }

    /// Put `secret` (as the API server sends it) into the managed Secret cache as its
    /// watcher does: read straight into the digest-only view.
    fn cache_secret(&mut self, secret: &Value) {
        let cached: ManagedSecret = serde_json::from_value(secret.clone()).expect("a Secret");
        self.secrets
            .apply_watcher_event(&watcher::Event::Apply(cached));
    }
}

/// `prod/db` with `values`, sealed to `to` like `gitseal seal` does; `edit` sets the rest of
/// the input Secret (type, immutable, ...). Carries what the API server adds (uid, generation).
fn sealed_with(
    to: &Recipient,
    values: &[(&str, &[u8])],
    ns: &str,
    edit: impl FnOnce(&mut SecretInput),
) -> SealedSecret {
    let mut input = SecretInput {
        at: Location::new("mock", 1),
        name: NAME.into(),
        namespace: Some(ns.into()),
        data: values
            .iter()
            .map(|(k, v)| (k.to_string(), Plaintext::new(v.to_vec())))
            .collect(),
        labels: BTreeMap::from([("app".to_string(), "db".to_string())]),
        annotations: BTreeMap::new(),
        type_: None,
        immutable: None,
        scope: None,
        template_data: BTreeMap::new(),
    };
    edit(&mut input);
    let opts = SealOptions {
        recipients: std::slice::from_ref(to),
        scope: None,
        default_scope: Default::default(),
        namespace: None,
        allow_empty: false,
    };
    let mut sealed = crate::manifest::seal(&input, &opts).expect("seal");
    sealed.metadata.uid = Some(SEALED_UID.into());
    sealed.metadata.generation = Some(1);
    sealed.metadata.resource_version = Some("100".into());
    sealed
}

fn sealed_db(to: &Recipient) -> SealedSecret {
    sealed_with(to, &[("password", SECRET.as_bytes())], NS, |_| {})
}

/// One request as the mock API server received it.
struct Seen {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    content_type: String,
    body: Value,
}

/// The next request (within 5 s), checked to be `method path`, and the way to answer it.
async fn expect(server: &mut Server, method: &str, path: &str) -> (Seen, Reply) {
    let next = tokio::time::timeout(Duration::from_secs(5), server.next_request()).await;
    let (req, reply) = next
        .unwrap_or_else(|_| panic!("expected {method} {path}; no request came"))
        .expect("the client is alive");
    let (parts, body) = req.into_parts();
    let bytes = body.collect_bytes().await.expect("request body");
    let seen = Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts
            .uri
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_string(), v.to_string())
            })
            .collect(),
        content_type: parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string(),
        body: if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("a JSON request body")
        },
    };
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        (method, path),
        "unexpected request (query {:?})",
        seen.query
    );
    (seen, reply)
}

fn answer(reply: Reply, code: u16, body: &Value) {
    let response = Response::builder()
        .status(code)
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(body).expect("JSON")))
        .expect("response");
    reply.send_response(response);
}

/// A `metav1.Status` failure as the API server sends it.
fn failure(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason,
        "details": {"name": NAME, "kind": "secrets"}, "code": code,
    })
}

/// `object` as stored: with a uid, resourceVersion and creation time.
fn stored(mut object: Value, uid: &str, resource_version: &str) -> Value {
    object["metadata"]["uid"] = json!(uid);
    object["metadata"]["resourceVersion"] = json!(resource_version);
    object["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
    object
}

/// Run the API server's side of a scenario next to the reconcile.
fn play<F, T>(server: Server, scenario: impl FnOnce(Server) -> F) -> tokio::task::JoinHandle<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    tokio::spawn(scenario(server))
}

/// What the scenario task returned, its assertion failures re-raised here.
async fn join<T>(scenario: tokio::task::JoinHandle<T>) -> T {
    match tokio::time::timeout(Duration::from_secs(10), scenario).await {
        Err(_) => panic!("the scenario still waits for a request that never came"),
        Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Ok(Err(e)) => panic!("scenario task: {e}"),
        Ok(Ok(done)) => done,
    }
}

/// Reconcile `sealed` while `scenario` plays the API server, then: no further request. The
/// scenario's own assertion failures are raised first (they say more than the error its
/// dropped answer causes in the reconcile); a reconcile that waits on a request nobody
/// answers fails the test instead of hanging.
async fn reconcile_against<T>(
    scenario: tokio::task::JoinHandle<T>,
    sealed: Arc<SealedSecret>,
    ctx: &Arc<Context>,
) -> (Result<Action, Error>, T) {
    let reconciled = tokio::time::timeout(RECONCILE_WITHIN, reconcile(sealed, ctx.clone())).await;
    let served = join(scenario).await;
    (reconciled.unwrap_or_else(|_| unanswered()), served)
}

/// [`reconcile_against`] a scenario that hands the server back, and no request after it.
async fn reconcile_served(
    scenario: tokio::task::JoinHandle<Server>,
    sealed: Arc<SealedSecret>,
    ctx: &Arc<Context>,
) -> (Result<Action, Error>, Server) {
    let (result, mut server) = reconcile_against(scenario, sealed, ctx).await;
    assert_quiet(&mut server).await;
    (result, server)
}

const RECONCILE_WITHIN: Duration = Duration::from_secs(10);

fn unanswered() -> ! {
    panic!("reconcile did not return within 10 s: a request went unanswered")
}

async fn assert_quiet(server: &mut Server) {
    match tokio::time::timeout(Duration::from_millis(300), server.next_request()).await {
        Err(_) | Ok(None) => {}
        Ok(Some((req, _))) => panic!("unexpected further request {} {}", req.method(), req.uri()),
    }
}

fn b64(v: &[u8]) -> Value {
    json!(B64.encode(v))
}

/// Assert the Secret body the controller sent carries its marks and `password` = `SECRET`.
fn assert_secret_body(body: &Value) {
    assert_eq!(body["kind"], "Secret");
    assert_eq!(body["metadata"]["name"], NAME);
    assert_eq!(body["metadata"]["namespace"], NS);
    assert_eq!(body["data"], json!({"password": b64(SECRET.as_bytes())}));
    assert_eq!(
        body["metadata"]["labels"][secret::MANAGED_BY.0],
        secret::MANAGED_BY.1
    );
    assert_eq!(body["metadata"]["labels"]["app"], "db");
    let owners = body["metadata"]["ownerReferences"]
        .as_array()
        .expect("ownerReferences");
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0]["kind"], "SealedSecret");
    assert_eq!(owners[0]["apiVersion"], "gitseal.dev/v1alpha1");
    assert_eq!(owners[0]["name"], NAME);
    assert_eq!(owners[0]["uid"], SEALED_UID);
    assert_eq!(owners[0]["controller"], true);
}

/// Serve one create of `prod/db`: assert it, answer 201 with the stored Secret, return that.
async fn serve_create(server: &mut Server) -> Value {
    let (seen, reply) = expect(server, "POST", SECRETS_PATH).await;
    assert_eq!(
        seen.query.get("fieldManager").map(String::as_str),
        Some(FIELD_MANAGER)
    );
    assert_eq!(seen.content_type, "application/json");
    assert_secret_body(&seen.body);
    let created = stored(seen.body, "secret-uid-1", "200");
    answer(reply, 201, &created);
    created
}

/// `reconcile` with no scenario: it must not wait on the API server.
async fn run(sealed: Arc<SealedSecret>, ctx: &Arc<Context>) -> Result<Action, Error> {
    let reconciled = reconcile(sealed, ctx.clone());
    tokio::time::timeout(RECONCILE_WITHIN, reconciled)
        .await
        .unwrap_or_else(|_| unanswered())
}

/// The failure's reason is `reason`; returns what it says (its Display: `Reason: message`).
fn assert_err(result: Result<Action, Error>, reason: Reason) -> String {
    let error = result.expect_err("reconcile should fail");
    let message = error.to_string();
    assert_eq!(error.reason(), reason, "{message}");
    assert!(message.starts_with(&format!("{reason}: ")), "{message}");
    message
}

#[tokio::test]
async fn missing_secret_is_created_and_reported() {
    let mut f = Fixture::new();
    let sealed = f.cache_sealed(&sealed_db(&f.recipient));
    let scenario = play(f.server, |mut server| async move {
        serve_create(&mut server).await;
        server
    });
    let (result, server) = reconcile_served(scenario, sealed, &f.ctx).await;
    f.server = server;
    assert_eq!(result.expect("reconciled"), Action::await_change());

    // The queued report: the status writer patches Ready=True Unsealed, then an Event.
    let writer = tokio::spawn(report::run(f.ctx.clone()));
    let (seen, reply) = expect(&mut f.server, "PATCH", &format!("{SEALED_PATH}/status")).await;
    // Server-side apply under the controller's field manager, taking over what others own.
    assert_eq!(seen.content_type, "application/apply-patch+yaml");
    assert_eq!(
        seen.query.get("fieldManager").map(String::as_str),
        Some(FIELD_MANAGER)
    );
    assert_eq!(seen.query.get("force").map(String::as_str), Some("true"));
    assert_eq!(
        (&seen.body["apiVersion"], &seen.body["kind"]),
        (&json!("gitseal.dev/v1alpha1"), &json!("SealedSecret"))
    );
    let status = &seen.body["status"];
    let ready = &status["conditions"][0];
    assert_eq!(
        (&ready["type"], &ready["status"], &ready["reason"]),
        (&json!("Ready"), &json!("True"), &json!("Unsealed"))
    );
    assert_eq!(status["observedGeneration"], 1);
    let key_id = f.recipient.key_id();
    assert_eq!(status["keyIds"], json!([key_id]));
    let mut object = serde_json::to_value(sealed_db(&f.recipient)).expect("JSON");
    object["status"] = status.clone();
    answer(reply, 200, &object);
    let (event, reply) = expect(
        &mut f.server,
        "POST",
        "/apis/events.k8s.io/v1/namespaces/prod/events",
    )
    .await;
    assert_eq!(
        (
            &event.body["type"],
            &event.body["reason"],
            &event.body["action"]
        ),
        (&json!("Normal"), &json!("Unsealed"), &json!("Created"))
    );
    assert_eq!(event.body["regarding"]["uid"], SEALED_UID);
    for written in [&seen.body, &event.body] {
        let text = written.to_string();
        let encoded = B64.encode(SECRET);
        assert!(
            !text.contains(SECRET) && !text.contains(&encoded),
            "plain text in {text}"
        );
    }
    answer(reply, 201, &stored(event.body, "event-uid-1", "300"));
    assert_quiet(&mut f.server).await;
    writer.abort();
}

#[tokio::test]
async fn secret_in_sync_is_not_written_again() {
    let mut f = Fixture::new();
    let sealed = f.cache_sealed(&sealed_db(&f.recipient));
    let scenario = play(f.server, |mut server| async move {
        let created = serve_create(&mut server).await;
        (server, created)
    });
    let (result, (server, created)) = reconcile_against(scenario, sealed.clone(), &f.ctx).await;
    result.expect("first reconcile");
    f.server = server;
    // The watch brings the created Secret into the cache; the reconcile it wakes checks only.
    f.cache_secret(&created);
    for _ in 0..2 {
        let result = run(sealed.clone(), &f.ctx).await;
        assert_eq!(result.expect("in sync"), Action::await_change());
        assert_quiet(&mut f.server).await;
    }
    // The control: someone edits the Secret; the reconcile that wakes restores it.
    let mut edited = created;
    edited["data"]["password"] = b64(b"edited");
    edited["metadata"]["resourceVersion"] = json!("201");
    f.cache_secret(&edited);
    let scenario = play(f.server, |mut server| async move {
        let (seen, reply) = expect(&mut server, "PATCH", SECRET_PATH).await;
        assert_eq!(seen.query.get("force").map(String::as_str), Some("true"));
        assert_eq!(seen.body["metadata"]["resourceVersion"], "201");
        assert_secret_body(&seen.body);
        answer(reply, 200, &stored(seen.body, "secret-uid-1", "202"));
        server
    });
    let (result, _) = reconcile_served(scenario, sealed, &f.ctx).await;
    assert_eq!(result.expect("repaired"), Action::await_change());
}

#[tokio::test]
async fn existing_secret_not_owned_is_refused() {
    let mut f = Fixture::new();
    let sealed = f.cache_sealed(&sealed_db(&f.recipient));
    let scenario = play(f.server, |mut server| async move {
        let (_, reply) = expect(&mut server, "POST", SECRETS_PATH).await;
        let conflict = failure(409, "AlreadyExists", "secrets \"db\" already exists");
        answer(reply, 409, &conflict);
        let (_, reply) = expect(&mut server, "GET", SECRET_PATH).await;
        let theirs = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": NAME, "namespace": NS},
            "type": "Opaque", "data": {"password": b64(b"theirs")},
        });
        answer(reply, 200, &stored(theirs, "their-uid", "7"));
        server
    });
    let (result, _) = reconcile_served(scenario, sealed, &f.ctx).await;
    let message = assert_err(result, Reason::SecretNotOwned);
    assert!(message.contains("gitseal.dev/adopt"), "{message}");
}

#[tokio::test]
async fn adoptable_secret_is_taken_over_at_its_version() {
    let mut f = Fixture::new();
    let sealed = f.cache_sealed(&sealed_db(&f.recipient));
    let scenario = play(f.server, |mut server| async move {
        let (_, reply) = expect(&mut server, "POST", SECRETS_PATH).await;
        let conflict = failure(409, "AlreadyExists", "secrets \"db\" already exists");
        answer(reply, 409, &conflict);
        let (_, reply) = expect(&mut server, "GET", SECRET_PATH).await;
        let theirs = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {
                "name": NAME, "namespace": NS,
                "annotations": {secret::ADOPT_ANNOTATION: "true"},
            },
            "type": "Opaque", "data": {"password": b64(b"old")},
        });
        answer(reply, 200, &stored(theirs, "their-uid", "41"));
        let (seen, reply) = expect(&mut server, "PATCH", SECRET_PATH).await;
        assert_eq!(seen.content_type, "application/apply-patch+yaml");
        assert_eq!(
            seen.query.get("fieldManager").map(String::as_str),
            Some(FIELD_MANAGER)
        );
        assert_eq!(seen.query.get("force").map(String::as_str), Some("true"));
        assert_eq!(seen.body["metadata"]["resourceVersion"], "41");
        assert_secret_body(&seen.body);
        let mut applied = stored(seen.body, "their-uid", "42");
        applied["metadata"]["annotations"] = json!({secret::ADOPT_ANNOTATION: "true"});
        answer(reply, 200, &applied);
        server
    });
    let (result, _) = reconcile_served(scenario, sealed, &f.ctx).await;
    assert_eq!(result.expect("adopted"), Action::await_change());
}

/// A Secret the Bitnami controller made: the same data, controlled by a `bitnami.com`
/// SealedSecret named `owner`, with Bitnami's `managed` annotation and one of someone else's.
fn bitnami_secret(owner: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {
            "name": NAME, "namespace": NS,
            "labels": {"app": "db", "team": "payments"},
            "annotations": {"sealedsecrets.bitnami.com/managed": "true", "reloader.example/watch": "yes"},
            "ownerReferences": [{
                "apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret", "name": owner,
                "uid": "bitnami-uid", "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "type": "Opaque", "data": {"password": b64(SECRET.as_bytes())},
    })
}

/// Serve a create of `prod/db` that finds one (409), then the read of `theirs` (version 41).
async fn serve_existing(server: &mut Server, theirs: Value) {
    let (_, reply) = expect(server, "POST", SECRETS_PATH).await;
    let conflict = failure(409, "AlreadyExists", "secrets \"db\" already exists");
    answer(reply, 409, &conflict);
    let (_, reply) = expect(server, "GET", SECRET_PATH).await;
    answer(reply, 200, &stored(theirs, "their-uid", "41"));
}

fn on() -> crate::unsealer::TakeOver {
    crate::unsealer::TakeOver {
        sealed_secrets: true,
        namespaces: Vec::new(),
    }
}

#[tokio::test]
async fn bitnami_secret_is_taken_over_in_one_update_at_its_version() {
    let mut f = Fixture::taking_over(on());
    let sealed = f.cache_sealed(&sealed_db(&f.recipient));
    let scenario = play(f.server, |mut server| async move {
        serve_existing(&mut server, bitnami_secret(NAME)).await;
        // One PUT: the judged version, the gitseal owner instead of Bitnami's, Bitnami's
        // annotation gone, everything else others set kept.
        let (seen, reply) = expect(&mut server, "PUT", SECRET_PATH).await;
        assert_eq!(
            seen.query.get("fieldManager").map(String::as_str),
            Some(FIELD_MANAGER)
        );
        assert_eq!(seen.body["metadata"]["resourceVersion"], "41");
        assert_eq!(seen.body["metadata"]["uid"], "their-uid");
        assert_secret_body(&seen.body);
        assert_eq!(seen.body["metadata"]["labels"]["team"], "payments");
        assert_eq!(
            seen.body["metadata"]["annotations"],
            json!({"reloader.example/watch": "yes"})
        );
        let updated = stored(seen.body, "their-uid", "42");
        answer(reply, 200, &updated);
        server
    });
    let (result, _) = reconcile_served(scenario, sealed, &f.ctx).await;
    assert_eq!(result.expect("taken over"), Action::await_change());
}

#[tokio::test]
async fn bitnami_secret_is_not_taken_without_the_flag_or_of_another_name() {
    for (take_over, owner) in [
        (crate::unsealer::TakeOver::default(), NAME),
        (on(), "other-db"),
    ] {
        let mut f = Fixture::taking_over(take_over.clone());
        let sealed = f.cache_sealed(&sealed_db(&f.recipient));
        let owner = owner.to_string();
        let scenario = play(f.server, |mut server| async move {
            serve_existing(&mut server, bitnami_secret(&owner)).await;
            server
        });
        // Nothing written: assert_quiet after the GET.
        let (result, _) = reconcile_served(scenario, sealed, &f.ctx).await;
        let message = assert_err(result, Reason::SecretNotOwned);
        assert_eq!(
            message.contains("--take-over-from sealed-secrets"),
            !take_over.sealed_secrets,
            "{message}"
        );
    }
}

#[tokio::test]
async fn immutable_secret_with_other_data_is_replaced() {
    let mut f = Fixture::new();
    let sealed = sealed_with(&f.recipient, &[("password", SECRET.as_bytes())], NS, |i| {
        i.immutable = Some(true)
    });
    // What an earlier generation wrote: owned, immutable, another password.
    let mut old = secret::desired(
        &sealed,
        BTreeMap::from([("password".to_string(), Plaintext::new(b"old".to_vec()))]),
    );
    old.metadata.uid = Some("secret-uid-5".into());
    old.metadata.resource_version = Some("55".into());
    f.cache_secret(&serde_json::to_value(&old).expect("JSON"));
    let sealed = f.cache_sealed(&sealed);
    let scenario = play(f.server, |mut server| async move {
        let (seen, reply) = expect(&mut server, "DELETE", SECRET_PATH).await;
        assert_eq!(
            seen.body["preconditions"],
            json!({"uid": "secret-uid-5", "resourceVersion": "55"})
        );
        let deleted = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": {"name": NAME, "kind": "secrets", "uid": "secret-uid-5"},
        });
        answer(reply, 200, &deleted);
        let (seen, reply) = expect(&mut server, "PATCH", SECRET_PATH).await;
        assert_eq!(seen.content_type, "application/apply-patch+yaml");
        assert_eq!(
            seen.query.get("fieldManager").map(String::as_str),
            Some(FIELD_MANAGER)
        );
        assert_eq!(seen.query.get("force").map(String::as_str), Some("true"));
        assert_eq!(seen.body["immutable"], true);
        // The old Secret is gone: a resourceVersion precondition could only fail.
        assert!(seen.body["metadata"].get("resourceVersion").is_none());
        assert_secret_body(&seen.body);
        answer(reply, 201, &stored(seen.body, "secret-uid-6", "56"));
        server
    });
    let (result, _) = reconcile_served(scenario, sealed, &f.ctx).await;
    assert_eq!(result.expect("replaced"), Action::await_change());
}

#[tokio::test]
async fn no_held_key_fails_without_a_request() {
    let mut f = Fixture::new();
    let stranger = Identity::generate().recipient();
    let sealed = f.cache_sealed(&sealed_db(&stranger));
    let result = run(sealed, &f.ctx).await;
    let message = assert_err(result, Reason::KeyNotFound);
    assert!(message.contains(&stranger.key_id()), "{message}");
    assert!(message.contains(&f.recipient.key_id()), "{message}");
    assert_quiet(&mut f.server).await;
}

#[tokio::test]
async fn policy_refusal_fails_without_a_request() {
    let mut f = Fixture::new();
    let token = sealed_with(&f.recipient, &[("token", b"t")], NS, |i| {
        i.type_ = Some("kubernetes.io/service-account-token".into())
    });
    let own_namespace = sealed_with(&f.recipient, &[("password", b"p")], OWN_NS, |_| {});
    for (sealed, names) in [
        (token, "kubernetes.io/service-account-token"),
        (own_namespace, OWN_NS),
    ] {
        let sealed = f.cache_sealed(&sealed);
        let message = assert_err(run(sealed, &f.ctx).await, Reason::PolicyDenied);
        assert!(message.contains(names), "{message}");
        assert_quiet(&mut f.server).await;
    }
}

#[tokio::test]
async fn api_errors_back_off_doubling_and_success_resets() {
    let mut f = Fixture::new();
    let sealed = f.cache_sealed(&sealed_db(&f.recipient));
    async fn fail_create(mut server: Server) -> Server {
        let (_, reply) = expect(&mut server, "POST", SECRETS_PATH).await;
        answer(
            reply,
            500,
            &failure(500, "InternalError", "etcd is on fire"),
        );
        server
    }
    for expected_ms in [500, 1000, 2000] {
        let scenario = play(f.server, fail_create);
        let (result, server) = reconcile_served(scenario, sealed.clone(), &f.ctx).await;
        f.server = server;
        let error = result.expect_err("the API server failed");
        assert_eq!(error.reason(), Reason::ApiError, "{error}");
        assert!(error.to_string().contains("500"), "{error}");
        let action = error_policy(sealed.clone(), &error, f.ctx.clone());
        assert_eq!(action, Action::requeue(Duration::from_millis(expected_ms)));
    }
    let scenario = play(f.server, |mut server| async move {
        serve_create(&mut server).await;
        server
    });
    let (result, server) = reconcile_served(scenario, sealed.clone(), &f.ctx).await;
    f.server = server;
    result.expect("the API server recovered");
    // The Secret is not in the cache yet, so the next reconcile creates again, and fails.
    let scenario = play(f.server, fail_create);
    let (result, _) = reconcile_served(scenario, sealed.clone(), &f.ctx).await;
    let error = result.expect_err("the API server failed again");
    let action = error_policy(sealed, &error, f.ctx.clone());
    assert_eq!(action, Action::requeue(Duration::from_millis(500)));
}

#[tokio::test]
async fn cut_values_are_read_whole_first() {
    let mut f = Fixture::new();
    let big = vec![b'x'; 40 * 1024];
    let whole = sealed_with(&f.recipient, &[("big", &big)], NS, |_| {});
    let cached = f.cache_sealed(&whole);
    assert!(
        values_cut(&cached),
        "the cache keeps values over 32 KiB cut"
    );
    let served = serde_json::to_value(&whole).expect("JSON");
    let scenario = play(f.server, move |mut server| async move {
        let (seen, reply) = expect(&mut server, "GET", SEALED_PATH).await;
        assert!(seen.query.is_empty(), "{:?}", seen.query);
        answer(reply, 200, &served);
        let (seen, reply) = expect(&mut server, "POST", SECRETS_PATH).await;
        assert_eq!(seen.body["data"], json!({"big": b64(&big)}));
        answer(reply, 201, &stored(seen.body, "secret-uid-9", "900"));
        server
    });
    let (result, _) = reconcile_served(scenario, cached, &f.ctx).await;
    assert_eq!(
        result.expect("unsealed from the whole object"),
        Action::await_change()
    );
}

/// `prod/db` whose `dsn` key is a template over its sealed values.
fn sealed_with_template(to: &Recipient, template: &str) -> SealedSecret {
    let mut sealed = sealed_db(to);
    let t = sealed.spec.template.get_or_insert_default();
    t.data.insert("dsn".into(), template.into());
    sealed
}

#[tokio::test]
async fn template_data_is_rendered_into_the_secret() {
    let mut f = Fixture::new();
    let sealed = f.cache_sealed(&sealed_with_template(
        &f.recipient,
        "postgres://app:{{ .password | urlquery }}@db:5432/app",
    ));
    let scenario = play(f.server, |mut server| async move {
        let (seen, reply) = expect(&mut server, "POST", SECRETS_PATH).await;
        let want = format!("postgres://app:{SECRET}@db:5432/app");
        assert_eq!(
            seen.body["data"],
            json!({"password": b64(SECRET.as_bytes()), "dsn": b64(want.as_bytes())})
        );
        answer(reply, 201, &stored(seen.body, "secret-uid-1", "200"));
        server
    });
    let (result, server) = reconcile_served(scenario, sealed, &f.ctx).await;
    f.server = server;
    assert_eq!(result.expect("reconciled"), Action::await_change());
}

#[tokio::test]
async fn forbidden_template_function_fails_without_a_request() {
    let mut f = Fixture::new();
    let sealed = f.cache_sealed(&sealed_with_template(&f.recipient, "{{ env \"HOME\" }}"));
    let message = assert_err(run(sealed, &f.ctx).await, Reason::InvalidSpec);
    assert!(
        message.contains("spec.template.data.dsn: function \"env\" is not available"),
        "{message}"
    );
    assert_quiet(&mut f.server).await;
}
