//! Places: URLs, absolute and array-relative paths, backup targets, e-mail
//! addresses. Shapes only; nothing here touches the network or the file system.

use std::path::{Component, Path};

use super::{string_value, text_newtype, ValueError};

text_newtype!(
    /// An `http://` or `https://` URL with a host.
    Url
);

impl TryFrom<String> for Url {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        let rest = s
            .strip_prefix("https://")
            .or_else(|| s.strip_prefix("http://"));
        let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or_default());
        match host {
            Some(h) if !h.is_empty() && !s.chars().any(char::is_whitespace) => Ok(Self(s)),
            _ => Err(ValueError::invalid(
                "URL",
                &s,
                "expected http://host/... or https://host/...",
            )),
        }
    }
}
string_value!(Url, "Url", {
    "type": "string", "format": "uri", "pattern": "^https?://[^/?#\\s]+"
});

text_newtype!(
    /// An absolute path without `..` components (`/srv/tank`).
    AbsPath
);

impl AbsPath {
    /// As a path.
    pub fn as_path(&self) -> &Path {
        Path::new(&self.0)
    }
}

impl TryFrom<String> for AbsPath {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        let p = Path::new(&s);
        if !p.is_absolute() {
            return Err(ValueError::invalid(
                "absolute path",
                &s,
                "must start with /",
            ));
        }
        if p.components().any(|c| c == Component::ParentDir) {
            return Err(ValueError::invalid(
                "absolute path",
                &s,
                "must not contain ..",
            ));
        }
        Ok(Self(s))
    }
}
string_value!(AbsPath, "AbsPath", { "type": "string", "pattern": "^/" });

text_newtype!(
    /// A path relative to an array's mount point: not absolute, no `..`. `.` is the
    /// array's root.
    RelPath
);

impl RelPath {
    /// As a path.
    pub fn as_path(&self) -> &Path {
        Path::new(&self.0)
    }
}

impl TryFrom<String> for RelPath {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        let p = Path::new(&s);
        let reason = if s.is_empty() {
            Some("must not be empty (use \".\" for the array's root)")
        } else if p.is_absolute() {
            Some("must be relative to the array's mount point (no leading /)")
        } else if p.components().any(|c| c == Component::ParentDir) {
            Some("must not contain ..")
        } else {
            None
        };
        match reason {
            Some(r) => Err(ValueError::invalid("path inside an array", &s, r)),
            None => Ok(Self(s)),
        }
    }
}
string_value!(RelPath, "RelPath", { "type": "string", "minLength": 1, "pattern": "^[^/]" });

text_newtype!(
    /// Where a backup goes: `restic:/abs/path` (a local restic repository),
    /// `restic:sftp:user@host:/path`, or `sftp://user@host/path`.
    BackupTarget
);

impl TryFrom<String> for BackupTarget {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        let ok = if let Some(path) = s.strip_prefix("restic:sftp:") {
            path.contains(':') && !path.starts_with(':')
        } else if let Some(path) = s.strip_prefix("restic:") {
            AbsPath::try_from(path.to_owned()).is_ok()
        } else if let Some(rest) = s.strip_prefix("sftp://") {
            rest.split('/').next().is_some_and(|h| !h.is_empty())
        } else {
            false
        };
        if ok {
            Ok(Self(s))
        } else {
            Err(ValueError::invalid(
                "backup target",
                &s,
                "expected restic:/abs/path, restic:sftp:user@host:/path or sftp://user@host/path",
            ))
        }
    }
}
string_value!(BackupTarget, "BackupTarget", {
    "type": "string", "pattern": "^(restic:/|restic:sftp:|sftp://)"
});

text_newtype!(
    /// An e-mail address (`local@domain`; shape only).
    Email
);

impl TryFrom<String> for Email {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        let ok = s.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.chars().any(char::is_whitespace)
        });
        if ok {
            Ok(Self(s))
        } else {
            Err(ValueError::invalid(
                "e-mail address",
                &s,
                "expected local@domain",
            ))
        }
    }
}
string_value!(Email, "Email", { "type": "string", "format": "email" });

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert!(Url::try_from("https://updates.example.invalid/hearth".to_owned()).is_ok());
        assert!(Url::try_from("ftp://x".to_owned()).is_err());
        assert!(Url::try_from("http:///x".to_owned()).is_err());
        assert!(AbsPath::try_from("/srv/tank".to_owned()).is_ok());
        assert!(AbsPath::try_from("srv".to_owned()).is_err());
        assert!(AbsPath::try_from("/srv/../etc".to_owned()).is_err());
        assert!(RelPath::try_from("media/movies".to_owned()).is_ok());
        assert!(RelPath::try_from("../x".to_owned()).is_err());
        assert!(BackupTarget::try_from("restic:/srv/backup/repo".to_owned()).is_ok());
        assert!(BackupTarget::try_from("restic:sftp:u@h.invalid:/r".to_owned()).is_ok());
        assert!(BackupTarget::try_from("sftp://u@h.invalid/r".to_owned()).is_ok());
        assert!(BackupTarget::try_from("s3:bucket".to_owned()).is_err());
        assert!(Email::try_from("admin@example.invalid".to_owned()).is_ok());
        assert!(Email::try_from("admin".to_owned()).is_err());
    }
}
