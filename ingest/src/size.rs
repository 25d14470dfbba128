//! Byte sizes as operators write them (`512MiB`, `2GB`, `1048576`) and as log lines and
//! error messages show them.

/// Parses a byte size: a whole number of bytes, or a number (fractions allowed) followed by
/// a unit: `B`, `KB`/`MB`/`GB`/`TB` (powers of 1000) or `KiB`/`MiB`/`GiB`/`TiB` (powers of
/// 1024), case-insensitive, with optional space between number and unit (`K`, `M`, `G`, `T`
/// alone are the binary units, as Prometheus' `--storage.tsdb.retention.size` takes them).
pub fn parse_byte_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = (&t[..split], t[split..].trim());
    if number.is_empty() {
        return Err(format!(
            "invalid size {s:?}: expected a number of bytes with an optional unit \
             (examples: 1048576, 512MiB, 2GB)"
        ));
    }
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000_u64.pow(2),
        "gb" => 1000_u64.pow(3),
        "tb" => 1000_u64.pow(4),
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        _ => {
            return Err(format!(
                "invalid size {s:?}: unknown unit {unit:?} (use B, KB, MB, GB, TB, KiB, MiB, \
                 GiB or TiB)"
            ));
        }
    };
    if let Ok(n) = number.parse::<u64>() {
        return n
            .checked_mul(multiplier)
            .ok_or_else(|| format!("invalid size {s:?}: too large"));
    }
    let x: f64 = number
        .parse()
        .map_err(|_| format!("invalid size {s:?}: {number:?} is not a number"))?;
    let bytes = (x * multiplier as f64).round();
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(format!("invalid size {s:?}: too large"));
    }
    Ok(bytes as u64)
}

/// `bytes` with a binary unit, for messages: `512 B`, `1.5 KiB`, `512.0 MiB`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut x = bytes as f64 / 1024.0;
    let mut unit = 0;
    while x >= 1024.0 && unit + 1 < UNITS.len() {
        x /= 1024.0;
        unit += 1;
    }
    format!("{x:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_unit_sizes() {
        for (s, want) in [
            ("0", 0),
            ("1048576", 1 << 20),
            ("512MiB", 512 << 20),
            ("512 mib", 512 << 20),
            ("64KiB", 64 << 10),
            ("2GB", 2_000_000_000),
            ("1.5KiB", 1536),
            ("10k", 10 << 10),
            ("3G", 3 << 30),
            ("100B", 100),
            ("1TB", 1_000_000_000_000),
        ] {
            assert_eq!(parse_byte_size(s), Ok(want), "{s}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_size() {
        for s in [
            "",
            "MiB",
            "12 parsecs",
            "-1",
            "1.2.3MiB",
            "99999999999999999999TiB",
        ] {
            let e = parse_byte_size(s).unwrap_err();
            assert!(e.starts_with("invalid size"), "{s}: {e}");
        }
    }

    #[test]
    fn formats_with_binary_units() {
        assert_eq!(format_bytes(0), "0 B");
        assert_eq!(format_bytes(1023), "1023 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(512 << 20), "512.0 MiB");
    }
}
