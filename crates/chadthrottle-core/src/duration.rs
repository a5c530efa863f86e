//! Durations as typed on the command line (`--for 10m`, upstream's `--duration 30`).

use std::time::Duration;

/// The longest duration accepted: 366 days. Longer is a typo, not a plan.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration \"{input}\": {problem}; expected seconds (30) or a number with a unit, \
     combinable: 500ms, 30s, 5m, 2h, 1d, 1h30m (at most 366d)"
)]
pub struct DurationError {
    pub input: String,
    pub problem: &'static str,
}

/// Parses `30` (seconds), `500ms`, `30s`, `5m`, `2h`, `1d` and sums like `1h30m`.
/// Zero is refused: a limit that ends before it starts is a mistake.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let fail = |problem| DurationError {
        input: input.to_owned(),
        problem,
    };
    let text = input.trim();
    if text.is_empty() {
        return Err(fail("it is empty"));
    }
    if let Ok(seconds) = text.parse::<u64>() {
        return checked(Duration::from_secs(seconds)).map_err(fail);
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .ok_or(fail("a number has no unit"))?;
        if digits_end == 0 {
            return Err(fail(if rest.starts_with('-') {
                "it is negative"
            } else {
                "a unit has no number"
            }));
        }
        let (number, after) = rest.split_at(digits_end);
        let unit_end = after
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let number: u64 = number.parse().map_err(|_| fail("a number is too large"))?;
        let nanos_per_unit: u128 = match unit.trim().to_ascii_lowercase().as_str() {
            "ms" => 1_000_000,
            "s" | "sec" => 1_000_000_000,
            "m" | "min" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "d" => 86_400_000_000_000,
            _ => return Err(fail("unknown unit")),
        };
        let nanos = u128::from(number) * nanos_per_unit;
        let part = u64::try_from(nanos)
            .map(Duration::from_nanos)
            .map_err(|_| fail("it is too long"))?;
        total = total.checked_add(part).ok_or(fail("it is too long"))?;
        rest = next;
    }
    checked(total).map_err(fail)
}

fn checked(duration: Duration) -> Result<Duration, &'static str> {
    if duration.is_zero() {
        Err("it must be longer than zero")
    } else if duration > MAX_DURATION {
        Err("it is too long")
    } else {
        Ok(duration)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_seconds_units_and_sums() {
        let secs = Duration::from_secs;
        assert_eq!(parse_duration("30"), Ok(secs(30)));
        assert_eq!(parse_duration("30s"), Ok(secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5m"), Ok(secs(300)));
        assert_eq!(parse_duration("2h"), Ok(secs(7200)));
        assert_eq!(parse_duration("1d"), Ok(secs(86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(secs(5400)));
        assert_eq!(parse_duration(" 1m 5s "), Ok(secs(65)));
    }

    #[test]
    fn refuses_with_the_value_named() {
        for input in [
            "",
            "0",
            "0s",
            "-5s",
            "5x",
            "h",
            "367d",
            "99999999999999999999d",
        ] {
            let error = parse_duration(input).expect_err(input);
            assert!(
                error.to_string().contains(&format!("\"{input}\"")),
                "{error}"
            );
        }
    }
}
