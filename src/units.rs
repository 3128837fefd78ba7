//! Byte counts as docker prints them (its `go-units` package): decimal units, a given number of
//! significant digits, formatted as Go's `%.*g` does.

const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];

/// docker's `units.HumanSize`: four significant digits (`1.235MB`). Used by progress bars,
/// `system df`'s summary, SHARED SIZE and UNIQUE SIZE.
pub fn human_size(bytes: u64) -> String {
    human_size_with_precision(bytes, 4)
}

/// docker's `units.HumanSizeWithPrecision`; docker's `images` and `history` use three digits
/// (`4.26MB`).
pub fn human_size_with_precision(bytes: u64, precision: usize) -> String {
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    format!("{}{}", go_g(value, precision.max(1)), UNITS[unit])
}

/// Go's `%.{precision}g` of a non-negative finite value: `precision` significant digits,
/// trailing zeros dropped, exponent form when the decimal exponent (after rounding) is below
/// -4 or at least `precision`, so 999.6 at three digits is `1e+03`.
fn go_g(value: f64, precision: usize) -> String {
    if value == 0.0 {
        return "0".into();
    }
    let sci = format!("{value:.prec$e}", prec = precision - 1);
    let (mantissa, exponent) = sci.split_once('e').expect("`e` format has an exponent");
    let exponent: i32 = exponent.parse().expect("`e` format exponent is an integer");
    if exponent < -4 || exponent >= precision as i32 {
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!(
            "{}e{sign}{:02}",
            trim_fraction(mantissa),
            exponent.unsigned_abs()
        );
    }
    let decimals = (precision as i32 - 1 - exponent).max(0) as usize;
    trim_fraction(&format!("{value:.decimals$}")).to_string()
}

fn trim_fraction(number: &str) -> &str {
    if number.contains('.') {
        number.trim_end_matches('0').trim_end_matches('.')
    } else {
        number
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_digits_as_docker_human_size() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_000), "1kB");
        assert_eq!(human_size(1_500_000), "1.5MB");
        assert_eq!(human_size(1_234_567), "1.235MB");
        assert_eq!(human_size(4_260_000), "4.26MB");
        assert_eq!(human_size(77_800_000), "77.8MB");
        assert_eq!(human_size(999_950), "1000kB");
        assert_eq!(human_size(1_000_000_000), "1GB");
        assert_eq!(human_size(u64::MAX), "18.45EB");
    }

    #[test]
    fn three_digits_as_docker_images_and_history() {
        let h = |n| human_size_with_precision(n, 3);
        assert_eq!(h(0), "0B");
        assert_eq!(h(4_261_550), "4.26MB");
        assert_eq!(h(10_485_760), "10.5MB");
        assert_eq!(h(187_654_321), "188MB");
        assert_eq!(h(1_234), "1.23kB");
        // Rounds up to four digits: Go switches to the exponent form.
        assert_eq!(h(999_600), "1e+03kB");
        assert_eq!(h(999), "999B");
    }
}
