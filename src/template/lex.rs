//! Lexer for Go's text/template syntax (delimiters `{{` `}}`).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kw {
    Block,
    Break,
    Continue,
    Define,
    Else,
    End,
    If,
    Range,
    Template,
    With,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Text(String),
    LeftDelim,
    RightDelim,
    Ident(String),
    Keyword(Kw),
    Bool(bool),
    Nil,
    Field(String),
    Dot,
    Variable(String),
    /// An interpreted or raw string; the value is the unquoted text.
    Str(String),
    Char(char),
    Number(String),
    Pipe,
    Declare,
    Assign,
    LParen,
    RParen,
    Comma,
    Error(String),
    Eof,
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub kind: Kind,
    /// Byte offset of the token in the source.
    pub pos: usize,
    /// Source text of the token.
    pub text: String,
    /// Whether whitespace separates this token from the previous one
    /// (inside an action).
    pub space: bool,
}

impl Token {
    /// The token as Go's parser names it in "unexpected X" errors.
    pub(crate) fn describe(&self) -> String {
        match &self.kind {
            Kind::Eof => "EOF".into(),
            Kind::Error(m) => m.clone(),
            Kind::Keyword(_) | Kind::Dot | Kind::Nil => format!("<{}>", self.text),
            _ => {
                if self.text.chars().count() > 10 {
                    let short: String = self.text.chars().take(10).collect();
                    format!("{}...", super::gofmt::go_quote(&short, false))
                } else {
                    super::gofmt::go_quote(&self.text, false)
                }
            }
        }
    }
}

struct Lexer<'s> {
    src: &'s str,
    pos: usize,
    toks: Vec<Token>,
    paren_depth: usize,
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphabetic() || c.is_numeric()
}

/// Lexes the whole template. The token list always ends with `Eof` or `Error`.
pub(crate) fn lex(src: &str) -> Vec<Token> {
    let mut l = Lexer {
        src,
        pos: 0,
        toks: Vec::new(),
        paren_depth: 0,
    };
    l.run();
    l.toks
}

