//! docker-compatible `--format` templates: Go's text/template language with
//! docker's extra functions, evaluated over JSON data.
//!
//! ```
//! use serde_json::json;
//! let out = burrow::template::render("{{.Name}} {{upper .State.Status}}", &json!({
//!     "Name": "web", "State": {"Status": "running"}
//! })).unwrap();
//! assert_eq!(out, "web RUNNING");
//! ```
//!
//! Supported: text, actions with `{{-`/`-}}` trimming, comments, `.Field`
//! chains, `$`, variables (`:=`, `=`), `if`/`else if`/`else with`/`with`/
//! `range` (with `else`, one or two variables, `break`, `continue`, over
//! lists, maps in key order and integers), pipelines, parenthesised
//! pipelines, all literals; Go's builtins (`and or not len index slice eq
//! ne lt le gt ge print printf println html js urlquery`) and docker's
//! (`json split join title lower upper pad truncate`).
//! Not supported: `define`/`template`/`block` (named templates) and `call`.
//!
//! Where JSON data differs from docker's typed Go structs the engine follows
//! what the typed struct would print: integral numbers print as integers,
//! a JSON `null` or missing key prints `<no value>`, string-taking functions
//! treat null/missing as `""`, numbers compare across int/float, `%f` accepts
//! ints. A field that holds an object can be called with one argument to
//! look a key up in it, which is how docker's `{{.Label "key"}}` method is
//! provided: give the item a `"Label": {..labels..}` map (a missing key
//! yields `""`, as docker's method does).

mod exec;
mod funcs;
mod gofmt;
mod lex;
mod parse;
mod tabwriter;
#[cfg(test)]
mod tests;

use serde_json::Value;

/// A template error, worded as Go's text/template words it (the template
/// name is always empty, as in docker).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `template: :LINE: MESSAGE`
    #[error("template: :{line}: {message}")]
    Parse { line: usize, message: String },
    /// `template: :LINE:COL: executing "" at <NODE>: MESSAGE`
    #[error("template: :{line}:{col}: executing \"\" at <{context}>: {message}")]
    Exec {
        line: usize,
        /// Byte offset within the line, counted from 0 (as Go does).
        col: usize,
        /// The node being evaluated.
        context: String,
        message: String,
    },
}

/// A parsed template: parse once, execute many times.
#[derive(Debug, Clone)]
pub struct Template {
    source: String,
    nodes: Vec<parse::Node>,
    missing_key_error: bool,
}

impl Template {
    /// Parses a template. Fails on syntax errors, unknown functions and
    /// undefined variables, as Go's parser does.
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        Ok(Template {
            source: source.to_string(),
            nodes: parse::parse(source)?,
            missing_key_error: false,
        })
    }

    /// Go's `Option("missingkey=error")`: a missing map key is an error
    /// (`map has no entry for key "Foo"`) instead of printing `<no value>`.
    pub fn missing_key_error(mut self, on: bool) -> Template {
        self.missing_key_error = on;
        self
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Executes the template with `data` as dot.
    pub fn execute(&self, data: &Value) -> Result<String, TemplateError> {
        let mut out = String::new();
        self.execute_into(data, None, &mut out)?;
        Ok(out)
    }

    /// Executes into `out`; on error `out` keeps what was written before it.
    fn execute_into(
        &self,
        data: &Value,
        header: Option<exec::HeaderFn<'_>>,
        out: &mut String,
    ) -> Result<(), TemplateError> {
        let mut ex = exec::Exec::new(self.missing_key_error, header);
        ex.run(&self.nodes, data, out).map_err(|e| {
            let pos = e.pos.min(self.source.len());
            let before = &self.source[..pos];
            let (line, col) = match before.rfind('\n') {
                Some(nl) => (1 + before.matches('\n').count(), pos - nl - 1),
                None => (1, pos),
            };
            let context = e.context;
            TemplateError::Exec {
                line,
                col,
                context,
                message: e.message,
            }
        })
    }
}

/// Renders one template over `data` (as `docker inspect --format` does: the
/// text is used as is, no `\t` translation, no trailing newline added).
pub fn render(template: &str, data: &Value) -> Result<String, TemplateError> {
    Template::parse(template)?.execute(data)
}

/// Renders a list the way docker's formatter renders `--format` for `ps`,
/// `images` and the like:
///
/// * `json`: each item as one line of compact JSON (`{{json .}}`);
/// * `table TEMPLATE`: a header row, then one row per item, aligned into
///   columns at tabs (docker's tabwriter: min width 10, padding 3). The header
///   row is the template executed in header mode: each field chain `.A.B`
///   becomes `headers("A.B")`, else `headers("B")`, else `B` split at case
///   changes and upper-cased (`CreatedAt` → `CREATED AT`); docker's functions
///   return their first argument unchanged there. A plain `table` with no
///   template is the caller's to expand to its default format first.
/// * anything else: the template, one line per item.
///
/// Like docker, the format (after `table`) is trimmed of spaces and the
/// two-character sequences `\t` and `\n` become a tab and a newline. Every
/// row ends with a newline; no items means no rows (but still the header).
pub fn render_list(
    format: &str,
    items: &[Value],
    headers: &dyn Fn(&str) -> Option<String>,
) -> Result<String, TemplateError> {
    let is_table = format.starts_with("table");
    let source = if format == "json" {
        "{{json .}}".to_string()
    } else {
        let f = if is_table {
            &format["table".len()..]
        } else {
            format
        };
        f.trim_matches(' ')
            .replace("\\t", "\t")
            .replace("\\n", "\n")
    };
    // Listed items are docker's typed structs: an unknown field is an error there.
    let tmpl = Template::parse(&source)?.missing_key_error(true);
    let mut body = String::new();
    for item in items {
        tmpl.execute_into(item, None, &mut body)?;
        body.push('\n');
    }
    if !is_table {
        return Ok(body);
    }
    let header_of = |idents: &[String]| -> String {
        let last = idents.last().map(String::as_str).unwrap_or("");
        headers(&idents.join("."))
            .or_else(|| headers(last))
            .unwrap_or_else(|| default_header(last))
    };
    let mut text = String::new();
    // docker ignores errors in the header row and keeps what was printed.
    let _ = tmpl.execute_into(
        &Value::Object(Default::default()),
        Some(&header_of),
        &mut text,
    );
    text.push('\n');
    text.push_str(&body);
    Ok(tabwriter::align(&text))
}

/// `CreatedAt` → `CREATED AT`, `IPAddress` → `IP ADDRESS`, `ID` → `ID`.
pub fn default_header(field: &str) -> String {
    let chars: Vec<char> = field.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if i > 0 && c.is_uppercase() {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if prev.is_lowercase() || prev.is_ascii_digit() || (prev.is_uppercase() && next_lower) {
                out.push(' ');
            }
        }
        out.extend(c.to_uppercase());
    }
    out
}
