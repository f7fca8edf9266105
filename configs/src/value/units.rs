//! Quantities written with units: durations (`"90s"`, `"30m"`, `"1h"`, `"1d"`,
//! `"1h30m"`) and byte sizes (`"64MiB"`, `"10GB"`, `"4096"`).

use std::fmt;

use super::{string_value, ValueError};

/// A span of time, whole seconds. Written as one or more `<number><unit>` groups,
/// units `s`, `m`, `h`, `d`, `w`: `"3600s"`, `"1h"`, `"1h30m"`, `"0s"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Duration(u64);

impl Duration {
    /// A duration of `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self(secs)
    }

    /// Whole seconds.
    pub fn as_secs(&self) -> u64 {
        self.0
    }

    /// As a std duration.
    pub fn to_std(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.0)
    }
}

const DURATION_UNITS: [(char, u64); 5] = [
    ('w', 604_800),
    ('d', 86_400),
    ('h', 3_600),
    ('m', 60),
    ('s', 1),
];

impl TryFrom<String> for Duration {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        let bad = |reason: &str| ValueError::invalid("duration", &s, reason);
        if s.is_empty() {
            return Err(bad("empty; write e.g. \"30s\", \"5m\", \"1h\", \"1d\""));
        }
        let mut total: u64 = 0;
        let mut digits = String::new();
        for c in s.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let (_, mult) = DURATION_UNITS
                .iter()
                .find(|(u, _)| *u == c)
                .ok_or_else(|| bad(&format!("unknown unit {c:?}; use s, m, h, d or w")))?;
            let n: u64 = digits
                .parse()
                .map_err(|_| bad("expected a number before each unit"))?;
            digits.clear();
            total = n
                .checked_mul(*mult)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(|| bad("too large"))?;
        }
        if !digits.is_empty() {
            return Err(bad("missing unit after the last number (s, m, h, d or w)"));
        }
        Ok(Self(total))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0s");
        }
        let mut rest = self.0;
        for (unit, secs) in DURATION_UNITS {
            if rest >= secs {
                write!(f, "{}{unit}", rest / secs)?;
                rest %= secs;
            }
        }
        Ok(())
    }
}
string_value!(Duration, "Duration", {
    "type": "string",
    "description": "duration like \"30s\", \"5m\", \"1h\", \"1d\", \"1h30m\"",
    "pattern": "^([0-9]+[smhdw])+$"
});

/// A number of bytes. Written as a number with an optional unit: `B`, decimal
/// `KB`/`MB`/`GB`/`TB` (powers of 1000) or binary `KiB`/`MiB`/`GiB`/`TiB` (powers of
/// 1024): `"64MiB"`, `"10GB"`, `"4096"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Size(u64);

impl Size {
    /// A size of `bytes` bytes.
    pub const fn from_bytes(bytes: u64) -> Self {
        Self(bytes)
    }

    /// The number of bytes.
    pub fn bytes(&self) -> u64 {
        self.0
    }
}

const SIZE_UNITS: [(&str, u64); 9] = [
    ("TiB", 1 << 40),
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("TB", 1_000_000_000_000),
    ("GB", 1_000_000_000),
    ("MB", 1_000_000),
    ("KB", 1_000),
    ("B", 1),
];

impl TryFrom<String> for Size {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        let bad = |reason: &str| ValueError::invalid("size", &s, reason);
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| bad("expected a number with an optional unit, e.g. \"64MiB\""))?;
        let mult = if unit.trim().is_empty() {
            1
        } else {
            SIZE_UNITS
                .iter()
                .find(|(u, _)| *u == unit.trim())
                .map(|(_, m)| *m)
                .ok_or_else(|| bad("unknown unit; use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB"))?
        };
        n.checked_mul(mult)
            .map(Self)
            .ok_or_else(|| bad("too large"))
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The largest unit that divides evenly, so the text parses back exactly.
        let (unit, mult) = SIZE_UNITS
            .iter()
            .filter(|(_, m)| self.0 != 0 && self.0.is_multiple_of(*m))
            .max_by_key(|(_, m)| *m)
            .copied()
            .unwrap_or(("B", 1));
        write!(f, "{}{unit}", self.0 / mult)
    }
}
string_value!(Size, "Size", {
    "type": "string",
    "description": "byte size like \"64MiB\", \"10GB\", \"4096\"",
    "pattern": "^[0-9]+ ?([KMGT]i?B|B)?$"
});

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Result<u64, ValueError> {
        Duration::try_from(s.to_owned()).map(|d| d.as_secs())
    }

    fn sz(s: &str) -> Result<u64, ValueError> {
        Size::try_from(s.to_owned()).map(|d| d.bytes())
    }

    #[test]
    fn durations() {
        assert_eq!(d("3600s"), Ok(3600));
        assert_eq!(d("1h"), Ok(3600));
        assert_eq!(d("30m"), Ok(1800));
        assert_eq!(d("1d"), Ok(86400));
        assert_eq!(d("1h30m"), Ok(5400));
        assert!(d("").is_err());
        assert!(d("10").is_err());
        assert!(d("h").is_err());
        assert!(d("5y").is_err());
        assert_eq!(Duration::from_secs(5400).to_string(), "1h30m");
        assert_eq!(Duration::from_secs(0).to_string(), "0s");
    }

    #[test]
    fn sizes() {
        assert_eq!(sz("64MiB"), Ok(64 << 20));
        assert_eq!(sz("10GB"), Ok(10_000_000_000));
        assert_eq!(sz("4096"), Ok(4096));
        assert_eq!(sz("1 KiB"), Ok(1024));
        assert!(sz("12XB").is_err());
        assert!(sz("MiB").is_err());
        assert_eq!(Size::from_bytes(64 << 20).to_string(), "64MiB");
        assert_eq!(Size::from_bytes(10_000_000_000).to_string(), "10GB");
        assert_eq!(Size::from_bytes(1500).to_string(), "1500B");
    }
}
