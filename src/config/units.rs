//! Human-readable sizes ("40G") and durations ("15m") as they appear in appliance.toml.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// appliance.toml holds these as the strings people write ("40G", "15m"): serde goes
/// through `Display` and `FromStr`, so a file and `--json` read alike.
macro_rules! serde_as_string {
    ($($ty:ty),*) => {$(
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

serde_as_string!(Size, Span);

/// A byte count written with a binary suffix: `512M`, `40G`, `1T` (K/M/G/T = 1024^n).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Size(pub u64);

impl Size {
    pub const KIB: u64 = 1024;
    pub const MIB: u64 = 1024 * 1024;
    pub const GIB: u64 = 1024 * 1024 * 1024;
    pub const TIB: u64 = 1024 * 1024 * 1024 * 1024;

    pub fn bytes(self) -> u64 {
        self.0
    }
    pub fn mib(self) -> u64 {
        self.0 / Self::MIB
    }
    /// Saturates at u64::MAX bytes rather than wrapping to a small size.
    pub fn from_mib(mib: u64) -> Self {
        Size(mib.saturating_mul(Self::MIB))
    }
    pub fn from_gib(gib: u64) -> Self {
        Size(gib.saturating_mul(Self::GIB))
    }
}

impl FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let hint =
            "write a whole number with a suffix K, M, G or T, e.g. \"512M\", \"40G\", \"1T\"";
        if t.is_empty() {
            return Err(format!("empty size: {hint}"));
        }
        let (num, mult) = match t.char_indices().last() {
            Some((i, c)) if c.is_ascii_alphabetic() => {
                let m = match c.to_ascii_uppercase() {
                    'B' => 1,
                    'K' => Size::KIB,
                    'M' => Size::MIB,
                    'G' => Size::GIB,
                    'T' => Size::TIB,
                    _ => return Err(format!("unknown size suffix '{c}' in \"{s}\": {hint}")),
                };
                (&t[..i], m)
            }
            _ => return Err(format!("\"{s}\" has no unit: {hint}")),
        };
        let n: u64 = num
            .trim()
            .parse()
            .map_err(|_| format!("\"{s}\" is not a size: {hint}"))?;
        n.checked_mul(mult)
            .map(Size)
            .ok_or_else(|| format!("\"{s}\" is too large"))
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        for (unit, m) in [
            ('T', Size::TIB),
            ('G', Size::GIB),
            ('M', Size::MIB),
            ('K', Size::KIB),
        ] {
            if b >= m && b.is_multiple_of(m) {
                return write!(f, "{}{}", b / m, unit);
            }
        }
        write!(f, "{b}B")
    }
}

/// A size that may be `"auto"`: computed by a documented rule (see `config::partitions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AutoSize {
    #[default]
    Auto,
    Fixed(Size),
}

impl fmt::Display for AutoSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AutoSize::Auto => f.write_str("auto"),
            AutoSize::Fixed(s) => s.fmt(f),
        }
    }
}

impl Serialize for AutoSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AutoSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim().eq_ignore_ascii_case("auto") {
            return Ok(AutoSize::Auto);
        }
        s.parse::<Size>()
            .map(AutoSize::Fixed)
            .map_err(|e| serde::de::Error::custom(format!("{e}, or \"auto\"")))
    }
}

/// A duration written as a number and a unit: `30s`, `15m`, `24h`, `7d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Span(pub std::time::Duration);

impl Span {
    pub fn secs(self) -> u64 {
        self.0.as_secs()
    }
}

impl FromStr for Span {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let hint = "write a whole number with a unit s, m, h or d, e.g. \"15m\", \"24h\"";
        let Some(unit) = t.chars().last().filter(|c| c.is_ascii_alphabetic()) else {
            return Err(format!("\"{s}\" has no unit: {hint}"));
        };
        let mult = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(format!("unknown duration unit '{unit}' in \"{s}\": {hint}")),
        };
        let n: u64 = t[..t.len() - 1]
            .trim()
            .parse()
            .map_err(|_| format!("\"{s}\" is not a duration: {hint}"))?;
        let secs = n
            .checked_mul(mult)
            .ok_or_else(|| format!("\"{s}\" is too long"))?;
        Ok(Span(std::time::Duration::from_secs(secs)))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.as_secs();
        for (unit, m) in [('d', 86400), ('h', 3600), ('m', 60)] {
            if s >= m && s.is_multiple_of(m) {
                return write!(f, "{}{}", s / m, unit);
            }
        }
        write!(f, "{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print_back() {
        for (text, bytes) in [
            ("40G", 40 * Size::GIB),
            ("512M", 512 * Size::MIB),
            ("1T", Size::TIB),
            ("4g", 4 * Size::GIB),
        ] {
            let s: Size = text.parse().unwrap();
            assert_eq!(s.bytes(), bytes);
            assert_eq!(s.to_string(), text.to_uppercase());
        }
        assert_eq!(Size(1536 * Size::MIB).to_string(), "1536M");
    }

    #[test]
    fn bad_sizes_say_what_is_right() {
        for bad in ["", "40", "40X", "G", "-1G", "99999999999T"] {
            let e = bad.parse::<Size>().unwrap_err();
            assert!(!e.is_empty(), "{bad}");
        }
        assert!("40".parse::<Size>().unwrap_err().contains("\"40G\""));
    }

    #[test]
    fn spans_parse_and_print_back() {
        assert_eq!("15m".parse::<Span>().unwrap().secs(), 900);
        assert_eq!("24h".parse::<Span>().unwrap().secs(), 86400);
        assert_eq!("90s".parse::<Span>().unwrap().to_string(), "90s");
        assert_eq!("60m".parse::<Span>().unwrap().to_string(), "1h");
        assert!("15".parse::<Span>().is_err());
        assert!("15w".parse::<Span>().is_err());
    }
}
