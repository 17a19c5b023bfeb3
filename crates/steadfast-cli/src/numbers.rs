//! Parsers of numeric flags with a range, so that out-of-range values are
//! refused by clap, naming the flag and the range, instead of overflowing
//! later.

/// The most processes a worker runs at once.
pub const MAX_CONCURRENCY: i64 = 1_000_000;

/// The latest `--clock-origin`: 9999-12-31T23:59:59Z in µs.
pub const MAX_CLOCK_ORIGIN: i64 = 253_402_300_799_000_000;

/// The slowest and fastest clock speeds (`demo --speed`,
/// `worker --time-scale`).
const SPEED: (f64, f64) = (0.001, 100_000_000.0);

/// The longest `purge --older-than`, in hours (about 114 years).
const HOURS: (f64, f64) = (0.0, 1_000_000.0);

/// A clock speed.
pub fn speed(text: &str) -> Result<f64, String> {
    number_in(text, SPEED)
}

/// A number of hours.
pub fn hours(text: &str) -> Result<f64, String> {
    number_in(text, HOURS)
}

/// A finite number within `min..=max`.
fn number_in(text: &str, (min, max): (f64, f64)) -> Result<f64, String> {
    let n: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("not a number; give one from {min} to {max}"))?;
    if !(n.is_finite() && (min..=max).contains(&n)) {
        return Err(format!("out of range; give a number from {min} to {max}"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(speed("2000000"), Ok(2_000_000.0));
        assert!(speed("1e-300").is_err());
        assert!(speed("1e300").is_err());
        assert!(speed("NaN").is_err());
        assert!(speed("inf").is_err());
        assert_eq!(hours("0"), Ok(0.0));
        assert!(hours("1e300").is_err());
        assert!(hours("-1").is_err());
        assert!(hours("x").is_err());
    }
}
