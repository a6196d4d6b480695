//! Durations and sizes as configs and command lines write them.
//!
//! Durations: a decimal number and a unit, `ms`, `s`, `m`, `h` or `d`
//! (`500ms`, `10s`, `1.5m`, `2h`, `1d`). Sizes: a whole number and an
//! optional unit, binary (`K`/`KiB`, `M`/`MiB`, `G`/`GiB`) or decimal
//! (`KB`, `MB`, `GB`); a bare number is bytes. Values that do not fit
//! (`100000000000000000000s`) are errors, never a panic or a wrap-around.
//! Zero parses; a field that needs a positive value says so itself.

use std::time::Duration;

const DURATION_UNITS: &str = "ms, s, m, h, d";
const SIZE_UNITS: &str = "B, KiB, MiB, GiB, KB, MB, GB";

/// Parses a duration (`500ms`, `10s`, `1.5m`, `2h`, `1d`). The error
/// quotes the input and says what is wrong with it.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("{s:?}: missing unit ({DURATION_UNITS})"))?;
    let (num, unit) = t.split_at(split);
    if decimal_times(num, 1).is_none() {
        return Err(format!("{s:?}: not a number"));
    }
    let unit_nanos: u128 = match unit.trim() {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "d" => 86_400_000_000_000,
        other => return Err(format!("{s:?}: unknown unit {other:?} ({DURATION_UNITS})")),
    };
    let nanos = decimal_times(num, unit_nanos).ok_or_else(|| format!("{s:?}: not a number"))?;
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| format!("{s:?}: out of range"))?;
    Ok(Duration::new(secs, (nanos % 1_000_000_000) as u32))
}

/// `num` (digits, at most one `.`) times `scale`, exactly, in integers;
/// digits past the ninth decimal are dropped. `None` when `num` is not a
/// number; a value past `u128` saturates (and is out of range for any
/// duration).
fn decimal_times(num: &str, scale: u128) -> Option<u128> {
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
        return None;
    }
    let frac = &frac[..frac.len().min(9)];
    let mut mantissa: u128 = 0;
    for b in int.bytes().chain(frac.bytes()) {
        mantissa = mantissa
            .saturating_mul(10)
            .saturating_add(u128::from(b - b'0'));
    }
    let divisor = 10u128.pow(frac.len() as u32);
    Some(mantissa.saturating_mul(scale) / divisor)
}

/// Parses a size (`64MiB`, `64M`, `10MB`, `1GiB`, `512KiB`, `1048576`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("{s:?}: not a number"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "k" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => return Err(format!("{s:?}: unknown unit {other:?} ({SIZE_UNITS})")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?}: out of range"))
}

/// A duration as configs write it: `250ms`, `2s`, `2m`, `1h`, `2d`,
/// `1.500s`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(86_400_000) {
        format!("{}d", ms / 86_400_000)
    } else if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}

/// A duration for people, to the two largest units: `9d23h`, `2h5m`,
/// `4m30s`, `45s`, `850ms`; negative seconds read `-3h`.
pub fn format_duration_human(secs: f64) -> String {
    if secs < 0.0 {
        return format!("-{}", format_duration_human(-secs));
    }
    if !secs.is_finite() {
        return "forever".into();
    }
    if secs < 1.0 {
        return format!("{}ms", (secs * 1000.0).round() as u64);
    }
    let s = secs.round() as u64;
    let units = [(86_400, "d"), (3600, "h"), (60, "m"), (1, "s")];
    let Some(first) = units.iter().position(|(n, _)| s >= *n) else {
        return "0s".into();
    };
    let (n0, u0) = units[first];
    let mut out = format!("{}{u0}", s / n0);
    if let Some((n1, u1)) = units.get(first + 1) {
        let rest = (s % n0) / n1;
        if rest > 0 {
            out.push_str(&format!("{rest}{u1}"));
        }
    }
    out
}

/// A size for people: `64 MiB`, `1.5 MiB`, `512 KiB`, `100 B`.
pub fn format_size(n: u64) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64)
    } else if n >= 1 << 10 {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_for_people() {
        assert_eq!(format_duration_human(863_962.0), "9d23h");
        assert_eq!(format_duration_human(7500.0), "2h5m");
        assert_eq!(format_duration_human(270.0), "4m30s");
        assert_eq!(format_duration_human(3600.0), "1h");
        assert_eq!(format_duration_human(45.0), "45s");
        assert_eq!(format_duration_human(0.85), "850ms");
        assert_eq!(format_duration_human(-10800.0), "-3h");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration(" 2h "), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert!(parse_duration("10").unwrap_err().contains("missing unit"));
        assert!(
            parse_duration("3 weeks")
                .unwrap_err()
                .contains("\"3 weeks\"")
        );
        assert!(parse_duration("soon").unwrap_err().contains("not a number"));
        assert!(parse_duration("s").unwrap_err().contains("not a number"));
        assert!(parse_duration("1.2.3s").is_err());
        assert!(parse_duration(".s").unwrap_err().contains("not a number"));
        assert_eq!(parse_duration(".5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5.s"), Ok(Duration::from_secs(5)));
        assert_eq!(
            parse_duration("16957358.628s"),
            Ok(Duration::from_millis(16_957_358_628))
        );
        assert_eq!(parse_duration("0.000000001s"), Ok(Duration::from_nanos(1)));
    }

    #[test]
    fn huge_durations_are_errors_not_panics() {
        let e = parse_duration("100000000000000000000s").unwrap_err();
        assert!(e.contains("out of range"), "{e}");
        assert!(parse_duration("10000000000000000d").is_err());
        assert!(parse_duration(&format!("{}s", "9".repeat(400))).is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("2KB"), Ok(2000));
        assert_eq!(parse_size("0"), Ok(0));
        assert!(parse_size("12XB").unwrap_err().contains("unknown unit"));
        assert!(parse_size("99999999999999999999GiB").is_err());
        assert!(
            parse_size("18446744073709551615GiB")
                .unwrap_err()
                .contains("out of range")
        );
    }

    #[test]
    fn printing() {
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_secs(2)), "2s");
        assert_eq!(format_duration(Duration::from_secs(120)), "2m");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
        assert_eq!(format_duration(Duration::from_secs(86400)), "1d");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.500s");
        assert_eq!(format_size(64 << 20), "64 MiB");
        assert_eq!(format_size(512 << 10), "512 KiB");
    }

    proptest::proptest! {
        #[test]
        fn any_text_parses_or_errs_without_panicking(s in "\\PC{0,40}") {
            let _ = parse_duration(&s);
            let _ = parse_size(&s);
        }

        #[test]
        fn numbers_with_units_parse(n in 0u64..1_000_000_000, unit in "(ms|s|m|h|d)") {
            let d = parse_duration(&format!("{n}{unit}")).unwrap();
            let scale = match unit.as_str() { "ms" => 1, "s" => 1000, "m" => 60_000, "h" => 3_600_000, _ => 86_400_000 };
            proptest::prop_assert_eq!(d.as_millis(), n as u128 * scale);
        }

        #[test]
        fn printed_durations_read_back(ms in 0u64..10_000_000_000_000) {
            let d = Duration::from_millis(ms);
            proptest::prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }

        #[test]
        fn huge_numbers_are_errors(digits in "[1-9][0-9]{23,60}", unit in "(ms|s|m|h|d)") {
            let e = parse_duration(&format!("{digits}{unit}")).unwrap_err();
            proptest::prop_assert!(e.contains("out of range"), "{}", e);
        }
    }
}
