//! Rates (bytes per second) and sizes (bytes) in the forms people type, and back.
//!
//! Byte units are 1024-based as in upstream ChadThrottle (`500K`, `1.5M`, `500KiB/s`);
//! bit units are 1000-based as in tc (`800kbit`, `8mbit`). Parsing is exact: the decimal
//! is scaled with integer arithmetic and rounded once, so `1.5M` is 1 572 864, not a float
//! approximation of it.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The largest rate accepted: 1 TiB/s (≈ 8.8 Tbit/s), far above any NIC, and small enough
/// that the datapath's `len × 10⁹ + remainder` never overflows 64 bits.
pub const MAX_RATE: u64 = 1 << 40;

/// The largest burst or size accepted: 16 GiB.
pub const MAX_SIZE: u64 = 16 << 30;

const RATE_FORMS: &str = "a number with an optional unit: 500K, 500KB, 1.5M, 1G, 500KiB/s \
    (bytes/s, 1024-based), 800kbit, 8mbit, 1gbit (bits/s, 1000-based), or 0 to block";
const SIZE_FORMS: &str = "a number of bytes with an optional unit: 64K, 256KB, 1.5M, 1MiB \
    (1024-based)";

/// A rate in bytes per second; zero means "block". Serialised as the plain number, so a
/// rule the kernel keeps reads back as it was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Rate(u64);

impl Rate {
    /// Blocks the direction entirely.
    pub const BLOCK: Rate = Rate(0);

    /// A rate of `bytes_per_sec`, refused above [`MAX_RATE`].
    pub const fn new(bytes_per_sec: u64) -> Option<Rate> {
        if bytes_per_sec <= MAX_RATE {
            Some(Rate(bytes_per_sec))
        } else {
            None
        }
    }

    pub const fn bytes_per_sec(self) -> u64 {
        self.0
    }

    pub const fn is_block(self) -> bool {
        self.0 == 0
    }
}

impl TryFrom<u64> for Rate {
    type Error = String;

    fn try_from(bytes_per_sec: u64) -> Result<Rate, String> {
        Rate::new(bytes_per_sec)
            .ok_or_else(|| format!("rate {bytes_per_sec} B/s is above the maximum {MAX_RATE}"))
    }
}

impl From<Rate> for u64 {
    fn from(rate: Rate) -> u64 {
        rate.0
    }
}

impl fmt::Display for Rate {
    /// `1MB/s`, `976.56KB/s`, `100B/s`: the byte forms the parser accepts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_rate(self.0))
    }
}

/// A rate in bytes per second as output shows it: `1MB/s`, `976.56KB/s`, `0B/s`.
pub fn format_rate(bytes_per_sec: u64) -> String {
    format!("{}/s", format_bytes(bytes_per_sec))
}

impl FromStr for Rate {
    type Err = ParseError;

    fn from_str(input: &str) -> Result<Rate, ParseError> {
        let fail = |problem| ParseError {
            kind: Quantity::Rate,
            input: input.to_owned(),
            problem,
        };
        let trimmed = input.trim();
        let body = strip_suffix_ignore_case(trimmed, "/s").unwrap_or(trimmed);
        let (number, unit) = split_number(body).map_err(fail)?;
        let scale = rate_unit(unit).ok_or_else(|| fail(Problem::UnknownUnit(unit.to_owned())))?;
        let value = number.scaled(scale).ok_or(fail(Problem::TooLarge))?;
        if value > u128::from(MAX_RATE) {
            return Err(fail(Problem::TooLarge));
        }
        if value == 0 && !number.is_zero() {
            return Err(fail(Problem::RoundsToZero));
        }
        Ok(Rate(
            u64::try_from(value).map_err(|_| fail(Problem::TooLarge))?,
        ))
    }
}

/// A number of bytes (bursts); serialised as the plain number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Size(u64);

