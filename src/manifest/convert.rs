//! Conversions: Secret → SealedSecret (seal), new keys into an existing SealedSecret (merge,
//! leaving every other value and envelope untouched), and opening a SealedSecret's values
//! (what [`crate::unsealer`] makes a Secret of).

use super::{ErrorKind, Location, ManifestError, Result, SecretInput};
use crate::api::{SealedSecret, SealedSecretSpec, SecretTemplate, TemplateMetadata};
use crate::crypto::{CryptoError, Plaintext, Recipient};
use crate::format::limits::{MAX_VALUES, data_len_problem};
use crate::format::{FormatError, Map, Opener, Scope, SealedValue, Sealer, Target};
use std::collections::{BTreeMap, BTreeSet};

/// How to seal: recipients and scope choices.
pub struct SealOptions<'a> {
    pub recipients: &'a [Recipient],
    /// `--scope`: overrides the input's annotation and the default.
    pub scope: Option<Scope>,
    /// From `.gitseal.yaml`, else strict.
    pub default_scope: Scope,
    /// `-n`: namespace for inputs without one.
    pub namespace: Option<&'a str>,
    pub allow_empty: bool,
}

/// `namespace/name` for strict, `namespace` for namespace scope, none for cluster scope.
pub fn bound_to(scope: Scope, target: Target<'_>) -> Option<String> {
    match scope {
        Scope::Strict => Some(target.to_string()),
        Scope::Namespace => target.namespace.map(str::to_string),
        Scope::Cluster => None,
    }
}

fn resolve_namespace(input: &SecretInput, opts: &SealOptions<'_>) -> Result<Option<String>> {
    match (&input.namespace, opts.namespace) {
        (Some(a), Some(b)) if a != b => Err(ManifestError::input(
            input.at.field("metadata.namespace"),
            format!("the document says namespace {a:?} but -n says {b:?}"),
        )),
        (Some(a), _) => Ok(Some(a.clone())),
        (None, b) => Ok(b.map(str::to_string)),
    }
}

fn check_recipients(input: &SecretInput, recipients: &[Recipient]) -> Result<()> {
    if recipients.is_empty() {
        return Err(ManifestError::input(
            input.at.clone(),
            "no recipients configured: pass -r age1…, --keyring FILE, or add a rule to .gitseal.yaml",
        ));
    }
    Ok(())
}

fn seal_into(
    sealer: &Sealer,
    target: Target<'_>,
    input: &SecretInput,
    out: &mut Map<String>,
) -> Result<()> {
    for (key, value) in &input.data {
        let sealed = sealer.seal(target, key, value.expose()).map_err(|e| {
            ManifestError::input(input.at.field(format!("data.{key}")), e.to_string())
        })?;
        out.insert(key.clone(), sealed);
    }
    Ok(())
}

/// Seal one Secret into a SealedSecret with one fresh data key.
pub fn seal(input: &SecretInput, opts: &SealOptions<'_>) -> Result<SealedSecret> {
    check_recipients(input, opts.recipients)?;
    let scope = opts.scope.or(input.scope).unwrap_or(opts.default_scope);
    let namespace = resolve_namespace(input, opts)?;
    if namespace.is_none() && scope != Scope::Cluster {
        return Err(ManifestError::input(
            input.at.field("metadata.namespace"),
            format!(
                "{scope} scope binds the namespace: set metadata.namespace, pass -n, or use --scope cluster"
            ),
        ));
    }
    if input.data.is_empty() && !opts.allow_empty {
        return Err(ManifestError::input(
            input.at.field("data"),
            "the Secret has no data (pass --allow-empty to seal it anyway)",
        ));
    }
    check_data_limits(input)?;
    let target = Target {
        namespace: namespace.as_deref(),
        name: &input.name,
    };
    let sealer = Sealer::new(opts.recipients, scope)
        .map_err(|e| ManifestError::input(input.at.clone(), e.to_string()))?;
    let mut encrypted_data = Map::new();
    seal_into(&sealer, target, input, &mut encrypted_data)?;
    let envelope = sealer.envelope().clone();
    let mut envelopes = Map::new();
    if !encrypted_data.is_empty() {
        envelopes.insert(envelope.id, envelope.wrapped);
    }
    let mut sealed = SealedSecret::new(
        &input.name,
        SealedSecretSpec {
            scope,
            bound_to: bound_to(scope, target),
            encrypted_data,
            envelopes,
            template: template(input),
        },
    );
    sealed.metadata.namespace = namespace;
    Ok(sealed)
}

