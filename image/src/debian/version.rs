//! Debian version comparison, exactly as dpkg does it (`lib/dpkg/version.c`).
//!
//! A version is `[epoch:]upstream[-revision]`. Epochs compare numerically; upstream
//! and revision compare with `verrevcmp`: alternating runs of non-digits (compared
//! character by character, letters before other characters, `~` before everything,
//! even the end of the string) and digits (compared numerically).

use std::cmp::Ordering;

/// Compares two Debian version strings.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| verrevcmp(ua.as_bytes(), ub.as_bytes()))
        .then_with(|| verrevcmp(ra.as_bytes(), rb.as_bytes()))
}

/// Splits into (epoch, upstream, revision); a missing revision is empty, which
/// compares equal to "0" as in dpkg.
fn split(v: &str) -> (u64, &str, &str) {
    let v = v.trim();
    let (epoch, rest) = match v.split_once(':') {
        Some((e, rest)) if !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit()) => {
            (e.parse().unwrap_or(u64::MAX), rest)
        }
        _ => (0, v),
    };
    match rest.rsplit_once('-') {
        Some((up, rev)) => (epoch, up, rev),
        None => (epoch, rest, ""),
    }
}

/// dpkg's character weight for the non-digit parts.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

fn verrevcmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    let digit = |s: &[u8], k: usize| s.get(k).is_some_and(u8::is_ascii_digit);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !digit(a, i)) || (j < b.len() && !digit(b, j)) {
            let (ac, bc) = (order(a.get(i).copied()), order(b.get(j).copied()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while digit(a, i) && digit(b, j) {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if digit(a, i) {
            return Ordering::Greater;
        }
        if digit(b, j) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

/// A version relation as written in `Depends` (`<<`, `<=`, `=`, `>=`, `>>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    Less,
    LessEq,
    Eq,
    GreaterEq,
    Greater,
}

impl Relation {
    /// Parses an operator; the obsolete `<` and `>` mean `<=` and `>=` (dpkg).
    pub fn parse(op: &str) -> Option<Relation> {
        Some(match op {
            "<<" => Relation::Less,
            "<=" | "<" => Relation::LessEq,
            "=" => Relation::Eq,
            ">=" | ">" => Relation::GreaterEq,
            ">>" => Relation::Greater,
            _ => return None,
        })
    }

    /// Whether `candidate <op> wanted` holds.
    pub fn satisfied_by(self, candidate: &str, wanted: &str) -> bool {
        let ord = compare(candidate, wanted);
        match self {
            Relation::Less => ord == Ordering::Less,
            Relation::LessEq => ord != Ordering::Greater,
            Relation::Eq => ord == Ordering::Equal,
            Relation::GreaterEq => ord != Ordering::Less,
            Relation::Greater => ord == Ordering::Greater,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Relation::Less => "<<",
            Relation::LessEq => "<=",
            Relation::Eq => "=",
            Relation::GreaterEq => ">=",
            Relation::Greater => ">>",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    #[track_caller]
    fn check(a: &str, b: &str, want: Ordering) {
        assert_eq!(compare(a, b), want, "{a} vs {b}");
        assert_eq!(compare(b, a), want.reverse(), "{b} vs {a}");
    }

    // Cases from dpkg's lib/dpkg/t/t-version.c and the Debian Policy examples.
    #[test]
    fn dpkg_cases() {
        check("0", "0", Equal);
        check("0", "00", Equal);
        check("1", "1", Equal);
        check("0:0", "0:0", Equal);
        check("0:0-0", "0:0-0", Equal);
        check("0:0.0-0.0", "0:0.0-0.0", Equal);
        check("1.0", "1.0-0", Equal);
        check("1:0", "0:0", Greater);
        check("1:0", "2", Greater);
        check("0:1", "0:0", Greater);
        check("0:0-1", "0:0-0", Greater);
        check("0:a", "0:0", Greater);
        check("0:a", "0:b", Less);
        check("0:9", "0:10", Less);
        check("0:1.10", "0:1.9", Greater);
        check("0:0-a", "0:0-0", Greater);
        check("0:0~", "0:0", Less);
        check("0:0~~", "0:0~", Less);
        check("0:0~~a", "0:0~~", Greater);
        check("1.0~rc1", "1.0", Less);
        check("1.0~rc1", "1.0~rc2", Less);
        check("1.0~~", "1.0~", Less);
        check("1.0", "1.0+b1", Less);
        check("1.0-1", "1.0-1+deb12u1", Less);
        check("1.0a", "1.0", Greater);
        check("1.0a", "1.0+", Less);
        check("2.30-1", "2.4-1", Greater);
        check("6.1.0-21", "6.1.0-9", Greater);
        check("6.1.137-1", "6.1.140-1", Less);
        check("1:1.2.3", "1.2.4", Greater);
        check("1.2-3-4", "1.2-3-5", Less);
    }

    #[test]
    fn relations() {
        let r = |op| Relation::parse(op).unwrap();
        assert!(r(">=").satisfied_by("4.3", "4.3~"));
        assert!(r("<<").satisfied_by("1.0~rc1", "1.0"));
        assert!(!r("<<").satisfied_by("1.0", "1.0"));
        assert!(r("=").satisfied_by("1.0-0", "1.0"));
        assert!(r(">>").satisfied_by("1:0", "9"));
        assert!(r("<=").satisfied_by("1", "1"));
        assert!(r("<").satisfied_by("1", "1"), "obsolete < means <=");
        assert_eq!(Relation::parse("!="), None);
    }
}
