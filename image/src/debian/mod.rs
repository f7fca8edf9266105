//! The Debian side of `hearth build`: from root package names to verified,
//! extracted package trees.
//!
//! Chain of trust, end to end: the host's apt sources name the archives
//! ([`sources`]); each suite's `InRelease` is verified with `gpgv` against the
//! source's keyring ([`release`]); it pins `Packages.xz` by size and SHA256
//! ([`index`], [`packages`]); `Packages` pins every `.deb` by size and SHA256; the
//! resolver ([`resolve`]) picks the closure of the roots and the lock file
//! ([`lock`]) records those pins, so later builds skip the indexes entirely. Every
//! download is hashed while streaming and only renamed into the cache when it
//! matches ([`fetch`], [`cache`]); `.deb`s are unpacked in-process into
//! `<cache>/extract/<sha256>/` ([`deb`]).
//!
//! The archives themselves are never named in code: they come from the host's apt
//! configuration or from the appliance config (`mirror`, `suites`).

pub mod cache;
pub mod deb;
pub mod deb822;
pub mod error;
pub mod fetch;
pub mod index;
pub mod lock;
pub mod packages;
pub mod progress;
pub mod release;
pub mod resolve;
pub mod sources;
pub mod version;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;

use log::info;

pub use cache::default_cache_dir;
pub use error::DebianError;
pub use progress::{NoProgress, Progress};
pub use resolve::DEFAULT_EXCLUDE;

use cache::Cache;
use fetch::Http;
use lock::{Lock, LockedPackage, LockedSource, LOCK_VERSION};

/// What to fetch and where.
pub struct FetchRequest<'a> {
    /// Packages the image needs (their dependencies are added).
    pub roots: Vec<String>,
    /// Extra names to exclude on top of [`DEFAULT_EXCLUDE`]. A name that is also a
    /// root is not excluded.
    pub exclude: Vec<String>,
    pub lock_path: PathBuf,
    pub cache_dir: PathBuf,
    /// Never touch the network: everything must come from the lock and the cache.
    pub offline: bool,
    /// Re-resolve against the current archives even if the lock fits.
    pub update_lock: bool,
    /// Archive URI overriding the host's apt sources (see [`sources::select`]).
    pub mirror: Option<String>,
    pub suites: Option<Vec<String>>,
    /// Root of the host whose apt sources are read (`/` normally).
    pub apt_root: PathBuf,
    pub progress: &'a dyn Progress,
}

/// One package, downloaded, verified and extracted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedPackage {
    pub name: String,
    pub version: String,
    pub sha256: String,
    /// The verified `.deb` in the cache.
    pub deb: PathBuf,
    /// The extracted tree (`<cache>/extract/<sha256>`); treat it as read-only.
    pub root: PathBuf,
}

/// Resolves (or reads the lock), downloads, verifies and extracts. Sorted by name.
pub fn fetch(req: &FetchRequest) -> Result<Vec<FetchedPackage>, DebianError> {
    let cache = Cache::new(&req.cache_dir);
    let http = (!req.offline).then(Http::new);
    let lock = locked_set(req, &cache, http.as_ref())?;
    let mut out = Vec::with_capacity(lock.packages.len());
    for p in &lock.packages {
        let deb = cache.ensure_deb(
            http.as_ref(),
            &p.name,
            &p.url(),
            &p.sha256,
            p.size,
            req.progress,
        )?;
        let root = deb::extract(&deb, &cache.extract_path(&p.sha256), &p.name, req.progress)?;
        out.push(FetchedPackage {
            name: p.name.clone(),
            version: p.version.clone(),
            sha256: p.sha256.clone(),
            deb,
            root,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The effective exclusion list: defaults plus extras, minus the roots.
pub fn effective_exclude(roots: &[String], extra: &[String]) -> Vec<String> {
    let roots: HashSet<&str> = roots.iter().map(String::as_str).collect();
    DEFAULT_EXCLUDE
        .iter()
        .map(|s| s.to_string())
        .chain(extra.iter().cloned())
        .filter(|s| !roots.contains(s.as_str()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The lock to build from: the existing one when it fits, else a fresh resolution
/// (written back to `lock_path`).
fn locked_set(req: &FetchRequest, cache: &Cache, http: Option<&Http>) -> Result<Lock, DebianError> {
    let exclude = effective_exclude(&req.roots, &req.exclude);
    let existing = Lock::read(&req.lock_path)?;
    if let Some(lock) = &existing {
        if !req.update_lock && lock.covers(&req.roots, &exclude) {
            info!(
                "using {} ({} packages)",
                req.lock_path.display(),
                lock.packages.len()
            );
            return Ok(lock.clone());
        }
        if !req.update_lock {
            info!(
                "{} was made for other roots or exclusions: resolving again",
                req.lock_path.display()
            );
        }
    }
    let sources = sources::select(&req.apt_root, req.mirror.as_deref(), req.suites.as_deref())?;
    let all = index::load_all(&sources, cache, http, req.progress)?;
    let pins: HashMap<String, String> = match (&existing, req.update_lock) {
        (Some(l), false) => l
            .packages
            .iter()
            .map(|p| (p.name.clone(), p.version.clone()))
            .collect(),
        _ => HashMap::new(),
    };
    let locked_sources: Vec<LockedSource> = sources
        .iter()
        .flat_map(|s| {
            s.suites.iter().map(|suite| LockedSource {
                uri: s.uri.clone(),
                suite: suite.clone(),
            })
        })
        .collect();
    let desc: Vec<String> = locked_sources
        .iter()
        .map(|s| format!("{} {}", s.uri, s.suite))
        .collect();
    let exclude_set: HashSet<String> = exclude.iter().cloned().collect();
    let resolved = resolve::resolve(&all, &req.roots, &exclude_set, &pins, &desc.join(", "))?;
    let lock = Lock {
        version: LOCK_VERSION,
        roots: lock::normalize(&req.roots),
        exclude,
        sources: locked_sources,
        packages: resolved
            .iter()
            .map(|p| LockedPackage {
                name: p.name.clone(),
                version: p.version.clone(),
                filename: p.filename.clone(),
                size: p.size,
                sha256: p.sha256.clone(),
                source: p.source_uri.to_string(),
            })
            .collect(),
    };
    lock.validate(&req.lock_path)?;
    if existing.as_ref() != Some(&lock) {
        lock.write(&req.lock_path)?;
        info!(
            "wrote {} ({} packages)",
            req.lock_path.display(),
            lock.packages.len()
        );
    }
    Ok(lock)
}
