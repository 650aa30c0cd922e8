//! A standby's share of the work while another replica leads: open each cached SealedSecret
//! once, read only (no API request, nothing written), and remember in the memo what it
//! unseals to and which keys open it. On takeover every in-sync object is then known by
//! digest, so the first pass decrypts and writes nothing for it, and only an edited or
//! deleted Secret is opened and repaired. Passes repeat while standing by, and open only
//! what changed since (new specs, new keys).

use super::{Context, caches, reconcile};
use crate::unsealer::secret::wipe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Pause between passes. A pass over objects already remembered is a lookup per object.
const PASS_EVERY: Duration = Duration::from_secs(1);

/// Fill the memo until dropped (when this replica starts to lead).
pub async fn prepare(ctx: Arc<Context>) {
    let stop = Stop(Arc::new(AtomicBool::new(false)));
    loop {
        let (ctx, stop) = (ctx.clone(), stop.0.clone());
        match tokio::task::spawn_blocking(move || pass(&ctx, &stop)).await {
            Ok(0) => {}
            Ok(opened) => tracing::info!(opened, "standing by: objects opened ahead of takeover"),
            Err(e) => {
                tracing::warn!(error = %e, "a standby pass failed; the leader's first pass opens instead")
            }
        }
        tokio::time::sleep(PASS_EVERY).await;
    }
}

/// Tells a pass in flight to end when [`prepare`] is dropped.
struct Stop(Arc<AtomicBool>);

impl Drop for Stop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Open every cached object the memo holds nothing for with the current keys; how many.
/// Objects whose values the cache keeps cut are left to the leader (opening them would
/// mean reading each from the API server).
fn pass(ctx: &Context, stop: &AtomicBool) -> usize {
    let (keys, keys_version) = ctx.private_keys();
    let active = ctx.active_key();
    let active = active.as_ref().map(|(id, _)| id.as_str());
    let mut opened = 0;
    for sealed in ctx.sealed_objects() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let Some(uid) = sealed.metadata.uid.as_deref() else {
            continue;
        };
        let inputs = reconcile::memo_inputs(&sealed, keys_version, active);
        if ctx.memo.used(uid, inputs).is_some() || caches::values_cut(&sealed) {
            continue;
        }
        let (result, _, used) = reconcile::open(&sealed, &keys, &ctx.config.policy);
        ctx.metrics.opened("standby");
        let digest = result.ok().map(|(mut secret, digest)| {
            wipe(&mut secret);
            digest
        });
        ctx.memo.put(uid, inputs, digest, &used);
        opened += 1;
    }
    opened
}
