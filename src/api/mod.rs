//! Custom resource types (group `gitseal.dev`, version `v1alpha1`): `SealedSecret` and
//! `SealingKey`. The CRD YAML in deploy/ is generated from these types (`gitseal crds`), and a
//! test fails if the committed copy drifts.

pub mod admission;
mod reason;
mod sealed_secret;
mod sealing_key;

pub use reason::Reason;

pub use sealed_secret::{
    SealedSecret, SealedSecretSpec, SealedSecretStatus, SecretTemplate, TemplateMetadata,
};
pub use sealing_key::{
    DELETION_BLOCKED, KeyState, PRIVATE_KEY_CONDITION, RETIRE_PENDING, RETIRE_REFUSED,
    RETIRED_CONDITION, SealingKey, SealingKeySpec, SealingKeyStatus,
};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// API group of every gitseal resource.
pub const GROUP: &str = "gitseal.dev";
/// API version of every gitseal resource.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` string of gitseal resources.
pub const API_VERSION: &str = "gitseal.dev/v1alpha1";

/// Every CRD of the project, in install order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![SealedSecret::crd(), SealingKey::crd()]
}

/// The CRDs as one multi-document YAML stream (what `gitseal crds` prints).
pub fn crds_yaml() -> String {
    crds()
        .iter()
        .map(|crd| crate::yaml::to_string(crd).expect("CRDs serialize"))
        .collect::<Vec<_>>()
        .join("---\n")
}
