//! Parser for Go's text/template syntax, following text/template/parse.

use std::fmt;

use serde_json::{Number, Value};

use super::TemplateError;
use super::funcs;
use super::lex::{Kind, Kw, Token, lex};

#[derive(Debug, Clone)]
pub(crate) enum Node {
    Text(String),
    Action(Pipe),
    If(Control),
    With(Control),
    Range(Control),
    Break,
    Continue,
}

#[derive(Debug, Clone)]
pub(crate) struct Control {
    pub pipe: Pipe,
    pub list: Vec<Node>,
    pub else_list: Option<Vec<Node>>,
}

#[derive(Debug, Clone)]
pub(crate) struct Pipe {
    pub pos: usize,
    pub decl: Vec<String>,
    pub is_assign: bool,
    pub cmds: Vec<Cmd>,
}

#[derive(Debug, Clone)]
pub(crate) struct Cmd {
    pub pos: usize,
    pub args: Vec<Arg>,
}

#[derive(Debug, Clone)]
pub(crate) enum Arg {
    /// `.A.B`
    Field {
        pos: usize,
        idents: Vec<String>,
    },
    /// `$x.A.B`: idents[0] is the variable name including `$`.
    Variable {
        pos: usize,
        idents: Vec<String>,
    },
    /// `(pipeline).A.B`
    Chain {
        pos: usize,
        node: Box<Arg>,
        fields: Vec<String>,
    },
    /// A function name.
    Ident {
        pos: usize,
        name: String,
    },
    Pipe(Box<Pipe>),
    Dot(usize),
    Nil(usize),
    Bool(usize, bool),
    Number {
        pos: usize,
        text: String,
        val: Value,
    },
    Str {
        pos: usize,
        text: String,
        val: String,
    },
}

impl Arg {
    pub(crate) fn pos(&self) -> usize {
        match self {
            Arg::Field { pos, .. }
            | Arg::Variable { pos, .. }
            | Arg::Chain { pos, .. }
            | Arg::Ident { pos, .. }
            | Arg::Number { pos, .. }
            | Arg::Str { pos, .. } => *pos,
            Arg::Pipe(p) => p.pos,
            Arg::Dot(p) | Arg::Nil(p) | Arg::Bool(p, _) => *p,
        }
    }
}

impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arg::Field { idents, .. } => {
                for i in idents {
                    write!(f, ".{i}")?;
                }
                Ok(())
            }
            Arg::Variable { idents, .. } => write!(f, "{}", idents.join(".")),
            Arg::Chain { node, fields, .. } => {
                if let Arg::Pipe(_) = **node {
                    write!(f, "({node})")?;
                } else {
                    write!(f, "{node}")?;
                }
                for i in fields {
                    write!(f, ".{i}")?;
                }
                Ok(())
            }
            Arg::Ident { name, .. } => write!(f, "{name}"),
            Arg::Pipe(p) => write!(f, "{p}"),
            Arg::Dot(_) => write!(f, "."),
            Arg::Nil(_) => write!(f, "nil"),
            Arg::Bool(_, b) => write!(f, "{b}"),
            Arg::Number { text, .. } | Arg::Str { text, .. } => write!(f, "{text}"),
        }
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                write!(f, " ")?;
            }
            if let Arg::Pipe(_) = a {
                write!(f, "({a})")?;
            } else {
                write!(f, "{a}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.decl.is_empty() {
            write!(f, "{}", self.decl.join(", "))?;
            write!(f, "{}", if self.is_assign { " = " } else { " := " })?;
        }
        for (i, c) in self.cmds.iter().enumerate() {
            if i > 0 {
                write!(f, " | ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// Maximum nesting of control structures and parentheses.
const MAX_DEPTH: usize = 100;

struct Parser<'s> {
    src: &'s str,
    toks: Vec<Token>,
    i: usize,
    vars: Vec<String>,
    range_depth: usize,
    depth: usize,
}

enum Item {
    Node(Node),
    End,
    Else,
}

type PResult<T> = Result<T, TemplateError>;

pub(crate) fn parse(src: &str) -> PResult<Vec<Node>> {
    let mut p = Parser {
        src,
        toks: lex(src),
        i: 0,
        vars: vec!["$".to_string()],
        range_depth: 0,
        depth: 0,
    };
    let mut root = Vec::new();
    while p.peek().kind != Kind::Eof {
        match p.text_or_action()? {
            Item::Node(n) => root.push(n),
            Item::End => return Err(p.err("unexpected {{end}}")),
            Item::Else => return Err(p.err("unexpected {{else}}")),
        }
    }
    Ok(root)
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.toks[self.i.min(self.toks.len() - 1)]
    }

    fn peek2(&self) -> &Token {
        &self.toks[(self.i + 1).min(self.toks.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let t = self.toks[self.i.min(self.toks.len() - 1)].clone();
        self.i += 1;
        t
    }

    fn backup(&mut self) {
        self.i -= 1;
    }

    /// Line of the most recently read token (Go reports parse errors there).
    fn line(&self) -> usize {
        let idx = self.i.saturating_sub(1).min(self.toks.len() - 1);
        let pos = self.toks[idx].pos.min(self.src.len());
        1 + self.src[..pos].matches('\n').count()
    }

    fn err(&self, msg: impl Into<String>) -> TemplateError {
        // An error token from the lexer takes precedence.
        TemplateError::Parse {
            line: self.line(),
            message: msg.into(),
        }
    }

    fn unexpected(&self, tok: &Token, context: &str) -> TemplateError {
        if let Kind::Error(m) = &tok.kind {
            return self.err(m.clone());
        }
        self.err(format!("unexpected {} in {}", tok.describe(), context))
    }

    fn expect_right_delim(&mut self, context: &str) -> PResult<()> {
        let t = self.next();
        if t.kind != Kind::RightDelim {
            return Err(self.unexpected(&t, context));
        }
        Ok(())
    }

    fn text_or_action(&mut self) -> PResult<Item> {
        let t = self.next();
        match t.kind {
            Kind::Text(s) => Ok(Item::Node(Node::Text(s))),
            Kind::LeftDelim => self.action(),
            _ => Err(self.unexpected(&t, "input")),
        }
    }

    fn item_list(&mut self) -> PResult<(Vec<Node>, Item)> {
        let mut list = Vec::new();
        while self.peek().kind != Kind::Eof {
            match self.text_or_action()? {
                Item::Node(n) => list.push(n),
                other => return Ok((list, other)),
            }
        }
        Err(self.err("unexpected EOF"))
    }

    fn action(&mut self) -> PResult<Item> {
        let t = self.next();
        match t.kind {
            Kind::Keyword(Kw::Break) | Kind::Keyword(Kw::Continue) => {
                let name = if t.kind == Kind::Keyword(Kw::Break) {
                    "break"
                } else {
                    "continue"
                };
                let context = format!("{{{{{name}}}}}");
                self.expect_right_delim(&context)?;
                if self.range_depth == 0 {
                    return Err(self.err(format!("{context} outside {{{{range}}}}")));
                }
                Ok(Item::Node(if name == "break" {
                    Node::Break
                } else {
                    Node::Continue
                }))
            }
            Kind::Keyword(Kw::Else) => {
                // "else if" / "else with": leave the keyword pending.
                if !matches!(
                    self.peek().kind,
                    Kind::Keyword(Kw::If) | Kind::Keyword(Kw::With)
                ) {
                    self.expect_right_delim("else")?;
                }
                Ok(Item::Else)
            }
            Kind::Keyword(Kw::End) => {
                self.expect_right_delim("end")?;
                Ok(Item::End)
            }
            Kind::Keyword(Kw::If) => Ok(Item::Node(Node::If(self.control("if")?))),
            Kind::Keyword(Kw::With) => Ok(Item::Node(Node::With(self.control("with")?))),
            Kind::Keyword(Kw::Range) => Ok(Item::Node(Node::Range(self.control("range")?))),
            Kind::Keyword(Kw::Template) | Kind::Keyword(Kw::Define) | Kind::Keyword(Kw::Block) => {
                Err(self.err(format!(
                    "{{{{{}}}}} is not supported (no named templates)",
                    t.text
                )))
            }
            _ => {
                self.backup();
                let pipe = self.pipeline("command", true)?;
                Ok(Item::Node(Node::Action(pipe)))
            }
        }
    }

    fn control(&mut self, context: &str) -> PResult<Control> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err("template nested too deeply"));
        }
        let mark = self.vars.len();
        let pipe = self.pipeline(context, true)?;
        if context == "range" {
            self.range_depth += 1;
        }
        let (list, next) = self.item_list()?;
        if context == "range" {
            self.range_depth -= 1;
        }
        let else_list = match next {
            Item::Else => {
                let pk = self.peek().kind.clone();
                if context == "if" && pk == Kind::Keyword(Kw::If) {
                    self.next();
                    Some(vec![Node::If(self.control("if")?)])
                } else if context == "with" && pk == Kind::Keyword(Kw::With) {
                    self.next();
                    Some(vec![Node::With(self.control("with")?)])
                } else {
                    let (l, n) = self.item_list()?;
                    if !matches!(n, Item::End) {
                        return Err(self.err("expected end; found {{else}}"));
                    }
                    Some(l)
                }
            }
            _ => None,
        };
        self.vars.truncate(mark);
        self.depth -= 1;
        Ok(Control {
            pipe,
            list,
            else_list,
        })
    }

    /// Parses a pipeline up to the right delimiter (`delim`) or right paren.
    fn pipeline(&mut self, context: &str, delim: bool) -> PResult<Pipe> {
        let pos = self.peek().pos;
        let mut pipe = Pipe {
            pos,
            decl: Vec::new(),
            is_assign: false,
            cmds: Vec::new(),
        };
        // Declarations.
        while let Kind::Variable(name) = self.peek().kind.clone() {
            match self.peek2().kind {
                Kind::Declare | Kind::Assign => {
                    pipe.is_assign = self.peek2().kind == Kind::Assign;
                    self.i += 2;
                    pipe.decl.push(name.clone());
                    self.vars.push(name);
                }
                Kind::Comma => {
                    self.i += 2;
                    pipe.decl.push(name.clone());
                    self.vars.push(name);
                    if context == "range" && pipe.decl.len() < 2 {
                        match self.peek().kind {
                            Kind::Variable(_) | Kind::RightDelim | Kind::RParen => continue,
                            _ => return Err(self.err("range can only initialize variables")),
                        }
                    }
                    return Err(self.err(format!("too many declarations in {context}")));
                }
                _ => {}
            }
            break;
        }
        let end = if delim {
            Kind::RightDelim
        } else {
            Kind::RParen
        };
        loop {
            let t = self.next();
            if t.kind == end {
                self.check_pipeline(&pipe, context)?;
                return Ok(pipe);
            }
            match t.kind {
                Kind::Bool(_)
                | Kind::Char(_)
                | Kind::Dot
                | Kind::Field(_)
                | Kind::Ident(_)
                | Kind::Number(_)
                | Kind::Nil
                | Kind::Str(_)
                | Kind::Variable(_)
                | Kind::LParen => {
                    self.backup();
                    let cmd = self.command()?;
                    pipe.cmds.push(cmd);
                }
                _ => return Err(self.unexpected(&t, context)),
            }
        }
    }

    fn check_pipeline(&self, pipe: &Pipe, context: &str) -> PResult<()> {
        if pipe.cmds.is_empty() {
            return Err(self.err(format!("missing value for {context}")));
        }
        for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
            if matches!(
                c.args[0],
                Arg::Bool(..) | Arg::Dot(_) | Arg::Nil(_) | Arg::Number { .. } | Arg::Str { .. }
            ) {
                return Err(self.err(format!(
                    "non executable command in pipeline stage {}",
                    i + 1
                )));
            }
        }
        Ok(())
    }

    /// Parses one command, consuming a following `|`.
    fn command(&mut self) -> PResult<Cmd> {
        let pos = self.peek().pos;
        let mut args = Vec::new();
        loop {
            let op = self.operand()?;
            let had = op.is_some();
            if let Some(a) = op {
                args.push(a);
            }
            let t = self.peek().clone();
            match t.kind {
                Kind::RightDelim | Kind::RParen => break,
                Kind::Pipe => {
                    self.next();
                    break;
                }
                _ if had && t.space => continue,
                _ => return Err(self.unexpected(&t, "operand")),
            }
        }
        if args.is_empty() {
            return Err(self.err("empty command"));
        }
        Ok(Cmd { pos, args })
    }

    fn operand(&mut self) -> PResult<Option<Arg>> {
        let Some(node) = self.term()? else {
            return Ok(None);
        };
        if !matches!(self.peek().kind, Kind::Field(_)) || self.peek().space {
            return Ok(Some(node));
        }
        let chain_pos = self.peek().pos;
        let mut fields = Vec::new();
        while let Kind::Field(f) = self.peek().kind.clone() {
            if self.peek().space {
                break;
            }
            self.next();
            fields.push(f);
        }
        Ok(Some(match node {
            Arg::Field { mut idents, .. } => {
                idents.extend(fields);
                Arg::Field {
                    pos: chain_pos,
                    idents,
                }
            }
            Arg::Variable { mut idents, .. } => {
                idents.extend(fields);
                Arg::Variable {
                    pos: chain_pos,
                    idents,
                }
            }
            Arg::Bool(..) | Arg::Str { .. } | Arg::Number { .. } | Arg::Nil(_) | Arg::Dot(_) => {
                return Err(self.err(format!(
                    "unexpected . after term {}",
                    super::gofmt::go_quote(&node.to_string(), false)
                )));
            }
            node => Arg::Chain {
                pos: chain_pos,
                node: Box::new(node),
                fields,
            },
        }))
    }

    fn term(&mut self) -> PResult<Option<Arg>> {
        let t = self.next();
        let pos = t.pos;
        Ok(Some(match t.kind {
            Kind::Ident(name) => {
                if !funcs::is_function(&name) {
                    return Err(self.err(format!("function {} not defined", quote(&name))));
                }
                Arg::Ident { pos, name }
            }
            Kind::Dot => Arg::Dot(pos),
            Kind::Nil => Arg::Nil(pos),
            Kind::Variable(name) => {
                if !self.vars.contains(&name) {
                    return Err(self.err(format!("undefined variable {}", quote(&name))));
                }
                Arg::Variable {
                    pos,
                    idents: vec![name],
                }
            }
            Kind::Field(name) => Arg::Field {
                pos,
                idents: vec![name],
            },
            Kind::Bool(b) => Arg::Bool(pos, b),
            Kind::Char(c) => Arg::Number {
                pos,
                text: t.text,
                val: Value::from(c as u32),
            },
            Kind::Number(text) => {
                let val = parse_number(&text).map_err(|m| self.err(m))?;
                Arg::Number { pos, text, val }
            }
            Kind::LParen => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(self.err("template nested too deeply"));
                }
                let p = self.pipeline("parenthesized pipeline", false)?;
                self.depth -= 1;
                Arg::Pipe(Box::new(p))
            }
            Kind::Str(val) => Arg::Str {
                pos,
                text: t.text,
                val,
            },
            Kind::Error(m) => return Err(self.err(m)),
            _ => {
                self.backup();
                return Ok(None);
            }
        }))
    }
}

