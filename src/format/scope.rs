//! Scopes and the associated data that binds a value to its key, name and namespace.

use super::FormatError;
use std::fmt;
use std::str::FromStr;

/// How far a sealed value may travel. The scope is part of every value's associated data,
/// so no envelope change can widen it.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Bound to namespace + name + key.
    #[default]
    Strict,
    /// Bound to namespace + key: the object may be renamed within its namespace.
    Namespace,
    /// Bound to the key only: the object may be renamed and moved to any namespace.
    Cluster,
}

impl Scope {
    /// Whether values under this scope are bound to a namespace (strict and namespace).
    pub fn binds_namespace(self) -> bool {
        self != Scope::Cluster
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Strict => "strict",
            Scope::Namespace => "namespace",
            Scope::Cluster => "cluster",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "strict" => Ok(Scope::Strict),
            "namespace" => Ok(Scope::Namespace),
            "cluster" => Ok(Scope::Cluster),
            other => Err(format!(
                "unknown scope {other:?} (expected strict, namespace or cluster)"
            )),
        }
    }
}

/// Where a value lives: the object's namespace (if any) and name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target<'a> {
    pub namespace: Option<&'a str>,
    pub name: &'a str,
}

impl fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.name),
            None => f.write_str(self.name),
        }
    }
}

const AAD_PREFIX: &str = "gitseal.dev/v1";

/// The AES-GCM associated data of value `key` in `target` under `scope`:
/// `"gitseal.dev/v1" 0x00 scope 0x00 [namespace 0x00 [name 0x00]] key`, the bracketed
/// parts present as the scope demands (strict: both; namespace: namespace; cluster: none).
/// Kubernetes names, namespaces and data keys cannot contain 0x00, so the encoding is
/// unambiguous.
pub fn aad(scope: Scope, target: Target<'_>, key: &str) -> Result<Vec<u8>, FormatError> {
    let mut parts: Vec<&str> = vec![AAD_PREFIX, scope.as_str()];
    match scope {
        Scope::Strict => {
            parts.push(
                target
                    .namespace
                    .ok_or(FormatError::MissingNamespace { scope })?,
            );
            parts.push(target.name);
        }
        Scope::Namespace => parts.push(
            target
                .namespace
                .ok_or(FormatError::MissingNamespace { scope })?,
        ),
        Scope::Cluster => {}
    }
    parts.push(key);
    Ok(parts.join("\0").into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aad_binds_what_the_scope_demands() {
        let t = Target {
            namespace: Some("prod"),
            name: "db",
        };
        assert_eq!(
            aad(Scope::Strict, t, "pw").unwrap(),
            b"gitseal.dev/v1\0strict\0prod\0db\0pw"
        );
        assert_eq!(
            aad(Scope::Namespace, t, "pw").unwrap(),
            b"gitseal.dev/v1\0namespace\0prod\0pw"
        );
        assert_eq!(
            aad(Scope::Cluster, t, "pw").unwrap(),
            b"gitseal.dev/v1\0cluster\0pw"
        );
        let no_ns = Target {
            namespace: None,
            name: "db",
        };
        assert!(aad(Scope::Strict, no_ns, "pw").is_err());
        assert!(aad(Scope::Cluster, no_ns, "pw").is_ok());
    }

    #[test]
    fn scope_parses() {
        assert_eq!("namespace".parse::<Scope>().unwrap(), Scope::Namespace);
        assert!("wide".parse::<Scope>().is_err());
    }
}
