//! Executor for parsed templates, following text/template's exec.go.

use std::borrow::Cow;

use serde_json::Value;

use super::funcs::{self, Arity, FnErr};
use super::gofmt;
use super::parse::{Arg, Cmd, Control, Node, Pipe};

/// A value during execution. `Missing` is Go's invalid reflect.Value (a
/// missing map key, the result of a pipeline that yielded nil); `V(Null)` is
/// a nil interface held in a map or slice.
#[derive(Debug, Clone)]
pub(crate) enum Val<'a> {
    Missing,
    V(Cow<'a, Value>),
}

impl<'a> Val<'a> {
    pub(crate) fn owned(v: Value) -> Val<'a> {
        Val::V(Cow::Owned(v))
    }

    pub(crate) fn get(&self) -> Option<&Value> {
        match self {
            Val::Missing => None,
            Val::V(c) => Some(c.as_ref()),
        }
    }

    pub(crate) fn truth(&self) -> bool {
        funcs::truth(self.get())
    }

    /// What evalPipeline does to interface values: a nil becomes invalid.
    fn unwrap_nil(self) -> Val<'a> {
        match self {
            Val::V(c) if c.is_null() => Val::Missing,
            v => v,
        }
    }
}

/// Narrows a borrowed-or-owned value to a part of it, keeping the borrow.
pub(crate) fn project<'a>(
    v: Cow<'a, Value>,
    f: impl for<'x> FnOnce(&'x Value) -> Option<&'x Value>,
) -> Option<Cow<'a, Value>> {
    match v {
        Cow::Borrowed(b) => f(b).map(Cow::Borrowed),
        Cow::Owned(o) => f(&o).cloned().map(Cow::Owned),
    }
}

/// Header-row mode: maps a field chain to its column header.
pub(crate) type HeaderFn<'h> = &'h dyn Fn(&[String]) -> String;

pub(crate) struct ExecErr {
    pub pos: usize,
    pub context: String,
    pub message: String,
}

type R<T> = Result<T, ExecErr>;

#[derive(PartialEq, Eq)]
enum Flow {
    Normal,
    Break,
    Continue,
}

pub(crate) struct Exec<'a> {
    pub missing_key_error: bool,
    /// Header-row mode: field chains from the data evaluate to their column
    /// header, and docker's functions return their first argument.
    pub header: Option<HeaderFn<'a>>,
    vars: Vec<(&'a str, Val<'a>)>,
}

fn err_at(pos: usize, context: &dyn std::fmt::Display, message: String) -> ExecErr {
    ExecErr {
        pos,
        context: context.to_string(),
        message,
    }
}

impl<'a> Exec<'a> {
    pub(crate) fn new(missing_key_error: bool, header: Option<HeaderFn<'a>>) -> Self {
        Exec {
            missing_key_error,
            header,
            vars: Vec::new(),
        }
    }

    pub(crate) fn run(&mut self, nodes: &'a [Node], data: &'a Value, out: &mut String) -> R<()> {
        let dot = Val::V(Cow::Borrowed(data));
        self.vars.clear();
        self.vars.push(("$", dot.clone()));
        self.walk(&dot, nodes, out)?;
        Ok(())
    }

    fn walk(&mut self, dot: &Val<'a>, nodes: &'a [Node], out: &mut String) -> R<Flow> {
        for n in nodes {
            match n {
                Node::Text(t) => out.push_str(t),
                Node::Action(p) => {
                    let v = self.eval_pipeline(dot, p)?;
                    if p.decl.is_empty() {
                        print_value(&v, out);
                    }
                }
                Node::If(c) | Node::With(c) => {
                    let with = matches!(n, Node::With(_));
                    let mark = self.vars.len();
                    let v = self.eval_pipeline(dot, &c.pipe)?;
                    let flow = if v.truth() {
                        if with {
                            self.walk(&v, &c.list, out)?
                        } else {
                            self.walk(dot, &c.list, out)?
                        }
                    } else if let Some(e) = &c.else_list {
                        self.walk(dot, e, out)?
                    } else {
                        Flow::Normal
                    };
                    self.vars.truncate(mark);
                    if flow != Flow::Normal {
                        return Ok(flow);
                    }
                }
                Node::Range(c) => self.walk_range(dot, c, out)?,
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
            }
        }
        Ok(Flow::Normal)
    }

