//! gitseal: seal Kubernetes Secrets for GitOps.
//!
//! Layers, imports pointing down only:
//! `cli` → `controller` → `unsealer` (the pure core) → `keyring` → `api`; `manifest` → `format` → `crypto`
//! (`api` and `manifest` read `format`'s scope and envelope types, so the CLI emits exactly
//! what the controller reads).

pub mod api;
pub mod cli;
pub mod controller;
pub mod crypto;
pub mod format;
pub mod keyring;
pub mod manifest;
pub mod migrate;
pub mod template;
pub mod unsealer;
pub mod yaml;
