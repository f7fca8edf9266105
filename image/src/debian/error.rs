//! The one error type of the Debian fetcher.
//!
//! Every variant carries what a user needs to act: the URL that failed, the file on
//! disk, the package, the expected and actual hash. Underlying errors are attached as
//! `#[source]` (not repeated in the message) so a chain printer shows each cause once.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

/// Everything that can go wrong while resolving, fetching, verifying or extracting.
#[derive(Debug, Error)]
pub enum DebianError {
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("apt sources {path}:{line}: {message}")]
    SourcesParse {
        path: PathBuf,
        line: usize,
        message: String,
    },

    #[error(
        "no usable apt source (type `deb`, component `main`, http/https) under {root}; \
         set `mirror` and `suites` in the config"
    )]
    NoSources { root: PathBuf },

    #[error("cannot download {url}: {message}; check the network and the mirror, or build from the cache with --offline")]
    Unreachable { url: String, message: String },

    #[error("{url}: HTTP status {status}{hint}")]
    HttpStatus {
        url: String,
        status: u16,
        hint: &'static str,
    },

    #[error("InRelease for {suite} at {url}: bad signature (keyring {keyring}): {detail}")]
    BadSignature {
        suite: String,
        url: String,
        keyring: PathBuf,
        detail: String,
    },

    #[error("running gpgv to verify {url} (is the `gpgv` package installed?)")]
    Gpgv {
        url: String,
        #[source]
        source: io::Error,
    },

    #[error(
        "InRelease for {suite} at {url} expired at {valid_until} (Valid-Until): \
         the mirror is stale or the clock is wrong"
    )]
    Expired {
        suite: String,
        url: String,
        valid_until: String,
    },

    #[error("InRelease for {suite} at {url}: {message}")]
    ReleaseParse {
        suite: String,
        url: String,
        message: String,
    },

    #[error("{what} from {url}: expected {expected}, got {actual}; refusing it")]
    HashMismatch {
        what: String,
        url: String,
        expected: String,
        actual: String,
    },

    #[error("decompressing {what}")]
    Decompress {
        what: String,
        #[source]
        source: io::Error,
    },

    #[error("Packages index {url}: line {line}: {message}")]
    PackagesParse {
        url: String,
        line: usize,
        message: String,
    },

    #[error("no package named {name} in {sources}")]
    UnknownRoot { name: String, sources: String },

    #[error(
        "cannot satisfy `{dependency}` needed by {}: {reason}",
        chain.join(" -> ")
    )]
    Unresolvable {
        dependency: String,
        chain: Vec<String>,
        reason: String,
    },

    #[error("lock file {path}: {message}")]
    Lock { path: PathBuf, message: String },

    #[error(
        "offline: {what} is not in the cache ({path}); run once without --offline to download it"
    )]
    OfflineMissing { what: String, path: PathBuf },

    #[error("{package}: cached {path} has SHA256 {actual}, expected {expected}")]
    CacheCorrupt {
        package: String,
        path: PathBuf,
        expected: String,
        actual: String,
    },

    #[error("{package}: bad .deb {path}: {message}")]
    BadDeb {
        package: String,
        path: PathBuf,
        message: String,
    },

    #[error("{package}: refusing unsafe entry `{entry}` in {path}")]
    UnsafeEntry {
        package: String,
        path: PathBuf,
        entry: String,
    },
}

impl DebianError {
    /// Shorthand for [`DebianError::Io`].
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        DebianError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
