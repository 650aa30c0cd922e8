//! The ValidatingAdmissionPolicy that refuses malformed SealedSecrets at `kubectl apply`: the
//! checks the CRD's own rules cannot make (see sealed_secret.rs), because they need a value's
//! envelope id (a substring: within the API server's cost budget only when evaluated on the
//! actual object, not estimated for 4096 values of 1.4 MB) or the object's namespace (not
//! visible to CRD rules). Generated here like the CRDs, committed as
//! deploy/admission-policy.yaml, drift-checked.

use super::GROUP;
use k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, MatchResources, NamedRuleWithOperations, ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicyBinding, ValidatingAdmissionPolicyBindingSpec,
    ValidatingAdmissionPolicySpec, Validation, Variable,
};
use kube::api::ObjectMeta;

/// Name of the policy and of its binding.
pub const POLICY_NAME: &str = "gitseal-sealedsecrets";

/// Characters of an envelope id (docs/format.md).
const ENVELOPE_ID_LEN: usize = 32;

/// A valid Secret data key, as the API server validates one (`IsConfigMapKey`).
const SECRET_KEY_OK: &str =
    "k.size() <= 253 && k != '.' && !k.startsWith('..') && k.matches('^[-._a-zA-Z0-9]+$')";
const VALUES: &str = "object.spec.encryptedData";
const ENVELOPES: &str = "object.spec.envelopes";

/// One refusal: the rule, and a message naming the first offending field.
struct Check {
    rule: String,
    message: String,
}

/// `map` keys for which `ok(k)` is false, the first of them named in the message.
fn every(map: &str, var: &str, ok: &str, what: &str, message: &str) -> Check {
    Check {
        rule: format!("{map}.all({var}, {ok})"),
        message: format!(
            "'{what}.' + {map}.filter({var}, !({ok}))[0] + ': {message}'",
            what = what.trim_start_matches("object.")
        ),
    }
}

fn checks() -> Vec<Check> {
    let v = format!("{VALUES}[k]");
    let (start, end) = (
        "size(variables.prefix)",
        format!("size(variables.prefix) + {ENVELOPE_ID_LEN}"),
    );
    let id_of = format!("{v}.substring({start}, {end})");
    let has_id = format!("{v}.startsWith(variables.prefix) && {v}.size() > {end}");
    let head_end = format!("size(variables.prefix) + {}", ENVELOPE_ID_LEN + 1 + 36);
    vec![
        every(
            VALUES,
            "k",
            SECRET_KEY_OK,
            VALUES,
            "not a valid Secret key (letters, digits, -, _ and . only)",
        ),
        // The head only: a regex over a whole 1.4 MB value exceeds the API server's per-call
        // cost limit. 36 base64 characters are 27 bytes, less than nonce + tag (28).
        every(
            VALUES,
            "k",
            &format!(
                "{v}.startsWith(variables.prefix) && {v}.size() >= {head_end} + 4 && \
                 {v}.substring({start}, {head_end}).matches('^[0-9a-f]{{{ENVELOPE_ID_LEN}}}:[A-Za-z0-9+/]{{36}}$')"
            ),
            VALUES,
            "not a gitseal value gs1:<scope>:<32 hex envelope id>:<base64> (made by gitseal seal)",
        ),
        every(
            VALUES,
            "k",
            &format!("!({has_id}) || {id_of} in {ENVELOPES}"),
            VALUES,
            "names an envelope that spec.envelopes does not hold",
        ),
        every(
            ENVELOPES,
            "e",
            &format!("e.matches('^[0-9a-f]{{{ENVELOPE_ID_LEN}}}$')"),
            ENVELOPES,
            "an envelope id is 32 lowercase hex characters",
        ),
        every(
            ENVELOPES,
            "e",
            "e in variables.ids",
            ENVELOPES,
            "no value uses this envelope (seal --merge-into and reseal drop unused envelopes)",
        ),
        every(
            ENVELOPES,
            "e",
            &format!(
                "{ENVELOPES}[e].size() > 0 && {ENVELOPES}[e].all(id, id.matches('^[0-9a-f]{{16}}$'))"
            ),
            ENVELOPES,
            "wrappings are keyed by 16 lowercase hex key ids (and there is at least one)",
        ),
        Check {
            rule: "!has(object.spec.boundTo) || object.spec.scope != 'cluster' && \
                   object.spec.boundTo == variables.binding"
                .into(),
            message: "'spec.boundTo: ' + object.spec.boundTo + ' does not match this object \
                      (expected ' + (object.spec.scope == 'cluster' ? 'no boundTo for scope cluster' \
                      : variables.binding) + ')'"
                .into(),
        },
        every(
            "object.spec.template.data",
            "k",
            SECRET_KEY_OK,
            "object.spec.template.data",
            "not a valid Secret key (letters, digits, -, _ and . only)",
        ),
    ]
}

