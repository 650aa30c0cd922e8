//! Documents gitseal reads and writes: Secret and SealedSecret manifests (YAML or JSON,
//! multi-document), the keyring file, `.gitseal.yaml`, and the conversions between them
//! (seal, merge, opening values). Every error names the file, the document and the field.

mod check;
mod config;
mod convert;
mod docs;
mod keyring_file;
mod sealed;
mod secret;

pub use check::{
    check_limits, check_sealed, check_secret_keys, is_plain_secret_with_data, is_sops_encrypted,
};
pub use config::{CONFIG_FILE, Config, Lookup, Resolved, Rule, VerifyConfig, read_keyring};
pub use convert::{
    MergeOutcome, SealOptions, bound_to, merge_into, open_values, seal, wanted_key_id_refs,
    wanted_key_ids,
};
pub use docs::{
    Document, Format, MAX_DEPTH, MAX_DOCUMENTS, MAX_INPUT_LEN, MAX_NODES, emit_documents,
    parse_documents,
};
/// Located field readers and checks, for the importers of other tools' files (`crate::migrate`).
pub(crate) use docs::{bool_field, map_field, str_field, string_map, type_name, wrong_kind};
pub(crate) use docs::{parse_error, parse_one, split_yaml};
pub use keyring_file::{KEYRING_KIND, KeyringEntry, KeyringFile, KeyringMeta};
pub use sealed::{emit_sealed, is_sealed, parse_sealed};
pub(crate) use secret::{LAST_APPLIED, base64_value, check_len};
pub use secret::{SCOPE_ANNOTATION, SecretInput, check_key, is_secret, parse_secret};

use std::fmt;

/// Where in the input a problem is: file, 1-based document number, field path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    /// 1-based; 0 when the problem is with the whole file.
    pub doc: usize,
    pub field: String,
}

impl Location {
    pub fn new(file: impl Into<String>, doc: usize) -> Self {
        Self {
            file: file.into(),
            doc,
            field: String::new(),
        }
    }

    pub fn field(&self, field: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            ..self.clone()
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.doc, self.field.is_empty()) {
            (0, _) => write!(f, "{}", self.file),
            (d, true) => write!(f, "{}:{d}", self.file),
            (d, false) => write!(f, "{}:{d}:{}", self.file, self.field),
        }
    }
}

/// A problem with an input document; displays as `file:document:field: message`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {message}")]
pub struct ManifestError {
    pub at: Location,
    pub message: String,
    pub kind: ErrorKind,
    /// The input exceeds one of gitseal's input limits (docs/format.md § Limits): it was not
    /// read further. `gitseal verify` stops at such an input with exit 3.
    pub over_limit: bool,
}

/// Class of a manifest error: exit codes and the controller's condition reasons follow it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input is malformed or not what the command takes (InvalidSpec).
    Input,
    /// No identity held matches the key ids the object is sealed for.
    KeyNotFound,
    /// The value is bound to another namespace / name than where it was found.
    BindingMismatch,
    /// A value or wrapped key fails authentication or key commitment.
    Tampered,
}

impl ErrorKind {
    /// Whether the failure happened while decrypting (as opposed to reading the input).
    pub fn is_decrypt(self) -> bool {
        self != ErrorKind::Input
    }
}

impl ManifestError {
    pub fn new(kind: ErrorKind, at: Location, message: impl Into<String>) -> Self {
        Self {
            at,
            message: message.into(),
            kind,
            over_limit: false,
        }
    }

    pub fn input(at: Location, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Input, at, message)
    }

    /// Input over one of the documented limits (an input error that stops reading).
    pub fn over_limit(at: Location, message: impl Into<String>) -> Self {
        Self {
            over_limit: true,
            ..Self::input(at, message)
        }
    }
}

/// Shorthand used by the readers in this module.
pub type Result<T> = std::result::Result<T, ManifestError>;
