//! Carrying the catalogue out against the real API server: applying objects, watching what
//! the controller makes of them (watches record every status and Secret as it arrives, so
//! timings need no polling of the API server), judging each object against its entry, and
//! the churn drill (one object rewritten ~100 times a second while good objects arrive).

use super::build::{Built, Kit};
use super::catalogue::{Entry, Expect, Refused};
use super::ctrltool::Env;
use futures::StreamExt;
use gitseal::api::SealedSecret;
use gitseal::format::{Scope, Sealer, Target};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long any one verdict may take: generous for a loaded 2-core machine.
pub const WAIT: Duration = Duration::from_secs(240);

/// Namespace and name.
pub type Key = (String, String);

/// One status of an object, as the watch saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub at: Instant,
    pub observed: Option<i64>,
    /// Ready: status, reason, message.
    pub ready: Option<(String, String, String)>,
    pub key_ids: Vec<String>,
}

impl Seen {
    /// The status of `o`, now.
    pub fn of(o: &SealedSecret) -> Self {
        let status = o.status.clone().unwrap_or_default();
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready");
        Seen {
            at: Instant::now(),
            observed: status.observed_generation,
            ready: ready.map(|c| (c.status.clone(), c.reason.clone(), c.message.clone())),
            key_ids: status.key_ids.clone(),
        }
    }

    /// Ready=True, Unsealed.
    pub fn unsealed(&self) -> bool {
        self.ready
            .as_ref()
            .is_some_and(|(status, reason, _)| status == "True" && reason == "Unsealed")
    }
}

