//! Template functions: Go's builtins and docker's extra functions.

use std::borrow::Cow;

use serde_json::Value;

use super::exec::{Val, project};
use super::gofmt::{self, as_int, type_name};

const FUNCS: &[&str] = &[
    // Go builtins.
    "and", "call", "html", "index", "slice", "js", "len", "not", "or", "print", "printf", "println",
    "urlquery", "eq", "ge", "gt", "le", "lt", "ne",
    // docker's (github.com/docker/cli/templates).
    "json", "split", "join", "title", "lower", "upper", "pad", "truncate",
];

/// Functions whose header-row variant returns the first argument unchanged
/// (docker's templates.HeaderFunctions).
const HEADER_IDENTITY: &[&str] = &[
    "json", "split", "join", "title", "lower", "upper", "pad", "truncate",
];

pub(crate) fn is_function(name: &str) -> bool {
    FUNCS.contains(&name)
}

pub(crate) enum Arity {
    Exact(usize),
    AtLeast(usize),
}

pub(crate) fn arity(name: &str) -> Arity {
    match name {
        "and" | "or" | "call" | "index" | "slice" | "printf" | "eq" => Arity::AtLeast(1),
        "html" | "js" | "urlquery" | "print" | "println" => Arity::AtLeast(0),
        "len" | "not" | "json" | "title" | "lower" | "upper" => Arity::Exact(1),
        "ge" | "gt" | "le" | "lt" | "ne" | "split" | "join" | "truncate" => Arity::Exact(2),
        "pad" => Arity::Exact(3),
        _ => Arity::AtLeast(0),
    }
}

/// A function failure: either of the call as a whole ("error calling f: …")
/// or an argument of the wrong type (reported at that argument).
pub(crate) enum FnErr {
    Call(String),
    Arg {
        index: usize,
        want: &'static str,
        got: &'static str,
    },
}

fn wrong(index: usize, want: &'static str, got: Option<&Value>) -> FnErr {
    FnErr::Arg {
        index,
        want,
        got: type_name(got),
    }
}

type FResult<'a> = Result<Val<'a>, FnErr>;

fn s(v: impl Into<String>) -> Val<'static> {
    Val::owned(Value::String(v.into()))
}

fn want_str(i: usize, v: &Val) -> Result<String, FnErr> {
    match v.get() {
        Some(Value::String(s)) => Ok(s.clone()),
        // Lenient: a JSON null / missing key stands for Go's "" here.
        None | Some(Value::Null) => Ok(String::new()),
        Some(other) => Err(wrong(i, "string", Some(other))),
    }
}

fn want_int(i: usize, v: &Val) -> Result<i64, FnErr> {
    match v.get() {
        Some(Value::Number(n)) => {
            if let Some(x) = n.as_i64() {
                return Ok(x);
            }
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f.abs() < 9e15
            {
                return Ok(f as i64);
            }
            Err(wrong(i, "int", v.get()))
        }
        other => Err(wrong(i, "int", other)),
    }
}

fn want_str_list(i: usize, v: &Val) -> Result<Vec<String>, FnErr> {
    match v.get() {
        Some(Value::Array(a)) => Ok(a
            .iter()
            .map(|e| match e {
                Value::String(s) => s.clone(),
                other => gofmt::value_string(Some(other)),
            })
            .collect()),
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(other) => Err(wrong(i, "[]string", Some(other))),
    }
}

/// Go's truth of a value.
pub(crate) fn truth(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(m)) => !m.is_empty(),
    }
}

