//! Splitting a file into documents: YAML streams (`---`) or JSON (one object, or a
//! `kind: List`), each as a generic JSON value for field-by-field validation, within the
//! input limits (docs/format.md § Limits): file size, documents, nesting depth, aliases and
//! nodes after alias expansion, so a YAML bomb or a 10,000-deep nesting is refused quickly
//! and in bounded memory.

use super::{Location, ManifestError, Result};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Largest manifest file read (one Kubernetes object is at most ~1.5 MiB; room for
/// multi-document files and CRD bundles).
pub const MAX_INPUT_LEN: usize = 64 * 1024 * 1024;
/// Most documents in one file (YAML stream or JSON `List`), empty ones included.
pub const MAX_DOCUMENTS: usize = 10_000;
/// Most nodes (scalars, sequences, mappings, mapping keys) in one file after alias expansion:
/// about 100 MB of parsed documents at worst.
pub const MAX_NODES: usize = 1_000_000;
/// Deepest nesting of sequences and mappings.
pub const MAX_DEPTH: usize = 64;
/// Most events one document may replay through aliases (`*anchor`): YAML bombs stop here.
const MAX_ALIAS_REPLAY: usize = 10_000;
/// Most alias uses in one document.
const MAX_ALIASES: usize = 10_000;

/// The YAML reader options: the crate's dialect (duplicate keys rejected) with a budget of
/// at most `max_nodes` nodes.
fn options(max_nodes: usize) -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_DEPTH;
    // Far above max_depth: the scanner reads up to 1,024 characters ahead (simple keys) before
    // the parser emits events, and a lower limit would stop `[[[…` as a syntax error before
    // the depth budget (a limit breach) sees it. The scanner's nesting is only a counter.
    budget.flow_nesting_limit = 4096;
    budget.max_nodes = max_nodes;
    budget.max_aliases = MAX_ALIASES;
    budget.max_anchors = MAX_ALIASES;
    budget.max_events = 4 * MAX_NODES;
    // Anchored collections keep copies of their events for replay: bounded like replay.
    budget.max_recorded_anchor_events = 10 * MAX_ALIAS_REPLAY;
    budget.max_recorded_anchor_bytes = 16 << 20;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = MAX_ALIAS_REPLAY.min(max_nodes);
    options
}

/// Parse one YAML (or JSON) document within the input limits.
pub(crate) fn parse_one<T: DeserializeOwned>(
    text: &str,
    max_nodes: usize,
) -> std::result::Result<T, serde_saphyr::Error> {
    serde_saphyr::from_str_with_options(text, options(max_nodes))
}

/// Whether a parser error is a breach of the input limits (rather than bad syntax).
pub(crate) fn is_limit(e: &serde_saphyr::Error) -> bool {
    use serde_saphyr::Error as E;
    let mut e = e;
    while let E::WithSnippet { error, .. } | E::AliasError { error, .. } = e {
        e = error;
    }
    matches!(
        e,
        E::Budget { .. }
            | E::AliasReplayLimitExceeded { .. }
            | E::AliasExpansionLimitExceeded { .. }
            | E::AliasReplayStackDepthExceeded { .. }
            | E::AliasReplayCounterOverflow { .. }
    )
}

/// The located error of a failed parse: over the limits, or invalid `what` (YAML, JSON, …).
pub(crate) fn parse_error(at: Location, what: &str, e: &serde_saphyr::Error) -> ManifestError {
    use serde_saphyr::budget::BudgetBreach as B;
    let mut root = e;
    while let serde_saphyr::Error::WithSnippet { error, .. } = root {
        root = error;
    }
    // The budget's own words are a Debug dump (`Depth { depth: 65 }`): say it plainly.
    let plain = match root {
        serde_saphyr::Error::Budget { breach, location } => {
            let what = match breach {
                B::Depth { .. } => Some(format!("nested deeper than {MAX_DEPTH} levels")),
                B::Nodes { .. } => Some(format!("more than {MAX_NODES} nodes in the file")),
                B::Aliases { .. } => Some(format!("more than {MAX_ALIASES} aliases")),
                B::Anchors { .. } => Some(format!("more than {MAX_ALIASES} anchors")),
                _ => None,
            };
            what.map(|w| format!("line {} column {}: {w}", location.line(), location.column()))
        }
        _ => None,
    };
    let detail = plain.unwrap_or_else(|| one_line(&e.to_string()));
    if is_limit(e) {
        ManifestError::over_limit(
            at,
            format!("over gitseal's input limits (docs/format.md § Limits): {detail}"),
        )
    } else {
        ManifestError::input(at, format!("invalid {what}: {detail}"))
    }
}

/// Nodes of a parsed value, mapping keys included (what [`MAX_NODES`] counts).
fn nodes(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(nodes).sum::<usize>(),
        Value::Object(m) => 1 + m.values().map(|v| 1 + nodes(v)).sum::<usize>(),
        _ => 1,
    }
}

