//! End-to-end tests of `hearth::debian::fetch` against a fake signed mirror served
//! on 127.0.0.1 (a throwaway gpg key, real gpgv, real HTTP), plus an ignored test
//! against the host's real apt mirror (`cargo test -p hearth --test debian --
//! --ignored real_mirror --nocapture`).

mod mirror;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use hearth::debian::{fetch, DebianError, FetchRequest, NoProgress, Progress};
use mirror::{FakeMirror, Pkg};

fn request<'a>(m: &FakeMirror, cache: &Path, roots: &[&str]) -> FetchRequest<'a> {
    FetchRequest {
        roots: roots.iter().map(|s| s.to_string()).collect(),
        exclude: vec![],
        lock_path: m.dir.path().join("hearth.lock"),
        cache_dir: cache.to_path_buf(),
        offline: false,
        update_lock: false,
        mirror: None,
        suites: None,
        apt_root: m.apt_root(),
        progress: &NoProgress,
    }
}

fn debs_in(cache: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(cache.join("debs"))
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn two_packages() -> Vec<Pkg> {
    vec![
        Pkg::new("alpha", "1.0-1", "beta (>= 2), kmod | dpkg"),
        Pkg::new("beta", "2.1-1", ""),
        Pkg::new("beta", "1.9-1", ""),
        Pkg::new("kmod", "30-1", ""),
    ]
}

#[test]
fn fetch_verify_lock_and_offline() {
    let m = FakeMirror::start(&two_packages());
    let cache = m.dir.path().join("cache");

    // 1. Resolve, download, verify, extract.
    let got = fetch(&request(&m, &cache, &["alpha"])).unwrap();
    let names: Vec<_> = got
        .iter()
        .map(|p| format!("{}={}", p.name, p.version))
        .collect();
    assert_eq!(names, ["alpha=1.0-1", "beta=2.1-1"]);
    for p in &got {
        let file = p.root.join(format!("usr/share/{}/hello", p.name));
        assert_eq!(fs::read_to_string(&file).unwrap(), format!("{}\n", p.name));
        let link = p.root.join(format!("usr/bin/{}", p.name));
        assert_eq!(
            fs::read_link(&link).unwrap(),
            PathBuf::from(format!("../share/{}/hello", p.name))
        );
        let mode = fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        assert!(p.deb.starts_with(cache.join("debs")));
        assert!(p.root.starts_with(cache.join("extract")));
    }
    let lock = fs::read_to_string(m.dir.path().join("hearth.lock")).unwrap();
    assert!(lock.contains("name = \"alpha\""), "{lock}");
    assert!(lock.contains(&got[1].sha256), "{lock}");

    // 2. With the lock in place, no index is read again.
    m.clear_log();
    let again = fetch(&request(&m, &cache, &["alpha"])).unwrap();
    assert_eq!(again, got);
    assert_eq!(
        m.log(),
        Vec::<String>::new(),
        "everything came from the lock and cache"
    );

    // 3. Offline from the cache works, and reads nothing from the network.
    let mut req = request(&m, &cache, &["alpha"]);
    req.offline = true;
    assert_eq!(fetch(&req).unwrap(), got);
    // Offline without a lock still works from the cached, re-verified indexes.
    req.lock_path = m.dir.path().join("other.lock");
    assert_eq!(fetch(&req).unwrap(), got);
    assert!(m.log().is_empty());

    // 4. Offline with an empty cache fails and says what to do.
    let empty = m.dir.path().join("empty-cache");
    let mut req = request(&m, &empty, &["alpha"]);
    req.offline = true;
    let err = fetch(&req).unwrap_err();
    assert!(matches!(err, DebianError::OfflineMissing { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("package alpha") && msg.contains("without --offline"),
        "{msg}"
    );

    // 5. A cached .deb that was corrupted is replaced by a good download.
    let beta_deb = got[1].deb.clone();
    fs::write(&beta_deb, b"corrupt").unwrap();
    let fixed = fetch(&request(&m, &cache, &["alpha"])).unwrap();
    assert_eq!(fixed, got);
}

#[test]
fn tampered_deb_is_refused_and_not_cached() {
    let m = FakeMirror::start(&two_packages());
    let cache = m.dir.path().join("cache");
    fetch(&request(&m, &cache, &["alpha"])).unwrap();

    // Swap beta's .deb on the mirror; a fresh cache must refuse it.
    let fresh = m.dir.path().join("fresh-cache");
    m.tamper_file("pool/main/b/beta/beta_2.1-1_amd64.deb");
    let err = fetch(&request(&m, &fresh, &["alpha"])).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DebianError::HashMismatch { .. }), "{msg}");
    assert!(msg.contains("beta_2.1-1_amd64.deb"), "{msg}");
    let cached = debs_in(&fresh);
    assert_eq!(cached.len(), 1, "only alpha is cached: {cached:?}");
    assert!(fs::read_dir(fresh.join("debs")).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with(".tmp")));
}

