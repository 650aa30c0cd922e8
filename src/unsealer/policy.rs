//! The template policy: which Secrets a SealedSecret may make the controller write. A
//! SealedSecret author may get "a Secret with these values, in this namespace" and nothing
//! more, so Secret types, labels and annotations that other components trust (service-account
//! tokens, bootstrap tokens, replication annotations that copy a Secret to other namespaces,
//! Argo CD credentials, gitseal's own marks) and namespaces that belong to the cluster or to
//! the controller are refused. Safe defaults; operators widen or narrow them with flags.
//! Pure: no client, no I/O.

use crate::api::SealedSecret;
use std::collections::BTreeSet;

/// The Secret type of key Secrets: never written from a SealedSecret, whatever the flags.
pub const KEY_SECRET_TYPE: &str = "gitseal.dev/sealing-key";

/// Secret types refused by default (`--allow-secret-type` allows one again).
pub const DEFAULT_DENIED_TYPES: &[&str] = &[
    // The token controller fills these with a token for any service account named in them.
    "kubernetes.io/service-account-token",
    // The API server authenticates bootstrap tokens found in kube-system.
    "bootstrap.kubernetes.io/token",
    // Helm reads its release records (and the manifests in them) from these.
    "helm.sh/release.v1",
];

/// Label and annotation keys that no flag allows: gitseal's own marks.
pub const LOCKED_KEYS: &[&str] = &["gitseal.dev/", "*.gitseal.dev/"];

/// Label and annotation keys refused by default (`--allow-template-key` allows one again). A
/// rule ending in `/` matches every key of exactly that prefix; `*.` before it, its subdomains.
pub const DEFAULT_DENIED_KEYS: &[&str] = &[
    // Argo CD treats Secrets with this label (in its namespace) as repository or cluster
    // credentials.
    "argocd.argoproj.io/secret-type",
    // Replication tools that copy a Secret into other namespaces, which would carry a value
    // sealed for one namespace (strict or namespace scope) anywhere.
    "reflector.v1.k8s.emberstack.com/",
    "replicator.v1.mittwald.de/",
    "kubed.appscode.com/",
    // What makes a service-account-token Secret name its account.
    "kubernetes.io/service-account.name",
    "kubernetes.io/service-account.uid",
];

/// Namespaces refused by default besides the controller's own (`--allow-namespace`).
pub const DEFAULT_DENIED_NAMESPACES: &[&str] = &["kube-system", "kube-public", "kube-node-lease"];

/// What the controller may write from a SealedSecret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    denied_types: BTreeSet<String>,
    denied_keys: BTreeSet<String>,
    denied_namespaces: BTreeSet<String>,
}

/// How flags change the defaults.
#[derive(Clone, Debug, Default)]
pub struct PolicyFlags {
    pub allow_types: Vec<String>,
    pub deny_types: Vec<String>,
    pub allow_keys: Vec<String>,
    pub deny_keys: Vec<String>,
    pub allow_namespaces: Vec<String>,
    pub deny_namespaces: Vec<String>,
}

