//! Column alignment as Go's text/tabwriter does it with the settings docker
//! uses for `table` output: `tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`
//! (minwidth 10, padding 3, space padding, no flags).

const MIN_WIDTH: usize = 10;
const PADDING: usize = 3;

/// Aligns tab-separated cells. A cell is a column cell only when a tab ends
/// it; the last cell of each line is not part of any column. Consecutive
/// lines that have a cell in a column form a block with one width.
pub(crate) fn align(text: &str) -> String {
    let pieces: Vec<&str> = text.split('\n').collect();
    let n = pieces.len();
    let lines: Vec<Vec<&str>> = pieces
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if i + 1 == n && p.is_empty() {
                Vec::new()
            } else {
                p.split('\t').collect()
            }
        })
        .collect();
    let mut out = String::with_capacity(text.len() * 2);
    let mut widths = Vec::new();
    format(&lines, &mut widths, 0, lines.len(), &mut out);
    out
}

fn width(s: &str) -> usize {
    s.chars().count()
}

fn format(
    lines: &[Vec<&str>],
    widths: &mut Vec<usize>,
    line0: usize,
    line1: usize,
    out: &mut String,
) {
    let column = widths.len();
    let mut line0 = line0;
    let mut this = line0;
    while this < line1 {
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        // A cell exists in this column: print the lines before the block.
        write_lines(lines, widths, line0, this, out);
        line0 = this;
        let mut w = MIN_WIDTH;
        while this < line1 && column + 1 < lines[this].len() {
            w = w.max(width(lines[this][column]) + PADDING);
            this += 1;
        }
        widths.push(w);
        format(lines, widths, line0, this, out);
        widths.pop();
        line0 = this;
    }
    write_lines(lines, widths, line0, line1, out);
}

fn write_lines(
    lines: &[Vec<&str>],
    widths: &[usize],
    line0: usize,
    line1: usize,
    out: &mut String,
) {
    for (i, line) in lines.iter().enumerate().take(line1).skip(line0) {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if j < widths.len() {
                let pad = widths[j].saturating_sub(width(cell));
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        if i + 1 < lines.len() {
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::align;

    #[test]
    fn aligns_like_go_tabwriter() {
        assert_eq!(
            align("CONTAINER ID\tNAMES\nabc\tweb\n"),
            "CONTAINER ID   NAMES\nabc            web\n"
        );
        // minwidth 10
        assert_eq!(align("A\tB\nx\ty\n"), "A         B\nx         y\n");
        // Trailing tab-terminated cells are padded too.
        assert_eq!(align("A\t\nxx\t\n"), "A         \nxx        \n");
        // A line without tabs ends the column block.
        assert_eq!(
            align("a\tb\nplain line\nlonger-cell\tc\n"),
            "a         b\nplain line\nlonger-cell   c\n"
        );
        // Ragged rows: column 2 only spans the rows that have it.
        assert_eq!(
            align("a\tb\tc\nd\te\n"),
            "a         b         c\nd         e\n"
        );
        assert_eq!(align(""), "");
        assert_eq!(align("no newline"), "no newline");
        // Widths count characters, not bytes.
        assert_eq!(align("é\tx\n"), "é         x\n");
    }
}
