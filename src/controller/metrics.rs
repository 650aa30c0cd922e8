//! Prometheus metrics. Labels are closed sets (results, reasons, states): never names of
//! keys, values or anything a user typed into a Secret.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabel {
    pub op: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ByLabel {
    pub by: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: String,
}

/// Every metric of the controller.
pub struct Metrics {
    pub registry: Registry,
    pub reconciles: Family<ReasonLabel, Counter>,
    pub secret_writes: Family<OpLabel, Counter>,
    pub drift_repairs: Counter,
    /// SealedSecrets opened (values decrypted): `by` is `reconcile` or `standby`.
    pub opened: Family<ByLabel, Counter>,
    pub reconcile_seconds: Histogram,
    pub keys: Family<StateLabel, Gauge>,
    /// When the Active key was created (seconds since the epoch; 0 while none is, or on a
    /// replica that does not lead).
    pub active_key_created: Gauge,
    /// Keys asked to retire (or being deleted) that are still in use.
    pub keys_retire_refused: Gauge,
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("gitseal");
        let reconciles = Family::<ReasonLabel, Counter>::default();
        let secret_writes = Family::<OpLabel, Counter>::default();
        let drift_repairs = Counter::default();
        let opened = Family::<ByLabel, Counter>::default();
        let reconcile_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        let keys = Family::<StateLabel, Gauge>::default();
        let active_key_created = Gauge::default();
        let keys_retire_refused = Gauge::default();
        let leader = Gauge::default();
        registry.register(
            "reconciles",
            "SealedSecret reconciles by outcome reason",
            reconciles.clone(),
        );
        registry.register(
            "secret_writes",
            "Secret writes by operation",
            secret_writes.clone(),
        );
        registry.register(
            "drift_repairs",
            "Managed Secrets restored after an edit or deletion",
            drift_repairs.clone(),
        );
        registry.register(
            "opened",
            "SealedSecrets opened (values decrypted), by a reconcile or by the standby ahead of takeover",
            opened.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time per SealedSecret reconcile",
            reconcile_seconds.clone(),
        );
        registry.register("sealing_keys", "SealingKeys by state", keys.clone());
        registry.register(
            "active_key_created_timestamp_seconds",
            "Creation time of the Active SealingKey (0: none, or not leading)",
            active_key_created.clone(),
        );
        registry.register(
            "sealing_keys_retire_refused",
            "SealingKeys asked to retire or being deleted that sealed objects still use",
            keys_retire_refused.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader lease",
            leader.clone(),
        );
        Self {
            registry,
            reconciles,
            secret_writes,
            drift_repairs,
            opened,
            reconcile_seconds,
            keys,
            active_key_created,
            keys_retire_refused,
            leader,
        }
    }
}

impl Metrics {
    pub fn reconciled(&self, reason: crate::api::Reason) {
        self.reconciles
            .get_or_create(&ReasonLabel {
                reason: reason.as_str().to_string(),
            })
            .inc();
    }

    pub fn wrote(&self, op: &str) {
        self.secret_writes
            .get_or_create(&OpLabel { op: op.to_string() })
            .inc();
    }

    /// One SealedSecret opened, `by` a reconcile or the standby.
    pub fn opened(&self, by: &'static str) {
        self.opened.get_or_create(&ByLabel { by }).inc();
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String");
        out
    }
}
