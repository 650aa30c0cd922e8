//! `spec.template.data`: Secret keys whose values are Go `text/template`s rendered over the
//! decrypted values, as Bitnami Sealed Secrets does (`Unseal` in its
//! `sealedsecret_expansion.go`): every decrypted value is a string in the map `.`, each
//! template's output becomes that key of the Secret (overriding a decrypted key of the same
//! name). Pure: no client, no I/O, and no function that reads the environment, files, network,
//! clock or randomness is registered.
//!
//! Engine: `gotmpl` (a Rust port of Go's `text/template`), not `gtmpl`. gotmpl is maintained
//! (edition 2024, releases in 2025-26), cross-checks its test suite against Go's own
//! `text/template`, supports the whole syntax (trim markers, `break`/`continue`, variables,
//! `define`/`template`, `else if`), forbids `unsafe`, catches panicking functions, bounds
//! `range` iterations and recursion, accepts closures as functions and writes to any
//! `fmt::Write` (so output is bounded while it is written). gtmpl 0.7 (2021, edition 2018)
//! takes plain `fn` pointers only, has no iteration budget and no `break`/`continue`.
//!
//! Plain text: the context is built from [`Plaintext`] values, but gotmpl holds strings as
//! `Arc<str>`, and its functions and printf build their own `String`s; those copies are freed,
//! not zeroized (the crate offers no hook). What gitseal itself holds — the rendered output —
//! is written into a zeroizing buffer reserved up front and handed on as [`Plaintext`].
//!
//! Errors never hold values: a template's own parse errors are passed on (the template is
//! committed text, not a secret); execution errors are replaced by fixed texts per kind, and
//! only gitseal's own function errors (which name functions and limits) are passed through.

mod funcs;

use crate::crypto::Plaintext;
use crate::format::Map;
use crate::format::limits::{MAX_DATA_LEN, MAX_VALUE_LEN, data_len_problem};
use gotmpl::parse::{Expr, ListNode, Node, PipeNode};
use gotmpl::{Template, TemplateError, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use zeroize::Zeroizing;

pub use funcs::{FORBIDDEN, SUPPORTED};

/// Most `range` iterations of one template execution.
pub const MAX_RANGE_ITERS: u64 = 100_000;

/// What is wrong with a template (or a value it renders over): the field at fault and the
/// problem, never a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateProblem {
    field: String,
    pub message: String,
}

impl TemplateProblem {
    /// The field of the SealedSecret at fault: `spec.template.data.<key>`, or
    /// `spec.encryptedData.<key>` for a value templates cannot render over.
    pub fn field(&self) -> String {
        self.field.clone()
    }
}

fn problem(key: &str, message: impl Into<String>) -> TemplateProblem {
    TemplateProblem {
        field: format!("spec.template.data.{key}"),
        message: message.into(),
    }
}

/// Builtins of Go's text/template (gotmpl registers them itself).
const BUILTINS: &[&str] = &[
    "and", "call", "eq", "ge", "gt", "html", "index", "js", "le", "len", "lt", "ne", "not", "or",
    "print", "printf", "println", "slice", "urlquery",
];

/// Parse `text` with gitseal's functions and refuse any function that is not available,
/// naming it: what `gitseal verify` and the controller check before anything is decrypted.
fn parse(key: &str, text: &str) -> Result<Template, TemplateProblem> {
    let tmpl = Template::new(key)
        .max_range_iters(MAX_RANGE_ITERS)
        .funcs(funcs::func_map())
        .parse(text)
        .map_err(|e| problem(key, format!("does not parse: {}", parse_error_text(&e))))?;
    let mut used = BTreeSet::new();
    for name in tmpl.templates() {
        if let Some(body) = tmpl.lookup(name) {
            walk_list(body, &mut used);
        }
    }
    if let Some(body) = tmpl.lookup(key) {
        walk_list(body, &mut used);
    }
    for name in &used {
        if BUILTINS.contains(&name.as_str()) || SUPPORTED.contains(&name.as_str()) {
            continue;
        }
        return Err(problem(key, unavailable(name)));
    }
    Ok(tmpl)
}

/// The refusal of a function that is not registered: forbidden by design, or not supported.
fn unavailable(name: &str) -> String {
    if FORBIDDEN.contains(&name) {
        format!(
            "function {name:?} is not available (templates may not read the controller's environment, files, network, clock or randomness)"
        )
    } else {
        format!(
            "function {name:?} is not available (not a text/template builtin or a sprig function gitseal supports; see the README's list)"
        )
    }
}

fn parse_error_text(e: &TemplateError) -> String {
    match e {
        TemplateError::Parse {
            line, col, message, ..
        }
        | TemplateError::Lex {
            line, col, message, ..
        } => format!("{line}:{col}: {message}"),
        other => other.to_string(),
    }
}

fn walk_list(list: &ListNode, used: &mut BTreeSet<String>) {
    for node in &list.nodes {
        walk_node(node, used);
    }
}

fn walk_node(node: &Node, used: &mut BTreeSet<String>) {
    match node {
        Node::List(l) => walk_list(l, used),
        Node::Action(a) => walk_pipe(&a.pipe, used),
        Node::If(b) | Node::Range(b) | Node::With(b) => {
            walk_pipe(&b.pipe, used);
            walk_list(&b.body, used);
            if let Some(e) = &b.else_body {
                walk_list(e, used);
            }
        }
        Node::Template(t) => {
            if let Some(p) = &t.pipe {
                walk_pipe(p, used);
            }
        }
        Node::Define(d) => walk_list(&d.body, used),
        Node::Text(_) | Node::Break(_) | Node::Continue(_) => {}
    }
}

