//! Durations (`"90s"`, `"1h30m"`, `"2d"`) and sizes (`"512"`, `"10KiB"`, `"2GB"`) as written in
//! the job table.

use std::time::Duration;

/// Parses a duration: one or more `<integer><unit>` parts with units `s`, `m`, `h`, `d`
/// (and `ms`), optionally separated by spaces: `"90s"`, `"1h30m"`, `"2d 12h"`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration (write e.g. \"90s\", \"5m\", \"1h30m\", \"2d\")".to_string());
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!(
                "{text:?} is not a duration (write e.g. \"90s\", \"5m\", \"1h30m\", \"2d\")"
            ));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{text:?}: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let unit = &rest[..unit_len];
        rest = rest[unit_len..].trim_start();
        let millis_per: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => {
                return Err(format!(
                    "{text:?}: the number {n} needs a unit (s, m, h or d), e.g. \"{n}s\""
                ));
            }
            other => {
                return Err(format!(
                    "{text:?}: unknown unit {other:?} (allowed: ms, s, m, h, d)"
                ));
            }
        };
        total = n
            .checked_mul(millis_per)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("{text:?}: duration too large"))?;
    }
    Ok(Duration::from_millis(total))
}

/// Parses a size in bytes: a plain integer or one followed by `B`, `KB`/`MB`/`GB`/`TB`
/// (powers of 1000) or `KiB`/`MiB`/`GiB`/`TiB` (powers of 1024).
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let s = text.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(format!(
            "{text:?} is not a size (write e.g. \"512\", \"10KiB\", \"1MiB\", \"2GB\")"
        ));
    }
    let n: u64 = s[..digits]
        .parse()
        .map_err(|_| format!("{text:?}: number too large"))?;
    let unit = s[digits..].trim_start();
    let mult: u64 = match unit {
        "" | "B" => 1,
        "K" | "KB" | "kB" => 1_000,
        "M" | "MB" => 1_000_000,
        "G" | "GB" => 1_000_000_000,
        "T" | "TB" => 1_000_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        other => {
            return Err(format!(
                "{text:?}: unknown size unit {other:?} (allowed: B, KB, MB, GB, TB, KiB, MiB, \
                 GiB, TiB)"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{text:?}: size too large"))
}

/// Formats a duration the way the table writes it: `1h30m`, `45s`, `2d`.
pub(crate) fn format_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    let millis = d.subsec_millis();
    if secs == 0 {
        return if millis == 0 {
            "0s".to_string()
        } else {
            format!("{millis}ms")
        };
    }
    let mut out = String::new();
    for (unit, len) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= len {
            out.push_str(&format!("{}{unit}", secs / len));
            secs %= len;
        }
    }
    out
}

/// Formats a size in bytes the way the table writes sizes (`"10KiB"`), in powers of 1024:
/// `512 bytes`, `1KiB`, `64.2MiB`, `3GiB` (one decimal unless the size is a whole number of
/// its unit).
pub(crate) fn format_size(bytes: u64) -> String {
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut unit = 0;
    while unit + 1 < UNITS.len() && bytes >= 1u64 << (10 * (unit + 1)) {
        unit += 1;
    }
    let per = 1u64 << (10 * unit);
    if bytes.is_multiple_of(per) {
        return format!("{}{}", bytes / per, UNITS[unit]);
    }
    let value = bytes as f64 / per as f64;
    // 1023.96KiB would print as "1024.0KiB": that is 1.0MiB.
    if format!("{value:.1}") == "1024.0" && unit + 1 < UNITS.len() {
        return format!("1.0{}", UNITS[unit + 1]);
    }
    format!("{value:.1}{}", UNITS[unit])
}

/// Formats CPU time in seconds: `0.61s`, `12.30s`, and from a minute on the way the table
/// writes durations (`1h2m3s`); `-` for a value that is not a time (negative, not finite).
pub(crate) fn format_cpu_seconds(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "-".to_string();
    }
    // Below what rounds to a minute.
    if secs < 59.995 {
        return format!("{secs:.2}s");
    }
    match Duration::try_from_secs_f64(secs.round()) {
        Ok(d) => format_duration(d),
        Err(_) => "-".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("90").unwrap_err().contains("needs a unit"));
        assert!(parse_duration("5y").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("99999999999999999999s").is_err());
        assert!(parse_duration("9999999999999999d").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("10KiB"), Ok(10_240));
        assert_eq!(parse_size("1MiB"), Ok(1_048_576));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        assert!(parse_size("1XB").unwrap_err().contains("unknown size unit"));
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("99999999999TiB").is_err());
    }

    #[test]
    fn sizes_are_formatted_in_powers_of_1024() {
        assert_eq!(format_size(0), "0 bytes");
        assert_eq!(format_size(512), "512 bytes");
        assert_eq!(format_size(1023), "1023 bytes");
        assert_eq!(format_size(1024), "1KiB");
        assert_eq!(format_size(1536), "1.5KiB");
        assert_eq!(format_size(67_318_989), "64.2MiB");
        assert_eq!(format_size(3 << 30), "3GiB");
        assert_eq!(format_size(1_048_575), "1.0MiB");
        assert_eq!(format_size(5 << 40), "5TiB");
        assert_eq!(format_size(u64::MAX), "16777216.0TiB");
        // A whole size reads back as the same number of bytes.
        for s in ["1KiB", "64MiB", "2GiB"] {
            let bytes = parse_size(s).expect("valid");
            assert_eq!(parse_size(&format_size(bytes)), Ok(bytes));
        }
    }

    #[test]
    fn cpu_seconds_are_formatted_readably() {
        assert_eq!(format_cpu_seconds(0.0), "0.00s");
        assert_eq!(format_cpu_seconds(0.614), "0.61s");
        assert_eq!(format_cpu_seconds(59.994), "59.99s");
        assert_eq!(format_cpu_seconds(59.996), "1m");
        assert_eq!(format_cpu_seconds(60.4), "1m");
        assert_eq!(format_cpu_seconds(3723.2), "1h2m3s");
        assert_eq!(format_cpu_seconds(-1.0), "-");
        assert_eq!(format_cpu_seconds(f64::NAN), "-");
        assert_eq!(format_cpu_seconds(f64::INFINITY), "-");
        assert_eq!(format_cpu_seconds(1e300), "-");
    }

    #[test]
    fn formatting_round_trips() {
        for s in ["1h30m", "45s", "2d", "1d2h3m4s"] {
            assert_eq!(format_duration(parse_duration(s).expect("valid")), s);
        }
    }
}
