//! Names: host and domain names (RFC 1123), user names, segment and object names,
//! time zones, and Debian package / kernel module names.

use serde::{Deserialize, Deserializer};

use super::{string_value, text_newtype, ValueError};

/// Check one RFC 1123 label: 1..=63 of `[A-Za-z0-9-]`, no leading/trailing `-`.
fn label_error(label: &str) -> Option<&'static str> {
    if label.is_empty() {
        Some("empty label")
    } else if label.len() > 63 {
        Some("label longer than 63 bytes")
    } else if !label
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        Some("only letters, digits and '-' are allowed")
    } else if label.starts_with('-') || label.ends_with('-') {
        Some("a label must not start or end with '-'")
    } else {
        None
    }
}

fn dns_name_error(s: &str) -> Option<&'static str> {
    if s.len() > 253 {
        return Some("longer than 253 bytes");
    }
    s.split('.').find_map(label_error)
}

text_newtype!(
    /// A host name: one or more RFC 1123 labels separated by dots (`nas`,
    /// `nas.home.arpa`).
    Hostname
);

impl TryFrom<String> for Hostname {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        match dns_name_error(&s) {
            Some(r) => Err(ValueError::invalid("hostname", &s, r)),
            None => Ok(Self(s)),
        }
    }
}
string_value!(Hostname, "Hostname", {
    "type": "string", "maxLength": 253,
    "pattern": "^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
});

text_newtype!(
    /// A DNS domain name (`home.arpa`); a trailing dot is accepted and dropped.
    DomainName
);

impl TryFrom<String> for DomainName {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        let name = s.strip_suffix('.').unwrap_or(&s);
        match dns_name_error(name) {
            Some(r) => Err(ValueError::invalid("domain name", &s, r)),
            None => Ok(Self(name.to_owned())),
        }
    }
}
string_value!(DomainName, "DomainName", {
    "type": "string", "maxLength": 254, "pattern": "^[A-Za-z0-9.-]+$"
});

text_newtype!(
    /// A login name: `[a-z_][a-z0-9_-]*`, at most 32 bytes (Debian's `adduser` rule).
    UserName
);

impl TryFrom<String> for UserName {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        let first_ok = s
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
        let rest_ok = s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !first_ok || !rest_ok || s.len() > 32 {
            return Err(ValueError::invalid(
                "user name",
                &s,
                "expected [a-z_][a-z0-9_-]*, at most 32 bytes",
            ));
        }
        Ok(Self(s))
    }
}
string_value!(UserName, "UserName", {
    "type": "string", "maxLength": 32, "pattern": "^[a-z_][a-z0-9_-]*$"
});

text_newtype!(
    /// A network segment name: `[a-z][a-z0-9-]*`, at most 12 bytes so derived
    /// interface names (`br-<name>`) fit IFNAMSIZ. `lan`, `wan` and `all` are reserved
    /// firewall zone names.
    SegmentName
);

impl TryFrom<String> for SegmentName {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        let shape = s.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && s.len() <= 12;
        if !shape {
            return Err(ValueError::invalid(
                "segment name",
                &s,
                "expected [a-z][a-z0-9-]*, at most 12 bytes",
            ));
        }
        if matches!(s.as_str(), "lan" | "wan" | "all") {
            return Err(ValueError::invalid(
                "segment name",
                &s,
                "reserved (lan, wan and all are built-in zone names)",
            ));
        }
        Ok(Self(s))
    }
}
string_value!(SegmentName, "SegmentName", {
    "type": "string", "maxLength": 12, "pattern": "^[a-z][a-z0-9-]*$",
    "not": {"enum": ["lan", "wan", "all"]}
});

text_newtype!(
    /// The name of a configured object (array, share, job, rule, zone...):
    /// `[A-Za-z0-9][A-Za-z0-9_.-]*`, at most 64 bytes.
    Name
);

impl TryFrom<String> for Name {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        let ok = s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
            && s.len() <= 64;
        if !ok {
            return Err(ValueError::invalid(
                "name",
                &s,
                "expected [A-Za-z0-9][A-Za-z0-9_.-]*, at most 64 bytes",
            ));
        }
        Ok(Self(s))
    }
}
string_value!(Name, "Name", {
    "type": "string", "maxLength": 64, "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$"
});

text_newtype!(
    /// An IANA time zone name: `UTC` or `Area/Location` (`Europe/Berlin`,
    /// `America/Argentina/Buenos_Aires`). Only the shape is checked; the image's
    /// zoneinfo decides whether it exists.
    Timezone
);

