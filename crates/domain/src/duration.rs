use std::time::Duration;

use crate::Invalid;

/// Parses a human duration such as `30s`, `500ms`, `5m`, `1h30m` or `2d`.
///
/// Units: `ms`, `s`, `m`, `h`, `d`. Several parts may follow each other, largest first is not
/// required. A bare number is rejected because its unit would be a guess.
pub fn parse_duration(raw: &str) -> Result<Duration, Invalid> {
    let text = raw.trim();
    if text.is_empty() {
        return Err(Invalid::new("required", "a duration is required, e.g. \"30s\""));
    }
    let bad = || {
        Invalid::new(
            "format",
            format!("\"{raw}\" is not a duration; use e.g. \"500ms\", \"30s\", \"5m\", \"1h\""),
        )
    };
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let value: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let millis_per_unit: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        let part = value.checked_mul(millis_per_unit).ok_or_else(bad)?;
        total = total.checked_add(Duration::from_millis(part)).ok_or_else(bad)?;
    }
    Ok(total)
}

/// Writes a duration the way [`parse_duration`] reads it: `30s`, `1500ms`, `5m`.
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis.is_multiple_of(60_000) && millis >= 60_000 {
        format!("{}m", millis / 60_000)
    } else if millis.is_multiple_of(1000) {
        format!("{}s", millis / 1000)
    } else {
        format!("{millis}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit_and_combinations() {
        let cases = [
            ("500ms", 500),
            ("30s", 30_000),
            ("5m", 300_000),
            ("1h", 3_600_000),
            ("1h30m", 5_400_000),
            ("2d", 172_800_000),
            (" 10s ", 10_000),
        ];
        for (raw, millis) in cases {
            assert_eq!(parse_duration(raw), Ok(Duration::from_millis(millis)), "{raw}");
        }
    }

    #[test]
    fn formats_what_it_parses() {
        for raw in ["30s", "1500ms", "5m", "0s"] {
            assert_eq!(format_duration(parse_duration(raw).unwrap()), raw);
        }
    }

    #[test]
    fn rejects_numbers_without_units_and_unknown_units() {
        for raw in ["30", "s", "10 s", "5y", "1.5s", "-1s", "99999999999999999999s"] {
            let err = parse_duration(raw).unwrap_err();
            assert_eq!(err.constraint, "format", "{raw}");
        }
        assert_eq!(parse_duration("").unwrap_err().constraint, "required");
    }
}
