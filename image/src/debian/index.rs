//! Loading the package lists of every source: InRelease → Packages.xz → parsed.
//!
//! Online, each suite's `InRelease` is fetched fresh (it is the freshness point),
//! verified with gpgv and cached; `Packages.xz` is fetched only when the cache does
//! not already hold a file with the hash InRelease names (by-hash URL when the
//! archive supports it, so a mirror update between the two requests cannot mix
//! versions). Offline, the cached copies are used, verified exactly the same way.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use log::{info, warn};

use super::cache::{self, Cache};
use super::error::DebianError;
use super::fetch::{Http, HINT_INDEX};
use super::packages::{self, Package};
use super::progress::Progress;
use super::release::{self, Release};
use super::sources::{AptSource, ARCH, COMPONENT};

/// The index path inside `dists/<suite>/`.
pub fn packages_index_name() -> String {
    format!("{COMPONENT}/binary-{ARCH}/Packages.xz")
}

/// Fetches (or reads from the cache) and verifies every suite's packages.
pub fn load_all(
    sources: &[AptSource],
    cache: &Cache,
    http: Option<&Http>,
    progress: &dyn Progress,
) -> Result<Vec<Package>, DebianError> {
    let mut all = Vec::new();
    for source in sources {
        let uri: Arc<str> = Arc::from(source.uri.as_str());
        for suite in &source.suites {
            let release = load_release(source, suite, cache, http, progress)?;
            let list = load_packages(source, &release, &uri, cache, http, progress)?;
            info!("{} {suite}: {} packages", source.uri, list.len());
            all.extend(list);
        }
    }
    Ok(all)
}

fn load_release(
    source: &AptSource,
    suite: &str,
    cache: &Cache,
    http: Option<&Http>,
    progress: &dyn Progress,
) -> Result<Release, DebianError> {
    let url = format!("{}/dists/{suite}/InRelease", source.uri);
    let path = cache.inrelease_path(&source.uri, suite);
    let keyring = release::keyring_for(source.signed_by.as_deref());
    let scratch = path.parent().unwrap_or(Path::new("."));
    let text = match http {
        Some(http) => {
            let (tmp, _) = http.download(&url, &path, None, HINT_INDEX, progress)?;
            let verified = release::verify(&tmp, &keyring, scratch, suite, &url);
            match verified {
                Ok(text) => {
                    cache::persist(&tmp, &path)?;
                    text
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(e);
                }
            }
        }
        None => {
            if !path.exists() {
                return Err(DebianError::OfflineMissing {
                    what: format!("InRelease of {suite} from {}", source.uri),
                    path,
                });
            }
            release::verify(&path, &keyring, scratch, suite, &url)?
        }
    };
    release::parse(&text, suite, &url, SystemTime::now())
}

fn load_packages(
    source: &AptSource,
    release: &Release,
    uri: &Arc<str>,
    cache: &Cache,
    http: Option<&Http>,
    progress: &dyn Progress,
) -> Result<Vec<Package>, DebianError> {
    let name = packages_index_name();
    let suite = &release.suite;
    let dists = format!("{}/dists/{suite}", source.uri);
    let plain_url = format!("{dists}/{name}");
    let (sha, size) =
        release
            .sha256
            .get(&name)
            .cloned()
            .ok_or_else(|| DebianError::ReleaseParse {
                suite: suite.clone(),
                url: release.url.clone(),
                message: format!("does not list {name}"),
            })?;
    let path = cache.index_path(&sha);
    if path.exists() {
        let (actual, actual_size) =
            cache::sha256_file(&path).map_err(|e| DebianError::io("reading", &path, e))?;
        if actual != sha || actual_size != size {
            warn!(
                "cached index {} does not match InRelease (sha256 {actual}): deleted",
                path.display()
            );
            let _ = std::fs::remove_file(&path);
        }
    }
    if !path.exists() {
        let Some(http) = http else {
            return Err(DebianError::OfflineMissing {
                what: format!("{plain_url} (sha256 {sha})"),
                path,
            });
        };
        let by_hash = format!("{dists}/{COMPONENT}/binary-{ARCH}/by-hash/SHA256/{sha}");
        let first = if release.acquire_by_hash {
            http.download_verified(&by_hash, &path, &sha, Some(size), HINT_INDEX, progress)
        } else {
            Err(DebianError::HttpStatus {
                url: by_hash,
                status: 404,
                hint: "",
            })
        };
        match first {
            Ok(()) => {}
            Err(DebianError::HttpStatus { status: 404, .. }) => {
                http.download_verified(&plain_url, &path, &sha, Some(size), HINT_INDEX, progress)?
            }
            Err(e) => return Err(e),
        }
    }
    let file = std::fs::File::open(&path).map_err(|e| DebianError::io("opening", &path, e))?;
    let mut text = String::with_capacity(size as usize * 6);
    xz2::read::XzDecoder::new(std::io::BufReader::new(file))
        .read_to_string(&mut text)
        .map_err(|source| DebianError::Decompress {
            what: plain_url.clone(),
            source,
        })?;
    packages::parse(&text, uri, &plain_url)
}