    fn walk_range(&mut self, dot: &Val<'a>, c: &'a Control, out: &mut String) -> R<()> {
        let mark = self.vars.len();
        let val = self.eval_cmds(dot, &c.pipe)?;
        // Declared variables get their slots now; each iteration sets them.
        for name in &c.pipe.decl {
            if !c.pipe.is_assign {
                self.vars.push((name.as_str(), Val::Missing));
            }
        }
        let body_mark = self.vars.len();
        let mut items: Vec<(Val<'a>, Val<'a>)> = Vec::new();
        match val {
            Val::Missing => {}
            Val::V(cow) => match cow.as_ref() {
                Value::Null => {}
                Value::Array(a) => {
                    let n = a.len();
                    for i in 0..n {
                        let elem = project(cow.clone(), |v| v.as_array().and_then(|a| a.get(i)))
                            .map(Val::V)
                            .unwrap_or(Val::Missing);
                        items.push((Val::owned(Value::from(i)), elem));
                    }
                }
                Value::Object(m) => {
                    let mut keys: Vec<String> = m.keys().cloned().collect();
                    keys.sort();
                    for k in keys {
                        let elem = project(cow.clone(), |v| v.get(&k))
                            .map(Val::V)
                            .unwrap_or(Val::Missing);
                        items.push((Val::owned(Value::String(k)), elem));
                    }
                }
                Value::Number(n) if gofmt::as_int(n).is_some() => {
                    // Go 1.22: range over an integer.
                    let count = gofmt::as_int(n).unwrap();
                    if c.pipe.decl.len() > 1 {
                        return Err(self.pipe_err(
                            &c.pipe,
                            format!("can't use {count} to iterate over more than one variable"),
                        ));
                    }
                    for i in 0..count.clamp(0, i64::MAX as i128) as i64 {
                        items.push((Val::owned(Value::from(i)), Val::owned(Value::from(i))));
                    }
                }
                other => {
                    return Err(self.pipe_err(
                        &c.pipe,
                        format!(
                            "range can't iterate over {}",
                            gofmt::value_string(Some(other))
                        ),
                    ));
                }
            },
        }
        if items.is_empty() {
            if let Some(e) = &c.else_list {
                // break/continue cannot appear in a range's else branch.
                self.walk(dot, e, out)?;
            }
            self.vars.truncate(mark);
            return Ok(());
        }
        let decl = &c.pipe.decl;
        for (index, elem) in items {
            match decl.len() {
                0 => {}
                1 => self.set_var(&decl[0], elem.clone()),
                _ => {
                    self.set_var(&decl[0], index);
                    self.set_var(&decl[1], elem.clone());
                }
            }
            let flow = self.walk(&elem, &c.list, out)?;
            self.vars.truncate(body_mark);
            if flow == Flow::Break {
                break;
            }
        }
        self.vars.truncate(mark);
        Ok(())
    }

    fn pipe_err(&self, p: &Pipe, message: String) -> ExecErr {
        match p.cmds.last() {
            Some(c) => err_at(c.args[0].pos(), &c.args[0], message),
            None => err_at(p.pos, p, message),
        }
    }

