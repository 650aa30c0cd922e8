//! Importing other tools' encrypted Secret files: each importer reads its tool's documents
//! and keys and opens them, in memory, into [`crate::manifest::SecretInput`]s that the CLI
//! seals like any Secret manifest. Pure: no CLI, no printing, no file writes.

pub mod bitnami;
pub mod sops;
