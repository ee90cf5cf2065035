//! The one duration grammar of every flag: humantime's.
//!
//! `500ms`, `2s`, `1.5s`, `1m30s`, `2h 5min` and `0` parse as humantime
//! reads them. Before this crate each binary had a parser of its own, and
//! two fallbacks keep what those took and humantime does not:
//!
//! - jiff's, which the controller used: ISO 8601 (`PT15S`), spelled-out
//!   units (`2 milliseconds`), commas (`1h, 30m`) and signs (`-5s`, refused
//!   below with a clear message rather than as a typo);
//! - one decimal number and a unit, which the speaker used: `.5s`, `1e3ms`.
//!
//! A bare number other than `0` is refused in every case, so `15` never
//! silently means 15 seconds (or 15 nanoseconds).

use std::time::Duration;

use jiff::SignedDuration;

/// Parses a duration that may be zero, e.g. `250ms`, `1m30s` or `0s`.
///
/// ```
/// # use std::time::Duration;
/// use ferrolb_runtime::duration::parse;
/// assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
/// assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
/// assert!(parse("15").is_err());
/// ```
pub fn parse(s: &str) -> Result<Duration, String> {
    let signed = parse_signed(s)?;
    if signed.is_negative() {
        return Err(format!("`{s}`: a duration cannot be negative"));
    }
    Duration::try_from(signed).map_err(|e| format!("`{s}`: {e}"))
}

/// Parses a duration greater than zero, e.g. `15s`.
///
/// ```
/// # use std::time::Duration;
/// use ferrolb_runtime::duration::parse_positive;
/// assert_eq!(parse_positive("15s"), Ok(Duration::from_secs(15)));
/// assert!(parse_positive("0s").is_err());
/// ```
pub fn parse_positive(s: &str) -> Result<Duration, String> {
    let signed = parse_signed(s)?;
    if signed.is_negative() || signed.is_zero() {
        return Err(format!("`{s}`: the duration must be greater than zero"));
    }
    Duration::try_from(signed).map_err(|e| format!("`{s}`: {e}"))
}

fn parse_signed(s: &str) -> Result<SignedDuration, String> {
    let trimmed = s.trim();
    match humantime::parse_duration(trimmed) {
        Ok(d) => SignedDuration::try_from(d).map_err(|e| format!("`{s}`: {e}")),
        Err(error) => trimmed
            .parse::<SignedDuration>()
            .ok()
            .or_else(|| decimal_term(trimmed))
            .ok_or_else(|| {
                format!("`{s}` is not a duration like `15s`, `500ms` or `1m30s`: {error}")
            }),
    }
}

/// One number in any notation Rust reads (`.5`, `1e3`) and one humantime
/// unit: what the speaker's parser took before.
fn decimal_term(s: &str) -> Option<SignedDuration> {
    let number = s.trim_end_matches(char::is_alphabetic);
    let unit = humantime::parse_duration(&format!("1{}", &s[number.len()..])).ok()?;
    let value: f64 = number.trim().parse().ok()?;
    SignedDuration::try_from_secs_f64(value * unit.as_secs_f64()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humantime_spellings_parse() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("2h 5min"), Ok(Duration::from_secs(7500)));
        assert_eq!(parse(" 15s "), Ok(Duration::from_secs(15)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
    }

    /// What the controller's jiff-based parser took (its old unit test).
    #[test]
    fn durations_accept_common_units() {
        assert_eq!(parse_positive("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_positive("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_positive("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_positive("PT15S"), Ok(Duration::from_secs(15)));
        assert!(parse_positive("0s").is_err());
    }

    /// What the speaker's `ms`/`s`/`m` parser took (its old unit test).
    #[test]
    fn durations_parse_in_milliseconds_and_seconds() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("3m"), Ok(Duration::from_secs(180)));
        assert!(parse_positive("0s").is_err());
        assert!(parse("250").is_err());
        assert!(parse("fast").is_err());
        assert!(parse("-1s").is_err());
    }

    #[test]
    fn spellings_only_the_old_parsers_took_still_parse() {
        // The controller's (jiff): ISO 8601, long unit names, commas.
        assert_eq!(parse("PT1M30S"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("2 milliseconds"), Ok(Duration::from_millis(2)));
        assert_eq!(parse("1h, 30m"), Ok(Duration::from_secs(5400)));
        // The speaker's: any f64 literal before `ms`, `s` or `m`.
        assert_eq!(parse(".5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("1e3ms"), Ok(Duration::from_secs(1)));
        assert_eq!(parse("0.5m"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("2 s"), Ok(Duration::from_secs(2)));
    }

    #[test]
    fn bare_numbers_and_words_are_refused_with_an_example() {
        for bad in ["15", "1.5", "soon", "", "s", "inf s", "NaN ms"] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains("like `15s`"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn negative_durations_are_refused_as_such() {
        assert!(parse("-5s").unwrap_err().contains("cannot be negative"));
        assert!(parse("-.5s").unwrap_err().contains("cannot be negative"));
        let err = parse_positive("-5s").unwrap_err();
        assert!(err.contains("greater than zero"), "{err}");
        assert!(parse_positive("0")
            .unwrap_err()
            .contains("greater than zero"));
    }
}
