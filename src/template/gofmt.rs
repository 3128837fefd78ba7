//! Go `fmt` and `encoding/json` output for JSON values.
//!
//! Values print the way Go prints the `interface{}` values that
//! `encoding/json` produces (maps with sorted keys, `[a b]` slices, `<nil>`),
//! except that integral JSON numbers print as integers (Go's typed docker
//! structs hold `int`s there, not `float64`s).

use serde_json::{Number, Value};

/// Go's type name of a value, as used in `%!d(string=x)` and in errors.
pub(crate) fn type_name(v: Option<&Value>) -> &'static str {
    match v {
        None | Some(Value::Null) => "<nil>",
        Some(Value::Bool(_)) => "bool",
        Some(Value::Number(n)) if is_int(n) => "int",
        Some(Value::Number(_)) => "float64",
        Some(Value::String(_)) => "string",
        Some(Value::Array(_)) => "[]interface {}",
        Some(Value::Object(_)) => "map[string]interface {}",
    }
}

pub(crate) fn is_int(n: &Number) -> bool {
    n.is_i64() || n.is_u64()
}

/// An integral number as i128 (None for floats).
pub(crate) fn as_int(n: &Number) -> Option<i128> {
    if let Some(i) = n.as_i64() {
        Some(i as i128)
    } else {
        n.as_u64().map(|u| u as i128)
    }
}

/// `%v` of a value (fmt.Sprint of one operand).
pub(crate) fn write_value(v: Option<&Value>, out: &mut String) {
    format_arg(v, 'v', &Spec::default(), out);
}

pub(crate) fn value_string(v: Option<&Value>) -> String {
    let mut s = String::new();
    write_value(v, &mut s);
    s
}

/// fmt.Sprint: spaces between operands when neither side is a string.
pub(crate) fn sprint(args: &[Option<&Value>]) -> String {
    let mut out = String::new();
    let mut prev_string = false;
    for (i, a) in args.iter().enumerate() {
        let is_string = matches!(a, Some(Value::String(_)));
        if i > 0 && !is_string && !prev_string {
            out.push(' ');
        }
        write_value(*a, &mut out);
        prev_string = is_string;
    }
    out
}

/// fmt.Sprintln: always spaces between operands, newline at the end.
pub(crate) fn sprintln(args: &[Option<&Value>]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        write_value(*a, &mut out);
    }
    out.push('\n');
    out
}

#[derive(Default, Clone, Debug)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// fmt.Sprintf.
pub(crate) fn sprintf(format: &str, args: &[Option<&Value>]) -> String {
    let mut out = String::new();
    let mut argi = 0usize;
    let mut reordered = false;
    let chars: Vec<char> = format.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        // Flags.
        while i < chars.len() {
            match chars[i] {
                '#' => spec.sharp = true,
                '0' => spec.zero = !spec.minus,
                '+' => spec.plus = true,
                '-' => {
                    spec.minus = true;
                    spec.zero = false;
                }
                ' ' => spec.space = true,
                _ => break,
            }
            i += 1;
        }
        // Explicit argument index: %[2]d.
        let parse_index = |i: &mut usize, argi: &mut usize, reordered: &mut bool| {
            if *i < chars.len()
                && chars[*i] == '['
                && let Some(close) = chars[*i..].iter().position(|&c| c == ']')
            {
                let inner: String = chars[*i + 1..*i + close].iter().collect();
                if let Ok(n) = inner.parse::<usize>()
                    && n >= 1
                {
                    *argi = n - 1;
                    *reordered = true;
                }
                *i += close + 1;
            }
        };
        parse_index(&mut i, &mut argi, &mut reordered);
        // Width.
        if i < chars.len() && chars[i] == '*' {
            i += 1;
            match args.get(argi).copied().flatten() {
                Some(Value::Number(n)) if as_int(n).is_some() => {
                    let w = as_int(n).unwrap();
                    if w < 0 {
                        spec.minus = true;
                        spec.zero = false;
                    }
                    spec.width = Some(w.unsigned_abs().min(1_000_000) as usize);
                }
                _ => out.push_str("%!(BADWIDTH)"),
            }
            argi += 1;
        } else {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            if i > start {
                let w: String = chars[start..i].iter().collect();
                spec.width = Some(w.parse::<usize>().unwrap_or(0).min(1_000_000));
            }
        }
        // Precision.
        if i < chars.len() && chars[i] == '.' {
            i += 1;
            parse_index(&mut i, &mut argi, &mut reordered);
            if i < chars.len() && chars[i] == '*' {
                i += 1;
                match args.get(argi).copied().flatten() {
                    Some(Value::Number(n)) if as_int(n).is_some_and(|p| p >= 0) => {
                        spec.prec = Some(as_int(n).unwrap().min(1_000_000) as usize);
                    }
                    _ => out.push_str("%!(BADPREC)"),
                }
                argi += 1;
            } else {
                let start = i;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                let p: String = chars[start..i].iter().collect();
                spec.prec = Some(p.parse::<usize>().unwrap_or(0).min(1_000_000));
            }
        }
        parse_index(&mut i, &mut argi, &mut reordered);
        if i >= chars.len() {
            out.push_str("%!(NOVERB)");
            break;
        }
        let verb = chars[i];
        i += 1;
        if verb == '%' {
            out.push('%');
            continue;
        }
        if argi >= args.len() {
            out.push_str("%!");
            out.push(verb);
            out.push_str("(MISSING)");
            continue;
        }
        let arg = args[argi];
        argi += 1;
        if verb == 'T' {
            pad(&mut out, type_name(arg), &spec);
            continue;
        }
        format_arg(arg, verb, &spec, &mut out);
    }
    if !reordered && argi < args.len() {
        out.push_str("%!(EXTRA ");
        for (k, a) in args[argi..].iter().enumerate() {
            if k > 0 {
                out.push_str(", ");
            }
            match a {
                None | Some(Value::Null) => out.push_str("<nil>"),
                Some(v) => {
                    out.push_str(type_name(Some(v)));
                    out.push('=');
                    write_value(Some(v), &mut out);
                }
            }
        }
        out.push(')');
    }
    out
}