/// Every status of every SealedSecret, and when each managed Secret first appeared.
pub struct Watch {
    statuses: Arc<Mutex<HashMap<Key, Vec<Seen>>>>,
    secrets: Arc<Mutex<HashMap<Key, Instant>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn key_of(meta: &kube::api::ObjectMeta) -> Key {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

impl Watch {
    pub fn start(client: &kube::Client) -> Self {
        let statuses: Arc<Mutex<HashMap<Key, Vec<Seen>>>> = Arc::default();
        let secrets: Arc<Mutex<HashMap<Key, Instant>>> = Arc::default();
        let (into, api) = (statuses.clone(), Api::<SealedSecret>::all(client.clone()));
        let sealed = tokio::spawn(async move {
            let events = watcher(api, watcher::Config::default()).default_backoff();
            let mut events = std::pin::pin!(events);
            while let Some(event) = events.next().await {
                let (Ok(watcher::Event::Apply(o)) | Ok(watcher::Event::InitApply(o))) = event
                else {
                    continue;
                };
                let seen = Seen::of(&o);
                let mut map = into.lock().unwrap();
                map.entry(key_of(&o.metadata)).or_default().push(seen);
            }
        });
        let (into, api) = (secrets.clone(), Api::<Secret>::all(client.clone()));
        let managed = tokio::spawn(async move {
            let config = watcher::Config::default().labels("app.kubernetes.io/managed-by=gitseal");
            let events = watcher(api, config).default_backoff().applied_objects();
            let mut events = std::pin::pin!(events);
            while let Some(event) = events.next().await {
                if let Ok(s) = event {
                    let now = Instant::now();
                    into.lock()
                        .unwrap()
                        .entry(key_of(&s.metadata))
                        .or_insert(now);
                }
            }
        });
        Self {
            statuses,
            secrets,
            tasks: vec![sealed, managed],
        }
    }

    pub fn history(&self, key: &Key) -> Vec<Seen> {
        self.statuses
            .lock()
            .unwrap()
            .get(key)
            .cloned()
            .unwrap_or_default()
    }

    /// The first status at `generation` that `ok` accepts.
    pub fn first(&self, key: &Key, generation: i64, ok: impl Fn(&Seen) -> bool) -> Option<Seen> {
        let map = self.statuses.lock().unwrap();
        map.get(key)?
            .iter()
            .find(|s| s.observed == Some(generation) && ok(s))
            .cloned()
    }

    pub fn secret_since(&self, key: &Key) -> Option<Instant> {
        self.secrets.lock().unwrap().get(key).copied()
    }
}

/// Create `b` (after the Secret it expects to exist, if any) as `kubectl create` or a
/// client-side `kubectl apply` does (a JSON POST; server-side apply's YAML decoder refuses
/// keys over 1,024 characters): the object's generation, or the API server's refusal.
pub async fn create(env: &Env, b: &Built) -> Result<i64, kube::Error> {
    if let Some(existing) = &b.existing {
        let secret: Secret = serde_json::from_value(existing.clone()).unwrap();
        env.secrets(&b.ns)
            .create(&PostParams::default(), &secret)
            .await
            .expect("create the pre-existing Secret");
    }
    let mut doc = b.doc.clone();
    doc["metadata"]["namespace"] = json!(b.ns);
    let object: DynamicObject = serde_json::from_value(doc).unwrap();
    let api: Api<DynamicObject> = Api::namespaced_with(
        env.client.clone(),
        &b.ns,
        &ApiResource::erase::<SealedSecret>(&()),
    );
    let out = api.create(&PostParams::default(), &object).await?;
    Ok(out.metadata.generation.unwrap_or(1))
}

/// Every refused object is refused (422, or the storage's limit) with what it says.
pub async fn refused_at_admission(env: &Env, kit: &Kit, list: &[Refused]) -> Vec<String> {
    let mut wrong = Vec::new();
    for r in list {
        let built = (r.build)(kit, r.name);
        match create(env, &built).await {
            Ok(_) => wrong.push(format!("{}: admitted, expected a refusal", r.name)),
            Err(kube::Error::Api(s)) if s.message.contains(r.says) && s.code >= 400 => {
                println!(
                    "refused  {:<28} {:<44} {} {}",
                    r.layer,
                    r.name,
                    s.code,
                    cut(&s.message, 140)
                );
            }
            Err(e) => wrong.push(format!("{}: expected {:?}, got {e}", r.name, r.says)),
        }
    }
    wrong
}

/// One catalogue object applied: its entry, what was built, when and at which generation.
pub struct Case<'a> {
    pub entry: &'a Entry,
    pub built: Built,
    pub at: Instant,
    pub generation: i64,
}

impl Case<'_> {
    pub fn key(&self) -> Key {
        (self.built.ns.clone(), self.built.name().to_string())
    }

    /// `text` with the placeholders filled in.
    fn fill(&self, text: &str, our: &str) -> String {
        let mut out = text
            .replace("{ns}", &self.built.ns)
            .replace("{name}", self.built.name())
            .replace("{our}", our);
        for (name, value) in &self.built.vars {
            out = out.replace(&format!("{{{name}}}"), value);
        }
        out
    }

    /// Whether a status is the verdict the entry expects.
    pub fn judged(&self, seen: &Seen, our: &str) -> bool {
        let Some((status, reason, message)) = &seen.ready else {
            return false;
        };
        match &self.entry.expect {
            Expect::Unsealed => seen.unsealed(),
            Expect::Fails {
                reason: want,
                field,
                says,
            } => {
                let head = match field.is_empty() {
                    true => String::new(),
                    false => format!("{}: ", self.fill(field, our)),
                };
                status == "False"
                    && reason == want.as_str()
                    && message.starts_with(&head)
                    && message.contains(&self.fill(says, our))
            }
        }
    }
}