impl Size {
    /// A size of `bytes`, refused when zero or above [`MAX_SIZE`].
    pub const fn new(bytes: u64) -> Option<Size> {
        if bytes >= 1 && bytes <= MAX_SIZE {
            Some(Size(bytes))
        } else {
            None
        }
    }

    pub const fn bytes(self) -> u64 {
        self.0
    }
}

impl TryFrom<u64> for Size {
    type Error = String;

    fn try_from(bytes: u64) -> Result<Size, String> {
        Size::new(bytes)
            .ok_or_else(|| format!("size {bytes} is not between 1 and {MAX_SIZE} bytes"))
    }
}

impl From<Size> for u64 {
    fn from(size: Size) -> u64 {
        size.0
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_bytes(self.0))
    }
}

impl FromStr for Size {
    type Err = ParseError;

    fn from_str(input: &str) -> Result<Size, ParseError> {
        let fail = |problem| ParseError {
            kind: Quantity::Size,
            input: input.to_owned(),
            problem,
        };
        let (number, unit) = split_number(input.trim()).map_err(fail)?;
        let scale = size_unit(unit).ok_or_else(|| fail(Problem::UnknownUnit(unit.to_owned())))?;
        let value = number.scaled(scale).ok_or(fail(Problem::TooLarge))?;
        if value > u128::from(MAX_SIZE) {
            return Err(fail(Problem::TooLarge));
        }
        if value == 0 {
            return Err(fail(Problem::Zero));
        }
        Ok(Size(
            u64::try_from(value).map_err(|_| fail(Problem::TooLarge))?,
        ))
    }
}

/// A refused rate or size: names the value, what is wrong, and what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} \"{input}\": {problem}; expected {}", kind.forms())]
pub struct ParseError {
    pub kind: Quantity,
    pub input: String,
    pub problem: Problem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    Rate,
    Size,
}

impl Quantity {
    fn forms(self) -> &'static str {
        match self {
            Quantity::Rate => RATE_FORMS,
            Quantity::Size => SIZE_FORMS,
        }
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Quantity::Rate => "rate",
            Quantity::Size => "size",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("it is empty")]
    Empty,
    #[error("it is negative")]
    Negative,
    #[error("\"{0}\" is not a number")]
    NotANumber(String),
    #[error("unknown unit \"{0}\"")]
    UnknownUnit(String),
    #[error("it is above the maximum")]
    TooLarge,
    #[error("it rounds to 0 bytes per second (write 0 to block)")]
    RoundsToZero,
    #[error("it must be at least 1 byte")]
    Zero,
}

/// A decimal number as typed: `digits` with `fraction_digits` of them after the point.
#[derive(Debug, Clone, Copy)]
struct Decimal {
    digits: u128,
    fraction_digits: u32,
}

/// Scale factor of a unit, as the exact fraction `numerator / denominator` bytes.
#[derive(Debug, Clone, Copy)]
struct Scale {
    numerator: u128,
    denominator: u128,
}

impl Decimal {
    fn is_zero(self) -> bool {
        self.digits == 0
    }

    /// `self × scale`, rounded half up to whole bytes; `None` on overflow.
    fn scaled(self, scale: Scale) -> Option<u128> {
        let numerator = self.digits.checked_mul(scale.numerator)?;
        let denominator = 10u128
            .checked_pow(self.fraction_digits)?
            .checked_mul(scale.denominator)?;
        Some(numerator / denominator + u128::from(numerator % denominator * 2 >= denominator))
    }
}

/// At most this many digits: keeps every intermediate product inside u128.
const MAX_DIGITS: usize = 24;