fn bad_verb(v: Option<&Value>, verb: char, out: &mut String) {
    out.push_str("%!");
    out.push(verb);
    out.push('(');
    match v {
        None | Some(Value::Null) => out.push_str("<nil>"),
        Some(v) => {
            out.push_str(type_name(Some(v)));
            out.push('=');
            write_value(Some(v), out);
        }
    }
    out.push(')');
}

/// Pads `s` to the width with spaces (left or right).
fn pad(out: &mut String, s: &str, spec: &Spec) {
    let n = s.chars().count();
    let w = spec.width.unwrap_or(0);
    if n >= w {
        out.push_str(s);
    } else if spec.minus {
        out.push_str(s);
        out.extend(std::iter::repeat_n(' ', w - n));
    } else {
        out.extend(std::iter::repeat_n(' ', w - n));
        out.push_str(s);
    }
}

/// Pads with zeros on the left when the zero flag is set (numbers).
fn pad_num(out: &mut String, s: &str, spec: &Spec) {
    if spec.zero && !spec.minus {
        let n = s.chars().count();
        let w = spec.width.unwrap_or(0);
        if n < w {
            out.extend(std::iter::repeat_n('0', w - n));
        }
        out.push_str(s);
    } else {
        pad(out, s, spec);
    }
}

fn format_arg(v: Option<&Value>, verb: char, spec: &Spec, out: &mut String) {
    match v {
        None | Some(Value::Null) => {
            if verb == 'v' {
                pad(out, "<nil>", spec);
            } else {
                bad_verb(v, verb, out);
            }
        }
        Some(Value::Bool(b)) => match verb {
            'v' | 't' => pad(out, if *b { "true" } else { "false" }, spec),
            _ => bad_verb(v, verb, out),
        },
        Some(Value::Number(n)) => {
            if let Some(i) = as_int(n) {
                match verb {
                    'v' | 'd' | 'b' | 'o' | 'O' | 'x' | 'X' | 'c' | 'q' | 'U' => {
                        fmt_integer(i, verb, spec, out)
                    }
                    // Lenient: Go rejects %f on ints; docker's typed fields are
                    // floats where %f is used, so convert.
                    'e' | 'E' | 'f' | 'F' | 'g' | 'G' => fmt_float(i as f64, verb, spec, out),
                    _ => bad_verb(v, verb, out),
                }
            } else {
                let f = n.as_f64().unwrap_or(0.0);
                match verb {
                    'v' | 'e' | 'E' | 'f' | 'F' | 'g' | 'G' => fmt_float(f, verb, spec, out),
                    'd' if f.fract() == 0.0 && f.abs() < 1e18 => {
                        fmt_integer(f as i128, verb, spec, out)
                    }
                    _ => bad_verb(v, verb, out),
                }
            }
        }
        Some(Value::String(s)) => match verb {
            'v' | 's' => {
                let s = truncate_prec(s, spec.prec);
                pad(out, s, spec)
            }
            'q' => {
                let s = truncate_prec(s, spec.prec);
                let q = if spec.sharp && can_backquote(s) {
                    format!("`{s}`")
                } else {
                    go_quote(s, spec.plus)
                };
                pad(out, &q, spec)
            }
            'x' | 'X' => {
                let bytes = s.as_bytes();
                let bytes = match spec.prec {
                    Some(p) if p < bytes.len() => &bytes[..p],
                    _ => bytes,
                };
                let mut h = String::new();
                for (k, b) in bytes.iter().enumerate() {
                    if spec.space && k > 0 {
                        h.push(' ');
                    }
                    if spec.sharp && (spec.space || k == 0) {
                        h.push_str(if verb == 'x' { "0x" } else { "0X" });
                    }
                    if verb == 'x' {
                        h.push_str(&format!("{b:02x}"));
                    } else {
                        h.push_str(&format!("{b:02X}"));
                    }
                }
                pad(out, &h, spec)
            }
            _ => bad_verb(v, verb, out),
        },
        Some(Value::Array(a)) => {
            out.push('[');
            for (k, e) in a.iter().enumerate() {
                if k > 0 {
                    out.push(' ');
                }
                format_arg(Some(e), verb, spec, out);
            }
            out.push(']');
        }
        Some(Value::Object(m)) => {
            out.push_str("map[");
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for (k, key) in keys.iter().enumerate() {
                if k > 0 {
                    out.push(' ');
                }
                format_arg(Some(&Value::String((*key).clone())), verb, spec, out);
                out.push(':');
                format_arg(m.get(key.as_str()), verb, spec, out);
            }
            out.push(']');
        }
    }
}