/// Build and apply `entries` with `kit`, a good object after every sixth (the flow that
/// must not stop). With `policy`, the kit's namespace has the shipped admission policy:
/// entries it refuses must be refused with their `policy` text (mismatches go to `wrong`),
/// entries placed in other namespaces are skipped, and only the rest become cases.
pub async fn apply_entries<'a>(
    env: &Env,
    kit: &Kit,
    entries: &'a [Entry],
    policy: bool,
    goods: &mut Vec<Good>,
    wrong: &mut Vec<String>,
) -> Vec<Case<'a>> {
    let mut cases = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let built = (entry.build)(kit, entry.name);
        if policy && built.ns != kit.ns {
            continue;
        }
        let result = create(env, &built).await;
        match (policy.then_some(entry.policy).flatten(), result) {
            (None, Ok(generation)) => cases.push(Case {
                entry,
                built,
                at: Instant::now(),
                generation,
            }),
            (None, Err(e)) => wrong.push(format!("{} in {}: refused: {e}", entry.name, kit.ns)),
            (Some(says), Err(kube::Error::Api(s))) if s.code == 422 && s.message.contains(says) => {
            }
            (Some(says), other) => wrong.push(format!(
                "{}: the admission policy should refuse it with {says:?}, got {:?}",
                entry.name,
                other.map_err(|e| e.to_string())
            )),
        }
        if i % 6 == 5 {
            goods.push(Good::apply(env, kit, &format!("flow-{}", goods.len())).await);
        }
    }
    cases
}