/// Calls a function other than `and`/`or` (handled by the executor).
pub(crate) fn call<'a>(name: &str, mut args: Vec<Val<'a>>, header: bool) -> FResult<'a> {
    if header && HEADER_IDENTITY.contains(&name) {
        return Ok(s(want_str(0, &args[0])?));
    }
    let refs = |args: &[Val<'_>]| -> Vec<Option<Value>> {
        args.iter().map(|a| a.get().cloned()).collect()
    };
    match name {
        "not" => Ok(Val::owned(Value::Bool(!args[0].truth()))),
        "len" => match args[0].get() {
            None | Some(Value::Null) => Err(FnErr::Call("len of nil pointer".into())),
            Some(Value::String(s)) => Ok(Val::owned(Value::from(s.len()))),
            Some(Value::Array(a)) => Ok(Val::owned(Value::from(a.len()))),
            Some(Value::Object(m)) => Ok(Val::owned(Value::from(m.len()))),
            Some(other) => Err(FnErr::Call(format!(
                "len of type {}",
                type_name(Some(other))
            ))),
        },
        "index" => {
            let item = args.remove(0);
            index(item, &args)
        }
        "slice" => {
            let item = args.remove(0);
            slice(item, &args)
        }
        "eq" => {
            if args.len() < 2 {
                return Err(FnErr::Call("missing argument for comparison".into()));
            }
            for b in &args[1..] {
                if eq(&args[0], b)? {
                    return Ok(Val::owned(Value::Bool(true)));
                }
            }
            Ok(Val::owned(Value::Bool(false)))
        }
        "ne" => Ok(Val::owned(Value::Bool(!eq(&args[0], &args[1])?))),
        "lt" => Ok(Val::owned(Value::Bool(lt(&args[0], &args[1])?))),
        "le" => Ok(Val::owned(Value::Bool(
            lt(&args[0], &args[1])? || eq(&args[0], &args[1])?,
        ))),
        "gt" => Ok(Val::owned(Value::Bool(
            !(lt(&args[0], &args[1])? || eq(&args[0], &args[1])?),
        ))),
        "ge" => Ok(Val::owned(Value::Bool(!lt(&args[0], &args[1])?))),
        "print" | "println" | "printf" | "html" | "js" | "urlquery" => {
            let owned = refs(&args);
            let r: Vec<Option<&Value>> = owned.iter().map(|o| o.as_ref()).collect();
            let text = match name {
                "print" => gofmt::sprint(&r),
                "println" => gofmt::sprintln(&r),
                "printf" => {
                    let f = want_str(0, &args[0])?;
                    gofmt::sprintf(&f, &r[1..])
                }
                _ => {
                    let joined = match r.as_slice() {
                        [Some(Value::String(one))] => one.clone(),
                        _ => gofmt::sprint(&r),
                    };
                    match name {
                        "html" => html_escape(&joined),
                        "js" => js_escape(&joined),
                        _ => query_escape(&joined),
                    }
                }
            };
            Ok(s(text))
        }
        "call" => Err(FnErr::Call(format!(
            "non-function of type {}",
            type_name(args[0].get())
        ))),
        "json" => {
            let mut out = String::new();
            gofmt::to_json(args[0].get(), &mut out);
            Ok(s(out))
        }
        "split" => {
            let src = want_str(0, &args[0])?;
            let sep = want_str(1, &args[1])?;
            let parts: Vec<Value> = go_split(&src, &sep)
                .into_iter()
                .map(Value::String)
                .collect();
            Ok(Val::owned(Value::Array(parts)))
        }
        "join" => {
            let list = want_str_list(0, &args[0])?;
            let sep = want_str(1, &args[1])?;
            Ok(s(list.join(&sep)))
        }
        "title" => Ok(s(go_title(&want_str(0, &args[0])?))),
        "lower" => Ok(s(map_case(&want_str(0, &args[0])?, false))),
        "upper" => Ok(s(map_case(&want_str(0, &args[0])?, true))),
        "pad" => {
            let src = want_str(0, &args[0])?;
            let pre = want_int(1, &args[1])?;
            let post = want_int(2, &args[2])?;
            if src.is_empty() {
                return Ok(s(src));
            }
            if pre < 0 || post < 0 {
                return Err(FnErr::Call("negative Repeat count".into()));
            }
            let (pre, post) = (pre.min(1 << 20) as usize, post.min(1 << 20) as usize);
            Ok(s(format!("{}{}{}", " ".repeat(pre), src, " ".repeat(post))))
        }
        "truncate" => {
            let src = want_str(0, &args[0])?;
            let n = want_int(1, &args[1])?;
            if n < 0 {
                return Err(FnErr::Call(format!("slice bounds out of range [:{n}]")));
            }
            let n = n as usize;
            match src.char_indices().nth(n) {
                Some((idx, _)) => Ok(s(&src[..idx])),
                None => Ok(s(src)),
            }
        }
        _ => Err(FnErr::Call(format!("function {name:?} not implemented"))),
    }
}