impl<'s> Lexer<'s> {
    fn rest(&self) -> &'s str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn emit(&mut self, kind: Kind, start: usize, space: bool) {
        self.toks.push(Token {
            kind,
            pos: start,
            text: self.src[start..self.pos].to_string(),
            space,
        });
    }

    fn error(&mut self, msg: String) {
        self.toks.push(Token {
            kind: Kind::Error(msg),
            pos: self.pos.min(self.src.len()),
            text: String::new(),
            space: false,
        });
    }

    /// Right delimiter at the current position: Some(trim) if present.
    fn at_right_delim(&self) -> Option<bool> {
        let r = self.rest();
        let mut it = r.chars();
        if let Some(c) = it.next()
            && is_space(c)
            && r[c.len_utf8()..].starts_with("-}}")
        {
            return Some(true);
        }
        if r.starts_with("}}") {
            return Some(false);
        }
        None
    }

    fn skip_leading_space(&mut self) {
        let r = self.rest();
        let trimmed = r.trim_start_matches(is_space);
        self.pos += r.len() - trimmed.len();
    }

    fn run(&mut self) {
        loop {
            // Text up to the next left delimiter.
            let Some(idx) = self.rest().find("{{") else {
                if self.pos < self.src.len() {
                    let start = self.pos;
                    self.pos = self.src.len();
                    let text = self.src[start..].to_string();
                    self.emit(Kind::Text(text), start, false);
                }
                self.emit(Kind::Eof, self.src.len(), false);
                return;
            };
            let delim = self.pos + idx;
            let after = delim + 2;
            let trim_left = {
                let r = &self.src[after..];
                r.starts_with('-') && r[1..].chars().next().is_some_and(is_space)
            };
            let mut text = &self.src[self.pos..delim];
            if trim_left {
                text = text.trim_end_matches(is_space);
            }
            if !text.is_empty() {
                self.toks.push(Token {
                    kind: Kind::Text(text.to_string()),
                    pos: self.pos,
                    text: text.to_string(),
                    space: false,
                });
            }
            self.pos = after;
            let after_marker = if trim_left { 2 } else { 0 };
            if self.src[after + after_marker..].starts_with("/*") {
                // Comment.
                self.pos = after + after_marker + 2;
                let Some(end) = self.rest().find("*/") else {
                    self.error("unclosed comment".into());
                    return;
                };
                self.pos += end + 2;
                match self.at_right_delim() {
                    None => {
                        self.error("comment ends before closing delimiter".into());
                        return;
                    }
                    Some(trim) => {
                        self.pos += if trim { 4 } else { 2 };
                        if trim {
                            self.skip_leading_space();
                        }
                    }
                }
                continue;
            }
            self.toks.push(Token {
                kind: Kind::LeftDelim,
                pos: delim,
                text: "{{".into(),
                space: false,
            });
            self.pos += after_marker;
            if !self.inside_action() {
                return;
            }
        }
    }

    /// Lexes the inside of an action up to and including the right delimiter.
    /// Returns false on error (an Error token has been pushed).
    fn inside_action(&mut self) -> bool {
        let mut space = false;
        loop {
            if let Some(trim) = self.at_right_delim() {
                if self.paren_depth > 0 {
                    self.error("unclosed left paren".into());
                    return false;
                }
                if trim {
                    self.pos += 1; // the space before "-}}"
                }
                let start = self.pos + if trim { 1 } else { 0 };
                self.pos = start + 2;
                self.emit(Kind::RightDelim, start, space);
                if trim {
                    self.skip_leading_space();
                }
                return true;
            }
            let start = self.pos;
            let Some(c) = self.peek() else {
                self.error("unclosed action".into());
                return false;
            };
            if is_space(c) {
                self.pos += 1;
                space = true;
                continue;
            }
            let next = self.rest()[c.len_utf8()..].chars().next();
            match c {
                '=' => {
                    self.pos += 1;
                    self.emit(Kind::Assign, start, space);
                }
                ':' => {
                    if next != Some('=') {
                        self.error("expected :=".into());
                        return false;
                    }
                    self.pos += 2;
                    self.emit(Kind::Declare, start, space);
                }
                '|' => {
                    self.pos += 1;
                    self.emit(Kind::Pipe, start, space);
                }
                ',' => {
                    self.pos += 1;
                    self.emit(Kind::Comma, start, space);
                }
                '(' => {
                    self.pos += 1;
                    self.paren_depth += 1;
                    self.emit(Kind::LParen, start, space);
                }
                ')' => {
                    self.pos += 1;
                    self.emit(Kind::RParen, start, space);
                    if self.paren_depth == 0 {
                        self.error("unexpected right paren U+0029 ')'".into());
                        return false;
                    }
                    self.paren_depth -= 1;
                }
                '"' => {
                    if !self.lex_quote(start, space) {
                        return false;
                    }
                }
                '`' => {
                    self.pos += 1;
                    let Some(end) = self.rest().find('`') else {
                        self.error("unterminated raw quoted string".into());
                        return false;
                    };
                    let val = self.rest()[..end].to_string();
                    self.pos += end + 1;
                    self.emit(Kind::Str(val), start, space);
                }
                '\'' => {
                    if !self.lex_char(start, space) {
                        return false;
                    }
                }
                '$' => {
                    self.pos += 1;
                    self.scan_alnum();
                    if !self.check_terminator() {
                        return false;
                    }
                    let name = self.src[start..self.pos].to_string();
                    self.emit(Kind::Variable(name), start, space);
                }
                '.' if !next.is_some_and(|n| n.is_ascii_digit()) => {
                    self.pos += 1;
                    self.scan_alnum();
                    if !self.check_terminator() {
                        return false;
                    }
                    if self.pos == start + 1 {
                        self.emit(Kind::Dot, start, space);
                    } else {
                        let name = self.src[start + 1..self.pos].to_string();
                        self.emit(Kind::Field(name), start, space);
                    }
                }
                '.' | '+' | '-' | '0'..='9' => {
                    if !self.scan_number() {
                        let bad = self.src[start..self.pos].to_string();
                        self.error(format!(
                            "bad number syntax: {}",
                            super::gofmt::go_quote(&bad, false)
                        ));
                        return false;
                    }
                    let text = self.src[start..self.pos].to_string();
                    self.emit(Kind::Number(text), start, space);
                }
                c if is_alnum(c) => {
                    self.scan_alnum();
                    if !self.check_terminator() {
                        return false;
                    }
                    let word = &self.src[start..self.pos];
                    let kind = match word {
                        "block" => Kind::Keyword(Kw::Block),
                        "break" => Kind::Keyword(Kw::Break),
                        "continue" => Kind::Keyword(Kw::Continue),
                        "define" => Kind::Keyword(Kw::Define),
                        "else" => Kind::Keyword(Kw::Else),
                        "end" => Kind::Keyword(Kw::End),
                        "if" => Kind::Keyword(Kw::If),
                        "range" => Kind::Keyword(Kw::Range),
                        "template" => Kind::Keyword(Kw::Template),
                        "with" => Kind::Keyword(Kw::With),
                        "nil" => Kind::Nil,
                        "true" => Kind::Bool(true),
                        "false" => Kind::Bool(false),
                        w => Kind::Ident(w.to_string()),
                    };
                    self.emit(kind, start, space);
                }
                c => {
                    self.error(format!("unrecognized character in action: {}", go_rune(c)));
                    return false;
                }
            }
            space = false;
        }
    }

    fn scan_alnum(&mut self) {
        let r = self.rest();
        let end = r.find(|c: char| !is_alnum(c)).unwrap_or(r.len());
        self.pos += end;
    }

    /// Go's atTerminator check after a field, variable or identifier.
    fn check_terminator(&mut self) -> bool {
        match self.peek() {
            None => true,
            Some(c) if is_space(c) || matches!(c, '.' | ',' | '|' | ':' | ')' | '(') => true,
            Some(_) if self.rest().starts_with("}}") => true,
            Some(c) => {
                self.error(format!("bad character {}", go_rune(c)));
                false
            }
        }
    }

    fn accept(&mut self, set: &str) -> bool {
        match self.peek() {
            Some(c) if set.contains(c) => {
                self.pos += c.len_utf8();
                true
            }
            _ => false,
        }
    }

    fn accept_run(&mut self, set: &str) {
        while self.accept(set) {}
    }

    /// Go's scanNumber.
    fn scan_number(&mut self) -> bool {
        self.accept("+-");
        let mut digits = "0123456789_";
        if self.accept("0") {
            if self.accept("xX") {
                digits = "0123456789abcdefABCDEF_";
            } else if self.accept("oO") {
                digits = "01234567_";
            } else if self.accept("bB") {
                digits = "01_";
            }
        }
        self.accept_run(digits);
        if self.accept(".") {
            self.accept_run(digits);
        }
        if digits.len() == 11 && self.accept("eE") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        if digits.len() == 23 && self.accept("pP") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        self.accept("i");
        if self.peek().is_some_and(is_alnum) {
            self.pos += self.peek().map(char::len_utf8).unwrap_or(0);
            return false;
        }
        true
    }

    fn lex_quote(&mut self, start: usize, space: bool) -> bool {
        self.pos += 1;
        loop {
            match self.peek() {
                Some('\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some('\n') | None => {
                            self.error("unterminated quoted string".into());
                            return false;
                        }
                        Some(c) => self.pos += c.len_utf8(),
                    }
                }
                Some('\n') | None => {
                    self.error("unterminated quoted string".into());
                    return false;
                }
                Some('"') => {
                    self.pos += 1;
                    break;
                }
                Some(c) => self.pos += c.len_utf8(),
            }
        }
        let raw = &self.src[start + 1..self.pos - 1];
        match unquote(raw, '"') {
            Ok(s) => {
                self.emit(Kind::Str(s), start, space);
                true
            }
            Err(()) => {
                self.error("invalid syntax".into());
                false
            }
        }
    }

    fn lex_char(&mut self, start: usize, space: bool) -> bool {
        self.pos += 1;
        loop {
            match self.peek() {
                Some('\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some('\n') | None => {
                            self.error("unterminated character constant".into());
                            return false;
                        }
                        Some(c) => self.pos += c.len_utf8(),
                    }
                }
                Some('\n') | None => {
                    self.error("unterminated character constant".into());
                    return false;
                }
                Some('\'') => {
                    self.pos += 1;
                    break;
                }
                Some(c) => self.pos += c.len_utf8(),
            }
        }
        let raw = &self.src[start + 1..self.pos - 1];
        let mut chars = match unquote(raw, '\'') {
            Ok(s) => s.chars().collect::<Vec<_>>(),
            Err(()) => vec![],
        };
        if chars.len() != 1 {
            let text = self.src[start..self.pos].to_string();
            self.error(format!("malformed character constant: {text}"));
            return false;
        }
        let c = chars.remove(0);
        self.emit(Kind::Char(c), start, space);
        true
    }
}