/// Wait until every case has its verdict (or `WAIT` has passed): each case's time from
/// admission to verdict, and the mismatches, each with what was seen instead.
pub async fn judge_all(
    watch: &Watch,
    cases: &[Case<'_>],
    our: &str,
) -> (Vec<Option<Duration>>, Vec<String>) {
    let start = Instant::now();
    loop {
        let pending: Vec<&Case> = cases
            .iter()
            .filter(|c| {
                watch
                    .first(&c.key(), c.generation, |s| c.judged(s, our))
                    .is_none()
            })
            .collect();
        if pending.is_empty() || start.elapsed() > WAIT {
            let wrong = pending
                .iter()
                .map(|c| {
                    let last = watch.history(&c.key()).pop();
                    format!(
                        "{}/{}: no verdict as expected; last status seen: {:?}",
                        c.built.ns,
                        c.entry.name,
                        last.map(|s| (s.observed, s.ready.map(|(a, b, m)| (a, b, cut(&m, 300)))))
                    )
                })
                .collect();
            let times = cases
                .iter()
                .map(|c| {
                    let s = watch.first(&c.key(), c.generation, |s| c.judged(s, our))?;
                    Some(s.at.saturating_duration_since(c.at))
                })
                .collect();
            return (times, wrong);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What each case left behind: the Secret exactly as sealed (and status naming only our key
/// id) for those that unseal; no Secret, or the pre-existing one untouched, for the others.
pub async fn check_secrets(env: &Env, cases: &[Case<'_>], watch: &Watch, our: &str) -> Vec<String> {
    let mut wrong = Vec::new();
    for c in cases {
        let name = c.built.name();
        let found = env.secrets(&c.built.ns).get_opt(name).await.unwrap();
        let data = |s: &Secret| -> BTreeMap<String, Vec<u8>> {
            s.data
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.0.clone()))
                .collect()
        };
        match (&c.entry.expect, &c.built.want, found) {
            (Expect::Unsealed, Some(want), Some(s)) => {
                if &data(&s) != want {
                    wrong.push(format!("{name}: the Secret does not hold what was sealed"));
                }
                let ids = watch
                    .first(&c.key(), c.generation, |s| c.judged(s, our))
                    .map(|s| s.key_ids);
                if ids != Some(vec![our.to_string()]) {
                    wrong.push(format!("{name}: status keyIds {ids:?}, expected [{our}]"));
                }
            }
            (Expect::Unsealed, _, s) => wrong.push(format!(
                "{name}: no Secret ({}) or no expected data in the entry",
                s.is_some()
            )),
            (Expect::Fails { .. }, _, None) if c.built.existing.is_none() => {}
            (Expect::Fails { .. }, _, Some(s)) if c.built.existing.is_some() => {
                let was: Secret =
                    serde_json::from_value(c.built.existing.clone().unwrap()).unwrap();
                let want: BTreeMap<String, Vec<u8>> = was
                    .string_data
                    .iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
                    .collect();
                if data(&s) != want || s.metadata.owner_references != was.metadata.owner_references
                {
                    wrong.push(format!("{name}: the Secret that was there was changed"));
                }
            }
            (Expect::Fails { .. }, _, s) => wrong.push(format!(
                "{name}: Secret present: {}, pre-existing: {}",
                s.is_some(),
                c.built.existing.is_some()
            )),
        }
    }
    wrong
}

/// Every failing case got a Warning Event with its reason (Events follow status, written by
/// their own task: waited for).
pub async fn check_events(env: &Env, cases: &[Case<'_>]) -> Vec<String> {
    let start = Instant::now();
    loop {
        let mut by_ns: HashMap<&str, Vec<(String, String)>> = HashMap::new();
        for c in cases {
            if !by_ns.contains_key(c.built.ns.as_str()) {
                let api: Api<k8s_openapi::api::events::v1::Event> =
                    Api::namespaced(env.client.clone(), &c.built.ns);
                let events = api.list(&ListParams::default()).await.unwrap().items;
                let named = events
                    .into_iter()
                    .filter(|e| e.type_.as_deref() == Some("Warning"))
                    .map(|e| {
                        let name = e.regarding.and_then(|r| r.name).unwrap_or_default();
                        (name, e.reason.unwrap_or_default())
                    })
                    .collect();
                by_ns.insert(c.built.ns.as_str(), named);
            }
        }
        let missing: Vec<String> = cases
            .iter()
            .filter_map(|c| match &c.entry.expect {
                Expect::Fails { reason, .. } => {
                    let events = &by_ns[c.built.ns.as_str()];
                    let name = c.built.name();
                    (!events
                        .iter()
                        .any(|(n, r)| n == name && r == reason.as_str()))
                    .then(|| format!("{}/{name}: no Warning Event {reason}", c.built.ns))
                }
                Expect::Unsealed => None,
            })
            .collect();
        if missing.is_empty() || start.elapsed() > Duration::from_secs(120) {
            return missing;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A good object applied while hostile ones are about: when, and what its Secret must hold.
pub struct Good {
    pub key: Key,
    pub value: String,
    pub at: Instant,
}

impl Good {
    pub async fn apply(env: &Env, kit: &Kit, name: &str) -> Good {
        let value = format!("good-value-of-{name}");
        let built = Built::new(&kit.ns, kit.good(name, &[("k", value.as_str())]));
        create(env, &built)
            .await
            .expect("a good object is admitted");
        Good {
            key: (kit.ns.clone(), name.to_string()),
            value,
            at: Instant::now(),
        }
    }
}

/// Wait for every good object's Secret (with its value) and Ready=True: the Secret and
/// Ready latencies, or what is missing.
pub async fn goods_flowed(
    env: &Env,
    watch: &Watch,
    goods: &[Good],
) -> Result<(Vec<Duration>, Vec<Duration>), String> {
    let start = Instant::now();
    let ready = |g: &Good| watch.first(&g.key, 1, Seen::unsealed);
    while goods
        .iter()
        .any(|g| ready(g).is_none() || watch.secret_since(&g.key).is_none())
    {
        if start.elapsed() > WAIT {
            let missing: Vec<&str> = goods
                .iter()
                .filter(|g| ready(g).is_none() || watch.secret_since(&g.key).is_none())
                .map(|g| g.key.1.as_str())
                .collect();
            return Err(format!("good objects never flowed: {missing:?}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for g in goods {
        let s = env.secrets(&g.key.0).get(&g.key.1).await.unwrap();
        let got = s
            .data
            .as_ref()
            .and_then(|d| d.get("k"))
            .map(|v| v.0.clone());
        if got.as_deref() != Some(g.value.as_bytes()) {
            return Err(format!("{}: the Secret does not hold its value", g.key.1));
        }
    }
    let since = |t: Instant, g: &Good| t.saturating_duration_since(g.at);
    let secrets = goods
        .iter()
        .map(|g| since(watch.secret_since(&g.key).unwrap(), g))
        .collect();
    let readies = goods
        .iter()
        .map(|g| since(ready(g).unwrap().at, g))
        .collect();
    Ok((secrets, readies))
}

/// What the churn drill did.
pub struct Churn {
    pub updates: u64,
    pub seconds: f64,
    /// The last value written, and the generation it made.
    pub last: String,
    pub generation: i64,
    pub goods: Vec<Good>,
}

/// Rewrite value `k` of object `name` (a merge patch, as `kubectl patch` sends; a new
/// generation each time) for `run`, aiming at `rate` writes a second from `writers`
/// concurrent loops (each catches up on the ticks it missed while a write was slow, so a
/// loaded API server gets as many as it can take); meanwhile apply `goods` good objects
/// spread over the run. Ends with one more rewrite after all others have returned: the final
/// state.
pub async fn churn(
    env: &Env,
    kit: &Kit,
    name: &str,
    run: Duration,
    writers: usize,
    rate: f64,
    goods: usize,
) -> Churn {
    let sealer = Sealer::new(std::slice::from_ref(&kit.ours), Scope::Strict).unwrap();
    let mut doc = kit.raw(name, std::slice::from_ref(&kit.ours), &[]);
    doc["spec"]["envelopes"] = json!({});
    super::build::add_values(&mut doc, &sealer, &[("k", b"churn-start")]);
    create(env, &Built::new(&kit.ns, doc)).await.unwrap();
    let api: Api<SealedSecret> = Api::namespaced(env.client.clone(), &kit.ns);
    let target = Target {
        namespace: Some(&kit.ns),
        name,
    };
    let (api, sealer) = (&api, &sealer);
    let write = move |plain: String| async move {
        let v = sealer.seal(target, "k", plain.as_bytes()).unwrap();
        let patch = json!({"spec": {"encryptedData": {"k": v}}});
        let params = PatchParams::default();
        let written = api.patch(name, &params, &Patch::Merge(&patch)).await;
        written
            .expect("a churn update")
            .metadata
            .generation
            .unwrap()
    };
    let (count, start) = (&AtomicU64::new(0), Instant::now());
    let writer = move |_: usize| async move {
        let mut tick = tokio::time::interval(Duration::from_secs_f64(writers as f64 / rate));
        while start.elapsed() < run {
            tick.tick().await;
            let n = count.fetch_add(1, Ordering::Relaxed);
            write(format!("churn-{n}")).await;
        }
    };
    let arrivals = async {
        let mut out = Vec::new();
        for i in 0..goods {
            let due = run.mul_f64(i as f64 / goods as f64);
            tokio::time::sleep(due.saturating_sub(start.elapsed())).await;
            out.push(Good::apply(env, kit, &format!("during-churn-{i}")).await);
        }
        out
    };
    let all = futures::future::join_all((0..writers).map(writer));
    let (_, goods) = tokio::join!(all, arrivals);
    let seconds = start.elapsed().as_secs_f64();
    let updates = count.load(Ordering::Relaxed);
    let last = format!("churn-final-{updates}");
    let generation = write(last.clone()).await;
    Churn {
        updates,
        seconds,
        last,
        generation,
        goods,
    }
}

/// `text` cut to `n` characters.
pub fn cut(text: &str, n: usize) -> String {
    let mut out: String = text.chars().take(n).collect();
    if out.len() < text.len() {
        out.push_str("...");
    }
    out
}

/// Milliseconds, for FIGURES lines.
pub fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// Min, median and max.
pub fn spread(mut ds: Vec<Duration>) -> (Duration, Duration, Duration) {
    ds.sort();
    (ds[0], ds[ds.len() / 2], ds[ds.len() - 1])
}

pub fn mean(ds: &[Duration]) -> Duration {
    ds.iter().sum::<Duration>() / ds.len() as u32
}
