//! What to write: given the Secret a SealedSecret should make and the Secret of that name
//! that exists (if any), whether to create it, apply over it, replace it, leave it, or refuse
//! because it is not the SealedSecret's to write. The one home of "may I write it".

use super::secret::{Digest, ManagedSecret, adoptable, in_sync, owned_by};
use super::{Failure, Reason};
use crate::api::SealedSecret;
use k8s_openapi::api::core::v1::Secret;

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
}

/// The write for `want` (with data digest `digest`), given what exists.
pub fn plan(
    sealed: &SealedSecret,
    want: &Secret,
    digest: &Digest,
    existing: Option<&ManagedSecret>,
) -> Result<Write, Failure> {
    let Some(actual) = existing else {
        return Ok(Write::Create);
    };
    if !owned_by(&actual.metadata, sealed) && !adoptable(&actual.metadata) {
        let ns = sealed.metadata.namespace.as_deref().unwrap_or_default();
        let name = sealed.metadata.name.as_deref().unwrap_or_default();
        return Err(Failure::new(
            Reason::SecretNotOwned,
            "",
            format!(
                "Secret {ns}/{name} exists and is not managed by this SealedSecret; \
                 annotate it with gitseal.dev/adopt=\"true\" to let gitseal take it over"
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
