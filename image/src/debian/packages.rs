//! `Packages` indexes: the list of binary packages of one suite, one deb822
//! paragraph per package.
//!
//! Only the fields the resolver and fetcher need are kept. Packages for other
//! architectures than amd64/all are dropped.

use std::sync::Arc;

use super::deb822;
use super::error::DebianError;
use super::sources::ARCH;

/// One binary package as listed in an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub architecture: String,
    pub pre_depends: String,
    pub depends: String,
    pub provides: String,
    /// Pool path relative to the archive URI.
    pub filename: String,
    pub size: u64,
    pub sha256: String,
    pub essential: bool,
    pub priority: String,
    /// Archive URI the package comes from.
    pub source_uri: Arc<str>,
}

/// Parses a decompressed `Packages` file. `url` is only used in error messages.
pub fn parse(text: &str, source_uri: &Arc<str>, url: &str) -> Result<Vec<Package>, DebianError> {
    let paragraphs = deb822::parse(text).map_err(|e| DebianError::PackagesParse {
        url: url.into(),
        line: e.line,
        message: e.message,
    })?;
    let mut out = Vec::with_capacity(paragraphs.len());
    for p in paragraphs {
        let field = |key: &'static str| -> Result<String, DebianError> {
            p.get(key)
                .map(str::to_string)
                .ok_or_else(|| DebianError::PackagesParse {
                    url: url.into(),
                    line: p.line,
                    message: format!("missing {key}"),
                })
        };
        let architecture = field("Architecture")?;
        if architecture != ARCH && architecture != "all" {
            continue;
        }
        let size_text = field("Size")?;
        let size = size_text.parse().map_err(|_| DebianError::PackagesParse {
            url: url.into(),
            line: p.line,
            message: format!("bad Size `{size_text}`"),
        })?;
        let opt = |key: &str| p.get(key).unwrap_or("").to_string();
        out.push(Package {
            name: field("Package")?,
            version: field("Version")?,
            architecture,
            pre_depends: opt("Pre-Depends"),
            depends: opt("Depends"),
            provides: opt("Provides"),
            filename: field("Filename")?,
            size,
            sha256: field("SHA256")?.to_ascii_lowercase(),
            essential: p.get("Essential").is_some_and(|v| v == "yes"),
            priority: opt("Priority"),
            source_uri: Arc::clone(source_uri),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const SAMPLE: &str = "\
Package: busybox-static
Version: 1:1.35.0-4+b3
Architecture: amd64
Priority: optional
Provides: busybox
Filename: pool/main/b/busybox/busybox-static_1.35.0-4+b3_amd64.deb
Size: 1234
SHA256: ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789
Description: Standalone rescue shell
 with tons of builtin utilities

Package: foo-arm
Version: 1
Architecture: arm64
Filename: pool/f.deb
Size: 1
SHA256: 00

Package: dash
Essential: yes
Version: 0.5.12-2
Architecture: amd64
Pre-Depends: libc6 (>= 2.34)
Depends: debianutils (>= 5.6-0.1)
Filename: pool/main/d/dash/dash_0.5.12-2_amd64.deb
Size: 99
SHA256: 1111111111111111111111111111111111111111111111111111111111111111
";

    #[test]
    fn parses_fields_and_skips_foreign_arches() {
        let uri: Arc<str> = Arc::from("http://mirror.invalid/debian");
        let p = parse(SAMPLE, &uri, "u").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].name, "busybox-static");
        assert_eq!(p[0].version, "1:1.35.0-4+b3");
        assert_eq!(p[0].provides, "busybox");
        assert_eq!(p[0].size, 1234);
        assert!(p[0].sha256.starts_with("abcdef"));
        assert_eq!(p[0].priority, "optional");
        assert!(!p[0].essential);
        assert!(p[1].essential);
        assert_eq!(p[1].pre_depends, "libc6 (>= 2.34)");
        assert_eq!(&*p[1].source_uri, "http://mirror.invalid/debian");
    }

    #[test]
    fn missing_fields_are_errors() {
        let uri: Arc<str> = Arc::from("u");
        let err = parse(
            "Package: a\nArchitecture: all\nVersion: 1\n",
            &uri,
            "http://x/P",
        )
        .unwrap_err();
        assert!(err.to_string().contains("line 1: missing Size"), "{err}");
    }

    #[test]
    fn large_index_parses_fast() {
        let uri: Arc<str> = Arc::from("u");
        let mut text = String::new();
        for i in 0..70_000 {
            text.push_str(&format!(
                "Package: pkg{i}\nVersion: 1.{i}-1\nArchitecture: amd64\nDepends: libc6 (>= 2.34), pkg{}\n\
                 Filename: pool/p{i}.deb\nSize: {i}\nSHA256: {:064x}\nDescription: x\n long\n long\n\n",
                i + 1,
                i
            ));
        }
        let start = std::time::Instant::now();
        let p = parse(&text, &uri, "u").unwrap();
        assert_eq!(p.len(), 70_000);
        // Generous even for a debug build on a loaded 2-core machine.
        assert!(start.elapsed().as_secs() < 10, "{:?}", start.elapsed());
    }
}