impl TryFrom<String> for Timezone {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        let part_ok = |p: &str| {
            p.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'+'))
        };
        if s.len() > 64 || !s.split('/').all(part_ok) {
            return Err(ValueError::invalid(
                "time zone",
                &s,
                "expected UTC or Area/Location like Europe/Berlin",
            ));
        }
        Ok(Self(s))
    }
}
string_value!(Timezone, "Timezone", {
    "type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z][A-Za-z0-9_+-]*)*$"
});

impl Default for Timezone {
    fn default() -> Self {
        Self("UTC".to_owned())
    }
}

/// Debian policy 5.6.1: lower case letters, digits, `+`, `-`, `.`; at least two
/// characters; starts with a letter or digit.
fn check_package(s: &str) -> Result<(), ValueError> {
    let ok = s.len() >= 2
        && s.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.')
        });
    if ok {
        Ok(())
    } else {
        Err(ValueError::invalid(
            "Debian package name",
            s,
            "expected [a-z0-9][a-z0-9+.-]+ (Debian policy 5.6.1)",
        ))
    }
}

/// A kernel module name: letters, digits, `_` and `-`, at most 55 bytes
/// (MODULE_NAME_LEN - 1).
fn check_module(s: &str) -> Result<(), ValueError> {
    let ok = !s.is_empty()
        && s.len() <= 55
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ValueError::invalid(
            "kernel module name",
            s,
            "expected [A-Za-z0-9_-]+, at most 55 bytes",
        ))
    }
}

/// `deserialize_with` for a Debian package name kept as `String`.
pub(crate) fn package_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    check_package(&s).map_err(serde::de::Error::custom)?;
    Ok(s)
}

/// One list item checked by its own `Deserialize`, which is where `toml` attaches the
/// item's span to the error (so a bad item is reported at its own position).
macro_rules! checked_item {
    ($item:ident, $check:ident) => {
        struct $item(String);
        impl<'de> Deserialize<'de> for $item {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $check(&s).map_err(serde::de::Error::custom)?;
                Ok(Self(s))
            }
        }
    };
}
checked_item!(PackageItem, check_package);
checked_item!(ModuleItem, check_module);

/// `deserialize_with` for a list of Debian package names kept as `Vec<String>`.
pub(crate) fn package_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let items: Vec<PackageItem> = super::list(d)?;
    Ok(items.into_iter().map(|i| i.0).collect())
}

/// `deserialize_with` for a list of kernel module names kept as `Vec<String>`.
pub(crate) fn module_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let items: Vec<ModuleItem> = super::list(d)?;
    Ok(items.into_iter().map(|i| i.0).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames() {
        assert!(Hostname::try_from("nas".to_owned()).is_ok());
        assert!(Hostname::try_from("nas-1.home.arpa".to_owned()).is_ok());
        assert!(Hostname::try_from("-nas".to_owned()).is_err());
        assert!(Hostname::try_from("nas_1".to_owned()).is_err());
        assert!(Hostname::try_from("a..b".to_owned()).is_err());
        assert!(Hostname::try_from("x".repeat(64)).is_err());
        assert_eq!(
            DomainName::try_from("home.arpa.".to_owned())
                .unwrap()
                .as_str(),
            "home.arpa"
        );
    }

    #[test]
    fn other_names() {
        assert!(SegmentName::try_from("media".to_owned()).is_ok());
        assert!(SegmentName::try_from("lan".to_owned()).is_err());
        assert!(SegmentName::try_from("Media".to_owned()).is_err());
        assert!(Timezone::try_from("Europe/Berlin".to_owned()).is_ok());
        assert!(Timezone::try_from("America/Argentina/Buenos_Aires".to_owned()).is_ok());
        assert!(Timezone::try_from("Europe//Berlin".to_owned()).is_err());
        assert!(Timezone::try_from("+02:00".to_owned()).is_err());
        assert!(check_package("linux-image-amd64").is_ok());
        assert!(check_package("libstdc++6").is_ok());
        assert!(check_package("Linux").is_err());
        assert!(check_package("a").is_err());
        assert!(check_module("8021q").is_ok());
        assert!(check_module("mod/evil").is_err());
        assert!(UserName::try_from("admin".to_owned()).is_ok());
        assert!(UserName::try_from("1admin".to_owned()).is_err());
    }
}
