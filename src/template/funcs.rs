//! The sprig functions gitseal registers (Masterminds/sprig v3 semantics, as Bitnami's
//! `sprig.GenericFuncMap()`), each small, on top of gotmpl's function API. None reads the
//! environment, files, network, clock or randomness; string-building ones check their size
//! against the Secret value limit before allocating.

use crate::format::limits::MAX_VALUE_LEN;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gotmpl::{FuncMap, TemplateError, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Marks gitseal's own function errors (which hold no values) in gotmpl's error text.
pub const MARK: &str = "gitseal-template: ";

/// The sprig functions registered.
pub const SUPPORTED: &[&str] = &[
    "b32dec",
    "b32enc",
    "b64dec",
    "b64enc",
    "cat",
    "coalesce",
    "contains",
    "default",
    "dict",
    "empty",
    "get",
    "hasKey",
    "hasPrefix",
    "hasSuffix",
    "indent",
    "join",
    "keys",
    "list",
    "lower",
    "nindent",
    "nospace",
    "quote",
    "repeat",
    "replace",
    "sha1sum",
    "sha256sum",
    "squote",
    "substr",
    "title",
    "toJson",
    "toString",
    "trim",
    "trimPrefix",
    "trimSuffix",
    "trunc",
    "upper",
];

/// Sprig functions never registered, by design: they read the controller's environment,
/// host, network, clock or randomness (a random salt, key or id differs on every render).
pub const FORBIDDEN: &[&str] = &[
    "env",
    "expandenv",
    "getHostByName",
    "now",
    "ago",
    "date",
    "dateInZone",
    "date_in_zone",
    "dateModify",
    "date_modify",
    "mustDateModify",
    "must_date_modify",
    "duration",
    "durationRound",
    "htmlDate",
    "htmlDateInZone",
    "toDate",
    "mustToDate",
    "unixEpoch",
    "randAlphaNum",
    "randAlpha",
    "randAscii",
    "randNumeric",
    "randBytes",
    "randInt",
    "shuffle",
    "uuidv4",
    "htpasswd",
    "bcrypt",
    "genPrivateKey",
    "genCA",
    "genCAWithKey",
    "genSelfSignedCert",
    "genSelfSignedCertWithKey",
    "genSignedCert",
    "genSignedCertWithKey",
    "buildCustomCert",
];

type R = gotmpl::Result<Value>;

fn fail(text: impl std::fmt::Display) -> TemplateError {
    TemplateError::Exec(format!("{MARK}{text}"))
}

fn s(v: impl Into<String>) -> R {
    let v = v.into();
    if v.len() > MAX_VALUE_LEN {
        return Err(fail(format!(
            "a function's result is over the {MAX_VALUE_LEN}-byte limit of one value"
        )));
    }
    Ok(Value::String(Arc::from(v)))
}

/// A string parameter: like Go's text/template, anything else (a number, a missing key) is an
/// error, not converted. The error names the function, never the value.
fn text(name: &str, v: &Value) -> Result<String, TemplateError> {
    match v {
        Value::String(s) => Ok(s.to_string()),
        other => Err(fail(format!(
            "{name}: expected a string argument, got {}",
            other.type_name()
        ))),
    }
}

/// sprig's `strval`: strings as they are, nil as `<nil>`, the rest as `%v` prints them.
fn strval(v: &Value) -> String {
    match v {
        Value::String(s) => s.to_string(),
        other => other.to_string(),
    }
}

fn arg<'a>(name: &str, args: &'a [Value], i: usize, n: usize) -> Result<&'a Value, TemplateError> {
    if args.len() != n {
        return Err(fail(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        )));
    }
    Ok(&args[i])
}

fn int(name: &str, v: &Value) -> Result<i64, TemplateError> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Uint(u) => i64::try_from(*u).map_err(|_| fail(format!("{name}: count too large"))),
        other => Err(fail(format!(
            "{name}: expected an integer argument, got {}",
            other.type_name()
        ))),
    }
}

/// Go's emptiness as sprig's `empty` judges it.
pub fn is_empty(v: &Value) -> bool {
    match v {
        Value::Nil => true,
        Value::Bool(b) => !b,
        Value::Int(i) => *i == 0,
        Value::Uint(u) => *u == 0,
        Value::Float(f) => *f == 0.0,
        Value::String(s) => s.is_empty(),
        Value::List(l) => l.is_empty(),
        Value::Map(m) => m.is_empty(),
        _ => false,
    }
}

