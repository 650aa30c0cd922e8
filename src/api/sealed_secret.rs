//! `SealedSecret`: sealed values, their envelopes, scope and the template of the Secret to write.

use crate::format::{Envelopes, Map, Scope, map_serde};

// Limits the API server enforces at admission (CRD schema), so that no tenant can hand the
// controller more than it can hold: a Secret holds at most 1 MiB, so its sealed form at most
// ~1.4 MiB; an envelope wraps one data key to a few recipients (one small age stanza each).
/// Values per SealedSecret.
pub const MAX_VALUES: u64 = 4096;
/// Characters of one sealed value (1 MiB of plain text, base64, plus the prefix); the same
/// limits as the parser's (src/format/limits.rs), so what `gitseal verify` accepts is admitted.
pub const MAX_VALUE_CHARS: u64 = 1_398_187;
/// Envelopes per SealedSecret (one per seal operation that is still referenced).
pub const MAX_ENVELOPES: u64 = 256;
/// Wrappings (key ids) per envelope.
pub const MAX_WRAPPINGS: u64 = 32;
/// Characters of one wrapped key (base64 of an age file of at most 1 KiB: one stanza).
pub const MAX_WRAPPED_CHARS: u64 = 1368;
/// Labels and annotations of the template, each.
pub const MAX_TEMPLATE_ENTRIES: u64 = 64;
/// Characters of one `spec.template.data` template.
pub const MAX_TEMPLATE_CHARS: u64 = 65536;

// Admission rules in the CRD (CEL): only checks whose cost the API server can bound at the
// limits above, i.e. prefixes (`startsWith` costs the prefix's length, `substring` a whole
// 1.4 MB value times 4096 values: refused as over budget). Envelope references, value shape
// and the namespace (which CRD rules cannot read) are checked by the ValidatingAdmissionPolicy
// in admission.rs.
/// `spec.boundTo` names this object: `<namespace>/<name>` (strict; the name is checked here),
/// `<namespace>` (namespace scope), absent (cluster scope).
const BOUND_TO_RULE: &str = "!has(self.spec.boundTo) || (self.spec.scope == 'strict' ? self.spec.boundTo.endsWith('/' + self.metadata.name) : self.spec.scope == 'namespace' && !self.spec.boundTo.contains('/'))";
const BOUND_TO_MESSAGE: &str = "spec.boundTo must be <namespace>/<metadata.name> for scope strict, <namespace> for scope namespace, and absent for scope cluster";
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A Secret sealed to a cluster's public keys; safe to commit. The controller unseals it into
/// a Secret of the same name and namespace.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "gitseal.dev",
    version = "v1alpha1",
    kind = "SealedSecret",
    namespaced,
    status = "SealedSecretStatus",
    shortname = "gss",
    category = "gitseal",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Scope","type":"string","jsonPath":".spec.scope"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = Rule::new(BOUND_TO_RULE).message(BOUND_TO_MESSAGE).field_path(".spec.boundTo")
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.encryptedData.all(k, self.encryptedData[k].startsWith('gs1:' + self.scope + ':'))",
    "messageExpression": "'spec.encryptedData.' + self.encryptedData.filter(k, !self.encryptedData[k].startsWith('gs1:' + self.scope + ':'))[0] + ': not sealed for spec.scope ' + self.scope",
    "fieldPath": ".encryptedData",
    "reason": "FieldValueInvalid",
}]))]
pub struct SealedSecretSpec {
    /// How far values may travel: strict (namespace + name + key), namespace, or cluster.
    #[serde(default)]
    pub scope: Scope,
    /// Where the values were sealed for: `namespace/name` (strict) or `namespace` (namespace
    /// scope). Informational; the binding itself is in each value's associated data. Lets
    /// errors say "sealed for prod/db, found in staging/db" and `gitseal verify` check it offline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 507))]
    pub bound_to: Option<String>,
    /// Secret key → sealed value `gs1:<scope>:<envelope id>:<base64>`.
    #[serde(default, serialize_with = "map_serde::flat")]
    #[schemars(
        with = "BTreeMap<String, String>",
        extend(
            "default" = {},
            "maxProperties" = MAX_VALUES,
            "additionalProperties" = {
                "type": "string",
                "maxLength": MAX_VALUE_CHARS,
                "x-kubernetes-validations": [{
                    "rule": "self.startsWith('gs1:strict:') || self.startsWith('gs1:namespace:') || self.startsWith('gs1:cluster:')",
                    "message": "not a gitseal value gs1:<scope>:<envelope id>:<base64> (made by gitseal seal)",
                }],
            }
        )
    )]
    pub encrypted_data: Map<String>,
    /// Envelope id → (key id → base64 of an age file holding the data key).
    #[serde(default, serialize_with = "map_serde::nested")]
    #[schemars(
        with = "BTreeMap<String, BTreeMap<String, String>>",
        extend("default" = {}, "maxProperties" = MAX_ENVELOPES, "additionalProperties" = wrappings_schema())
    )]
    pub envelopes: Envelopes,
    /// Metadata, type and immutability of the Secret to write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<SecretTemplate>,
}

