//! The core of the controller, and of `gitseal unseal`: from a SealedSecret and the private
//! keys that may open it to the Secret it describes, or the typed [`Reason`] it cannot be;
//! whether an existing Secret already says it and may be written; and which envelopes the
//! cluster's Active key still needs re-wrapped. No client, no tokio, no clock: the controller
//! and the CLI call the same functions, and unit tests cover every reason without a server.
//!
//! - [`open`]: SealedSecret + keys + policy → the Secret, the key ids verifiably used, re-wraps.
//! - [`plan`]: desired Secret + what exists → what to write, or why not.
//! - [`secret`]: the one Secret builder, and the digest-only view of a managed Secret.
//! - [`policy`]: what a SealedSecret may make the controller write.
//!
//! The key-state rules (which key is Active, when one may retire) are the same kind of pure
//! rule and live with the keys, in [`crate::keyring::lifecycle`].

pub mod open;
pub mod plan;
pub mod policy;
pub mod secret;

pub use crate::api::Reason;
pub use open::{Unsealing, earlier_rewraps, unseal};
pub use plan::{TakeOver, Write, plan, was_unsealed};

use crate::manifest::{ErrorKind, ManifestError};

/// Why a SealedSecret cannot be unsealed (or its Secret not written): the reason, the field
/// of the SealedSecret at fault (empty for the whole object) and what is wrong. Never holds
/// plain text: messages name keys, key ids, fields and limits, never values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub struct Failure {
    pub reason: Reason,
    pub field: String,
    pub text: String,
}

impl Failure {
    pub fn new(reason: Reason, field: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            reason,
            field: field.into(),
            text: text.into(),
        }
    }

    /// `field: text`, or the text alone: what status and Events say.
    pub fn message(&self) -> String {
        if self.field.is_empty() {
            self.text.clone()
        } else {
            format!("{}: {}", self.field, self.text)
        }
    }

    /// A problem found reading the object, by its kind.
    pub fn from_manifest(e: ManifestError) -> Self {
        let reason = match e.kind {
            ErrorKind::KeyNotFound => Reason::KeyNotFound,
            ErrorKind::BindingMismatch => Reason::BindingMismatch,
            ErrorKind::Tampered => Reason::Tampered,
            ErrorKind::Input => Reason::InvalidSpec,
        };
        Self::new(reason, e.at.field, e.message)
    }

    /// The same problem as a manifest error at `at` (a file and document), for the CLI's
    /// `file:doc:field` messages and exit codes.
    pub fn at(self, at: &crate::manifest::Location) -> ManifestError {
        let kind = match self.reason {
            Reason::KeyNotFound => ErrorKind::KeyNotFound,
            Reason::BindingMismatch => ErrorKind::BindingMismatch,
            Reason::Tampered => ErrorKind::Tampered,
            _ => ErrorKind::Input,
        };
        ManifestError::new(kind, at.field(self.field), self.text)
    }
}

#[cfg(test)]
mod tests;