/// Count `value`'s nodes against the `left` of its file's [`MAX_NODES`].
fn take(left: &mut usize, at: &Location, value: &Value) -> Result<()> {
    *left = left.checked_sub(nodes(value)).ok_or_else(|| {
        ManifestError::over_limit(
            at.clone(),
            format!(
                "the file holds more than {MAX_NODES} nodes after alias expansion (docs/format.md § Limits)"
            ),
        )
    })?;
    Ok(())
}

fn too_many_documents(file: &str) -> ManifestError {
    ManifestError::over_limit(
        Location::new(file, 0),
        format!("more than {MAX_DOCUMENTS} documents (docs/format.md § Limits)"),
    )
}

/// Serialization format of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

impl Format {
    /// JSON when the first non-blank byte opens an object or array.
    pub fn sniff(text: &str) -> Self {
        match text.trim_start().as_bytes().first() {
            Some(b'{') | Some(b'[') => Format::Json,
            _ => Format::Yaml,
        }
    }

    /// JSON for a `*.json` file name, else YAML.
    pub fn of_path(path: &std::path::Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => Format::Json,
            _ => Format::Yaml,
        }
    }
}

/// One document of a file, with its 1-based number.
#[derive(Clone, Debug)]
pub struct Document {
    pub at: Location,
    pub value: Value,
}

/// Every non-empty document of `text` (read from `file`). Duplicate mapping keys, YAML
/// syntax errors and truncated JSON are errors naming the file and position; so is input
/// over the limits (with [`ManifestError::over_limit`] set).
pub fn parse_documents(file: &str, text: &str) -> Result<Vec<Document>> {
    if text.len() > MAX_INPUT_LEN {
        return Err(ManifestError::over_limit(
            Location::new(file, 0),
            format!(
                "{} bytes, over the {} MiB limit of a manifest file",
                text.len(),
                MAX_INPUT_LEN >> 20
            ),
        ));
    }
    let mut left = MAX_NODES;
    match Format::sniff(text) {
        Format::Json => {
            let at = Location::new(file, 0);
            let value: Value =
                parse_one(text, MAX_NODES).map_err(|e| parse_error(at.clone(), "JSON", &e))?;
            take(&mut left, &at, &value)?;
            let values = if value.get("kind").and_then(Value::as_str) == Some("List") {
                value
                    .get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            } else {
                vec![value]
            };
            if values.len() > MAX_DOCUMENTS {
                return Err(too_many_documents(file));
            }
            Ok(values
                .into_iter()
                .enumerate()
                .map(|(i, value)| Document {
                    at: Location::new(file, i + 1),
                    value,
                })
                .collect())
        }
        Format::Yaml => {
            let parts = split_yaml(text, MAX_DOCUMENTS).ok_or_else(|| too_many_documents(file))?;
            let mut docs = Vec::new();
            for (i, part) in parts.into_iter().enumerate() {
                let at = Location::new(file, i + 1);
                if part
                    .lines()
                    .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
                {
                    continue;
                }
                let value: Value = parse_one(part, left.max(1))
                    .map_err(|e| parse_error(at.clone(), "YAML", &e))?;
                take(&mut left, &at, &value)?;
                if !value.is_null() {
                    docs.push(Document { at, value });
                }
            }
            Ok(docs)
        }
    }
}

/// Emit objects as YAML documents separated by `---`, or JSON (one object, or a `List`).
pub fn emit_documents<T: serde::Serialize>(objects: &[T], format: Format) -> String {
    match format {
        Format::Yaml => objects
            .iter()
            .map(|o| crate::yaml::to_string(o).expect("manifests serialize"))
            .collect::<Vec<_>>()
            .join("---\n"),
        Format::Json => {
            let value = match objects {
                [one] => serde_json::to_value(one),
                many => serde_json::to_value(
                    serde_json::json!({"apiVersion": "v1", "kind": "List", "items": many}),
                ),
            }
            .expect("manifests serialize");
            serde_json::to_string_pretty(&value).expect("JSON value serializes") + "\n"
        }
    }
}

/// Split a YAML stream at document markers. A `---` or `...` line at column 0 always ends a
/// document in YAML 1.2 (block and flow scalars cannot contain one), so this is exact and
/// keeps document numbers for error messages even where documents are empty.
/// `None` when there are more than `max` documents.
pub(crate) fn split_yaml(text: &str, max: usize) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        let marker = |m: &str| {
            bare == m
                || bare
                    .strip_prefix(m)
                    .is_some_and(|r| r.starts_with([' ', '\t']))
        };
        if marker("---") || marker("...") {
            if offset > 0 || marker("...") {
                parts.push(&text[start..offset]);
                if parts.len() >= max {
                    return None;
                }
            }
            // Content after `--- ` on the marker line belongs to the new document.
            start = if marker("---") {
                offset + 3
            } else {
                offset + line.len()
            };
        }
        offset += line.len();
    }
    parts.push(&text[start..]);
    Some(parts)
}

/// Parser messages can span lines and carry hints for library users; keep the gist.
pub(crate) fn one_line(message: &str) -> String {
    let text = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    let text = text.split(" --> <input>").next().unwrap_or(text);
    text.split(", set DuplicateKeyPolicy")
        .next()
        .unwrap_or(text)
        .to_string()
}

