//! gitseal: seal Kubernetes Secrets for GitOps.
//!
//! Layers, imports pointing down only:
//! `cli` → `controller` → `keyring` → `api`; `manifest` → `format` → `crypto`
//! (`manifest` also reads the `api` types, so the CLI emits exactly what the controller reads).

pub mod crypto;