    fn set_var(&mut self, name: &str, v: Val<'a>) {
        if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| *n == name) {
            slot.1 = v;
        }
    }

    fn lookup_var(&self, name: &str) -> Option<Val<'a>> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    }

    /// Evaluates the commands of a pipeline, ignoring declarations.
    fn eval_cmds(&mut self, dot: &Val<'a>, p: &'a Pipe) -> R<Val<'a>> {
        let mut val: Option<Val<'a>> = None;
        for cmd in &p.cmds {
            val = Some(self.eval_command(dot, cmd, val.take())?.unwrap_nil());
        }
        Ok(val.unwrap_or(Val::Missing))
    }

    fn eval_pipeline(&mut self, dot: &Val<'a>, p: &'a Pipe) -> R<Val<'a>> {
        let v = self.eval_cmds(dot, p)?;
        for name in &p.decl {
            if !p.is_assign {
                self.vars.push((name.as_str(), v.clone()));
            } else if self.vars.iter().any(|(n, _)| n == name) {
                self.set_var(name, v.clone());
            } else {
                return Err(self.pipe_err(p, format!("undefined variable: {name}")));
            }
        }
        Ok(v)
    }

    fn not_a_function(&self, cmd: &'a Cmd, fin: &Option<Val<'a>>) -> R<()> {
        if cmd.args.len() > 1 || fin.is_some() {
            let first = &cmd.args[0];
            return Err(err_at(
                first.pos(),
                first,
                format!("can't give argument to non-function {first}"),
            ));
        }
        Ok(())
    }

    fn eval_command(&mut self, dot: &Val<'a>, cmd: &'a Cmd, fin: Option<Val<'a>>) -> R<Val<'a>> {
        let first = &cmd.args[0];
        let rest = &cmd.args[1..];
        match first {
            Arg::Field { idents, .. } => self.eval_field_node(dot, first, idents, rest, fin),
            Arg::Chain { node, fields, .. } => self.eval_chain(dot, first, node, fields, rest, fin),
            Arg::Ident { name, .. } => self.eval_function(dot, name, first, Some(cmd), rest, fin),
            Arg::Variable { idents, .. } => self.eval_variable(first, idents, rest, fin),
            Arg::Pipe(p) => {
                self.not_a_function(cmd, &fin)?;
                self.eval_pipeline(dot, p)
            }
            Arg::Nil(pos) => Err(err_at(*pos, first, "nil is not a command".into())),
            _ => {
                self.not_a_function(cmd, &fin)?;
                Ok(self.literal(dot, first))
            }
        }
    }

    fn literal(&self, dot: &Val<'a>, a: &'a Arg) -> Val<'a> {
        match a {
            Arg::Dot(_) => dot.clone(),
            Arg::Bool(_, b) => Val::owned(Value::Bool(*b)),
            Arg::Number { val, .. } => Val::V(Cow::Borrowed(val)),
            Arg::Str { val, .. } => Val::owned(Value::String(val.clone())),
            _ => Val::Missing,
        }
    }

    /// Evaluates a function argument (Go's evalArg for interface{} params).
    fn eval_arg(&mut self, dot: &Val<'a>, a: &'a Arg) -> R<Val<'a>> {
        match a {
            Arg::Field { idents, .. } => self.eval_field_node(dot, a, idents, &[], None),
            Arg::Variable { idents, .. } => self.eval_variable(a, idents, &[], None),
            Arg::Chain { node, fields, .. } => self.eval_chain(dot, a, node, fields, &[], None),
            Arg::Ident { name, .. } => self.eval_function(dot, name, a, None, &[], None),
            Arg::Pipe(p) => self.eval_pipeline(dot, p),
            Arg::Nil(_) => Ok(Val::Missing),
            _ => Ok(self.literal(dot, a)),
        }
    }

    fn header_for(&self, idents: &[String]) -> Option<Val<'a>> {
        self.header.map(|h| Val::owned(Value::String(h(idents))))
    }

    fn eval_field_node(
        &mut self,
        dot: &Val<'a>,
        node: &'a Arg,
        idents: &'a [String],
        rest: &'a [Arg],
        fin: Option<Val<'a>>,
    ) -> R<Val<'a>> {
        if let Some(h) = self.header_for(idents) {
            return Ok(h);
        }
        self.eval_field_chain(dot, dot.clone(), node, idents, rest, fin)
    }

    fn eval_variable(
        &mut self,
        node: &'a Arg,
        idents: &'a [String],
        rest: &'a [Arg],
        fin: Option<Val<'a>>,
    ) -> R<Val<'a>> {
        let name = &idents[0];
        let Some(v) = self.lookup_var(name) else {
            return Err(err_at(
                node.pos(),
                node,
                format!("undefined variable: {name}"),
            ));
        };
        if idents.len() == 1 {
            if !rest.is_empty() || fin.is_some() {
                return Err(err_at(
                    node.pos(),
                    node,
                    format!("can't give argument to non-function {node}"),
                ));
            }
            return Ok(v);
        }
        if name == "$"
            && let Some(h) = self.header_for(&idents[1..])
        {
            return Ok(h);
        }
        let dot = v.clone();
        self.eval_field_chain(&dot, v, node, &idents[1..], rest, fin)
    }

    fn eval_chain(
        &mut self,
        dot: &Val<'a>,
        chain: &'a Arg,
        node: &'a Arg,
        fields: &'a [String],
        rest: &'a [Arg],
        fin: Option<Val<'a>>,
    ) -> R<Val<'a>> {
        if let Arg::Nil(_) = node {
            return Err(err_at(
                chain.pos(),
                chain,
                format!("indirection through explicit nil in {chain}"),
            ));
        }
        let recv = self.eval_arg(dot, node)?.unwrap_nil();
        self.eval_field_chain(dot, recv, chain, fields, rest, fin)
    }

    fn eval_field_chain(
        &mut self,
        dot: &Val<'a>,
        mut recv: Val<'a>,
        node: &'a Arg,
        idents: &'a [String],
        rest: &'a [Arg],
        fin: Option<Val<'a>>,
    ) -> R<Val<'a>> {
        let n = idents.len();
        for id in &idents[..n - 1] {
            recv = self.eval_field(dot, id, node, recv, &[], None)?;
        }
        self.eval_field(dot, &idents[n - 1], node, recv, rest, fin)
    }

    fn eval_field(
        &mut self,
        dot: &Val<'a>,
        name: &str,
        node: &'a Arg,
        recv: Val<'a>,
        rest: &'a [Arg],
        fin: Option<Val<'a>>,
    ) -> R<Val<'a>> {
        let has_args = !rest.is_empty() || fin.is_some();
        let err = |m: String| err_at(node.pos(), node, m);
        let cow = match recv {
            Val::Missing => {
                if self.missing_key_error {
                    return Err(err(format!("nil data; no entry for key {name:?}")));
                }
                return Ok(Val::Missing);
            }
            Val::V(c) => c,
        };
        // Go sees every value inside the data as an interface{}.
        let static_type = match &cow {
            Cow::Borrowed(_) => "interface {}",
            Cow::Owned(v) => gofmt::type_name(Some(v)),
        };
        match cow.as_ref() {
            Value::Null => Err(err(format!("nil pointer evaluating interface {{}}.{name}"))),
            Value::Object(m) => {
                let Some(field) = m.get(name) else {
                    if has_args {
                        return Err(err(format!("{name} is not a method but has arguments")));
                    }
                    if self.missing_key_error {
                        return Err(err(format!("map has no entry for key {name:?}")));
                    }
                    return Ok(Val::Missing);
                };
                if has_args {
                    // docker's methods with an argument, e.g. `.Label "key"`:
                    // a field holding a map is looked up by the argument.
                    if !field.is_object() {
                        return Err(err(format!("{name} is not a method but has arguments")));
                    }
                    let mut args = Vec::new();
                    for a in rest {
                        args.push(self.eval_arg(dot, a)?);
                    }
                    args.extend(fin);
                    let key = match args.as_slice() {
                        [one] => match one.get() {
                            Some(Value::String(k)) => k.clone(),
                            other => {
                                return Err(err(format!(
                                    "wrong type for value; expected string; got {}",
                                    gofmt::type_name(other)
                                )));
                            }
                        },
                        _ => {
                            return Err(err(format!(
                                "wrong number of args for {name}: want 1 got {}",
                                args.len()
                            )));
                        }
                    };
                    let inner = project(cow, |v| v.get(name).and_then(|f| f.get(&key)));
                    return Ok(inner
                        .map(Val::V)
                        .unwrap_or_else(|| Val::owned(Value::String(String::new()))));
                }
                Ok(project(cow, |v| v.get(name))
                    .map(Val::V)
                    .unwrap_or(Val::Missing))
            }
            _ => Err(err(format!(
                "can't evaluate field {name} in type {static_type}"
            ))),
        }
    }

    fn eval_function(
        &mut self,
        dot: &Val<'a>,
        name: &'a str,
        ident: &'a Arg,
        cmd: Option<&'a Cmd>,
        rest: &'a [Arg],
        fin: Option<Val<'a>>,
    ) -> R<Val<'a>> {
        let n_in = rest.len() + usize::from(fin.is_some());
        let wrong = match funcs::arity(name) {
            Arity::Exact(k) if n_in != k => Some(format!(
                "wrong number of args for {name}: want {k} got {n_in}"
            )),
            Arity::AtLeast(k) if n_in < k => Some(format!(
                "wrong number of args for {name}: want at least {k} got {n_in}"
            )),
            _ => None,
        };
        if let Some(m) = wrong {
            return Err(err_at(ident.pos(), ident, m));
        }
        if name == "and" || name == "or" {
            let want = name == "or";
            let mut v = Val::Missing;
            for a in rest {
                v = self.eval_arg(dot, a)?;
                if v.truth() == want {
                    return Ok(v);
                }
            }
            if let Some(f) = fin {
                v = f;
            }
            return Ok(v);
        }
        let mut args = Vec::with_capacity(n_in);
        for a in rest {
            args.push(self.eval_arg(dot, a)?);
        }
        args.extend(fin);
        match funcs::call(name, args, self.header.is_some()) {
            Ok(v) => Ok(v),
            Err(FnErr::Arg { index, want, got }) if index < rest.len() => {
                let a = &rest[index];
                let m = match a {
                    Arg::Number { .. } | Arg::Str { .. } | Arg::Bool(..) | Arg::Nil(_) => {
                        match want {
                            "string" => format!("expected string; found {a}"),
                            "int" => format!("expected integer; found {a}"),
                            _ => format!("can't handle {a} for arg of type {want}"),
                        }
                    }
                    _ => format!("wrong type for value; expected {want}; got {got}"),
                };
                Err(err_at(a.pos(), a, m))
            }
            Err(FnErr::Arg { want, got, .. }) => {
                let m = format!("wrong type for value; expected {want}; got {got}");
                Err(match cmd {
                    Some(c) => err_at(c.pos, c, m),
                    None => err_at(ident.pos(), ident, m),
                })
            }
            Err(FnErr::Call(m)) => {
                let m = format!("error calling {name}: {m}");
                Err(match cmd {
                    Some(c) => err_at(c.pos, c, m),
                    None => err_at(ident.pos(), ident, m),
                })
            }
        }
    }
}

/// Go's printValue: nil and missing values print as `<no value>`.
fn print_value(v: &Val, out: &mut String) {
    match v.get() {
        None | Some(Value::Null) => out.push_str("<no value>"),
        Some(v) => gofmt::write_value(Some(v), out),
    }
}
