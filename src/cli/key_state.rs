//! What the key commands read from SealingKeys, as pure functions over the objects: the
//! effective state (the controller's verdict in `status.state`, not the wish in spec), the
//! rows of `keys list`, the entries `keys fetch` publishes, the verdict `keys retire` waits
//! for, and which other field managers (GitOps agents) own `spec.state`.

use crate::api::{KeyState, RETIRE_REFUSED, RETIRED_CONDITION, SealingKey, SealingKeyStatus};
use crate::crypto::Recipient;
use crate::manifest::KeyringEntry;
use kube::ResourceExt;

/// The field manager of the CLI's writes to SealingKeys (`rotate`, `keys retire`).
pub const CLI_FIELD_MANAGER: &str = "gitseal-cli";

/// The state the controller gives `key`. When the controller reports effective states
/// (`reports` — some key carries `status.state`), a key without one is not judged yet
/// (`None`); with an older controller that reports none, spec is all there is.
pub fn effective_state(key: &SealingKey, reports: bool) -> Option<KeyState> {
    match key.status.as_ref().and_then(|s| s.state) {
        Some(state) => Some(state),
        None if reports => None,
        None => Some(key.spec.state),
    }
}

/// Whether the controller reports effective states in status (any key has one).
pub fn reports_state(keys: &[SealingKey]) -> bool {
    keys.iter()
        .any(|k| k.status.as_ref().is_some_and(|s| s.state.is_some()))
}

/// One row of `gitseal keys list`.
#[derive(Debug, PartialEq, Eq)]
pub struct Row {
    pub name: String,
    pub key_id: String,
    /// Effective state, `Pending` while the controller has not judged the key.
    pub state: String,
    /// spec.state when it differs from the effective state, else `-`.
    pub wanted: String,
    pub users: i64,
    /// status.stateReason, else `-`.
    pub why: String,
}

/// The `keys list` rows of `keys`, in the given order.
pub fn rows(keys: &[SealingKey]) -> Vec<Row> {
    let reports = reports_state(keys);
    keys.iter()
        .map(|k| {
            let status = k.status.clone().unwrap_or_default();
            let state = effective_state(k, reports);
            Row {
                name: k.name_any(),
                key_id: status.key_id.clone().unwrap_or_else(|| "-".into()),
                state: state.map_or_else(|| "Pending".into(), |s| s.to_string()),
                wanted: if state == Some(k.spec.state) {
                    "-".into()
                } else {
                    k.spec.state.to_string()
                },
                users: status.used_by,
                why: status
                    .state_reason
                    .clone()
                    .filter(|r| !r.is_empty())
                    .unwrap_or_else(|| "-".into()),
            }
        })
        .collect()
}

/// The keyring entries `keys fetch` publishes: every key with a public key, in its effective
/// state, so only the key the controller made Active is sealed to. Keys not judged yet are
/// left out and named in the second list.
pub fn keyring_entries(keys: &[SealingKey]) -> (Vec<KeyringEntry>, Vec<String>) {
    let reports = reports_state(keys);
    let mut entries = Vec::new();
    let mut pending = Vec::new();
    for k in keys {
        let Some(status) = k.status.as_ref() else {
            continue;
        };
        let Some(recipient) = status
            .public_key
            .as_deref()
            .and_then(|p| Recipient::parse(p).ok())
        else {
            continue;
        };
        match effective_state(k, reports) {
            Some(state) => entries.push(KeyringEntry::new(
                &recipient,
                state,
                status.created.as_ref().map(|t| t.0.to_string()),
            )),
            None => pending.push(k.name_any()),
        }
    }
    (entries, pending)
}

/// What the controller has said about a retirement asked for at `generation`.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// `status.state` is Retired: the private key is gone.
    Retired,
    /// Condition `Retired`=False, reason `RetireRefused`, judged at `generation` or later.
    Refused(String),
    /// No verdict for this generation yet.
    Pending,
}

