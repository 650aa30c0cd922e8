//! What to write: given the Secret a SealedSecret should make and the Secret of that name
//! that exists (if any), whether to create it, apply over it, replace it, leave it, or refuse
//! because it is not the SealedSecret's to write. The one home of "may I write it".

use super::secret::{Digest, ManagedSecret, adoptable, in_sync, owned_by};
use super::{Failure, Reason};
use crate::api::SealedSecret;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

/// API group of Bitnami Sealed Secrets' `SealedSecret`.
pub const BITNAMI_GROUP: &str = "bitnami.com";
/// Annotations of Bitnami's controller that make it write a Secret it does not control
/// (`managed`: take it over; `patch`: merge into it). A taken-over Secret loses them.
pub const BITNAMI_ANNOTATIONS: [&str; 2] = [
    "sealedsecrets.bitnami.com/managed",
    "sealedsecrets.bitnami.com/patch",
];

/// Which Secrets owned by another controller the operator lets the controller take over
/// (`gitseal controller --take-over-from`; docs/takeover.md). Off by default: a SealedSecret
/// author can never trigger a takeover the operator did not switch on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TakeOver {
    /// Secrets whose controller is a Bitnami `SealedSecret` (`bitnami.com`) of the same name
    /// in the same namespace.
    pub sealed_secrets: bool,
    /// Only in these namespaces (empty: every namespace the controller writes to).
    pub namespaces: Vec<String>,
}

impl TakeOver {
    /// The controlling owner reference of `actual` that `sealed` may take over from: a Bitnami
    /// `SealedSecret` of the same name (owner references are namespace-local, so it is in the
    /// same namespace), and only when the operator switched it on for this namespace. Nothing
    /// else: not another kind or group, not another name, not a reference without
    /// `controller: true`.
    pub fn taken_from<'a>(
        &self,
        sealed: &SealedSecret,
        actual: &'a ManagedSecret,
    ) -> Option<&'a OwnerReference> {
        let ns = sealed.metadata.namespace.as_deref()?;
        let name = sealed.metadata.name.as_deref()?;
        if !self.sealed_secrets
            || (!self.namespaces.is_empty() && !self.namespaces.iter().any(|n| n == ns))
            || actual
                .metadata
                .namespace
                .as_deref()
                .is_some_and(|n| n != ns)
        {
            return None;
        }
        let owner = actual
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))?;
        let group = owner.api_version.split_once('/').map(|(g, _)| g);
        (group == Some(BITNAMI_GROUP) && owner.kind == "SealedSecret" && owner.name == name)
            .then_some(owner)
    }
}

/// The write that makes the Secret say what it should. Every write names the Secret that was
/// judged (uid, resourceVersion) so one replaced in between is never taken over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// It already says it.
    Nothing,
    /// There is none: create it.
    Create,
    /// Server-side apply over the one at this resourceVersion.
    Apply { resource_version: Option<String> },
    /// It is immutable: delete this one (uid and resourceVersion preconditions), then apply.
    Replace {
        uid: Option<String>,
        resource_version: Option<String>,
    },
    /// Another controller's Secret the operator lets gitseal take over: one update (PUT) at
    /// this resourceVersion that replaces the owner reference of uid `from` with the
    /// SealedSecret's, drops the other controller's annotations and writes the data. The
    /// Secret never disappears.
    TakeOver {
        resource_version: Option<String>,
        from: String,
    },
}

/// The write for `want` (with data digest `digest`), given what exists.
pub fn plan(
    sealed: &SealedSecret,
    want: &Secret,
    digest: &Digest,
    existing: Option<&ManagedSecret>,
    take_over: &TakeOver,
) -> Result<Write, Failure> {
    let Some(actual) = existing else {
        return Ok(Write::Create);
    };
    if !owned_by(&actual.metadata, sealed) && !adoptable(&actual.metadata) {
        if let Some(owner) = take_over.taken_from(sealed, actual) {
            return Ok(Write::TakeOver {
                resource_version: actual.metadata.resource_version.clone(),
                from: owner.uid.clone(),
            });
        }
        let ns = sealed.metadata.namespace.as_deref().unwrap_or_default();
        let name = sealed.metadata.name.as_deref().unwrap_or_default();
        let bitnami = TakeOver {
            sealed_secrets: true,
            namespaces: Vec::new(),
        };
        let hint = if bitnami.taken_from(sealed, actual).is_some() && !take_over.sealed_secrets {
            " (it is controlled by the Sealed Secrets SealedSecret of that name: an operator \
             may let gitseal take it over with `gitseal controller --take-over-from \
             sealed-secrets`, docs/takeover.md)"
        } else {
            ""
        };
        return Err(Failure::new(
            Reason::SecretNotOwned,
            "",
            format!(
                "Secret {ns}/{name} exists and is not managed by this SealedSecret; \
                 annotate it with gitseal.dev/adopt=\"true\" to let gitseal take it over{hint}"
            ),
        ));
    }
    if in_sync(actual, want, digest) {
        return Ok(Write::Nothing);
    }
    let (uid, resource_version) = (
        actual.metadata.uid.clone(),
        actual.metadata.resource_version.clone(),
    );
    Ok(if actual.immutable == Some(true) {
        Write::Replace {
            uid,
            resource_version,
        }
    } else {
        Write::Apply { resource_version }
    })
}

/// Whether the object was already unsealed at this generation: then a differing or missing
/// Secret means someone edited or deleted it (drift, repaired).
pub fn was_unsealed(sealed: &SealedSecret) -> bool {
    let Some(status) = &sealed.status else {
        return false;
    };
    status.observed_generation == sealed.metadata.generation
        && status.conditions.iter().any(|c| {
            c.type_ == "Ready" && c.status == "True" && c.reason == Reason::Unsealed.as_str()
        })
}
