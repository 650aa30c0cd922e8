//! Leader election with a `coordination.k8s.io/v1` Lease, with client-go's semantics: the
//! holder renews it every `retry` interval; another replica takes it over once it has seen
//! no change to the record for `leaseDuration` (by its own clock), or at once when the
//! holder released it on shutdown. Updates carry the resourceVersion, so two replicas
//! cannot both win one round.
//!
//! Hand-written (~190 lines) rather than a crate: the Lease crates for kube judge expiry
//! from the holder's `renewTime` against the local clock (kube-leader-election; kube-lease-
//! manager 0.12 adds a skew allowance and is built on an older kube major), which clock
//! skew between nodes turns into two leaders or none.

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Lease settings.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This replica's identity (pod name).
    pub holder: String,
    pub duration: Duration,
    pub retry: Duration,
}

/// One replica's view of the Lease. Expiry is judged as client-go does: by when *this*
/// replica last saw the record change (its local clock), never by the holder's `renewTime`,
/// so clock skew between nodes cannot make a live leader look expired.
pub struct Elector {
    api: Api<Lease>,
    cfg: LeaseConfig,
    /// The Lease's resourceVersion when it last changed, when we saw that, and the lease
    /// duration it then named.
    observed: Option<(String, Instant, Duration)>,
}

impl Elector {
    pub fn new(api: Api<Lease>, cfg: LeaseConfig) -> Self {
        Self {
            api,
            cfg,
            observed: None,
        }
    }

    /// Try to acquire or renew once. `Ok(true)` while this replica holds the lease.
    pub async fn try_acquire(&mut self) -> Result<bool, kube::Error> {
        let cfg = self.cfg.clone();
        let now = jiff::Timestamp::now();
        let spec = |transitions: i32, acquired: Option<MicroTime>| LeaseSpec {
            holder_identity: Some(cfg.holder.clone()),
            lease_duration_seconds: Some(i32::try_from(cfg.duration.as_secs()).unwrap_or(i32::MAX)),
            acquire_time: acquired.or(Some(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..Default::default()
        };
        let Some(mut lease) = self.api.get_opt(&cfg.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.name.clone()),
                    ..Default::default()
                },
                spec: Some(spec(0, None)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let expires = self.observe(&lease);
        let current = lease.spec.clone().unwrap_or_default();
        let held_by_me = current.holder_identity.as_deref() == Some(cfg.holder.as_str());
        let expired = expires <= Instant::now();
        if !held_by_me && !expired && current.holder_identity.is_some() {
            return Ok(false);
        }
        let transitions = current.lease_transitions.unwrap_or(0) + i32::from(!held_by_me);
        let acquired = if held_by_me {
            current.acquire_time.clone()
        } else {
            None
        };
        lease.spec = Some(spec(transitions, acquired));
        match self
            .api
            .replace(&lease.name_any(), &PostParams::default(), &lease)
            .await
        {
            Ok(written) => {
                self.observe(&written);
                Ok(true)
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Note the Lease as read or watched: a new resourceVersion restarts the expiry clock.
    /// When it expires, by this replica's observation.
    pub fn observe(&mut self, lease: &Lease) -> Instant {
        let version = lease.resource_version().unwrap_or_default();
        match &self.observed {
            Some((v, at, duration)) if *v == version => *at + *duration,
            _ => {
                let duration = lease
                    .spec
                    .as_ref()
                    .and_then(|s| s.lease_duration_seconds)
                    .map_or(Duration::ZERO, |d| Duration::from_secs(d.max(0) as u64));
                let at = Instant::now();
                self.observed = Some((version, at, duration));
                at + duration
            }
        }
    }

    /// When the Lease last observed expires, if that is still ahead.
    fn expiry(&self) -> Option<Instant> {
        let (_, at, duration) = self.observed.as_ref()?;
        Some(*at + *duration).filter(|e| *e > Instant::now())
    }
}

/// Give the lease up (on shutdown, once this replica has stopped its writers): the standby
/// takes over at its next try instead of waiting for the lease to expire. `Ok(false)` when
/// this replica did not hold it, or someone else changed it meanwhile.
pub async fn release(api: &Api<Lease>, cfg: &LeaseConfig) -> Result<bool, kube::Error> {
    let Some(mut lease) = api.get_opt(&cfg.name).await? else {
        return Ok(false);
    };
    let Some(spec) = lease.spec.as_mut() else {
        return Ok(false);
    };
    if spec.holder_identity.as_deref() != Some(cfg.holder.as_str()) {
        return Ok(false);
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
    // The resourceVersion travels with the object: a lease taken meanwhile is left alone.
    match api
        .replace(&lease.name_any(), &PostParams::default(), &lease)
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Keep trying forever, publishing whether this replica leads. A leader that fails to renew
/// for a whole lease duration steps down (publishes false) before anyone can take over.
/// A standby also watches the Lease: each change restarts its expiry clock when it happens
/// (not when the next poll sees it), it tries right when the Lease expires, and at once
/// when its holder releases it (so the warm standby, not a replacement Pod still starting,
/// takes over); without the watch (RBAC without list/watch) it still polls every `retry`.
pub async fn run(client: Client, cfg: LeaseConfig, leading: watch::Sender<bool>) {
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    let changes = watcher(
        api.clone(),
        watcher::Config::default().fields(&format!("metadata.name={}", cfg.name)),
    )
    .default_backoff()
    .applied_objects()
    .filter_map(|l| async move { l.ok() });
    let mut changes = std::pin::pin!(changes);
    let retry = cfg.retry;
    let renew_deadline = cfg.duration.mul_f32(0.8);
    let mut elector = Elector::new(api, cfg);
    let mut last_renewal = Instant::now();
    loop {
        match elector.try_acquire().await {
            Ok(true) => {
                last_renewal = Instant::now();
                leading.send_if_modified(|l| !std::mem::replace(l, true));
            }
            Ok(false) => {
                leading.send_if_modified(|l| std::mem::replace(l, false));
            }
            Err(e) => {
                tracing::warn!(error = %e, "lease request failed");
                if last_renewal.elapsed() > renew_deadline {
                    leading.send_if_modified(|l| std::mem::replace(l, false));
                }
            }
        }
        let next = Instant::now() + retry;
        if *leading.borrow() {
            tokio::time::sleep_until(next).await;
            continue;
        }
        loop {
            let wake = elector.expiry().map_or(next, |at| at.min(next));
            tokio::select! {
                () = tokio::time::sleep_until(wake) => break,
                Some(lease) = changes.next() => {
                    elector.observe(&lease);
                    if lease.spec.is_none_or(|s| s.holder_identity.is_none()) {
                        tracing::debug!("lease released; trying now");
                        break;
                    }
                }
            }
        }
    }
}