fn split_number(text: &str) -> Result<(Decimal, &str), Problem> {
    if text.is_empty() {
        return Err(Problem::Empty);
    }
    if text.starts_with('-') {
        return Err(Problem::Negative);
    }
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(end);
    let not_a_number = || Problem::NotANumber(number.to_owned());
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digit_count = whole.len() + fraction.len();
    if digit_count == 0 || fraction.contains('.') || digit_count > MAX_DIGITS {
        return Err(not_a_number());
    }
    let digits = format!("{whole}{fraction}")
        .parse::<u128>()
        .map_err(|_| not_a_number())?;
    let fraction_digits = u32::try_from(fraction.len()).map_err(|_| not_a_number())?;
    Ok((
        Decimal {
            digits,
            fraction_digits,
        },
        unit.trim(),
    ))
}

fn strip_suffix_ignore_case<'a>(text: &'a str, suffix: &str) -> Option<&'a str> {
    let split = text.len().checked_sub(suffix.len())?;
    let (head, tail) = (text.get(..split)?, text.get(split..)?);
    tail.eq_ignore_ascii_case(suffix).then_some(head)
}

const fn bytes(multiplier: u128) -> Scale {
    Scale {
        numerator: multiplier,
        denominator: 1,
    }
}

const fn bits(multiplier: u128) -> Scale {
    Scale {
        numerator: multiplier,
        denominator: 8,
    }
}

fn size_unit(unit: &str) -> Option<Scale> {
    const KI: u128 = 1024;
    Some(match unit.to_ascii_lowercase().as_str() {
        "" | "b" => bytes(1),
        "k" | "kb" | "kib" => bytes(KI),
        "m" | "mb" | "mib" => bytes(KI.pow(2)),
        "g" | "gb" | "gib" => bytes(KI.pow(3)),
        "t" | "tb" | "tib" => bytes(KI.pow(4)),
        _ => return None,
    })
}

fn rate_unit(unit: &str) -> Option<Scale> {
    size_unit(unit).or_else(|| {
        Some(match unit.to_ascii_lowercase().as_str() {
            "bit" => bits(1),
            "kbit" => bits(1_000),
            "mbit" => bits(1_000_000),
            "gbit" => bits(1_000_000_000),
            "tbit" => bits(1_000_000_000_000),
            _ => return None,
        })
    })
}