#[test]
fn index_tampering_and_bad_signatures_are_refused() {
    let m = FakeMirror::start(&two_packages());
    let cache = m.dir.path().join("cache");

    // Packages.xz replaced behind InRelease's back.
    let original = m.read("dists/testing/main/binary-amd64/Packages.xz");
    m.write_packages_unsigned(&[Pkg::new("alpha", "1.0-1", "")]);
    let err = fetch(&request(&m, &cache, &["alpha"])).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DebianError::HashMismatch { .. }), "{msg}");
    assert!(msg.contains("Packages.xz"), "{msg}");
    m.write("dists/testing/main/binary-amd64/Packages.xz", &original);

    // InRelease edited after signing.
    let signed = String::from_utf8(m.read("dists/testing/InRelease")).unwrap();
    m.write(
        "dists/testing/InRelease",
        signed
            .replace("Suite: testing", "Suite: testinh")
            .as_bytes(),
    );
    let err = fetch(&request(&m, &cache, &["alpha"])).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DebianError::BadSignature { .. }), "{msg}");
    assert!(
        msg.starts_with(&format!(
            "InRelease for testing at {}/dists/testing/InRelease: bad signature",
            m.uri()
        )),
        "{msg}"
    );
    assert!(!m.dir.path().join("hearth.lock").exists());
}

#[test]
fn unknown_roots_and_unreachable_mirrors_are_clear() {
    let m = FakeMirror::start(&two_packages());
    let cache = m.dir.path().join("cache");
    let err = fetch(&request(&m, &cache, &["nosuch"])).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("no package named nosuch in http://127.0.0.1:"),
        "{err}"
    );

    let mut req = request(&m, &cache, &["alpha"]);
    req.mirror = Some("http://127.0.0.1:9/debian".into());
    req.suites = Some(vec!["testing".into()]);
    let err = fetch(&req).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DebianError::Unreachable { .. }), "{msg}");
    assert!(
        msg.contains("http://127.0.0.1:9/debian/dists/testing/InRelease"),
        "{msg}"
    );
    assert!(msg.contains("--offline"), "{msg}");
}

/// Real run against the host's apt mirror: network, minutes of download.
#[test]
#[ignore = "downloads ~80 MB from the host's real Debian mirror"]
fn real_mirror() {
    let timing = Timing::default();
    let dir = tempfile::tempdir().unwrap();
    let cache = std::env::var_os("HEARTH_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.path().join("cache"));
    let req = FetchRequest {
        roots: ["linux-image-amd64", "busybox-static", "dbus-daemon"]
            .map(String::from)
            .to_vec(),
        exclude: vec![],
        lock_path: dir.path().join("hearth.lock"),
        cache_dir: cache.clone(),
        offline: false,
        update_lock: false,
        mirror: None,
        suites: None,
        apt_root: PathBuf::from("/"),
        progress: &timing,
    };
    let t0 = Instant::now();
    let got = fetch(&req).unwrap();
    let first = t0.elapsed();
    for p in &got {
        println!("{:40} {:30} {}", p.name, p.version, p.sha256);
    }
    assert!(got.iter().any(|p| p.name.starts_with("linux-image-6")));
    let t1 = Instant::now();
    let again = fetch(&req).unwrap();
    let second = t1.elapsed();
    assert_eq!(again, got);
    let mut offline = FetchRequest {
        progress: &NoProgress,
        ..req
    };
    offline.offline = true;
    assert_eq!(fetch(&offline).unwrap(), got);
    println!("{}", timing.report());
    // Index work alone, from the cache: gpgv + SHA256 + xz + deb822 parse.
    let sources = hearth::debian::sources::select(Path::new("/"), None, None).unwrap();
    let t2 = Instant::now();
    let cache_paths = hearth::debian::cache::Cache::new(&cache);
    let all = hearth::debian::index::load_all(&sources, &cache_paths, None, &NoProgress).unwrap();
    println!(
        "indexes from cache: {} packages verified and parsed in {:.1?}",
        all.len(),
        t2.elapsed()
    );
    println!(
        "{} packages; first run (indexes + download + extract): {first:.1?}; locked cached rerun: {second:.1?}",
        got.len()
    );
    println!(
        "lock:\n{}",
        fs::read_to_string(dir.path().join("hearth.lock")).unwrap()
    );
}

/// Sums wall time and bytes per kind of step ("downloading", "extracting").
#[derive(Default)]
struct Timing {
    current: std::cell::RefCell<Option<(String, Instant)>>,
    totals: std::cell::RefCell<std::collections::BTreeMap<String, (std::time::Duration, u64)>>,
}

impl Timing {
    fn report(&self) -> String {
        self.totals
            .borrow()
            .iter()
            .map(|(k, (d, n))| format!("{k}: {d:.1?}, {:.1} MB", *n as f64 / 1e6))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl Progress for Timing {
    fn start(&self, what: &str, _total: Option<u64>) {
        let kind = what.split_whitespace().next().unwrap_or(what).to_string();
        *self.current.borrow_mut() = Some((kind, Instant::now()));
    }
    fn advance(&self, n: u64) {
        if let Some((kind, _)) = &*self.current.borrow() {
            self.totals.borrow_mut().entry(kind.clone()).or_default().1 += n;
        }
    }
    fn finish(&self) {
        if let Some((kind, t)) = self.current.borrow_mut().take() {
            self.totals.borrow_mut().entry(kind).or_default().0 += t.elapsed();
        }
    }
}