/// What the written Secret looks like besides its data.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretTemplate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<TemplateMetadata>,
    /// Secret type, e.g. `Opaque` or `kubernetes.io/tls`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub type_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
    /// Secret key → Go text/template rendered over the decrypted values (`{{ .password }}`),
    /// as Bitnami Sealed Secrets' `spec.template.data`; the output is that key's value and
    /// replaces a decrypted key of the same name. Functions: text/template's builtins and
    /// the sprig functions listed in the README; none reads environment, files, network,
    /// clock or randomness.
    #[serde(
        default,
        skip_serializing_if = "Map::is_empty",
        serialize_with = "map_serde::flat"
    )]
    #[schemars(
        with = "BTreeMap<String, String>",
        extend(
            "maxProperties" = MAX_TEMPLATE_ENTRIES,
            "additionalProperties" = {"type": "string", "maxLength": MAX_TEMPLATE_CHARS}
        )
    )]
    pub data: Map<String>,
}

/// Labels and annotations copied onto the Secret.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TemplateMetadata {
    #[serde(
        default,
        skip_serializing_if = "Map::is_empty",
        serialize_with = "map_serde::flat"
    )]
    #[schemars(
        with = "BTreeMap<String, String>",
        extend(
            "maxProperties" = MAX_TEMPLATE_ENTRIES,
            "additionalProperties" = {"type": "string", "maxLength": 63}
        )
    )]
    pub labels: Map<String>,
    #[serde(
        default,
        skip_serializing_if = "Map::is_empty",
        serialize_with = "map_serde::flat"
    )]
    #[schemars(
        with = "BTreeMap<String, String>",
        extend(
            "maxProperties" = MAX_TEMPLATE_ENTRIES,
            "additionalProperties" = {"type": "string", "maxLength": 65536}
        )
    )]
    pub annotations: Map<String>,
}

/// What the controller observed and did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretStatus {
    /// `Ready` with a reason such as Unsealed, KeyNotFound, BindingMismatch, Tampered,
    /// SecretNotOwned or InvalidSpec, and a message naming the cause.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Key ids this object's envelopes are unwrapped with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub key_ids: Vec<String>,
    /// Envelopes re-wrapped to the Active key, for objects that still use an older key;
    /// `gitseal reseal` copies them into the committed file.
    // Nullable, the map and each envelope in it: where another field manager also wrote here
    // (an older gitseal, a hand edit), server-side apply stores `null` for a map it emptied
    // (kubernetes#103011), and a non-nullable schema would refuse the controller's status write.
    #[serde(
        default,
        skip_serializing_if = "Map::is_empty",
        serialize_with = "map_serde::nested",
        deserialize_with = "map_serde::nested_or_null"
    )]
    #[schemars(
        with = "BTreeMap<String, BTreeMap<String, String>>",
        extend(
            "nullable" = true,
            "maxProperties" = MAX_ENVELOPES,
            "additionalProperties" = nullable(wrappings_schema())
        )
    )]
    pub rewrapped_envelopes: Envelopes,
}

/// `schema` that also admits `null`.
fn nullable(mut schema: serde_json::Value) -> serde_json::Value {
    schema["nullable"] = true.into();
    schema
}

/// Schema of one envelope's wrappings: key id → wrapped key, bounded.
fn wrappings_schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "maxProperties": MAX_WRAPPINGS,
        "additionalProperties": {"type": "string", "maxLength": MAX_WRAPPED_CHARS},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_maps_are_written_as_mappings() {
        let mut spec = SealedSecretSpec::default();
        spec.envelopes.insert("e1".into(), Map::new());
        let status = SealedSecretStatus {
            rewrapped_envelopes: Map::from_iter([("e1".to_string(), Map::new())]),
            ..Default::default()
        };
        let json = serde_json::to_value((&spec, &status)).unwrap();
        assert_eq!(json[0]["encryptedData"], serde_json::json!({}));
        assert_eq!(json[0]["envelopes"], serde_json::json!({"e1": {}}));
        assert_eq!(json[1]["rewrappedEnvelopes"], serde_json::json!({"e1": {}}));
        // What server-side apply may leave behind reads as absent.
        for left in [
            serde_json::json!({"rewrappedEnvelopes": null}),
            serde_json::json!({"rewrappedEnvelopes": {"e1": null}}),
        ] {
            let read: SealedSecretStatus = serde_json::from_value(left).unwrap();
            assert!(read.rewrapped_envelopes.is_empty());
        }
        let read: SealedSecretStatus = serde_json::from_value(
            serde_json::json!({"rewrappedEnvelopes": {"e2": {"k": "w"}, "e1": null}}),
        )
        .unwrap();
        assert_eq!(read.rewrapped_envelopes.len(), 1);
        assert_eq!(
            read.rewrapped_envelopes
                .get("e2")
                .and_then(|w| w.get("k"))
                .map(String::as_str),
            Some("w")
        );
        let yaml = crate::yaml::to_string(&spec).unwrap();
        assert!(yaml.contains("encryptedData: {}"), "{yaml}");
        assert!(!yaml.contains("[]"), "{yaml}");
        let back: SealedSecretSpec = crate::yaml::from_str(&yaml).unwrap();
        assert_eq!(back, spec);
    }
}