/// The policy: every check above, on create and on updates that change `spec` (an object
/// admitted before the policy existed can still get metadata and finalizer updates).
pub fn policy() -> ValidatingAdmissionPolicy {
    let variables = [
        ("prefix", "'gs1:' + object.spec.scope + ':'".to_string()),
        (
            "binding",
            "object.spec.scope == 'strict' ? object.metadata.namespace + '/' + \
             object.metadata.name : object.metadata.namespace"
                .to_string(),
        ),
        (
            "ids",
            format!(
                "{VALUES}.map(k, {VALUES}[k].startsWith(variables.prefix) && {VALUES}[k].size() > \
                 size(variables.prefix) + {ENVELOPE_ID_LEN} ? {VALUES}[k].substring(size(variables.prefix), \
                 size(variables.prefix) + {ENVELOPE_ID_LEN}) : '')"
            ),
        ),
    ];
    let mut validations: Vec<Validation> = checks()
        .into_iter()
        .map(|c| Validation {
            expression: c.rule,
            message_expression: Some(c.message),
            reason: Some("Invalid".into()),
            ..Default::default()
        })
        .collect();
    // The template data check applies only where there is template data.
    if let Some(last) = validations.last_mut() {
        last.expression = format!(
            "!has(object.spec.template) || !has(object.spec.template.data) || {}",
            last.expression
        );
    }
    ValidatingAdmissionPolicy {
        metadata: ObjectMeta {
            name: Some(POLICY_NAME.into()),
            ..Default::default()
        },
        spec: Some(ValidatingAdmissionPolicySpec {
            failure_policy: Some("Fail".into()),
            match_constraints: Some(MatchResources {
                resource_rules: Some(vec![NamedRuleWithOperations {
                    api_groups: Some(vec![GROUP.into()]),
                    api_versions: Some(vec!["*".into()]),
                    operations: Some(vec!["CREATE".into(), "UPDATE".into()]),
                    resources: Some(vec!["sealedsecrets".into()]),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            match_conditions: Some(vec![MatchCondition {
                name: "spec-written".into(),
                expression: "request.operation == 'CREATE' || object.spec != oldObject.spec".into(),
            }]),
            variables: Some(
                variables
                    .into_iter()
                    .map(|(name, expression)| Variable {
                        name: name.into(),
                        expression,
                    })
                    .collect(),
            ),
            validations: Some(validations),
            ..Default::default()
        }),
        status: None,
    }
}

/// The binding that makes the policy refuse (`Deny`) in every namespace.
pub fn binding() -> ValidatingAdmissionPolicyBinding {
    ValidatingAdmissionPolicyBinding {
        metadata: ObjectMeta {
            name: Some(POLICY_NAME.into()),
            ..Default::default()
        },
        spec: Some(ValidatingAdmissionPolicyBindingSpec {
            policy_name: Some(POLICY_NAME.into()),
            validation_actions: Some(vec!["Deny".into()]),
            ..Default::default()
        }),
    }
}

/// Policy and binding as one YAML stream (`gitseal crds --admission-policy`,
/// deploy/admission-policy.yaml).
pub fn policy_yaml() -> String {
    [
        crate::yaml::to_string(&policy()).expect("policy serializes"),
        crate::yaml::to_string(&binding()).expect("binding serializes"),
    ]
    .join("---\n")
}