/// The limits of one Secret's data (docs/format.md § Limits): number of keys, and keys plus
/// values within Kubernetes' 1 MiB.
fn check_data_limits(input: &SecretInput) -> Result<()> {
    if input.data.len() > MAX_VALUES {
        return Err(ManifestError::over_limit(
            input.at.field("data"),
            format!(
                "{} keys, over the limit of {MAX_VALUES} per object",
                input.data.len()
            ),
        ));
    }
    let total: usize = input.data.iter().map(|(k, v)| k.len() + v.len()).sum();
    if let Some(problem) = data_len_problem(total) {
        return Err(ManifestError::over_limit(input.at.field("data"), problem));
    }
    Ok(())
}

fn template(input: &SecretInput) -> Option<SecretTemplate> {
    let metadata =
        (!input.labels.is_empty() || !input.annotations.is_empty()).then(|| TemplateMetadata {
            labels: input.labels.clone().into_iter().collect(),
            annotations: input.annotations.clone().into_iter().collect(),
        });
    let t = SecretTemplate {
        metadata,
        type_: input.type_.clone(),
        immutable: input.immutable,
        data: input
            .template_data
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    (t != SecretTemplate::default()).then_some(t)
}

/// What a merge changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MergeOutcome {
    pub added: Vec<String>,
    pub replaced: Vec<String>,
    pub dropped_envelopes: Vec<String>,
}

/// Seal the keys of `input` into `existing` under one fresh data key. Other values,
/// envelopes, metadata and template are left as they are; envelopes no value references
/// any more are dropped.
pub fn merge_into(
    existing: &mut SealedSecret,
    input: &SecretInput,
    opts: &SealOptions<'_>,
) -> Result<MergeOutcome> {
    check_recipients(input, opts.recipients)?;
    let scope = existing.spec.scope;
    if let Some(asked) = opts.scope.or(input.scope).filter(|s| *s != scope) {
        return Err(ManifestError::input(
            input.at.clone(),
            format!(
                "the existing SealedSecret has scope {scope}; merging cannot change it to {asked}"
            ),
        ));
    }
    let namespace = resolve_namespace(input, opts)?;
    if namespace.is_some() && namespace != existing.metadata.namespace {
        return Err(ManifestError::input(
            input.at.field("metadata.namespace"),
            format!(
                "namespace {:?} does not match the existing SealedSecret's {:?}",
                namespace, existing.metadata.namespace
            ),
        ));
    }
    let name = existing.metadata.name.clone().unwrap_or_default();
    let target = Target {
        namespace: existing.metadata.namespace.as_deref(),
        name: &name,
    };
    let sealer = Sealer::new(opts.recipients, scope)
        .map_err(|e| ManifestError::input(input.at.clone(), e.to_string()))?;
    let mut fresh = Map::new();
    seal_into(&sealer, target, input, &mut fresh)?;
    let mut outcome = MergeOutcome::default();
    for (key, value) in fresh {
        match existing.spec.encrypted_data.insert(key.clone(), value) {
            Some(_) => outcome.replaced.push(key),
            None => outcome.added.push(key),
        }
    }
    if !input.data.is_empty() {
        let envelope = sealer.envelope().clone();
        existing
            .spec
            .envelopes
            .insert(envelope.id, envelope.wrapped);
    }
    let used: BTreeSet<String> = existing
        .spec
        .encrypted_data
        .values()
        .filter_map(|v| SealedValue::parse(v).ok().map(|s| s.envelope_id))
        .collect();
    existing.spec.envelopes.retain(|id, _| {
        let keep = used.contains(id);
        if !keep {
            outcome.dropped_envelopes.push(id.clone());
        }
        keep
    });
    // The merged object must stay readable: within the limits every reader checks.
    if let Some(over) = super::check_limits(existing, &input.at) {
        return Err(over);
    }
    Ok(outcome)
}