fn truncate_prec(s: &str, prec: Option<usize>) -> &str {
    match prec {
        Some(p) => match s.char_indices().nth(p) {
            Some((idx, _)) => &s[..idx],
            None => s,
        },
        None => s,
    }
}

fn fmt_integer(i: i128, verb: char, spec: &Spec, out: &mut String) {
    match verb {
        'c' => {
            let c = u32::try_from(i)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{FFFD}');
            pad(out, &c.to_string(), spec);
            return;
        }
        'q' => {
            let c = u32::try_from(i)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{FFFD}');
            pad(out, &quote_rune(c), spec);
            return;
        }
        'U' => {
            let mut s = format!("U+{:04X}", i.unsigned_abs());
            if spec.sharp
                && let Some(c) = u32::try_from(i).ok().and_then(char::from_u32)
            {
                s.push_str(&format!(" '{c}'"));
            }
            pad(out, &s, spec);
            return;
        }
        _ => {}
    }
    let neg = i < 0;
    let u = i.unsigned_abs();
    let mut digits = match verb {
        'b' => format!("{u:b}"),
        'o' | 'O' => format!("{u:o}"),
        'x' => format!("{u:x}"),
        'X' => format!("{u:X}"),
        _ => u.to_string(),
    };
    if let Some(p) = spec.prec {
        if p == 0 && u == 0 {
            pad(out, "", spec);
            return;
        }
        while digits.len() < p {
            digits.insert(0, '0');
        }
    } else if spec.zero
        && !spec.minus
        && let Some(w) = spec.width
    {
        let mut w = w;
        if neg || spec.plus || spec.space {
            w = w.saturating_sub(1);
        }
        let prefix_len = match verb {
            'x' | 'X' | 'b' if spec.sharp => 2,
            'O' => 2,
            _ => 0,
        };
        w = w.saturating_sub(prefix_len);
        while digits.len() < w {
            digits.insert(0, '0');
        }
    }
    let prefix = match verb {
        'b' if spec.sharp => "0b",
        'o' if spec.sharp && !digits.starts_with('0') => "0",
        'O' => "0o",
        'x' if spec.sharp => "0x",
        'X' if spec.sharp => "0X",
        _ => "",
    };
    let sign = if neg {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    };
    let s = format!("{sign}{prefix}{digits}");
    pad(out, &s, spec);
}