/// The verdict on a retirement whose spec change produced `generation`. A refusal judged
/// for an earlier generation (before the request) is not an answer to it.
pub fn retire_verdict(key: &SealingKey, generation: i64) -> Verdict {
    let Some(status) = key.status.as_ref() else {
        return Verdict::Pending;
    };
    if status.state == Some(KeyState::Retired) {
        return Verdict::Retired;
    }
    refusal(status, generation).map_or(Verdict::Pending, Verdict::Refused)
}

fn refusal(status: &SealingKeyStatus, generation: i64) -> Option<String> {
    let c = status
        .conditions
        .iter()
        .find(|c| c.type_ == RETIRED_CONDITION)?;
    (c.status == "False"
        && c.reason == RETIRE_REFUSED
        && c.observed_generation.is_some_and(|g| g >= generation))
    .then(|| c.message.clone())
}

/// Field managers other than gitseal's own that own `spec.state` of `key` (a GitOps agent,
/// `kubectl apply`): they will set it back to what Git says.
pub fn other_state_managers(key: &SealingKey) -> Vec<String> {
    let ours = [CLI_FIELD_MANAGER, crate::controller::FIELD_MANAGER];
    let mut out: Vec<String> = key
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.subresource.as_deref().unwrap_or("").is_empty())
        .filter(|m| {
            m.fields_v1
                .as_ref()
                .and_then(|f| f.0.get("f:spec"))
                .and_then(|s| s.get("f:state"))
                .is_some()
        })
        .filter_map(|m| m.manager.clone())
        .filter(|m| !ours.contains(&m.as_str()))
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SealingKeySpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
        Condition, FieldsV1, ManagedFieldsEntry, Time,
    };

    fn key(name: &str, spec: KeyState, status: Option<SealingKeyStatus>) -> SealingKey {
        let mut k = SealingKey::new(
            name,
            SealingKeySpec {
                state: spec,
                force: false,
            },
        );
        k.metadata.generation = Some(2);
        k.status = status;
        k
    }

    fn status(state: Option<KeyState>, why: Option<&str>) -> SealingKeyStatus {
        let id = crate::crypto::Identity::generate();
        SealingKeyStatus {
            state,
            state_reason: why.map(str::to_string),
            public_key: Some(id.recipient().as_str().to_string()),
            key_id: Some(id.key_id()),
            ..Default::default()
        }
    }

    fn retired_condition(status: &str, reason: &str, generation: i64, message: &str) -> Condition {
        Condition {
            type_: RETIRED_CONDITION.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            observed_generation: Some(generation),
            last_transition_time: Time(jiff::Timestamp::UNIX_EPOCH),
        }
    }

    #[test]
    fn list_shows_the_effective_state_the_reason_and_the_wish() {
        let keys = [
            key(
                "gitseal-1",
                KeyState::Retired,
                Some(status(
                    Some(KeyState::DecryptOnly),
                    Some("retirement refused: 2 SealedSecret(s) still use this key"),
                )),
            ),
            key(
                "gitseal-2",
                KeyState::Active,
                Some(status(
                    Some(KeyState::DecryptOnly),
                    Some("superseded by gitseal-3"),
                )),
            ),
            key(
                "gitseal-3",
                KeyState::Active,
                Some(status(Some(KeyState::Active), None)),
            ),
            key("gitseal-4", KeyState::Active, None),
        ];
        let listed = rows(&keys);
        let shown: Vec<(&str, &str, &str)> = listed
            .iter()
            .map(|r| (r.state.as_str(), r.wanted.as_str(), r.why.as_str()))
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "DecryptOnly",
                    "Retired",
                    "retirement refused: 2 SealedSecret(s) still use this key"
                ),
                ("DecryptOnly", "Active", "superseded by gitseal-3"),
                ("Active", "-", "-"),
                ("Pending", "Active", "-"),
            ]
        );
        // An older controller writes no status.state: spec is shown.
        let old = [key("gitseal-1", KeyState::Active, Some(status(None, None)))];
        assert_eq!(rows(&old)[0].state, "Active");
        assert_eq!(rows(&old)[0].wanted, "-");
    }

    #[test]
    fn fetch_publishes_only_the_effective_active_key_as_active() {
        let keys = [
            key(
                "gitseal-1",
                KeyState::Active,
                Some(status(
                    Some(KeyState::DecryptOnly),
                    Some("superseded by gitseal-2"),
                )),
            ),
            key(
                "gitseal-2",
                KeyState::Active,
                Some(status(Some(KeyState::Active), None)),
            ),
            key(
                "gitseal-3",
                KeyState::Retired,
                Some(status(Some(KeyState::Retired), None)),
            ),
            key("gitseal-4", KeyState::Active, Some(status(None, None))),
            key("gitseal-5", KeyState::Active, None),
        ];
        let (entries, pending) = keyring_entries(&keys);
        let states: Vec<KeyState> = entries.iter().map(|e| e.state).collect();
        assert_eq!(
            states,
            [KeyState::DecryptOnly, KeyState::Active, KeyState::Retired]
        );
        assert_eq!(
            entries[1].key_id,
            keys[1].status.as_ref().unwrap().key_id.clone().unwrap()
        );
        assert_eq!(pending, ["gitseal-4"]);
    }

    #[test]
    fn retire_waits_for_a_verdict_on_its_own_generation() {
        let mut k = key(
            "gitseal-1",
            KeyState::Retired,
            Some(status(Some(KeyState::DecryptOnly), None)),
        );
        assert_eq!(retire_verdict(&k, 2), Verdict::Pending);
        // A refusal of an earlier request (generation 1) does not answer this one.
        let message = "2 SealedSecret(s) still use this key: reseal them first, or set spec.force";
        k.status.as_mut().unwrap().conditions =
            vec![retired_condition("False", RETIRE_REFUSED, 1, message)];
        assert_eq!(retire_verdict(&k, 2), Verdict::Pending);
        k.status.as_mut().unwrap().conditions =
            vec![retired_condition("False", RETIRE_REFUSED, 2, message)];
        assert_eq!(retire_verdict(&k, 2), Verdict::Refused(message.into()));
        assert_eq!(retire_verdict(&k, 3), Verdict::Pending);
        // Another reason (deletion blocked) is not a refusal of the retirement.
        k.status.as_mut().unwrap().conditions =
            vec![retired_condition("False", "DeletionBlocked", 2, message)];
        assert_eq!(retire_verdict(&k, 2), Verdict::Pending);
        // Retired in status is success, whatever the conditions say.
        k.status.as_mut().unwrap().state = Some(KeyState::Retired);
        assert_eq!(retire_verdict(&k, 2), Verdict::Retired);
        k.status = None;
        assert_eq!(retire_verdict(&k, 2), Verdict::Pending);
    }

    #[test]
    fn other_managers_of_spec_state_are_found() {
        let entry =
            |manager: &str, fields: serde_json::Value, sub: Option<&str>| ManagedFieldsEntry {
                manager: Some(manager.into()),
                operation: Some("Apply".into()),
                fields_v1: Some(FieldsV1(fields)),
                subresource: sub.map(str::to_string),
                ..Default::default()
            };
        let mut k = key("gitseal-1", KeyState::Active, None);
        k.metadata.managed_fields = Some(vec![
            entry(
                "argocd-controller",
                serde_json::json!({"f:spec": {"f:state": {}}}),
                None,
            ),
            entry(
                CLI_FIELD_MANAGER,
                serde_json::json!({"f:spec": {"f:state": {}}}),
                None,
            ),
            entry(
                crate::controller::FIELD_MANAGER,
                serde_json::json!({"f:status": {"f:state": {}}}),
                Some("status"),
            ),
            entry(
                "kubectl-edit",
                serde_json::json!({"f:spec": {"f:force": {}}}),
                None,
            ),
        ]);
        assert_eq!(other_state_managers(&k), ["argocd-controller"]);
        k.metadata.managed_fields = None;
        assert!(other_state_managers(&k).is_empty());
    }
}
