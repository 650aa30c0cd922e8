//! Reading the files of other secret tools (SOPS, Bitnami Sealed Secrets) into gitseal inputs.

pub mod sops;