/// Go's strings.Split.
fn go_split(s: &str, sep: &str) -> Vec<String> {
    if sep.is_empty() {
        return s.chars().map(String::from).collect();
    }
    s.split(sep).map(String::from).collect()
}

/// Go's strings.Title.
fn go_title(s: &str) -> String {
    let is_sep = |c: char| {
        if c.is_ascii() {
            !(c.is_ascii_alphanumeric() || c == '_')
        } else if c.is_alphabetic() || c.is_numeric() {
            false
        } else {
            c.is_whitespace()
        }
    };
    let mut prev = ' ';
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if is_sep(prev) {
            out.extend(simple_case(c, true));
        } else {
            out.push(c);
        }
        prev = c;
    }
    out
}

/// Go maps case rune by rune; keep runes without a one-rune mapping.
fn simple_case(c: char, upper: bool) -> impl Iterator<Item = char> {
    let mapped: Vec<char> = if upper {
        c.to_uppercase().collect()
    } else {
        c.to_lowercase().collect()
    };
    let one = if mapped.len() == 1 { mapped[0] } else { c };
    std::iter::once(one)
}

fn map_case(s: &str, upper: bool) -> String {
    s.chars().flat_map(|c| simple_case(c, upper)).collect()
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn index_arg(idx: &Val, cap: usize) -> Result<usize, FnErr> {
    let x = match idx.get() {
        None | Some(Value::Null) => {
            return Err(FnErr::Call("cannot index slice/array with nil".into()));
        }
        Some(Value::Number(n)) if as_int(n).is_some() => as_int(n).unwrap(),
        Some(other) => {
            return Err(FnErr::Call(format!(
                "cannot index slice/array with type {}",
                type_name(Some(other))
            )));
        }
    };
    if x < 0 || x > cap as i128 {
        return Err(FnErr::Call(format!("index out of range: {x}")));
    }
    Ok(x as usize)
}

fn index<'a>(item: Val<'a>, indexes: &[Val]) -> FResult<'a> {
    let mut item: Cow<'a, Value> = match item {
        Val::V(c) if !c.is_null() => c,
        _ => return Err(FnErr::Call("index of untyped nil".into())),
    };
    for idx in indexes {
        item = match item.as_ref() {
            Value::Null => return Err(FnErr::Call("index of nil pointer".into())),
            Value::Array(a) => {
                let x = index_arg(idx, a.len())?;
                if x == a.len() {
                    return Err(FnErr::Call(format!("index out of range: {x}")));
                }
                project(item, |v| v.as_array().and_then(|a| a.get(x))).unwrap()
            }
            Value::String(s) => {
                let x = index_arg(idx, s.len())?;
                if x == s.len() {
                    return Err(FnErr::Call(format!("index out of range: {x}")));
                }
                Cow::Owned(Value::from(s.as_bytes()[x]))
            }
            Value::Object(_) => {
                let key = match idx.get() {
                    Some(Value::String(k)) => k.clone(),
                    other => {
                        return Err(FnErr::Call(format!(
                            "value has type {}; should be string",
                            type_name(other)
                        )));
                    }
                };
                project(item, |v| v.get(&key)).unwrap_or(Cow::Owned(Value::Null))
            }
            other => {
                return Err(FnErr::Call(format!(
                    "can't index item of type {}",
                    type_name(Some(other))
                )));
            }
        };
    }
    Ok(Val::V(item))
}

