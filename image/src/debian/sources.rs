//! Which Debian archives to use: the build host's apt sources, or a config override.
//!
//! Hearth never names a mirror itself. It reads the host's `etc/apt/sources.list`,
//! `sources.list.d/*.list` (one-line format) and `sources.list.d/*.sources` (deb822)
//! under a root directory (`/` normally, a temp dir in tests). Only `deb` entries
//! with the `main` component, for amd64, over http(s), are kept; files with other
//! suffixes (`.disabled`, `.save`, ...) are ignored like apt does.
//!
//! A config may override: `mirror` replaces the URIs, `suites` the suites (see
//! [`select`]).

use std::fs;
use std::path::{Path, PathBuf};

use log::{debug, warn};

use super::deb822;
use super::error::DebianError;

/// The only component and architecture Hearth uses.
pub const COMPONENT: &str = "main";
pub const ARCH: &str = "amd64";

/// One archive: a base URI (no trailing slash) and the suites to read from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptSource {
    pub uri: String,
    pub suites: Vec<String>,
    pub components: Vec<String>,
    /// Keyring that must have signed the suites' `InRelease`; `None` means the
    /// Debian archive keyring.
    pub signed_by: Option<PathBuf>,
}

/// Reads every usable source under `root` (sources.list first, then
/// sources.list.d in name order).
pub fn read_host_sources(root: &Path) -> Result<Vec<AptSource>, DebianError> {
    let mut out = Vec::new();
    let list = root.join("etc/apt/sources.list");
    if list.is_file() {
        out.extend(parse_one_line_file(&list)?);
    }
    let dir = root.join("etc/apt/sources.list.d");
    if dir.is_dir() {
        let mut names: Vec<PathBuf> = fs::read_dir(&dir)
            .map_err(|e| DebianError::io("reading directory", &dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        names.sort();
        for path in names {
            match path.extension().and_then(|e| e.to_str()) {
                Some("list") => out.extend(parse_one_line_file(&path)?),
                Some("sources") => out.extend(parse_deb822_file(&path)?),
                _ => debug!("ignoring {} (not .list or .sources)", path.display()),
            }
        }
    }
    Ok(out)
}

/// Applies the config override to the host sources.
///
/// - neither set: the host sources as they are;
/// - `mirror` and `suites`: exactly that one archive;
/// - only `mirror`: that archive with the first host source's suites;
/// - only `suites`: the first host source's URI and keyring with those suites.
pub fn select(
    root: &Path,
    mirror: Option<&str>,
    suites: Option<&[String]>,
) -> Result<Vec<AptSource>, DebianError> {
    let host = read_host_sources(root)?;
    if mirror.is_none() && suites.is_none() {
        if host.is_empty() {
            return Err(DebianError::NoSources { root: root.into() });
        }
        return Ok(host);
    }
    let first = host.first();
    let suites = match (suites, first) {
        (Some(s), _) => s.to_vec(),
        (None, Some(f)) => f.suites.clone(),
        (None, None) => return Err(DebianError::NoSources { root: root.into() }),
    };
    let (uri, signed_by) = match (mirror, first) {
        (Some(m), _) => (m.trim_end_matches('/').to_string(), None),
        (None, Some(f)) => (f.uri.clone(), f.signed_by.clone()),
        (None, None) => return Err(DebianError::NoSources { root: root.into() }),
    };
    Ok(vec![AptSource {
        uri,
        suites,
        components: vec![COMPONENT.into()],
        signed_by,
    }])
}

fn read(path: &Path) -> Result<String, DebianError> {
    fs::read_to_string(path).map_err(|e| DebianError::io("reading", path, e))
}

/// Keeps an entry only if Hearth can use it; says why not at debug level.
fn usable(
    path: &Path,
    uri: &str,
    suites: &[String],
    components: &[String],
    arches: Option<&[String]>,
) -> bool {
    let why_not = if !(uri.starts_with("http://") || uri.starts_with("https://")) {
        Some("not http(s)")
    } else if !components.iter().any(|c| c == COMPONENT) {
        Some("no `main` component")
    } else if arches.is_some_and(|a| !a.iter().any(|a| a == ARCH)) {
        Some("not for amd64")
    } else if suites.iter().any(|s| s.ends_with('/')) {
        Some("flat repositories are not supported")
    } else {
        None
    };
    match why_not {
        Some(reason) => {
            warn!("{}: skipping {uri}: {reason}", path.display());
            false
        }
        None => true,
    }
}

fn parse_one_line_file(path: &Path) -> Result<Vec<AptSource>, DebianError> {
    let text = read(path)?;
    let mut out = Vec::new();
    for (idx, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let err = |message: String| DebianError::SourcesParse {
            path: path.into(),
            line: idx + 1,
            message,
        };
        let (kind, mut rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        rest = rest.trim_start();
        match kind {
            "deb" => {}
            "deb-src" => continue,
            other => return Err(err(format!("unknown entry type `{other}`"))),
        }
        let mut signed_by = None;
        let mut arches: Option<Vec<String>> = None;
        if let Some(opts) = rest.strip_prefix('[') {
            let (opts, after) = opts
                .split_once(']')
                .ok_or_else(|| err("unterminated `[` options".into()))?;
            rest = after.trim_start();
            for opt in opts.split_whitespace() {
                let Some((key, value)) = opt.split_once('=') else {
                    return Err(err(format!("option `{opt}` is not key=value")));
                };
                match key {
                    "signed-by" => signed_by = Some(parse_signed_by(value).map_err(&err)?),
                    "arch" => arches = Some(value.split(',').map(String::from).collect()),
                    _ => {}
                }
            }
        }
        let mut words = rest.split_whitespace();
        let uri = words
            .next()
            .ok_or_else(|| err("missing URI".into()))?
            .trim_end_matches('/')
            .to_string();
        let suite = words
            .next()
            .ok_or_else(|| err("missing suite".into()))?
            .to_string();
        let components: Vec<String> = words.map(String::from).collect();
        let suites = vec![suite];
        if usable(path, &uri, &suites, &components, arches.as_deref()) {
            out.push(AptSource {
                uri,
                suites,
                components,
                signed_by,
            });
        }
    }
    Ok(out)
}

fn parse_deb822_file(path: &Path) -> Result<Vec<AptSource>, DebianError> {
    let text = read(path)?;
    let paragraphs = deb822::parse(&text).map_err(|e| DebianError::SourcesParse {
        path: path.into(),
        line: e.line,
        message: e.message,
    })?;
    let mut out = Vec::new();
    for p in paragraphs {
        let err = |message: String| DebianError::SourcesParse {
            path: path.into(),
            line: p.line,
            message,
        };
        let words = |key: &str| -> Vec<String> {
            p.get(key)
                .unwrap_or("")
                .split_whitespace()
                .map(String::from)
                .collect()
        };
        if p.get("Enabled")
            .is_some_and(|v| v.eq_ignore_ascii_case("no"))
        {
            continue;
        }
        if !words("Types").iter().any(|t| t == "deb") {
            continue;
        }
        let suites = words("Suites");
        let components = words("Components");
        if suites.is_empty() {
            return Err(err("missing Suites".into()));
        }
        let signed_by = p
            .get("Signed-By")
            .map(parse_signed_by)
            .transpose()
            .map_err(&err)?;
        let arches = p.get("Architectures").map(|_| words("Architectures"));
        for uri in words("URIs") {
            let uri = uri.trim_end_matches('/').to_string();
            if usable(path, &uri, &suites, &components, arches.as_deref()) {
                out.push(AptSource {
                    uri,
                    suites: suites.clone(),
                    components: components.clone(),
                    signed_by: signed_by.clone(),
                });
            }
        }
    }
    Ok(out)
}

/// `Signed-By` must name a keyring file; inline keys and fingerprints are refused
/// rather than silently falling back to another keyring.
fn parse_signed_by(value: &str) -> Result<PathBuf, String> {
    let value = value.trim();
    if value.starts_with('/') && !value.contains(char::is_whitespace) {
        Ok(PathBuf::from(value))
    } else {
        Err(format!(
            "Signed-By `{}` is not a keyring file path (inline keys and fingerprints are not supported)",
            value.lines().next().unwrap_or("")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
        dir
    }

    const DEB822: &str = "Types: deb\n\
        # a comment\n\
        URIs: http://mirror.invalid/debian/\n\
        Suites: bookworm bookworm-updates\n\
        Components: main contrib\n\
        Signed-By: /usr/share/keyrings/test.gpg\n\
        \n\
        Types: deb-src\n\
        URIs: http://mirror.invalid/debian\n\
        Suites: bookworm\n\
        Components: main\n\
        \n\
        Types: deb\n\
        URIs: http://security.invalid/debian-security\n\
        Suites: bookworm-security\n\
        Components: main\n\
        \n\
        Types: deb\n\
        URIs: http://other.invalid/x\n\
        Suites: stable\n\
        Components: main\n\
        Architectures: arm64\n\
        \n\
        Types: deb\n\
        URIs: http://off.invalid/x\n\
        Suites: stable\n\
        Components: main\n\
        Enabled: no\n";

    #[test]
    fn deb822_sources() {
        let root = root_with(&[("etc/apt/sources.list.d/debian.sources", DEB822)]);
        let s = read_host_sources(root.path()).unwrap();
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!(s[0].uri, "http://mirror.invalid/debian");
        assert_eq!(s[0].suites, ["bookworm", "bookworm-updates"]);
        assert_eq!(s[0].components, ["main", "contrib"]);
        assert_eq!(
            s[0].signed_by.as_deref(),
            Some(Path::new("/usr/share/keyrings/test.gpg"))
        );
        assert_eq!(s[1].uri, "http://security.invalid/debian-security");
        assert_eq!(s[1].signed_by, None);
    }

    #[test]
    fn one_line_sources_and_ignored_files() {
        let list = "# comment\n\
            deb [arch=amd64 signed-by=/k.gpg] http://mirror.invalid/debian bookworm main # trailing\n\
            deb-src http://mirror.invalid/debian bookworm main\n\
            deb [ arch=arm64 ] http://arm.invalid/debian bookworm main\n\
            \n\
            deb http://mirror.invalid/debian bookworm-updates contrib\n\
            deb cdrom:[Debian]/ bookworm main\n";
        let root = root_with(&[
            ("etc/apt/sources.list", list),
            (
                "etc/apt/sources.list.d/extra.list",
                "deb http://127.0.0.1:1/debian sid main\n",
            ),
            (
                "etc/apt/sources.list.d/gone.list.disabled-by-farm",
                "deb http://disabled.invalid/ x main\n",
            ),
            ("etc/apt/sources.list.d/gone.sources.save", DEB822),
        ]);
        let s = read_host_sources(root.path()).unwrap();
        let uris: Vec<_> = s
            .iter()
            .map(|s| (s.uri.as_str(), s.suites[0].as_str()))
            .collect();
        assert_eq!(
            uris,
            [
                ("http://mirror.invalid/debian", "bookworm"),
                ("http://127.0.0.1:1/debian", "sid")
            ]
        );
        assert_eq!(s[0].signed_by.as_deref(), Some(Path::new("/k.gpg")));
    }

    #[test]
    fn bad_lines_are_reported_with_position() {
        let root = root_with(&[("etc/apt/sources.list", "deb\nfoo bar\n")]);
        let err = read_host_sources(root.path()).unwrap_err();
        assert!(
            matches!(err, DebianError::SourcesParse { line: 1, .. }),
            "{err}"
        );
        let root = root_with(&[(
            "etc/apt/sources.list.d/x.sources",
            "Types: deb\nURIs: http://m.invalid/d\nSuites: s\nComponents: main\nSigned-By: -----BEGIN PGP\n",
        )]);
        let err = read_host_sources(root.path()).unwrap_err();
        assert!(err.to_string().contains("inline keys"), "{err}");
    }

    #[test]
    fn overrides() {
        let root = root_with(&[("etc/apt/sources.list.d/debian.sources", DEB822)]);
        let all = select(root.path(), None, None).unwrap();
        assert_eq!(all.len(), 2);
        let suites = vec!["trixie".to_string()];
        let m = select(
            root.path(),
            Some("http://127.0.0.1:9/debian/"),
            Some(&suites),
        )
        .unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].uri, "http://127.0.0.1:9/debian");
        assert_eq!(m[0].suites, ["trixie"]);
        assert_eq!(m[0].signed_by, None);
        let m = select(root.path(), Some("http://127.0.0.1:9/debian"), None).unwrap();
        assert_eq!(m[0].suites, ["bookworm", "bookworm-updates"]);
        let s = select(root.path(), None, Some(&suites)).unwrap();
        assert_eq!(s[0].uri, "http://mirror.invalid/debian");
        assert!(s[0].signed_by.is_some());

        let empty = tempfile::tempdir().unwrap();
        let err = select(empty.path(), None, None).unwrap_err();
        assert!(matches!(err, DebianError::NoSources { .. }));
        assert!(select(empty.path(), Some("http://127.0.0.1:9/d"), Some(&suites)).is_ok());
    }
}
