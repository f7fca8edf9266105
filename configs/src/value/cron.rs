//! Cron schedules: the classic five fields (minute hour day-of-month month
//! day-of-week), each `*`, a number, a range `a-b`, a step `*/n` or `a-b/n`, or a
//! comma list of those. Month and weekday names (`jan`, `mon`) are accepted.

use std::fmt;

use super::{string_value, ValueError};

/// A validated five-field cron expression, e.g. `"30 2 * * *"` (02:30 daily).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CronSchedule(String);

impl CronSchedule {
    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

const FIELDS: [(&str, u32, u32); 5] = [
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
];
const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn value(field: usize, s: &str, min: u32, max: u32) -> Option<u32> {
    let named = match field {
        3 => MONTHS
            .iter()
            .position(|m| m.eq_ignore_ascii_case(s))
            .map(|i| i as u32 + 1),
        4 => DAYS
            .iter()
            .position(|d| d.eq_ignore_ascii_case(s))
            .map(|i| i as u32),
        _ => None,
    };
    named
        .or_else(|| s.parse().ok())
        .filter(|n| (min..=max).contains(n))
}

fn check_field(field: usize, text: &str) -> Result<(), String> {
    let (name, min, max) = FIELDS[field];
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (item, None),
        };
        if let Some(step) = step {
            if !step.parse::<u32>().is_ok_and(|s| s >= 1 && s <= max) {
                return Err(format!("{name}: bad step {step:?}"));
            }
        }
        if range == "*" {
            continue;
        }
        let (lo, hi) = match range.split_once('-') {
            Some((a, b)) => (a, Some(b)),
            None => (range, None),
        };
        let lo = value(field, lo, min, max)
            .ok_or_else(|| format!("{name}: {lo:?} is not in {min}..={max}"))?;
        if let Some(hi) = hi {
            let hi = value(field, hi, min, max)
                .ok_or_else(|| format!("{name}: {hi:?} is not in {min}..={max}"))?;
            if hi < lo {
                return Err(format!("{name}: range {range:?} is backwards"));
            }
        }
    }
    Ok(())
}

impl TryFrom<String> for CronSchedule {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        let fields: Vec<&str> = s.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(ValueError::invalid(
                "cron schedule",
                &s,
                format!(
                    "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
                    fields.len()
                ),
            ));
        }
        for (i, f) in fields.iter().enumerate() {
            check_field(i, f).map_err(|r| ValueError::invalid("cron schedule", &s, r))?;
        }
        Ok(Self(s))
    }
}

impl fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
string_value!(CronSchedule, "CronSchedule", {
    "type": "string",
    "description": "five-field cron expression: minute hour day-of-month month day-of-week",
    "pattern": "^\\s*\\S+(\\s+\\S+){4}\\s*$"
});

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> bool {
        CronSchedule::try_from(s.to_owned()).is_ok()
    }

    #[test]
    fn schedules() {
        assert!(ok("30 2 * * *"));
        assert!(ok("*/15 * * * mon-fri"));
        assert!(ok("0 0 1,15 jan-jun 0"));
        assert!(ok("0 3 * * 7"));
        assert!(!ok("30 2 * *"));
        assert!(!ok("60 2 * * *"));
        assert!(!ok("0 24 * * *"));
        assert!(!ok("0 0 0 * *"));
        assert!(!ok("0 0 * * */0"));
        assert!(!ok("0 5-2 * * *"));
        assert!(!ok("@daily"));
    }
}