fn quote(s: &str) -> String {
    super::gofmt::go_quote(s, false)
}

/// A number literal as Go's idealConstant types it: integers (including
/// hex/octal/binary) as ints, anything with `.`/exponent as float64.
fn parse_number(text: &str) -> Result<Value, String> {
    let bad = || format!("illegal number syntax: {}", quote(text));
    if text.ends_with('i') {
        return Err(format!("complex number {} not supported", quote(text)));
    }
    let clean: String = text.chars().filter(|&c| c != '_').collect();
    let (neg, body) = match clean.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, clean.strip_prefix('+').unwrap_or(&clean)),
    };
    let lower = body.to_ascii_lowercase();
    let radix_int = |digits: &str, radix: u32| -> Result<Value, String> {
        let u = u128::from_str_radix(digits, radix).map_err(|_| bad())?;
        int_value(neg, u).ok_or_else(bad)
    };
    if let Some(h) = lower.strip_prefix("0x") {
        if h.contains('.') || h.contains('p') {
            return Err(bad());
        }
        return radix_int(h, 16);
    }
    if let Some(o) = lower.strip_prefix("0o") {
        return radix_int(o, 8);
    }
    if let Some(b) = lower.strip_prefix("0b") {
        return radix_int(b, 2);
    }
    if lower.contains('.') || lower.contains('e') {
        let f: f64 = clean.parse().map_err(|_| bad())?;
        return Number::from_f64(f).map(Value::Number).ok_or_else(bad);
    }
    if lower.len() > 1 && lower.starts_with('0') {
        return radix_int(&lower[1..], 8);
    }
    radix_int(&lower, 10)
}

fn int_value(neg: bool, u: u128) -> Option<Value> {
    if neg {
        if u <= i64::MAX as u128 + 1 {
            Some(Value::from((-(u as i128)) as i64))
        } else {
            None
        }
    } else if u <= i64::MAX as u128 {
        Some(Value::from(u as i64))
    } else if u <= u64::MAX as u128 {
        Some(Value::from(u as u64))
    } else {
        None
    }
}