/// Why an object is refused: the field and what it said, for `PolicyDenied`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denied {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl Policy {
    /// The defaults, for a controller whose own namespace is `own_namespace`, changed by
    /// `flags`. Allowing what is locked (key Secret type, `gitseal.dev/` keys) is an error.
    pub fn new(own_namespace: &str, flags: &PolicyFlags) -> Result<Self, String> {
        if flags.allow_types.iter().any(|t| t == KEY_SECRET_TYPE) {
            return Err(format!(
                "--allow-secret-type {KEY_SECRET_TYPE}: key Secrets are never written from a SealedSecret"
            ));
        }
        if let Some(k) = flags.allow_keys.iter().find(|k| locked(k)) {
            return Err(format!(
                "--allow-template-key {k}: gitseal.dev/ labels and annotations are the controller's own"
            ));
        }
        for k in flags.allow_keys.iter().chain(&flags.deny_keys) {
            if k.is_empty() || k.chars().any(char::is_whitespace) {
                return Err(format!(
                    "template key rule {k:?} is not a label/annotation key"
                ));
            }
        }
        let set = |defaults: &[&str], allow: &[String], deny: &[String]| -> BTreeSet<String> {
            defaults
                .iter()
                .map(|s| s.to_string())
                .filter(|d| !allow.contains(d))
                .chain(deny.iter().cloned())
                .collect()
        };
        let mut namespaces: Vec<&str> = DEFAULT_DENIED_NAMESPACES.to_vec();
        namespaces.push(own_namespace);
        Ok(Self {
            denied_types: set(DEFAULT_DENIED_TYPES, &flags.allow_types, &flags.deny_types),
            denied_keys: set(DEFAULT_DENIED_KEYS, &flags.allow_keys, &flags.deny_keys),
            denied_namespaces: set(&namespaces, &flags.allow_namespaces, &flags.deny_namespaces),
        })
    }

    /// The first reason `sealed` may not be written, if any: namespace, then type, then each
    /// label and annotation key (in order).
    pub fn check(&self, sealed: &SealedSecret) -> Result<(), Denied> {
        let ns = sealed.metadata.namespace.as_deref().unwrap_or_default();
        if self.denied_namespaces.contains(ns) {
            return Err(Denied {
                field: "metadata.namespace".into(),
                message: format!(
                    "the controller writes no Secret into namespace {ns} (--allow-namespace {ns} allows it)"
                ),
            });
        }
        let Some(template) = &sealed.spec.template else {
            return Ok(());
        };
        if let Some(t) = template.type_.as_deref() {
            if t == KEY_SECRET_TYPE {
                return Err(Denied {
                    field: "spec.template.type".into(),
                    message: format!(
                        "Secret type {t} is reserved for the controller's key Secrets"
                    ),
                });
            }
            if self.denied_types.contains(t) {
                return Err(Denied {
                    field: "spec.template.type".into(),
                    message: format!(
                        "Secret type {t} is denied by the template policy (--allow-secret-type {t} allows it)"
                    ),
                });
            }
        }
        let Some(meta) = &template.metadata else {
            return Ok(());
        };
        for (what, map) in [("labels", &meta.labels), ("annotations", &meta.annotations)] {
            for key in map.keys() {
                if locked(key) {
                    return Err(Denied {
                        field: format!("spec.template.metadata.{what}.{key}"),
                        message: "gitseal.dev/ keys are the controller's own".into(),
                    });
                }
                if let Some(rule) = self.denied_keys.iter().find(|r| matches(r, key)) {
                    return Err(Denied {
                        field: format!("spec.template.metadata.{what}.{key}"),
                        message: format!(
                            "denied by the template policy (rule {rule}; --allow-template-key {rule} allows it)"
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

fn locked(key: &str) -> bool {
    LOCKED_KEYS.iter().any(|r| matches(r, key))
}

/// Whether label/annotation `key` falls under `rule`: `a/b` exactly; `dom/` every key with
/// prefix `dom`; `*.dom/` every key whose prefix is a subdomain of `dom`. Prefixes compare
/// without case (DNS names).
fn matches(rule: &str, key: &str) -> bool {
    let prefix = key.rsplit_once('/').map(|(p, _)| p.to_ascii_lowercase());
    match (rule.strip_suffix('/'), prefix) {
        (Some(dom), Some(p)) => match dom.strip_prefix("*.") {
            Some(parent) => p
                .strip_suffix(&parent.to_ascii_lowercase())
                .is_some_and(|sub| sub.ends_with('.') && sub.len() > 1),
            None => p == dom.to_ascii_lowercase(),
        },
        (Some(_), None) => false,
        (None, _) => match (rule.rsplit_once('/'), key.rsplit_once('/')) {
            (Some((rp, rn)), Some((kp, kn))) => rp.eq_ignore_ascii_case(kp) && rn == kn,
            _ => rule == key,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{SealedSecretSpec, SecretTemplate, TemplateMetadata};
    use crate::format::Map;

    fn sealed(
        ns: &str,
        type_: Option<&str>,
        labels: &[&str],
        annotations: &[&str],
    ) -> SealedSecret {
        let mut s = SealedSecret::new("db", SealedSecretSpec::default());
        s.metadata.namespace = Some(ns.into());
        let map = |keys: &[&str]| -> Map<String> {
            keys.iter()
                .map(|k| (k.to_string(), "v".to_string()))
                .collect()
        };
        s.spec.template = Some(SecretTemplate {
            metadata: Some(TemplateMetadata {
                labels: map(labels),
                annotations: map(annotations),
            }),
            type_: type_.map(str::to_string),
            immutable: None,
            data: Default::default(),
        });
        s
    }

    fn field(p: &Policy, s: &SealedSecret) -> Option<String> {
        p.check(s).err().map(|d| d.field)
    }

    #[test]
    fn defaults_refuse_what_others_trust() {
        let p = Policy::new("gitseal-system", &PolicyFlags::default()).unwrap();
        let ok = sealed(
            "shop",
            Some("kubernetes.io/tls"),
            &["app.kubernetes.io/name"],
            &["note"],
        );
        assert_eq!(p.check(&ok), Ok(()));
        for t in DEFAULT_DENIED_TYPES.iter().chain([&KEY_SECRET_TYPE]) {
            assert_eq!(
                field(&p, &sealed("shop", Some(t), &[], &[])).as_deref(),
                Some("spec.template.type"),
                "{t}"
            );
        }
        for ns in [
            "kube-system",
            "kube-public",
            "kube-node-lease",
            "gitseal-system",
        ] {
            assert_eq!(
                field(&p, &sealed(ns, None, &[], &[])).as_deref(),
                Some("metadata.namespace")
            );
        }
        for key in [
            "gitseal.dev/sealing-key",
            "gitseal.dev/adopt",
            "x.gitseal.dev/y",
            "GitSeal.dev/key-id",
            "argocd.argoproj.io/secret-type",
            "reflector.v1.k8s.emberstack.com/reflection-allowed",
            "replicator.v1.mittwald.de/replicate-to",
            "kubed.appscode.com/sync",
            "kubernetes.io/service-account.name",
        ] {
            assert_eq!(
                field(&p, &sealed("shop", None, &[key], &[])),
                Some(format!("spec.template.metadata.labels.{key}"))
            );
            assert_eq!(
                field(&p, &sealed("shop", None, &[], &[key])),
                Some(format!("spec.template.metadata.annotations.{key}"))
            );
        }
        // Look-alikes are not matched.
        let fine = sealed(
            "shop",
            None,
            &[
                "app.kubernetes.io/instance",
                "gitseal.dev.example/x",
                "argocd.argoproj.io/instance",
            ],
            &[],
        );
        assert_eq!(p.check(&fine), Ok(()));
    }

    #[test]
    fn flags_widen_and_narrow_but_never_unlock() {
        let flags = PolicyFlags {
            allow_types: vec!["helm.sh/release.v1".into()],
            deny_types: vec!["kubernetes.io/dockerconfigjson".into()],
            allow_keys: vec!["replicator.v1.mittwald.de/".into()],
            deny_keys: vec!["*.example.com/".into()],
            allow_namespaces: vec!["gitseal-system".into()],
            deny_namespaces: vec!["payments".into()],
        };
        let p = Policy::new("gitseal-system", &flags).unwrap();
        assert_eq!(
            p.check(&sealed(
                "gitseal-system",
                Some("helm.sh/release.v1"),
                &["replicator.v1.mittwald.de/replicate-to"],
                &[]
            )),
            Ok(())
        );
        assert!(p.check(&sealed("payments", None, &[], &[])).is_err());
        assert!(
            p.check(&sealed(
                "shop",
                Some("kubernetes.io/dockerconfigjson"),
                &[],
                &[]
            ))
            .is_err()
        );
        assert!(
            p.check(&sealed("shop", None, &[], &["a.example.com/x"]))
                .is_err()
        );
        assert_eq!(
            p.check(&sealed("shop", None, &[], &["example.com/x"])),
            Ok(())
        );
        // The key Secret type and gitseal's keys stay refused in the allowed namespace too.
        assert!(
            p.check(&sealed("gitseal-system", Some(KEY_SECRET_TYPE), &[], &[]))
                .is_err()
        );
        assert!(
            p.check(&sealed(
                "gitseal-system",
                None,
                &["gitseal.dev/sealing-key"],
                &[]
            ))
            .is_err()
        );
        let unlock = |f: PolicyFlags| Policy::new("gitseal-system", &f).is_err();
        assert!(unlock(PolicyFlags {
            allow_types: vec![KEY_SECRET_TYPE.into()],
            ..Default::default()
        }));
        assert!(unlock(PolicyFlags {
            allow_keys: vec!["gitseal.dev/adopt".into()],
            ..Default::default()
        }));
        assert!(unlock(PolicyFlags {
            allow_keys: vec!["gitseal.dev/".into()],
            ..Default::default()
        }));
    }
}