fn slice<'a>(item: Val<'a>, indexes: &[Val]) -> FResult<'a> {
    let item = match item.get() {
        None | Some(Value::Null) => return Err(FnErr::Call("slice of untyped nil".into())),
        Some(v) => v.clone(),
    };
    if indexes.len() > 3 {
        return Err(FnErr::Call(format!(
            "too many slice indexes: {}",
            indexes.len()
        )));
    }
    let len = match &item {
        Value::String(s) => {
            if indexes.len() == 3 {
                return Err(FnErr::Call("cannot 3-index slice a string".into()));
            }
            s.len()
        }
        Value::Array(a) => a.len(),
        other => {
            return Err(FnErr::Call(format!(
                "can't slice item of type {}",
                type_name(Some(other))
            )));
        }
    };
    let mut idx = [0usize, len, len];
    for (k, i) in indexes.iter().enumerate() {
        idx[k] = index_arg(i, len)?;
    }
    if idx[0] > idx[1] {
        return Err(FnErr::Call(format!(
            "invalid slice index: {} > {}",
            idx[0], idx[1]
        )));
    }
    if indexes.len() == 3 && idx[1] > idx[2] {
        return Err(FnErr::Call(format!(
            "invalid slice index: {} > {}",
            idx[1], idx[2]
        )));
    }
    Ok(Val::owned(match item {
        Value::String(s) => {
            Value::String(String::from_utf8_lossy(&s.as_bytes()[idx[0]..idx[1]]).into_owned())
        }
        Value::Array(a) => Value::Array(a[idx[0]..idx[1]].to_vec()),
        _ => unreachable!(),
    }))
}

enum Basic<'v> {
    Invalid,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(&'v str),
    Other,
}

fn basic<'v>(v: &'v Val) -> Basic<'v> {
    match v.get() {
        None | Some(Value::Null) => Basic::Invalid,
        Some(Value::Bool(b)) => Basic::Bool(*b),
        Some(Value::Number(n)) => match as_int(n) {
            Some(i) => Basic::Int(i),
            None => Basic::Float(n.as_f64().unwrap_or(0.0)),
        },
        Some(Value::String(s)) => Basic::Str(s),
        Some(_) => Basic::Other,
    }
}

const BAD_CMP: &str = "incompatible types for comparison";
const BAD_CMP_TYPE: &str = "invalid type for comparison";

fn eq(a: &Val, b: &Val) -> Result<bool, FnErr> {
    use Basic::*;
    Ok(match (basic(a), basic(b)) {
        (Invalid, Invalid) => true,
        (Invalid, _) | (_, Invalid) => false,
        (Bool(x), Bool(y)) => x == y,
        (Int(x), Int(y)) => x == y,
        (Float(x), Float(y)) => x == y,
        // Lenient: Go refuses to compare int with float64.
        (Int(x), Float(y)) | (Float(y), Int(x)) => x as f64 == y,
        (Str(x), Str(y)) => x == y,
        (Other, Other) => {
            return Err(FnErr::Call(format!(
                "non-comparable type {}: {}",
                gofmt::value_string(a.get()),
                type_name(a.get())
            )));
        }
        _ => return Err(FnErr::Call(BAD_CMP.into())),
    })
}

fn lt(a: &Val, b: &Val) -> Result<bool, FnErr> {
    use Basic::*;
    Ok(match (basic(a), basic(b)) {
        (Int(x), Int(y)) => x < y,
        (Float(x), Float(y)) => x < y,
        (Int(x), Float(y)) => (x as f64) < y,
        (Float(x), Int(y)) => x < y as f64,
        (Str(x), Str(y)) => x < y,
        (Invalid | Bool(_) | Other, _) | (_, Invalid | Bool(_) | Other) => {
            return Err(FnErr::Call(BAD_CMP_TYPE.into()));
        }
        _ => return Err(FnErr::Call(BAD_CMP.into())),
    })
}