fn walk_pipe(pipe: &PipeNode, used: &mut BTreeSet<String>) {
    for cmd in &pipe.commands {
        for arg in &cmd.args {
            walk_expr(arg, used);
        }
    }
}

fn walk_expr(expr: &Expr, used: &mut BTreeSet<String>) {
    match expr {
        Expr::Identifier(_, name) => {
            used.insert(name.to_string());
        }
        Expr::Pipe(_, p) => walk_pipe(p, used),
        Expr::Chain(_, e, _) => walk_expr(e, used),
        _ => {}
    }
}

/// Every problem of `templates` found without values: each must parse and use only
/// available functions. Offline (`gitseal verify`) and in the controller before decrypting.
pub fn check(templates: &Map<String>) -> Vec<TemplateProblem> {
    templates
        .iter()
        .filter_map(|(key, text)| parse(key, text).err())
        .collect()
}

/// A `fmt::Write` into a zeroizing buffer that refuses to grow past `limit` bytes (so a
/// pathological template stops as soon as its output is too large).
struct Bounded {
    out: Zeroizing<String>,
    limit: usize,
    over: bool,
}

impl std::fmt::Write for Bounded {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if self.out.len() + s.len() > self.limit {
            self.over = true;
            return Err(std::fmt::Error);
        }
        if self.out.len() + s.len() > self.out.capacity() {
            // Grow by hand so the old buffer is wiped, not just freed.
            let want = (self.out.len() + s.len())
                .max(self.out.capacity() * 2)
                .min(self.limit);
            let mut bigger = Zeroizing::new(String::with_capacity(want));
            bigger.push_str(&self.out);
            self.out = bigger;
        }
        self.out.push_str(s);
        Ok(())
    }
}

/// The values with `templates` rendered over them (a template key replaces a decrypted one).
/// Bounded: each output by [`MAX_VALUE_LEN`], the whole Secret by [`MAX_DATA_LEN`].
pub fn render(
    templates: &Map<String>,
    mut values: BTreeMap<String, Plaintext>,
) -> Result<BTreeMap<String, Plaintext>, TemplateProblem> {
    if templates.is_empty() {
        return Ok(values);
    }
    let parsed: Vec<(&String, Template)> = templates
        .iter()
        .map(|(k, t)| parse(k, t).map(|p| (k, p)))
        .collect::<Result<_, _>>()?;
    // Go's map[string]string context. Values must be text: gotmpl strings are UTF-8.
    let mut context: BTreeMap<Arc<str>, Value> = BTreeMap::new();
    for (k, v) in &values {
        let text = std::str::from_utf8(v.expose()).map_err(|_| TemplateProblem {
            field: format!("spec.encryptedData.{k}"),
            message:
                "value is not UTF-8 text, and spec.template.data renders over text values only"
                    .into(),
        })?;
        context.insert(Arc::from(k.as_str()), Value::String(Arc::from(text)));
    }
    let context = Value::Map(Arc::new(context));
    let mut rendered = BTreeMap::new();
    for (key, tmpl) in parsed {
        let mut out = Bounded {
            out: Zeroizing::new(String::with_capacity(1024)),
            limit: MAX_VALUE_LEN,
            over: false,
        };
        let result = tmpl.execute_fmt(&mut out, &context);
        if out.over {
            return Err(problem(
                key,
                format!("rendered output is over the {MAX_VALUE_LEN}-byte limit of one value"),
            ));
        }
        result.map_err(|e| problem(key, exec_error_text(&e)))?;
        rendered.insert(key.clone(), Plaintext::new(out.out.as_bytes().to_vec()));
    }
    values.extend(rendered);
    let total: usize = values.iter().map(|(k, v)| k.len() + v.len()).sum();
    if let Some(p) = data_len_problem(total) {
        let key = templates.keys().next().map_or("", String::as_str);
        return Err(problem(key, format!("with the rendered templates, {p}")));
    }
    debug_assert!(total <= MAX_DATA_LEN);
    Ok(values)
}

/// A fixed text for an execution error: gotmpl's own texts may hold values (a compared
/// operand, a printed argument), so only the kind is said, and gitseal's own function errors.
fn exec_error_text(e: &TemplateError) -> String {
    let own = e.to_string();
    if let Some(i) = own.find(funcs::MARK) {
        return own[i + funcs::MARK.len()..].to_string();
    }
    match e {
        TemplateError::UndefinedFunction(name) => unavailable(name),
        TemplateError::UndefinedTemplate(name) => format!("template {name:?} is not defined"),
        TemplateError::UndefinedVariable(name) => format!("variable {name} is not defined"),
        TemplateError::MissingKey { .. } => "a key the template reads is missing".into(),
        TemplateError::RecursionLimit => "template recursion is too deep".into(),
        TemplateError::RangeIterLimit => {
            format!("range runs over the budget of {MAX_RANGE_ITERS} iterations")
        }
        TemplateError::IndexOutOfRange { .. } => "index out of range".into(),
        TemplateError::TypeMismatch { expected, got } => {
            format!("type mismatch: expected {expected}, got {got}")
        }
        _ => "rendering failed (details withheld: they may hold values)".into(),
    }
}

#[cfg(test)]
mod tests;
