//! Byte sizes: `4096`, `64K`, `10M`, `1G` (binary multiples, case-insensitive, optional `B`).

/// Parses a size in bytes.
pub fn parse(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return Err(format!(
            "`{text}` is not a size (expected e.g. 4096, 64K, 10M)"
        ));
    }
    let value: u64 = number
        .parse()
        .map_err(|_| format!("`{number}` is too large"))?;
    let scale: u64 = match unit.to_ascii_uppercase().trim_end_matches('B') {
        "" => 1,
        "K" | "KI" => 1 << 10,
        "M" | "MI" => 1 << 20,
        "G" | "GI" => 1 << 30,
        _ => return Err(format!("unknown size unit `{unit}` (use K, M or G)")),
    };
    value
        .checked_mul(scale)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// Prints a size in the largest exact unit.
pub fn format(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "G"), (1 << 20, "M"), (1 << 10, "K")];
    for (scale, unit) in UNITS {
        if bytes >= scale && bytes.is_multiple_of(scale) {
            return format!("{}{unit}", bytes / scale);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        assert_eq!(parse("4096").unwrap(), 4096);
        assert_eq!(parse("64K").unwrap(), 65536);
        assert_eq!(parse("10m").unwrap(), 10 << 20);
        assert_eq!(parse("1GB").unwrap(), 1 << 30);
        assert!(parse("K").is_err());
        assert!(parse("5X").is_err());
        assert!(parse("99999999999999999999G").is_err());
        assert_eq!(format(65536), "64K");
        assert_eq!(format(1000), "1000");
        assert_eq!(format(0), "0");
    }
}
