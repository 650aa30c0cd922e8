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
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".spec.state"}"#,
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