/// `1MB`, `976.56KB`, `100B`: the largest 1024-based unit that keeps the number ≥ 1, at
/// most two decimals, trailing zeros dropped. The result parses back as a [`Size`].
pub fn format_bytes(value: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    let Some((index, unit)) = UNITS
        .iter()
        .enumerate()
        .rev()
        .find(|(index, _)| value >> (10 * (index + 1)) > 0)
    else {
        return format!("{value}B");
    };
    let divisor = 1u128 << (10 * (index + 1));
    let hundredths = (u128::from(value) * 100 + divisor / 2) / divisor;
    let (whole, fraction) = (hundredths / 100, hundredths % 100);
    match fraction {
        0 => format!("{whole}{unit}"),
        f if f % 10 == 0 => format!("{whole}.{}{unit}", f / 10),
        f => format!("{whole}.{f:02}{unit}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(text: &str) -> u64 {
        match text.parse::<Rate>() {
            Ok(rate) => rate.bytes_per_sec(),
            Err(error) => panic!("{text}: {error}"),
        }
    }

    #[test]
    fn byte_units_are_1024_based_and_case_insensitive() {
        assert_eq!(rate("500K"), 512_000);
        assert_eq!(rate("500KB"), 512_000);
        assert_eq!(rate("500kb"), 512_000);
        assert_eq!(rate("500KiB/s"), 512_000);
        assert_eq!(rate("1.5M"), 1_572_864);
        assert_eq!(rate("1G"), 1 << 30);
        assert_eq!(rate("1 M"), 1 << 20);
        assert_eq!(rate("1000"), 1000);
        assert_eq!(rate("1000B/S"), 1000);
        assert_eq!(rate("1"), 1);
    }

    #[test]
    fn bit_units_are_1000_based() {
        assert_eq!(rate("800kbit"), 100_000);
        assert_eq!(rate("8mbit"), 1_000_000);
        assert_eq!(rate("8Mbit"), 1_000_000);
        assert_eq!(rate("1gbit"), 125_000_000);
        assert_eq!(rate("100gbit"), 12_500_000_000);
        assert_eq!(rate("12bit"), 2, "1.5 rounds half up");
    }

    #[test]
    fn zero_blocks() {
        assert!(Rate::from_str("0").is_ok_and(Rate::is_block));
        assert!(Rate::from_str("0K").is_ok_and(Rate::is_block));
    }

    #[test]
    fn refusals_name_the_value_and_the_accepted_forms() {
        for (input, problem) in [
            ("-1M", Problem::Negative),
            ("1.2.3M", Problem::NotANumber("1.2.3".into())),
            ("5X", Problem::UnknownUnit("X".into())),
            ("", Problem::Empty),
            ("kbit", Problem::NotANumber(String::new())),
            ("99999999999999999999G", Problem::TooLarge),
            ("2T", Problem::TooLarge),
            ("0.1bit", Problem::RoundsToZero),
            ("5kbps", Problem::UnknownUnit("kbps".into())),
            ("1e6", Problem::UnknownUnit("e6".into())),
            (
                "9999999999999999999999999999",
                Problem::NotANumber("9999999999999999999999999999".into()),
            ),
        ] {
            let error = match input.parse::<Rate>() {
                Ok(rate) => panic!("{input} was accepted as {rate}"),
                Err(error) => error,
            };
            assert_eq!(error.problem, problem, "{input}");
            let message = error.to_string();
            assert!(message.contains(&format!("\"{input}\"")), "{message}");
            assert!(
                message.contains("500K") && message.contains("8mbit"),
                "{message}"
            );
            assert!(!message.contains('\n'), "one line: {message}");
        }
    }

    #[test]
    fn the_extremes_are_exact() {
        assert_eq!(rate("1T"), MAX_RATE);
        assert_eq!(rate("1099511627776"), MAX_RATE);
        assert!("1099511627777".parse::<Rate>().is_err());
        assert_eq!(rate("0.001K"), 1, "1.024 bytes rounds to 1");
    }

    #[test]
    fn formatting_uses_the_largest_unit_and_parses_back() {
        assert_eq!(format_bytes(0), "0B");
        assert_eq!(format_bytes(100), "100B");
        assert_eq!(format_bytes(1023), "1023B");
        assert_eq!(format_bytes(1024), "1KB");
        assert_eq!(format_bytes(512_000), "500KB");
        assert_eq!(format_bytes(1_572_864), "1.5MB");
        assert_eq!(format_bytes(1_000_000), "976.56KB");
        assert_eq!(format_bytes(1 << 40), "1TB");
        assert_eq!(Rate(1 << 20).to_string(), "1MB/s");
        for value in [
            1,
            999,
            1024,
            1536,
            512_000,
            1_048_576,
            123_456_789,
            MAX_RATE,
        ] {
            let shown = Rate(value).to_string();
            let back = rate(&shown);
            let error = back.abs_diff(value) as f64 / value as f64;
            assert!(error < 0.005, "{value} → {shown} → {back}");
        }
    }

    #[test]
    fn sizes_refuse_zero_and_bits() {
        assert_eq!("64K".parse::<Size>().map(Size::bytes), Ok(65_536));
        assert_eq!("1.5MiB".parse::<Size>().map(Size::bytes), Ok(1_572_864));
        assert!(matches!(
            "0".parse::<Size>(),
            Err(ParseError {
                problem: Problem::Zero,
                ..
            })
        ));
        assert!(matches!(
            "8mbit".parse::<Size>(),
            Err(ParseError {
                problem: Problem::UnknownUnit(_),
                ..
            })
        ));
        assert!("17G".parse::<Size>().is_err());
        let message = "-1".parse::<Size>().map(|_| ()).unwrap_err().to_string();
        assert!(message.starts_with("invalid size \"-1\""), "{message}");
    }
}
