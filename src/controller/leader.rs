//! Leader election with a `coordination.k8s.io/v1` Lease: the holder renews it every
//! `retry` interval; another replica takes it over once `renewTime + leaseDuration` has
//! passed. Updates carry the resourceVersion, so two replicas cannot both win one round.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
use std::time::Duration;
use tokio::sync::watch;

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

/// Try to acquire or renew once. `Ok(true)` while this replica holds the lease.
pub async fn try_acquire(api: &Api<Lease>, cfg: &LeaseConfig) -> Result<bool, kube::Error> {
    let now = jiff::Timestamp::now();
    let spec = |transitions: i32, acquired: Option<MicroTime>| LeaseSpec {
        holder_identity: Some(cfg.holder.clone()),
        lease_duration_seconds: Some(cfg.duration.as_secs() as i32),
        acquire_time: acquired.or(Some(MicroTime(now))),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..Default::default()
    };
    let Some(mut lease) = api.get_opt(&cfg.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(cfg.name.clone()),
                ..Default::default()
            },
            spec: Some(spec(0, None)),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let current = lease.spec.clone().unwrap_or_default();
    let held_by_me = current.holder_identity.as_deref() == Some(cfg.holder.as_str());
    let expired = match (&current.renew_time, current.lease_duration_seconds) {
        (Some(t), Some(d)) => t.0.as_millisecond() + i64::from(d) * 1000 < now.as_millisecond(),
        _ => true,
    };
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
pub async fn run(client: Client, cfg: LeaseConfig, leading: watch::Sender<bool>) {
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    let mut last_renewal = tokio::time::Instant::now();
    loop {
        match try_acquire(&api, &cfg).await {
            Ok(true) => {
                last_renewal = tokio::time::Instant::now();
                leading.send_if_modified(|l| !std::mem::replace(l, true));
            }
            Ok(false) => {
                leading.send_if_modified(|l| std::mem::replace(l, false));
            }
            Err(e) => {
                tracing::warn!(error = %e, "lease request failed");
                if last_renewal.elapsed() > cfg.duration.mul_f32(0.8) {
                    leading.send_if_modified(|l| std::mem::replace(l, false));
                }
            }
        }
        tokio::time::sleep(cfg.retry).await;
    }
}
