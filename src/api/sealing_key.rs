//! `SealingKey`: one cluster key pair. The private key lives in a Secret in the controller's
//! namespace, owned by the SealingKey; status carries the public side.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Lifecycle state of a key. Exactly one key is Active.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum KeyState {
    /// New seals are encrypted to this key.
    #[default]
    Active,
    /// Still opens what was sealed to it; re-wrapped envelopes are published for its users.
    DecryptOnly,
    /// Private key deleted; refused while any SealedSecret still uses it unless forced.
    Retired,
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyState::Active => "Active",
            KeyState::DecryptOnly => "DecryptOnly",
            KeyState::Retired => "Retired",
        })
    }
}

/// A cluster key pair for sealing. Declaring one in Git rotates; setting `Retired` retires.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "gitseal.dev",
    version = "v1alpha1",
    kind = "SealingKey",
    status = "SealingKeyStatus",
    shortname = "gsk",
    category = "gitseal",
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".status.state"}"#,
    printcolumn = r#"{"name":"Wanted","type":"string","jsonPath":".spec.state","priority":1}"#,
    printcolumn = r#"{"name":"Why","type":"string","jsonPath":".status.stateReason"}"#,
    printcolumn = r#"{"name":"KeyID","type":"string","jsonPath":".status.keyId"}"#,
    printcolumn = r#"{"name":"Users","type":"integer","jsonPath":".status.usedBy"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SealingKeySpec {
    #[serde(default)]
    pub state: KeyState,
    /// Retire even while SealedSecrets still use this key (they will stop unsealing).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SealingKeyStatus {
    /// The state the controller gives this key (spec says what users want): e.g. `Active` in
    /// spec but `DecryptOnly` here when a newer key superseded it, or `DecryptOnly` while a
    /// retirement is refused. Only this state decides what the controller does with the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<KeyState>,
    /// Why `state` differs from spec, or what it waits for ("superseded by gitseal-2",
    /// "retirement refused: 3 SealedSecrets still use this key").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_reason: Option<String>,
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The age recipient (`age1…`) to seal to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Time>,
    /// Number of SealedSecrets whose envelopes use this key.
    #[serde(default)]
    pub used_by: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// Condition type on a SealingKey saying whether the retirement (spec `Retired`, or a
/// deletion) happened: `True` once the private key is gone; `False` with reason
/// [`RETIRE_REFUSED`] or [`DELETION_BLOCKED`] and a message while the key is still used.
/// Its `observedGeneration` tells `gitseal keys retire` that the verdict is for its request.
pub const RETIRED_CONDITION: &str = "Retired";
/// Reason: spec asks for `Retired` but SealedSecrets still use the key (and no `force`).
pub const RETIRE_REFUSED: &str = super::Reason::RetireRefused.as_str();
/// Reason: the retirement or deletion waits until every SealedSecret has been checked for
/// the key (after a start, or a key change); not a refusal, a verdict follows.
pub const RETIRE_PENDING: &str = super::Reason::RetirePending.as_str();
/// Reason: the SealingKey was deleted while SealedSecrets still use it; a finalizer keeps it
/// and its private key until they no longer do.
pub const DELETION_BLOCKED: &str = super::Reason::DeletionBlocked.as_str();
/// Condition type saying whether the controller holds a trusted private key for this key.
pub const PRIVATE_KEY_CONDITION: &str = "PrivateKey";
