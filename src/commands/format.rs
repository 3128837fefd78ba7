//! Output formatting shared by the listing commands: docker's human durations and sizes,
//! tables and templates.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

// The listing commands' sizes, shared with the registry's progress bars.
pub use crate::units::{human_size, human_size_with_precision};

/// docker's `units.HumanDuration`.
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    match () {
        _ if s < 1 => "Less than a second".into(),
        _ if s == 1 => "1 second".into(),
        _ if s < 60 => format!("{s} seconds"),
        _ if m == 1 => "About a minute".into(),
        _ if m < 60 => format!("{m} minutes"),
        _ if h == 1 => "About an hour".into(),
        _ if h < 48 => format!("{h} hours"),
        _ if h < 24 * 7 * 2 => format!("{d} days"),
        _ if h < 24 * 30 * 2 => format!("{} weeks", d / 7),
        _ if h < 24 * 365 * 2 => format!("{} months", d / 30),
        _ => format!("{} years", d / 365),
    }
}

/// Seconds since an RFC 3339 timestamp, if it parses.
pub fn seconds_since(rfc3339: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(rfc3339, &Rfc3339).ok()?;
    Some((OffsetDateTime::now_utc() - t).whole_seconds())
}

pub fn ago(rfc3339: Option<&str>) -> String {
    match rfc3339.and_then(seconds_since) {
        Some(s) => format!("{} ago", human_duration(s)),
        None => "N/A".into(),
    }
}

/// Left-aligned columns separated by three spaces, as docker's tabwriter prints them.
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}   ", w = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Render a docker `--format` template against one value (`inspect -f`).
pub fn render_template(format: &str, value: &serde_json::Value) -> anyhow::Result<String> {
    Ok(crate::template::render(format, value)?)
}

/// Listing output: `table TEMPLATE` (a header row and aligned columns), `json` (one object a
/// line), or a template rendered once per row.
pub fn render_rows(
    format: &str,
    rows: &[serde_json::Value],
    header: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<String> {
    Ok(crate::template::render_list(format, rows, header)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_docker_prints_them() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(5), "5 seconds");
        assert_eq!(human_duration(61), "About a minute");
        assert_eq!(human_duration(600), "10 minutes");
        assert_eq!(human_duration(3700), "About an hour");
        assert_eq!(human_duration(3 * 3600), "3 hours");
        assert_eq!(human_duration(3 * 86400), "3 days");
    }

    #[test]
    fn table_aligns_columns() {
        let t = table(&[
            vec!["A".into(), "BB".into(), "C".into()],
            vec!["aaa".into(), "b".into(), "c".into()],
        ]);
        assert_eq!(t, "A     BB   C\naaa   b    c\n");
    }
}