/// Go's `%#U` of a rune: `U+0023 '#'`.
pub(crate) fn go_rune(c: char) -> String {
    if c.is_control() {
        format!("U+{:04X}", c as u32)
    } else {
        format!("U+{:04X} '{}'", c as u32, c)
    }
}

/// Go's strconv.Unquote body for interpreted strings / char constants.
fn unquote(raw: &str, quote: char) -> Result<String, ()> {
    let mut out: Vec<u8> = Vec::with_capacity(raw.len());
    let mut it = raw.chars().peekable();
    let mut buf = [0u8; 4];
    while let Some(c) = it.next() {
        if c != '\\' {
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let Some(e) = it.next() else { return Err(()) };
        match e {
            'a' => out.push(7),
            'b' => out.push(8),
            'f' => out.push(12),
            'n' => out.push(b'\n'),
            'r' => out.push(b'\r'),
            't' => out.push(b'\t'),
            'v' => out.push(11),
            '\\' => out.push(b'\\'),
            c if c == quote => out.push(c as u8),
            'x' | 'u' | 'U' => {
                let n = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let mut v: u32 = 0;
                for _ in 0..n {
                    let d = it.next().and_then(|d| d.to_digit(16)).ok_or(())?;
                    v = v * 16 + d;
                }
                if e == 'x' {
                    out.push(v as u8);
                } else {
                    let ch = char::from_u32(v).ok_or(())?;
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
            }
            '0'..='7' => {
                let mut v: u32 = e.to_digit(8).unwrap();
                for _ in 0..2 {
                    let d = it.next().and_then(|d| d.to_digit(8)).ok_or(())?;
                    v = v * 8 + d;
                }
                if v > 255 {
                    return Err(());
                }
                out.push(v as u8);
            }
            _ => return Err(()),
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}
