//! `InRelease`: the signed root of trust of a suite.
//!
//! The file is verified with the host's `gpgv` against the source's keyring (its
//! `Signed-By`, else the Debian archive keyring), and only the text that gpgv
//! itself wrote out as verified (`--output`) is parsed, so nothing outside the signed
//! part can sneak in. A signature counts when gpgv reports `GOODSIG` + `VALIDSIG`,
//! no `BADSIG`, and the digest is not SHA-1/MD5. `Valid-Until`, when present, must be
//! in the future. The parsed `SHA256` list pins every index file by size and hash.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use super::deb822;
use super::error::DebianError;

/// The keyring used when a source has no `Signed-By`.
pub const DEFAULT_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// The verified, parsed content of one suite's `InRelease`.
#[derive(Debug, Clone)]
pub struct Release {
    pub suite: String,
    /// Where the `InRelease` came from (for messages).
    pub url: String,
    /// The archive serves `by-hash/SHA256/<hash>` paths (immune to mirror updates
    /// racing with our downloads).
    pub acquire_by_hash: bool,
    /// Index path (relative to `dists/<suite>/`) → (sha256, size).
    pub sha256: HashMap<String, (String, u64)>,
}

/// Runs gpgv on `inrelease` and returns the signed text it verified.
///
/// `scratch` is a directory for gpgv's output file.
pub fn verify(
    inrelease: &Path,
    keyring: &Path,
    scratch: &Path,
    suite: &str,
    url: &str,
) -> Result<String, DebianError> {
    let bad = |detail: String| DebianError::BadSignature {
        suite: suite.into(),
        url: url.into(),
        keyring: keyring.into(),
        detail,
    };
    if !keyring.is_file() {
        return Err(bad("keyring file does not exist".into()));
    }
    fs::create_dir_all(scratch).map_err(|e| DebianError::io("creating", scratch, e))?;
    let out_path = scratch.join(format!(".gpgv-{}-{}.txt", std::process::id(), unique()));
    let _ = fs::remove_file(&out_path);
    let output = Command::new("gpgv")
        .arg("--keyring")
        .arg(keyring)
        .args(["--status-fd", "1", "--output"])
        .arg(&out_path)
        .arg(inrelease)
        .output()
        .map_err(|source| DebianError::Gpgv {
            url: url.into(),
            source,
        });
    let text = fs::read(&out_path);
    let _ = fs::remove_file(&out_path);
    let output = output?;
    let status = String::from_utf8_lossy(&output.stdout);
    let mut good = false;
    let mut valid = false;
    let mut problems = Vec::new();
    for line in status.lines() {
        let Some(rest) = line.strip_prefix("[GNUPG:] ") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        match words.next() {
            Some("GOODSIG") => good = true,
            Some("VALIDSIG") => {
                // VALIDSIG <fpr> <date> <ts> <expire> <ver> <rsvd> <pk-algo> <hash-algo> ...
                match words.nth(7) {
                    Some("1") | Some("2") => problems.push("signed with MD5/SHA-1".to_string()),
                    _ => valid = true,
                }
            }
            Some("BADSIG" | "EXPKEYSIG" | "REVKEYSIG" | "EXPSIG" | "NO_PUBKEY" | "ERRSIG") => {
                problems.push(rest.to_string())
            }
            _ => {}
        }
    }
    if !good || !valid || status.lines().any(|l| l.starts_with("[GNUPG:] BADSIG")) {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let mut detail = problems.join("; ");
        if detail.is_empty() {
            detail = stderr.trim().replace('\n', "; ");
        }
        if detail.is_empty() {
            detail = format!("gpgv exited with {}", output.status);
        }
        return Err(bad(detail));
    }
    let text = text.map_err(|e| bad(format!("gpgv wrote no verified text: {e}")))?;
    String::from_utf8(text).map_err(|_| bad("verified text is not UTF-8".into()))
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Parses verified `InRelease` text; checks `Valid-Until` against `now`.
pub fn parse(text: &str, suite: &str, url: &str, now: SystemTime) -> Result<Release, DebianError> {
    let err = |message: String| DebianError::ReleaseParse {
        suite: suite.into(),
        url: url.into(),
        message,
    };
    let paragraphs =
        deb822::parse(text).map_err(|e| err(format!("line {}: {}", e.line, e.message)))?;
    let p = paragraphs
        .first()
        .ok_or_else(|| err("empty Release file".into()))?;
    if let Some(until) = p.get("Valid-Until") {
        let t = parse_rfc2822(until).ok_or_else(|| err(format!("bad Valid-Until `{until}`")))?;
        let now = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        if t < now {
            return Err(DebianError::Expired {
                suite: suite.into(),
                url: url.into(),
                valid_until: until.into(),
            });
        }
    }
    let sums = p
        .get("SHA256")
        .ok_or_else(|| err("no SHA256 field".into()))?;
    let mut sha256 = HashMap::new();
    for line in sums.lines().filter(|l| !l.trim().is_empty()) {
        let w: Vec<&str> = line.split_whitespace().collect();
        let [hash, size, name] = w[..] else {
            return Err(err(format!("bad SHA256 line `{line}`")));
        };
        let size: u64 = size
            .parse()
            .map_err(|_| err(format!("bad size in SHA256 line `{line}`")))?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(err(format!("bad hash in SHA256 line `{line}`")));
        }
        sha256.insert(name.to_string(), (hash.to_ascii_lowercase(), size));
    }
    Ok(Release {
        suite: suite.into(),
        url: url.into(),
        acquire_by_hash: p
            .get("Acquire-By-Hash")
            .is_some_and(|v| v.eq_ignore_ascii_case("yes")),
        sha256,
    })
}