/// Key ids of the envelopes this object's values reference.
pub fn wanted_key_ids(sealed: &SealedSecret) -> BTreeSet<String> {
    wanted_key_id_refs(sealed).map(str::to_string).collect()
}

/// [`wanted_key_ids`], borrowed and possibly repeated (counting usage over many objects
/// without allocating).
pub fn wanted_key_id_refs(sealed: &SealedSecret) -> impl Iterator<Item = &str> {
    let used: BTreeSet<&str> = sealed
        .spec
        .encrypted_data
        .values()
        .filter_map(|v| SealedValue::envelope_id_of(v))
        .collect();
    sealed
        .spec
        .envelopes
        .iter()
        .filter(move |(id, _)| used.contains(id.as_str()))
        .flat_map(|(_, wrapped)| wrapped.keys().map(String::as_str))
}

/// Decrypt every value of `sealed`, where it stands (its own metadata namespace and name).
/// An object over the input limits is refused before anything is unwrapped.
pub fn open_values(
    sealed: &SealedSecret,
    at: &Location,
    opener: &mut Opener<'_>,
) -> Result<BTreeMap<String, Plaintext>> {
    if let Some(over) = super::check_limits(sealed, at) {
        return Err(over);
    }
    let name = sealed.metadata.name.clone().unwrap_or_default();
    let target = Target {
        namespace: sealed.metadata.namespace.as_deref(),
        name: &name,
    };
    let mut out = BTreeMap::new();
    for (key, value) in &sealed.spec.encrypted_data {
        let field = at.field(format!("spec.encryptedData.{key}"));
        let plain = opener
            .open(
                &sealed.spec.envelopes,
                sealed.spec.scope,
                target,
                key,
                value,
            )
            .map_err(|e| classify(e, sealed, target, field))?;
        out.insert(key.clone(), plain);
    }
    Ok(out)
}

/// Name the cause of a failed open: which keys, which binding, or tampering.
fn classify(
    err: FormatError,
    sealed: &SealedSecret,
    target: Target<'_>,
    at: Location,
) -> ManifestError {
    let msg = err.to_string();
    match err {
        // A wrapped key over the limits is refused before any key is tried: bad input.
        FormatError::Unwrap {
            source: CryptoError::WrappedKeyTooLarge { .. } | CryptoError::WrappedKeyStanzas { .. },
            ..
        } => ManifestError::over_limit(at, msg),
        FormatError::NotARecipient { .. }
        | FormatError::Unwrap {
            source: CryptoError::NoMatchingIdentity,
            ..
        } => ManifestError::new(ErrorKind::KeyNotFound, at, msg),
        FormatError::Unwrap { .. } => ManifestError::new(ErrorKind::Tampered, at, msg),
        FormatError::Crypto(CryptoError::Authentication) => {
            let here = bound_to(sealed.spec.scope, target);
            match &sealed.spec.bound_to {
                Some(there) if Some(there) != here.as_ref() => ManifestError::new(
                    ErrorKind::BindingMismatch,
                    at,
                    format!(
                        "sealed for {there}, found in {}",
                        here.unwrap_or_else(|| target.to_string())
                    ),
                ),
                _ => ManifestError::new(
                    ErrorKind::Tampered,
                    at,
                    "value does not authenticate: it was tampered with, or moved from another key or object",
                ),
            }
        }
        _ => ManifestError::input(at, msg),
    }
}
