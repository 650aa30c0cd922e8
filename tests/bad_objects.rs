//! Issue 14, item 5: the controller's bad-input catalogue, against the real API server
//! (scripts/cluster) and an in-process controller. Objects the API server admits but that are
//! wrong or hostile (every reason an object can get, values at and over the 1 MiB limit,
//! 4096 keys, keys that are not Secret keys, binary garbage in envelopes, the fullest
//! envelopes, duplicate key ids, tampering, moved values, refused templates, Secrets that
//! are not the object's, Secrets the API server refuses), applied twice: where only the CRD
//! applies, and where the shipped admission policy is bound too (it must refuse exactly what
//! its entry says and admit the rest to the same verdict). Each object must get its own
//! verdict naming the field; good objects keep flowing in between; what the API server
//! refuses itself is listed by layer. Then one object is rewritten ~100 times a second for
//! 20 s while 50 good objects arrive: they all unseal, the churned object ends exactly at its
//! last write, and the controller still runs and answers /metrics.
//!
//! The catalogue is in bad_objects/catalogue.rs, how its objects are made in build.rs, and
//! how they are applied and judged in flow.rs. `cargo test --test bad_objects -- --nocapture`
//! prints the table and the FIGURES lines.

#[path = "bad_objects/build.rs"]
mod build;
#[path = "bad_objects/catalogue.rs"]
mod catalogue;
mod ctrltool;
#[path = "bad_objects/flow.rs"]
mod flow;

use build::Kit;
use catalogue::{Expect, entries, marker, refused};
use ctrltool::*;
use flow::{Watch, mean, ms, spread};
use gitseal::api::admission::POLICY_NAME;
use gitseal::api::{Reason, SealedSecret};
use k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicyBinding;
use kube::api::{Api, DeleteParams};
use std::collections::BTreeSet;
use std::time::Duration;

/// The reasons a SealedSecret's Ready condition can carry: `Reason`'s SealedSecret group
/// (declared before the SealingKey group, which starts at `Held`) without the Event-only
/// ones. A reason added there needs an entry here.
fn object_reasons() -> Vec<Reason> {
    Reason::ALL
        .into_iter()
        .take_while(|r| *r != Reason::Held)
        .filter(|r| !matches!(r, Reason::DriftRepaired | Reason::TakenOver))
        .collect()
}

fn reason_of(expect: &Expect) -> Reason {
    match expect {
        Expect::Unsealed => Reason::Unsealed,
        Expect::Fails { reason, .. } => *reason,
    }
}

