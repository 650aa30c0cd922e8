//! Every reason gitseal reports: one typed value that is the condition reason in status, the
//! Event reason, and the `reason` label of the reconcile metric. A bounded set, so a metric
//! label never grows with what users write.

use std::fmt;

/// Why an object is in the state it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    // SealedSecret: Ready condition, Events, `gitseal_reconciles_total{reason}`.
    /// The Secret says what the SealedSecret says (Ready=True).
    Unsealed,
    /// Someone edited or deleted the Secret; it was restored (Event only).
    DriftRepaired,
    /// The Secret was another controller's (Bitnami Sealed Secrets) and was taken over,
    /// as the operator allowed with `--take-over-from` (Event only).
    TakenOver,
    /// The spec is malformed or over a limit (values, envelopes, scope, binding fields).
    InvalidSpec,
    /// No trusted private key of this cluster opens the object's envelopes.
    KeyNotFound,
    /// A value is bound to another namespace or name than where it was found.
    BindingMismatch,
    /// A value or wrapped key fails authentication or key commitment.
    Tampered,
    /// The template policy refuses what the object would make the controller write.
    PolicyDenied,
    /// A Secret of that name exists and is not the object's to write.
    SecretNotOwned,
    /// The API server refused or could not be reached; retried.
    ApiError,

    // SealingKey: the PrivateKey and Retired conditions, Events.
    /// The controller holds this key's trusted private key (PrivateKey=True).
    Held,
    /// The key's private key Secret is missing.
    PrivateKeyMissing,
    /// A Secret of the key Secret's name exists but is not to be trusted.
    PrivateKeyUntrusted,
    /// The private key was deleted on retirement (Retired=True).
    Retired,
    /// Spec asks for `Retired` but SealedSecrets still use the key (and no `force`).
    RetireRefused,
    /// The retirement or deletion waits until every SealedSecret has been checked for the
    /// key (after a start, or a key change); not a refusal, a verdict follows.
    RetirePending,
    /// The SealingKey was deleted while SealedSecrets still use it; a finalizer keeps it
    /// and its private key until they no longer do.
    DeletionBlocked,
}

impl Reason {
    /// Every reason, in declaration order.
    pub const ALL: [Reason; 17] = [
        Reason::Unsealed,
        Reason::DriftRepaired,
        Reason::TakenOver,
        Reason::InvalidSpec,
        Reason::KeyNotFound,
        Reason::BindingMismatch,
        Reason::Tampered,
        Reason::PolicyDenied,
        Reason::SecretNotOwned,
        Reason::ApiError,
        Reason::Held,
        Reason::PrivateKeyMissing,
        Reason::PrivateKeyUntrusted,
        Reason::Retired,
        Reason::RetireRefused,
        Reason::RetirePending,
        Reason::DeletionBlocked,
    ];

    /// The reason as the API shows it (CamelCase, as Kubernetes condition reasons are).
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::Unsealed => "Unsealed",
            Reason::DriftRepaired => "DriftRepaired",
            Reason::TakenOver => "TakenOver",
            Reason::InvalidSpec => "InvalidSpec",
            Reason::KeyNotFound => "KeyNotFound",
            Reason::BindingMismatch => "BindingMismatch",
            Reason::Tampered => "Tampered",
            Reason::PolicyDenied => "PolicyDenied",
            Reason::SecretNotOwned => "SecretNotOwned",
            Reason::ApiError => "ApiError",
            Reason::Held => "Held",
            Reason::PrivateKeyMissing => "PrivateKeyMissing",
            Reason::PrivateKeyUntrusted => "PrivateKeyUntrusted",
            Reason::Retired => "Retired",
            Reason::RetireRefused => "RetireRefused",
            Reason::RetirePending => "Pending",
            Reason::DeletionBlocked => "DeletionBlocked",
        }
    }

    /// Whether the reason says something is wrong (a Warning Event, a False condition).
    pub const fn is_problem(self) -> bool {
        !matches!(
            self,
            Reason::Unsealed
                | Reason::DriftRepaired
                | Reason::TakenOver
                | Reason::Held
                | Reason::Retired
        )
    }

    /// The reason named `s`, if it is one.
    pub fn parse(s: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_camel_case_and_parse_back() {
        let mut seen = std::collections::BTreeSet::new();
        for r in Reason::ALL {
            let s = r.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(s.chars().next().is_some_and(|c| c.is_ascii_uppercase()));
            assert!(s.chars().all(|c| c.is_ascii_alphanumeric()), "{s}");
            assert_eq!(Reason::parse(s), Some(r));
        }
        assert_eq!(Reason::parse("unsealed"), None);
    }

    #[test]
    fn only_good_news_is_not_a_problem() {
        let fine: Vec<_> = Reason::ALL
            .into_iter()
            .filter(|r| !r.is_problem())
            .collect();
        assert_eq!(
            fine,
            [
                Reason::Unsealed,
                Reason::DriftRepaired,
                Reason::TakenOver,
                Reason::Held,
                Reason::Retired
            ]
        );
    }
}