/// Field access helpers that produce located errors.
pub(crate) fn str_field<'a>(doc: &'a Value, at: &Location, path: &str) -> Result<Option<&'a str>> {
    match lookup(doc, path) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(ManifestError::input(
            at.field(path),
            format!("expected a string, found {}", type_name(other)),
        )),
    }
}

pub(crate) fn map_field<'a>(
    doc: &'a Value,
    at: &Location,
    path: &str,
) -> Result<Option<&'a serde_json::Map<String, Value>>> {
    match lookup(doc, path) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(other) => Err(ManifestError::input(
            at.field(path),
            format!("expected a mapping, found {}", type_name(other)),
        )),
    }
}

/// A mapping of string → string (labels, annotations, stringData).
pub(crate) fn string_map(doc: &Value, at: &Location, path: &str) -> Result<Vec<(String, String)>> {
    let Some(map) = map_field(doc, at, path)? else {
        return Ok(Vec::new());
    };
    map.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            Value::Null => Ok((k.clone(), String::new())),
            other => Err(ManifestError::input(
                at.field(format!("{path}.{k}")),
                format!("expected a string, found {} (quote it)", type_name(other)),
            )),
        })
        .collect()
}

/// An optional boolean (`immutable`).
pub(crate) fn bool_field(doc: &Value, at: &Location, path: &str) -> Result<Option<bool>> {
    match lookup(doc, path) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(ManifestError::input(
            at.field(path),
            format!("expected a boolean, found {}", type_name(other)),
        )),
    }
}

/// A document that is not the kind a reader takes, as an error at its `kind`: `not a
/// {wanted}: found apiVersion …, kind …`.
pub(crate) fn wrong_kind(doc: &Value, at: &Location, wanted: &str) -> ManifestError {
    let field = |name: &str| doc.get(name).and_then(Value::as_str).unwrap_or("none");
    ManifestError::input(
        at.field("kind"),
        format!(
            "not a {wanted}: found apiVersion {}, kind {}",
            field("apiVersion"),
            field("kind")
        ),
    )
}

fn lookup<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(doc, |v, part| v.get(part))
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_stream_numbers_documents_and_skips_empty_ones() {
        let docs = parse_documents("f.yaml", "---\na: 1\n---\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].at.doc, 1);
        assert_eq!(docs[1].at.doc, 3);
        let docs = parse_documents("f.yaml", "a: 1\n--- # c\nb: |\n  x\n  ---x\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].value["b"], "x\n---x\n");
        let err = parse_documents("f.yaml", "a: 1\n---\nb: [\n").unwrap_err();
        assert!(
            err.to_string().starts_with("f.yaml:2: invalid YAML"),
            "{err}"
        );
    }

    #[test]
    fn bombs_deep_nesting_and_too_many_documents_are_over_the_limits() {
        let mut bomb = String::from("a: &a lol\n");
        let mut prev = "a".to_string();
        for level in 0..9 {
            let refs = vec![format!("*{prev}"); 10].join(", ");
            bomb.push_str(&format!("l{level}: &l{level} [{refs}]\n"));
            prev = format!("l{level}");
        }
        let deep_flow = format!("a: {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
        let deep_block = format!("{}x\n", "- ".repeat(10_000));
        let deep_json = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let many_docs = "a: 1\n---\n".repeat(MAX_DOCUMENTS + 1);
        let wide = format!("[{}]", vec!["1"; MAX_NODES + 1].join(","));
        for (what, text) in [
            ("alias bomb", bomb.as_str()),
            ("deep flow", &deep_flow),
            ("deep block", &deep_block),
            ("deep JSON", &deep_json),
            ("documents", &many_docs),
            ("nodes", &wide),
        ] {
            let err = parse_documents("f.yaml", text).unwrap_err();
            assert!(err.over_limit, "{what}: {err}");
            assert!(err.to_string().starts_with("f.yaml"), "{what}: {err}");
        }
        // Depth and aliases within reason still read.
        let ok = format!(
            "a: {}1{}\nb: &x [1, 2]\nc: *x\n",
            "[".repeat(60),
            "]".repeat(60)
        );
        let docs = parse_documents("f.yaml", &ok).unwrap();
        assert_eq!(docs[0].value["c"], serde_json::json!([1, 2]));
        // Syntax errors stay syntax errors.
        assert!(!parse_documents("f.yaml", "a: [\n").unwrap_err().over_limit);
    }

    #[test]
    fn json_list_and_errors() {
        let docs =
            parse_documents("f.json", r#"{"kind":"List","items":[{"a":1},{"b":2}]}"#).unwrap();
        assert_eq!(docs.len(), 2);
        let err = parse_documents("f.json", r#"{"a": 1"#).unwrap_err();
        assert!(err.to_string().starts_with("f.json: invalid JSON"), "{err}");
        let err = parse_documents("f.yaml", "a: 1\na: 2\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "f.yaml:1: invalid YAML: line 2 column 1: duplicate mapping key: a"
        );
    }
}