fn fmt_float(f: f64, verb: char, spec: &Spec, out: &mut String) {
    let (verb, prec) = match verb {
        'v' => ('g', None),
        'e' | 'E' | 'f' | 'F' => (verb, Some(spec.prec.unwrap_or(6))),
        _ => (verb, spec.prec),
    };
    let mut num = format_float(f, verb, prec);
    if !num.starts_with('-') && !num.starts_with('+') {
        num.insert(0, '+');
    }
    if spec.space && num.starts_with('+') && !spec.plus {
        num.replace_range(0..1, " ");
    }
    if num[1..].starts_with('I') || num[1..].starts_with('N') {
        if num[1..].starts_with('N') && !spec.space && !spec.plus {
            num.remove(0);
        }
        pad(out, &num, spec);
        return;
    }
    if spec.plus || !num.starts_with('+') {
        let w = spec.width.unwrap_or(0);
        if spec.zero && !spec.minus && w > num.len() {
            out.push_str(&num[..1]);
            out.extend(std::iter::repeat_n('0', w - num.len()));
            out.push_str(&num[1..]);
            return;
        }
        pad(out, &num, spec);
    } else {
        pad_num(out, &num[1..], spec);
    }
}

/// Shortest decimal digits and decimal-point position of |f|:
/// f = 0.d1d2d3... * 10^dp.
fn shortest_digits(f: f64) -> (Vec<u8>, i32) {
    let s = format!("{:e}", f.abs());
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
    (digits, exp + 1)
}

/// Digits of |f| rounded to `n` significant digits (n >= 1), trailing zeros trimmed.
fn fixed_digits(f: f64, n: usize) -> (Vec<u8>, i32) {
    let s = format!("{:.*e}", n - 1, f.abs());
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut digits: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
    while digits.len() > 1 && digits.last() == Some(&b'0') {
        digits.pop();
    }
    (digits, exp + 1)
}

fn fmt_e(neg: bool, digits: &[u8], dp: i32, prec: usize, upper: bool) -> String {
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    s.push(*digits.first().unwrap_or(&b'0') as char);
    if prec > 0 {
        s.push('.');
        for k in 1..=prec {
            s.push(*digits.get(k).unwrap_or(&b'0') as char);
        }
    }
    s.push(if upper { 'E' } else { 'e' });
    let exp = if digits.iter().all(|&d| d == b'0') {
        0
    } else {
        dp - 1
    };
    s.push(if exp < 0 { '-' } else { '+' });
    let e = exp.unsigned_abs();
    if e < 10 {
        s.push('0');
    }
    s.push_str(&e.to_string());
    s
}

fn fmt_f(neg: bool, digits: &[u8], dp: i32, prec: usize) -> String {
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    if dp > 0 {
        for k in 0..dp as usize {
            s.push(*digits.get(k).unwrap_or(&b'0') as char);
        }
    } else {
        s.push('0');
    }
    if prec > 0 {
        s.push('.');
        for k in 0..prec as i32 {
            let idx = dp + k;
            let d = if idx < 0 {
                b'0'
            } else {
                *digits.get(idx as usize).unwrap_or(&b'0')
            };
            s.push(d as char);
        }
    }
    s
}

/// strconv.FormatFloat(f, verb, prec, 64) with prec None = -1 (shortest).
pub(crate) fn format_float(f: f64, verb: char, prec: Option<usize>) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let neg = f.is_sign_negative();
    let upper = verb.is_ascii_uppercase();
    match (verb, prec) {
        ('f' | 'F', Some(p)) => {
            let s = format!("{:.*}", p, f.abs());
            if neg { format!("-{s}") } else { s }
        }
        ('f' | 'F', None) => {
            let (d, dp) = shortest_digits(f);
            let nd = if d == [b'0'] { 0 } else { d.len() as i32 };
            fmt_f(neg, &d, dp, (nd - dp).max(0) as usize)
        }
        ('e' | 'E', Some(p)) => {
            let (d, dp) = fixed_digits(f, p + 1);
            fmt_e(neg, &d, dp, p, upper)
        }
        ('e' | 'E', None) => {
            let (d, dp) = shortest_digits(f);
            fmt_e(neg, &d, dp, d.len().saturating_sub(1), upper)
        }
        (_, None) => {
            // %g shortest.
            let (d, dp) = shortest_digits(f);
            let zero = d.iter().all(|&x| x == b'0');
            let exp = if zero { 0 } else { dp - 1 };
            if !zero && !(-4..6).contains(&exp) {
                fmt_e(neg, &d, dp, d.len().saturating_sub(1), upper)
            } else {
                let nd = if zero { 0 } else { d.len() as i32 };
                let dp = if zero { 1 } else { dp };
                fmt_f(neg, &d, dp, (nd - dp).max(0) as usize)
            }
        }
        (_, Some(p)) => {
            // %g with precision.
            let p = p.max(1);
            let (d, dp) = fixed_digits(f, p);
            let nd = d.len();
            let mut eprec = p;
            if eprec > nd && nd as i32 >= dp {
                eprec = nd;
            }
            let zero = d.iter().all(|&x| x == b'0');
            let exp = if zero { 0 } else { dp - 1 };
            if exp < -4 || exp >= eprec as i32 {
                let p2 = p.min(nd);
                fmt_e(neg, &d, dp, p2 - 1, verb == 'G')
            } else {
                let dp = if zero { 1 } else { dp };
                let p2 = if p as i32 > dp { nd } else { p };
                fmt_f(neg, &d, dp, (p2 as i32 - dp).max(0) as usize)
            }
        }
    }
}

