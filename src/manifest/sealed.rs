//! Reading and writing SealedSecret documents, with located errors and a canonical output
//! (sorted keys, one line per value and per wrapped key) so unchanged lines stay byte-identical.

use super::docs::{map_field, str_field, type_name, wrong_kind};
use super::{Document, Format, ManifestError, Result};
use crate::api::{API_VERSION, SealedSecret};
use serde_json::Value;

/// Whether a document is a gitseal SealedSecret.
pub fn is_sealed(doc: &Value) -> bool {
    doc.get("kind").and_then(Value::as_str) == Some("SealedSecret")
        && doc.get("apiVersion").and_then(Value::as_str) == Some(API_VERSION)
}

/// Validate a document as a SealedSecret, naming the first field that is wrong.
pub fn parse_sealed(doc: &Document) -> Result<SealedSecret> {
    let (v, at) = (&doc.value, &doc.at);
    if !is_sealed(v) {
        return Err(wrong_kind(v, at, &format!("SealedSecret ({API_VERSION})")));
    }
    if str_field(v, at, "metadata.name")?.is_none_or(str::is_empty) {
        return Err(ManifestError::input(
            at.field("metadata.name"),
            "a SealedSecret needs a name",
        ));
    }
    str_field(v, at, "metadata.namespace")?;
    if let Some(scope) = str_field(v, at, "spec.scope")? {
        scope
            .parse::<crate::format::Scope>()
            .map_err(|e| ManifestError::input(at.field("spec.scope"), e))?;
    }
    str_field(v, at, "spec.boundTo")?;
    for (key, value) in map_field(v, at, "spec.encryptedData")?
        .into_iter()
        .flatten()
    {
        if !value.is_string() {
            return Err(ManifestError::input(
                at.field(format!("spec.encryptedData.{key}")),
                format!("expected a sealed value string, found {}", type_name(value)),
            ));
        }
    }
    for (id, wrapped) in map_field(v, at, "spec.envelopes")?.into_iter().flatten() {
        let field = format!("spec.envelopes.{id}");
        let Value::Object(wrapped) = wrapped else {
            return Err(ManifestError::input(
                at.field(field),
                format!(
                    "expected key id → wrapped key, found {}",
                    type_name(wrapped)
                ),
            ));
        };
        if let Some((kid, _)) = wrapped.iter().find(|(_, w)| !w.is_string()) {
            return Err(ManifestError::input(
                at.field(format!("{field}.{kid}")),
                "expected a base64 age file",
            ));
        }
    }
    serde_json::from_value(v.clone())
        .map_err(|e| ManifestError::input(at.clone(), format!("invalid SealedSecret: {e}")))
}

/// Emit SealedSecrets: YAML documents separated by `---`, or JSON (one object, or a List).
pub fn emit_sealed(objects: &[SealedSecret], format: Format) -> String {
    super::docs::emit_documents(objects, format)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What rewrites committed files (`reseal`, `seal --merge-into`) reads and writes keeps
    /// `spec.template.data` as it was.
    #[test]
    fn rewriting_keeps_template_data() {
        let text = r#"apiVersion: gitseal.dev/v1alpha1
kind: SealedSecret
metadata:
  name: db
  namespace: prod
spec:
  scope: strict
  boundTo: prod/db
  encryptedData: {}
  envelopes: {}
  template:
    type: Opaque
    data:
      dsn: 'postgres://{{ .user }}:{{ .password }}@db'
      auth: '{{- printf "%s:%s" .user .password | b64enc -}}'
"#;
        let docs = crate::manifest::parse_documents("s.yaml", text).unwrap();
        let sealed = parse_sealed(&docs[0]).unwrap();
        let data = &sealed.spec.template.as_ref().unwrap().data;
        assert_eq!(data.len(), 2);
        let out = emit_sealed(std::slice::from_ref(&sealed), Format::Yaml);
        let again =
            parse_sealed(&crate::manifest::parse_documents("s.yaml", &out).unwrap()[0]).unwrap();
        assert_eq!(again.spec, sealed.spec, "{out}");
        assert!(
            out.contains("postgres://{{ .user }}:{{ .password }}@db"),
            "{out}"
        );
    }
}