#[test]
fn the_catalogue_covers_every_reason_an_object_can_get() {
    let entries = entries();
    assert!(entries.len() >= 30, "{} entries", entries.len());
    let mut names = BTreeSet::new();
    for e in entries
        .iter()
        .map(|e| e.name)
        .chain(refused().iter().map(|r| r.name))
    {
        assert!(names.insert(e), "{e} twice");
        assert!(
            e.len() <= 63
                && e.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "{e} is not an object name"
        );
    }
    let covered: BTreeSet<Reason> = entries.iter().map(|e| reason_of(&e.expect)).collect();
    for r in object_reasons() {
        assert!(covered.contains(&r), "no entry gets {r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_objects_each_get_their_own_verdict_and_never_stall_the_controller() {
    let env = Env::start().await;
    // One key in the cluster: messages name exactly the key ids held.
    env.delete_all_keys().await;
    let ctl = env.controller("catalogue").await;
    let ring = env.keyring().await;
    let ours = ring.active("keyring").unwrap().remove(0);
    let our = ours.key_id();
    let (ns, policy_ns) = (env.namespace().await, env.namespace().await);
    let kit = Kit::new(&ns, ours);
    let watch = Watch::start(&env.client);
    let entries = entries();
    let mut wrong = Vec::new();

    // What the API server refuses itself, wherever it is applied.
    let refused = refused();
    wrong.extend(flow::refused_at_admission(&env, &kit, &refused).await);

    // The catalogue, good objects in between; then again where the admission policy is bound.
    let mut goods = Vec::new();
    let mut cases = flow::apply_entries(&env, &kit, &entries, false, &mut goods, &mut wrong).await;
    let plain_cases = cases.len();
    let policy_kit = kit.at(&policy_ns);
    let probe = entries
        .iter()
        .find(|e| e.name == "envelope-unused")
        .unwrap();
    let probe = (probe.build)(&policy_kit, "policy-probe").doc;
    bind_admission_policy(&env, &policy_ns, &probe).await;
    cases.extend(
        flow::apply_entries(&env, &policy_kit, &entries, true, &mut goods, &mut wrong).await,
    );
    let (times, mismatched) = flow::judge_all(&watch, &cases, &our).await;
    wrong.extend(mismatched);
    for (c, t) in cases.iter().zip(&times) {
        let layer = if c.built.ns == policy_ns {
            "controller (policy bound)"
        } else {
            "controller"
        };
        let t = t.map_or("-".to_string(), |t| format!("{} ms", ms(t)));
        let reason = reason_of(&c.entry.expect);
        println!("{layer:<28} {:<44} {reason:<15} {t}", c.entry.name);
    }
    for e in entries.iter().filter(|e| e.policy.is_some()) {
        println!("{:<28} {:<44} 422", "admission policy", e.name);
    }
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    wrong.extend(flow::check_secrets(&env, &cases, &watch, &our).await);
    wrong.extend(flow::check_events(&env, &cases).await);
    let flowed = flow::goods_flowed(&env, &watch, &goods).await;
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    let (secret, ready) = flowed.unwrap();
    let judged: Vec<Duration> = times.iter().flatten().copied().collect();
    let (min, median, max) = spread(judged);
    println!(
        "FIGURES bad_objects catalogue: {} objects admitted ({plain_cases} with the CRD only, {} \
         where the admission policy is bound), {} refused by the API server, {} by the policy; \
         time to verdict min {} ms, median {} ms, max {} ms",
        cases.len(),
        cases.len() - plain_cases,
        refused.len(),
        entries.iter().filter(|e| e.policy.is_some()).count(),
        ms(min),
        ms(median),
        ms(max)
    );
    println!(
        "FIGURES bad_objects flow during the catalogue: {} good objects: Secret mean {} ms, max {} ms; \
         Ready mean {} ms, max {} ms",
        goods.len(),
        ms(mean(&secret)),
        ms(spread(secret.clone()).2),
        ms(mean(&ready)),
        ms(spread(ready.clone()).2)
    );

    // One object rewritten ~100 times a second while 50 good objects arrive.
    let churn = flow::churn(&env, &kit, "churn", Duration::from_secs(20), 2, 100.0, 50).await;
    let ended = std::time::Instant::now();
    let key = (ns.clone(), "churn".to_string());
    let done = flow::Seen::unsealed;
    wait_for(flow::WAIT, || async {
        watch.first(&key, churn.generation, done).is_some()
    })
    .await;
    let settled = watch.first(&key, churn.generation, done).unwrap().at - ended;
    let secret_now = env.secrets(&ns).get("churn").await.unwrap();
    assert_eq!(
        data(&secret_now, "k"),
        churn.last,
        "the churned object's Secret"
    );
    let (secret, ready) = flow::goods_flowed(&env, &watch, &churn.goods)
        .await
        .unwrap_or_else(|e| panic!("during the churn: {e}"));
    println!(
        "FIGURES bad_objects churn: {} updates of one object in {:.1} s = {:.0}/s; its final status \
         {} ms after the last update",
        churn.updates,
        churn.seconds,
        churn.updates as f64 / churn.seconds,
        ms(settled)
    );
    println!(
        "FIGURES bad_objects churn flow: {} good objects applied meanwhile: Secret mean {} ms, max {} ms; \
         Ready mean {} ms, max {} ms",
        churn.goods.len(),
        ms(mean(&secret)),
        ms(spread(secret.clone()).2),
        ms(mean(&ready)),
        ms(spread(ready.clone()).2)
    );

    // The controller never stopped, still answers, counted every reason, and every object
    // still has its verdict.
    assert!(ctl.is_running(), "the controller stopped");
    let metrics = ctl.get("/metrics").await.expect("/metrics answers");
    for r in object_reasons() {
        let counted = metrics
            .lines()
            .filter(|l| {
                l.starts_with("gitseal_reconciles_total{") && l.contains(&format!("reason=\"{r}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
        assert!(counted > 0.0, "no reconcile counted as {r}:\n{metrics}");
    }
    for c in &cases {
        let api: Api<SealedSecret> = Api::namespaced(env.client.clone(), &c.built.ns);
        let seen = flow::Seen::of(&api.get(c.built.name()).await.unwrap());
        assert!(
            seen.observed == Some(c.generation) && c.judged(&seen, &our),
            "{}/{}: the verdict changed to {:?}",
            c.built.ns,
            c.entry.name,
            seen.ready
        );
    }
    let markers: Vec<String> = entries.iter().map(|e| marker(e.name)).collect();
    let markers: Vec<&str> = markers.iter().map(String::as_str).collect();
    ctl.assert_no_plain_text(&env, &ns, &markers).await;

    // Leave nothing in the shared namespaces.
    for c in cases
        .iter()
        .filter(|c| c.built.ns != ns && c.built.ns != policy_ns)
    {
        let api: Api<SealedSecret> = Api::namespaced(env.client.clone(), &c.built.ns);
        let _ = api.delete(c.built.name(), &DeleteParams::default()).await;
    }
    // ...nor the policy's binding.
    let bindings: Api<ValidatingAdmissionPolicyBinding> = Api::all(env.client.clone());
    let binding = format!("{POLICY_NAME}-{policy_ns}");
    let _ = bindings.delete(&binding, &DeleteParams::default()).await;
}