/// Parses the RFC 2822 dates of Release files (`Sat, 01 Jun 2025 08:12:34 UTC`) to
/// Unix seconds.
pub fn parse_rfc2822(s: &str) -> Option<i64> {
    let s = s.split_once(',').map_or(s, |(_, rest)| rest);
    let w: Vec<&str> = s.split_whitespace().collect();
    let [day, mon, year, time, zone] = w[..] else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(mon))? as i64 + 1;
    let day: i64 = day.parse().ok()?;
    let year: i64 = year.parse().ok()?;
    let mut hms = time.split(':').map(|p| p.parse::<i64>());
    let (h, m, sec) = (hms.next()?.ok()?, hms.next()?.ok()?, hms.next()?.ok()?);
    let offset = match zone {
        "UTC" | "GMT" | "Z" => 0,
        z if z.len() == 5 && (z.starts_with('+') || z.starts_with('-')) => {
            let hh: i64 = z[1..3].parse().ok()?;
            let mm: i64 = z[3..5].parse().ok()?;
            let o = hh * 3600 + mm * 60;
            if z.starts_with('-') {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    Some(days_from_civil(year, month, day) * 86400 + h * 3600 + m * 60 + sec - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// The keyring for a source: its `Signed-By`, else [`DEFAULT_KEYRING`].
pub fn keyring_for(signed_by: Option<&Path>) -> PathBuf {
    signed_by.map_or_else(|| PathBuf::from(DEFAULT_KEYRING), Path::to_path_buf)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::time::Duration;

    /// A throwaway OpenPGP key in its own GNUPGHOME, to sign fake archives.
    pub(crate) struct TestKey {
        pub home: tempfile::TempDir,
        pub keyring: PathBuf,
    }

    impl TestKey {
        pub(crate) fn new() -> TestKey {
            let home = tempfile::tempdir().unwrap();
            fs::set_permissions(
                home.path(),
                std::os::unix::fs::PermissionsExt::from_mode(0o700),
            )
            .unwrap();
            let gpg = |args: &[&str]| {
                let out = Command::new("gpg")
                    .arg("--homedir")
                    .arg(home.path())
                    .args(["--batch", "--quiet", "--passphrase", ""])
                    .args(args)
                    .output()
                    .expect("gpg must be installed");
                assert!(out.status.success(), "gpg {args:?}: {out:?}");
                out.stdout
            };
            gpg(&[
                "--quick-gen-key",
                "Hearth Test <test@invalid>",
                "ed25519",
                "sign",
                "never",
            ]);
            let keyring = home.path().join("pub.gpg");
            fs::write(&keyring, gpg(&["--export"])).unwrap();
            TestKey { home, keyring }
        }

        /// Clearsigns `text` (like an archive's InRelease).
        pub(crate) fn clearsign(&self, text: &str) -> Vec<u8> {
            let input = self.home.path().join("in.txt");
            let output = self.home.path().join("in.txt.asc");
            fs::write(&input, text).unwrap();
            let _ = fs::remove_file(&output);
            let st = Command::new("gpg")
                .arg("--homedir")
                .arg(self.home.path())
                .args(["--batch", "--quiet", "--yes", "--clearsign", "-o"])
                .arg(&output)
                .arg(&input)
                .status()
                .unwrap();
            assert!(st.success());
            fs::read(output).unwrap()
        }
    }

    impl Drop for TestKey {
        fn drop(&mut self) {
            let _ = Command::new("gpgconf")
                .arg("--homedir")
                .arg(self.home.path())
                .args(["--kill", "gpg-agent"])
                .status();
        }
    }

    const RELEASE: &str = "Origin: Test\nSuite: fake\nAcquire-By-Hash: yes\n\
        Valid-Until: Sat, 01 Jan 2000 00:00:00 UTC\nSHA256:\n \
        0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef 1234 main/binary-amd64/Packages.xz\n";

    #[test]
    fn signature_good_then_tampered() {
        let key = TestKey::new();
        let dir = tempfile::tempdir().unwrap();
        let signed = key.clearsign(RELEASE);
        let file = dir.path().join("InRelease");
        fs::write(&file, &signed).unwrap();
        let text = verify(
            &file,
            &key.keyring,
            dir.path(),
            "fake",
            "http://m.invalid/x",
        )
        .unwrap();
        assert_eq!(text, RELEASE);

        // One byte changed inside the signed text.
        let tampered = String::from_utf8(signed.clone())
            .unwrap()
            .replace("Suite: fake", "Suite: fakf");
        fs::write(&file, tampered).unwrap();
        let err = verify(
            &file,
            &key.keyring,
            dir.path(),
            "fake",
            "http://m.invalid/x",
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DebianError::BadSignature { .. }), "{msg}");
        assert!(
            msg.starts_with("InRelease for fake at http://m.invalid/x: bad signature"),
            "{msg}"
        );
        assert!(msg.contains("BADSIG"), "{msg}");

        // Right file, wrong keyring (another key).
        fs::write(&file, &signed).unwrap();
        let other = TestKey::new();
        let err = verify(&file, &other.keyring, dir.path(), "fake", "u").unwrap_err();
        assert!(err.to_string().contains("NO_PUBKEY"), "{err}");

        // Unsigned text.
        fs::write(&file, RELEASE).unwrap();
        assert!(verify(&file, &key.keyring, dir.path(), "fake", "u").is_err());
    }

    #[test]
    fn parse_and_valid_until() {
        let before = UNIX_EPOCH + Duration::from_secs(946_684_000);
        let r = parse(RELEASE, "fake", "u", before).unwrap();
        assert!(r.acquire_by_hash);
        let (hash, size) = &r.sha256["main/binary-amd64/Packages.xz"];
        assert_eq!(*size, 1234);
        assert!(hash.starts_with("0123"));
        let err = parse(RELEASE, "fake", "u", SystemTime::now()).unwrap_err();
        assert!(matches!(err, DebianError::Expired { .. }), "{err}");
        assert!(parse("Origin: x\n", "s", "u", before).is_err());
    }

    #[test]
    fn dates() {
        assert_eq!(parse_rfc2822("Thu, 01 Jan 1970 00:00:00 UTC"), Some(0));
        assert_eq!(
            parse_rfc2822("Sat, 01 Jan 2000 00:00:00 UTC"),
            Some(946_684_800)
        );
        assert_eq!(
            parse_rfc2822("Sat, 10 Jun 2023 09:48:50 UTC"),
            Some(1_686_390_530)
        );
        assert_eq!(
            parse_rfc2822("Sat, 01 Jan 2000 01:00:00 +0100"),
            Some(946_684_800)
        );
        assert_eq!(parse_rfc2822("garbage"), None);
    }
}
