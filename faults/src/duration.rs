//! Apache-style durations: `5` (seconds), `200ms`, `2s`, `1min`, `1h`, `500us`, `1.5s`.

use std::time::Duration;

/// Parses a duration as Apache's `ap_timeout_parameter_parse` does: a bare number is seconds;
/// units `us`, `ms`, `s`, `min`, `h`; a fractional number is allowed.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return Err(format!(
            "`{text}` is not a duration (expected e.g. 5, 200ms, 2s)"
        ));
    }
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{number}` is not a number"))?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "us" => 1e-6,
        "min" | "m" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "unknown time unit `{other}` (use us, ms, s, min or h)"
            ))
        }
    };
    let secs = value * scale;
    if !secs.is_finite() || secs > 1e9 {
        return Err(format!("`{text}` is too long a duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Prints a duration in the shortest exact form that [`parse`] reads back.
pub fn format(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        "0s".into()
    } else if nanos.is_multiple_of(3_600_000_000_000) {
        format!("{}h", nanos / 3_600_000_000_000)
    } else if nanos.is_multiple_of(60_000_000_000) {
        format!("{}min", nanos / 60_000_000_000)
    } else if nanos.is_multiple_of(1_000_000_000) {
        format!("{}s", nanos / 1_000_000_000)
    } else if nanos.is_multiple_of(1_000_000) {
        format!("{}ms", nanos / 1_000_000)
    } else {
        format!("{}us", nanos.div_ceil(1000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse("5").unwrap(), Duration::from_secs(5));
        assert_eq!(parse("200ms").unwrap(), Duration::from_millis(200));
        assert_eq!(parse("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse("1min").unwrap(), Duration::from_secs(60));
        assert_eq!(parse("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse("250us").unwrap(), Duration::from_micros(250));
    }

    #[test]
    fn rejects() {
        assert!(parse("").is_err());
        assert!(parse("ms").is_err());
        assert!(parse("5 fortnights").is_err());
        assert!(parse("-1").is_err());
        assert!(parse("1.2.3").is_err());
    }

    #[test]
    fn formats() {
        assert_eq!(format(Duration::from_millis(200)), "200ms");
        assert_eq!(format(Duration::from_secs(120)), "2min");
        assert_eq!(format(Duration::from_secs(5)), "5s");
        assert_eq!(format(Duration::ZERO), "0s");
    }
}