/// Go's `strconv.Quote` (what sprig's `quote` uses through `%q`).
pub fn go_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' || c == '\u{feff}' => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Nil => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Uint(u) => (*u).into(),
        Value::Float(f) => {
            serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, Into::into)
        }
        Value::String(s) => s.to_string().into(),
        Value::List(l) => l.iter().map(to_json).collect(),
        Value::Map(m) => m
            .iter()
            .map(|(k, v)| (k.to_string(), to_json(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        other => other.to_string().into(),
    }
}

const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

fn b32enc(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(5) * 8);
    for chunk in input.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let bits = u64::from_be_bytes([0, 0, 0, buf[0], buf[1], buf[2], buf[3], buf[4]]);
        let chars = (chunk.len() * 8).div_ceil(5);
        for i in 0..8 {
            if i < chars {
                out.push(B32[((bits >> (35 - i * 5)) & 31) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn b32dec(input: &str) -> Option<Vec<u8>> {
    let bytes = input.as_bytes();
    if !bytes.len().is_multiple_of(8) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 8 * 5);
    for chunk in bytes.chunks(8) {
        let pad = chunk.iter().rev().take_while(|&&b| b == b'=').count();
        let n = match pad {
            0 => 5,
            1 => 4,
            3 => 3,
            4 => 2,
            6 => 1,
            _ => return None,
        };
        let mut bits = 0u64;
        for &b in &chunk[..8 - pad] {
            let v = B32.iter().position(|&c| c == b)? as u64;
            bits = (bits << 5) | v;
        }
        bits <<= 5 * pad as u32;
        let all = bits.to_be_bytes();
        out.extend_from_slice(&all[3..3 + n]);
    }
    Some(out)
}

/// Go's `strings.Title`: the first letter of each word upper-cased.
fn title(text: &str) -> String {
    let mut prev_sep = true;
    text.chars()
        .map(|c| {
            let sep = !(c.is_alphanumeric() || c == '_');
            let out = if prev_sep && !sep {
                c.to_uppercase().collect::<String>()
            } else {
                c.to_string()
            };
            prev_sep = sep;
            out
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn checked_len(name: &str, n: usize, m: usize) -> Result<(), TemplateError> {
    match n.checked_mul(m) {
        Some(t) if t <= MAX_VALUE_LEN => Ok(()),
        _ => Err(fail(format!(
            "{name}: the result would be over the {MAX_VALUE_LEN}-byte limit of one value"
        ))),
    }
}

fn indent(n: i64, text: &str) -> Result<String, TemplateError> {
    let n = usize::try_from(n).unwrap_or(0);
    let lines = text.matches('\n').count() + 1;
    checked_len("indent", n, lines)?;
    let pad = " ".repeat(n);
    Ok(format!("{pad}{}", text.replace('\n', &format!("\n{pad}"))))
}

/// Go's `strings.Fields`-free `strslice` of sprig, for `join`.
fn strslice(v: &Value) -> Vec<String> {
    match v {
        Value::List(l) => l
            .iter()
            .filter(|x| !matches!(x, Value::Nil))
            .map(strval)
            .collect(),
        Value::Nil => vec![],
        other => vec![strval(other)],
    }
}

/// Every registered function.
pub fn func_map() -> FuncMap {
    let mut m = FuncMap::new();
    let mut add = |name: &str, f: fn(&[Value]) -> R| {
        m.insert(name.to_string(), Arc::new(f));
    };
    add("b64enc", |a| {
        s(STANDARD.encode(text("b64enc", arg("b64enc", a, 0, 1)?)?))
    });
    add("b64dec", |a| {
        match STANDARD.decode(text("b64dec", arg("b64dec", a, 0, 1)?)?) {
            Ok(b) => s(String::from_utf8_lossy(&b).into_owned()),
            // sprig returns the decoder's error text as the result.
            Err(e) => s(go_b64_error(&e)),
        }
    });
    add("b32enc", |a| {
        s(b32enc(text("b32enc", arg("b32enc", a, 0, 1)?)?.as_bytes()))
    });
    add("b32dec", |a| {
        let text = text("b32dec", arg("b32dec", a, 0, 1)?)?;
        match b32dec(&text) {
            Some(b) => s(String::from_utf8_lossy(&b).into_owned()),
            None => s("illegal base32 data"),
        }
    });
    add("upper", |a| {
        s(text("upper", arg("upper", a, 0, 1)?)?.to_uppercase())
    });
    add("lower", |a| {
        s(text("lower", arg("lower", a, 0, 1)?)?.to_lowercase())
    });
    add("title", |a| {
        s(title(&text("title", arg("title", a, 0, 1)?)?))
    });
    add("trim", |a| s(text("trim", arg("trim", a, 0, 1)?)?.trim()));
    add("nospace", |a| {
        s(text("nospace", arg("nospace", a, 0, 1)?)?
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>())
    });
    add("trimPrefix", |a| {
        let (p, t) = (
            text("trimPrefix", arg("trimPrefix", a, 0, 2)?)?,
            text("trimPrefix", &a[1])?,
        );
        s(t.strip_prefix(p.as_str()).unwrap_or(&t))
    });
    add("trimSuffix", |a| {
        let (p, t) = (
            text("trimSuffix", arg("trimSuffix", a, 0, 2)?)?,
            text("trimSuffix", &a[1])?,
        );
        s(t.strip_suffix(p.as_str()).unwrap_or(&t))
    });
    add("replace", |a| {
        let (old, new, t) = (
            text("replace", arg("replace", a, 0, 3)?)?,
            text("replace", &a[1])?,
            text("replace", &a[2])?,
        );
        let count = if old.is_empty() {
            t.chars().count() + 1
        } else {
            t.matches(old.as_str()).count()
        };
        if count
            .checked_mul(new.len())
            .and_then(|n| n.checked_add(t.len()))
            .is_none_or(|n| n > MAX_VALUE_LEN)
        {
            return Err(fail(format!(
                "replace: the result would be over the {MAX_VALUE_LEN}-byte limit of one value"
            )));
        }
        s(t.replace(old.as_str(), &new))
    });
    add("contains", |a| {
        let (sub, t) = (
            text("contains", arg("contains", a, 0, 2)?)?,
            text("contains", &a[1])?,
        );
        Ok(Value::Bool(t.contains(sub.as_str())))
    });
    add("hasPrefix", |a| {
        let (p, t) = (
            text("hasPrefix", arg("hasPrefix", a, 0, 2)?)?,
            text("hasPrefix", &a[1])?,
        );
        Ok(Value::Bool(t.starts_with(p.as_str())))
    });
    add("hasSuffix", |a| {
        let (p, t) = (
            text("hasSuffix", arg("hasSuffix", a, 0, 2)?)?,
            text("hasSuffix", &a[1])?,
        );
        Ok(Value::Bool(t.ends_with(p.as_str())))
    });
    add("repeat", |a| {
        let (n, t) = (
            int("repeat", arg("repeat", a, 0, 2)?)?,
            text("repeat", &a[1])?,
        );
        let n = usize::try_from(n).map_err(|_| fail("repeat: negative count"))?;
        checked_len("repeat", n, t.len())?;
        s(t.repeat(n))
    });
    add("indent", |a| {
        let (n, t) = (
            int("indent", arg("indent", a, 0, 2)?)?,
            text("indent", &a[1])?,
        );
        s(indent(n, &t)?)
    });
    add("nindent", |a| {
        let (n, t) = (
            int("nindent", arg("nindent", a, 0, 2)?)?,
            text("nindent", &a[1])?,
        );
        s(format!("\n{}", indent(n, &t)?))
    });
    add("substr", |a| {
        let (start, end, t) = (
            int("substr", arg("substr", a, 0, 3)?)?,
            int("substr", &a[1])?,
            text("substr", &a[2])?,
        );
        // sprig's substring works on bytes; Go strings may be cut mid-rune, ours may not.
        let len = t.len() as i64;
        let (from, to) = if start < 0 {
            (0, end.clamp(0, len))
        } else if end < 0 || end > len {
            (start.min(len), len)
        } else {
            (start.min(end), end)
        };
        t.get(from as usize..to as usize)
            .map_or_else(|| Err(fail("substr: cuts a multi-byte character")), s)
    });
    add("trunc", |a| {
        let (c, t) = (int("trunc", arg("trunc", a, 0, 2)?)?, text("trunc", &a[1])?);
        let len = t.len() as i64;
        let part = if c < 0 && len + c > 0 {
            t.get((len + c) as usize..)
        } else if c >= 0 && len > c {
            t.get(..c as usize)
        } else if c < 0 {
            Some("")
        } else {
            Some(t.as_str())
        };
        part.map_or_else(|| Err(fail("trunc: cuts a multi-byte character")), s)
    });
    add("cat", |a| {
        s(a.iter()
            .filter(|v| !matches!(v, Value::Nil))
            .map(strval)
            .collect::<Vec<_>>()
            .join(" "))
    });
    add("quote", |a| {
        s(a.iter()
            .filter(|v| !matches!(v, Value::Nil))
            .map(|v| go_quote(&strval(v)))
            .collect::<Vec<_>>()
            .join(" "))
    });
    add("squote", |a| {
        s(a.iter()
            .filter(|v| !matches!(v, Value::Nil))
            .map(|v| format!("'{}'", strval(v)))
            .collect::<Vec<_>>()
            .join(" "))
    });
    add("toString", |a| s(strval(arg("toString", a, 0, 1)?)));
    add("default", |a| match a {
        [d] => Ok(d.clone()),
        [d, given, ..] => Ok(if is_empty(given) {
            d.clone()
        } else {
            given.clone()
        }),
        [] => Err(fail(
            "wrong number of args for default: want at least 1 got 0",
        )),
    });
    add("empty", |a| {
        Ok(Value::Bool(is_empty(arg("empty", a, 0, 1)?)))
    });
    add("coalesce", |a| {
        Ok(a.iter()
            .find(|v| !is_empty(v))
            .cloned()
            .unwrap_or(Value::Nil))
    });
    add("join", |a| {
        let (sep, v) = (text("join", arg("join", a, 0, 2)?)?, &a[1]);
        s(strslice(v).join(&sep))
    });
    add("sha256sum", |a| {
        use sha2::Digest;
        s(hex(&sha2::Sha256::digest(
            text("sha256sum", arg("sha256sum", a, 0, 1)?)?.as_bytes(),
        )))
    });
    add("sha1sum", |a| {
        use sha1::Digest;
        s(hex(&sha1::Sha1::digest(
            text("sha1sum", arg("sha1sum", a, 0, 1)?)?.as_bytes(),
        )))
    });
    add("toJson", |a| {
        let v = to_json(arg("toJson", a, 0, 1)?);
        // Go's json.Marshal escapes <, > and & (and U+2028/9) in strings; those characters
        // only occur inside strings in JSON text.
        let text = serde_json::to_string(&v).unwrap_or_default();
        s(text
            .replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026")
            .replace('\u{2028}', "\\u2028")
            .replace('\u{2029}', "\\u2029"))
    });
    add("list", |a| Ok(Value::List(Arc::from(a.to_vec()))));
    add("dict", |a| {
        let mut d: BTreeMap<Arc<str>, Value> = BTreeMap::new();
        for pair in a.chunks(2) {
            let v = pair
                .get(1)
                .cloned()
                .unwrap_or_else(|| Value::String(Arc::from("")));
            d.insert(Arc::from(strval(&pair[0])), v);
        }
        Ok(Value::Map(Arc::new(d)))
    });
    add("get", |a| {
        let (d, k) = (arg("get", a, 0, 2)?, text("get", &a[1])?);
        Ok(match d {
            Value::Map(m) => m
                .get(k.as_str())
                .cloned()
                .unwrap_or_else(|| Value::String(Arc::from(""))),
            _ => Value::String(Arc::from("")),
        })
    });
    add("hasKey", |a| {
        let (d, k) = (arg("hasKey", a, 0, 2)?, text("hasKey", &a[1])?);
        Ok(Value::Bool(
            matches!(d, Value::Map(m) if m.contains_key(k.as_str())),
        ))
    });
    add("keys", |a| {
        // Go's map order is random; sorted here (deterministic, as `keys | sortAlpha` is).
        let mut out = Vec::new();
        for d in a {
            if let Value::Map(m) = d {
                out.extend(m.keys().map(|k| Value::String(k.clone())));
            }
        }
        Ok(Value::List(Arc::from(out)))
    });
    m
}

/// Go's `base64.CorruptInputError` text, which sprig's b64dec returns as its result.
fn go_b64_error(e: &base64::DecodeError) -> String {
    let at = match e {
        base64::DecodeError::InvalidByte(i, _) | base64::DecodeError::InvalidLastSymbol(i, _) => *i,
        base64::DecodeError::InvalidLength(n) => *n,
        base64::DecodeError::InvalidPadding => 0,
    };
    format!("illegal base64 data at input byte {at}")
}