/// %v of a float64, as Go prints it.
#[cfg(test)]
pub(crate) fn go_float(f: f64) -> String {
    format_float(f, 'g', None)
}

fn quote_rune(c: char) -> String {
    let mut s = String::from("'");
    match c {
        '\'' => s.push_str("\\'"),
        '"' => s.push('"'),
        _ => escape_char(c, '\'', false, &mut s),
    }
    s.push('\'');
    s
}

fn escape_char(c: char, quote: char, ascii: bool, s: &mut String) {
    match c {
        '\x07' => s.push_str("\\a"),
        '\x08' => s.push_str("\\b"),
        '\x0c' => s.push_str("\\f"),
        '\n' => s.push_str("\\n"),
        '\r' => s.push_str("\\r"),
        '\t' => s.push_str("\\t"),
        '\x0b' => s.push_str("\\v"),
        '\\' => s.push_str("\\\\"),
        c if c == quote => {
            s.push('\\');
            s.push(c);
        }
        c if (c as u32) < 0x20 || c as u32 == 0x7f => s.push_str(&format!("\\x{:02x}", c as u32)),
        c if c.is_control() || (ascii && !c.is_ascii()) => {
            if (c as u32) < 0x10000 {
                s.push_str(&format!("\\u{:04x}", c as u32));
            } else {
                s.push_str(&format!("\\U{:08x}", c as u32));
            }
        }
        c => s.push(c),
    }
}

/// strconv.Quote (or QuoteToASCII when `ascii`).
pub(crate) fn go_quote(s: &str, ascii: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        escape_char(c, '"', ascii, &mut out);
    }
    out.push('"');
    out
}

fn can_backquote(s: &str) -> bool {
    s.chars()
        .all(|c| c != '`' && c != '\u{FEFF}' && (c == '\t' || !c.is_control()))
}

/// Go's encoding/json output (as docker's `json` function: no HTML escaping),
/// keys in the value's own order.
pub(crate) fn to_json(v: Option<&Value>, out: &mut String) {
    match v {
        None | Some(Value::Null) => out.push_str("null"),
        Some(Value::Bool(b)) => out.push_str(if *b { "true" } else { "false" }),
        Some(Value::Number(n)) => {
            if let Some(i) = as_int(n) {
                out.push_str(&i.to_string());
            } else {
                out.push_str(&json_float(n.as_f64().unwrap_or(0.0)));
            }
        }
        Some(Value::String(s)) => json_string(s, out),
        Some(Value::Array(a)) => {
            out.push('[');
            for (k, e) in a.iter().enumerate() {
                if k > 0 {
                    out.push(',');
                }
                to_json(Some(e), out);
            }
            out.push(']');
        }
        Some(Value::Object(m)) => {
            out.push('{');
            for (k, (key, val)) in m.iter().enumerate() {
                if k > 0 {
                    out.push(',');
                }
                json_string(key, out);
                out.push(':');
                to_json(Some(val), out);
            }
            out.push('}');
        }
    }
}

fn json_float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format_float(f, 'e', None);
        // Go cleans e-09 to e-9.
        let b = s.as_bytes();
        let n = b.len();
        if n >= 4 && b[n - 4] == b'e' && b[n - 3] == b'-' && b[n - 2] == b'0' {
            return format!("{}{}", &s[..n - 2], &s[n - 1..]);
        }
        s
    } else {
        format_float(f, 'f', None)
    }
}

fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(format: &str, args: &[Value]) -> String {
        let a: Vec<Option<&Value>> = args.iter().map(Some).collect();
        sprintf(format, &a)
    }

    #[test]
    fn floats_print_like_go() {
        assert_eq!(go_float(1.0), "1");
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(0.0), "0");
        assert_eq!(go_float(123456.0), "123456");
        assert_eq!(go_float(1234567.0), "1.234567e+06");
        assert_eq!(go_float(1e8), "1e+08");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(-2.5), "-2.5");
        assert_eq!(go_float(1e21), "1e+21");
    }

    #[test]
    fn printf_verbs() {
        assert_eq!(f("%s:%d", &[json!("a"), json!(5)]), "a:5");
        assert_eq!(f("%5s|%-5s|", &[json!("ab"), json!("cd")]), "   ab|cd   |");
        assert_eq!(f("%.2f", &[json!(1.23456)]), "1.23");
        assert_eq!(f("%8.3f|", &[json!(-1.23456)]), "  -1.235|");
        assert_eq!(f("%08.3f|", &[json!(-1.23456)]), "-001.235|");
        assert_eq!(f("%f", &[json!(2.5)]), "2.500000");
        assert_eq!(f("%e", &[json!(123456.789)]), "1.234568e+05");
        assert_eq!(f("%g", &[json!(0.5)]), "0.5");
        assert_eq!(f("%.3g", &[json!(1234.5678)]), "1.23e+03");
        assert_eq!(f("%.3g", &[json!(1.0)]), "1");
        assert_eq!(
            f("%x %X %o %b", &[json!(255), json!(255), json!(8), json!(5)]),
            "ff FF 10 101"
        );
        assert_eq!(f("%#x", &[json!(255)]), "0xff");
        assert_eq!(
            f("%05d|%-5d|%+d", &[json!(42), json!(42), json!(42)]),
            "00042|42   |+42"
        );
        assert_eq!(f("%x", &[json!("hi")]), "6869");
        assert_eq!(f("%q", &[json!("a\"b\n")]), "\"a\\\"b\\n\"");
        assert_eq!(f("%t %v", &[json!(true), json!(false)]), "true false");
        assert_eq!(
            f("%v", &[json!({"b": 1, "a": [1, "x"]})]),
            "map[a:[1 x] b:1]"
        );
        assert_eq!(f("%d", &[json!("x")]), "%!d(string=x)");
        assert_eq!(f("%s", &[json!(5)]), "%!s(int=5)");
        assert_eq!(f("%d %d", &[json!(1)]), "1 %!d(MISSING)");
        assert_eq!(f("%d", &[json!(1), json!("x")]), "1%!(EXTRA string=x)");
        assert_eq!(f("100%%", &[]), "100%");
        assert_eq!(f("%c%c", &[json!(104), json!(105)]), "hi");
        assert_eq!(f("%.2s", &[json!("hello")]), "he");
        assert_eq!(f("%[2]s %[1]s", &[json!("a"), json!("b")]), "b a");
        assert_eq!(f("%*d|", &[json!(4), json!(7)]), "   7|");
        assert_eq!(f("%s", &[json!(["a", "b"])]), "[a b]");
        assert_eq!(sprintf("%v %s", &[None, None]), "<nil> %!s(<nil>)");
    }

    #[test]
    fn sprint_spacing() {
        let a = json!("a");
        let one = json!(1);
        let two = json!(2);
        assert_eq!(sprint(&[Some(&one), Some(&two)]), "1 2");
        assert_eq!(
            sprint(&[Some(&a), Some(&one), Some(&two), Some(&a)]),
            "a1 2a"
        );
        assert_eq!(sprintln(&[Some(&a), Some(&one)]), "a 1\n");
    }

    #[test]
    fn json_like_go() {
        let mut s = String::new();
        to_json(
            Some(&json!({"a": "<x>&\u{2028}\n", "b": 1.5, "c": null, "d": [1e21, 1e-7, 100.0]})),
            &mut s,
        );
        assert_eq!(
            s,
            r#"{"a":"<x>&\u2028\n","b":1.5,"c":null,"d":[1e+21,1e-7,100]}"#
        );
    }
}
