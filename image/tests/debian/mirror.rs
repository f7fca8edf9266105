//! A fake Debian mirror on 127.0.0.1: a signed `InRelease`, `Packages.xz` and
//! `.deb`s built in the test, served by a tiny HTTP/1.1 server in a thread.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

pub struct Pkg {
    pub name: String,
    pub version: String,
    pub depends: String,
}

impl Pkg {
    pub fn new(name: &str, version: &str, depends: &str) -> Pkg {
        Pkg {
            name: name.into(),
            version: version.into(),
            depends: depends.into(),
        }
    }

    fn pool_path(&self) -> String {
        format!(
            "pool/main/{}/{}/{}_{}_amd64.deb",
            &self.name[..1],
            self.name,
            self.name,
            self.version
        )
    }
}

pub struct FakeMirror {
    pub dir: tempfile::TempDir,
    gnupg: PathBuf,
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A .deb with `usr/share/<name>/hello` and a relative symlink `usr/bin/<name>`.
fn build_deb(name: &str) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, mode: u32, data: &[u8], link: Option<&str>| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_mtime(1_700_000_000);
        h.set_size(data.len() as u64);
        match link {
            Some(target) => tar.append_link(&mut h, path, target).unwrap(),
            None => tar.append_data(&mut h, path, data).unwrap(),
        }
    };
    add("./", tar::EntryType::Directory, 0o755, b"", None);
    add("./usr/", tar::EntryType::Directory, 0o755, b"", None);
    add(
        &format!("./usr/share/{name}/"),
        tar::EntryType::Directory,
        0o755,
        b"",
        None,
    );
    let hello = format!("{name}\n");
    add(
        &format!("./usr/share/{name}/hello"),
        tar::EntryType::Regular,
        0o644,
        hello.as_bytes(),
        None,
    );
    add("./usr/bin/", tar::EntryType::Directory, 0o755, b"", None);
    add(
        &format!("./usr/bin/{name}"),
        tar::EntryType::Symlink,
        0o777,
        b"",
        Some(&format!("../share/{name}/hello")),
    );
    let data = tar.into_inner().unwrap();
    let mut xz = Vec::new();
    xz2::read::XzEncoder::new(&data[..], 1)
        .read_to_end(&mut xz)
        .unwrap();
    let mut ar = ar::Builder::new(Vec::new());
    for (member, bytes) in [
        ("debian-binary", b"2.0\n".to_vec()),
        ("control.tar.xz", Vec::new()),
        ("data.tar.xz", xz),
    ] {
        ar.append(
            &ar::Header::new(member.as_bytes().to_vec(), bytes.len() as u64),
            &bytes[..],
        )
        .unwrap();
    }
    ar.into_inner().unwrap()
}

impl FakeMirror {
    pub fn start(pkgs: &[Pkg]) -> FakeMirror {
        let dir = tempfile::tempdir().unwrap();
        let gnupg = dir.path().join("gnupg");
        fs::create_dir(&gnupg).unwrap();
        fs::set_permissions(&gnupg, fs::Permissions::from_mode(0o700)).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let root = dir.path().join("www");
        let thread = {
            let (log, stop) = (Arc::clone(&log), Arc::clone(&stop));
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(conn) = conn {
                        serve(conn, &root, &log);
                    }
                }
            })
        };
        let m = FakeMirror {
            dir,
            gnupg,
            port,
            log,
            stop,
            thread: Some(thread),
        };
        m.gpg(&[
            "--quick-gen-key",
            "Hearth Test Archive <archive@invalid>",
            "ed25519",
            "sign",
            "never",
        ]);
        let keyring = m.gpg(&["--export"]);
        fs::write(m.keyring(), keyring).unwrap();
        for p in pkgs {
            m.write(&p.pool_path(), &build_deb(&p.name));
        }
        let packages_xz = m.write_packages_unsigned(pkgs);
        m.sign_release(&packages_xz);
        let sources = format!(
            "Types: deb\nURIs: {}/\nSuites: testing\nComponents: main\nSigned-By: {}\n",
            m.uri(),
            m.keyring().display()
        );
        let path = m.apt_root().join("etc/apt/sources.list.d/test.sources");
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, sources).unwrap();
        m
    }

    fn gpg(&self, args: &[&str]) -> Vec<u8> {
        let out = Command::new("gpg")
            .arg("--homedir")
            .arg(&self.gnupg)
            .args(["--batch", "--quiet", "--yes", "--passphrase", ""])
            .args(args)
            .output()
            .expect("gpg must be installed");
        assert!(out.status.success(), "gpg {args:?}: {out:?}");
        out.stdout
    }

    pub fn keyring(&self) -> PathBuf {
        self.dir.path().join("archive-keyring.gpg")
    }

    pub fn apt_root(&self) -> PathBuf {
        self.dir.path().join("host")
    }

    pub fn uri(&self) -> String {
        format!("http://127.0.0.1:{}/debian", self.port)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join("www/debian").join(rel)
    }

    pub fn write(&self, rel: &str, data: &[u8]) {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, data).unwrap();
    }

    pub fn read(&self, rel: &str) -> Vec<u8> {
        fs::read(self.path(rel)).unwrap()
    }

    /// Flips the last byte of a file on the mirror.
    pub fn tamper_file(&self, rel: &str) {
        let mut data = self.read(rel);
        let last = data.len() - 1;
        data[last] ^= 0xff;
        self.write(rel, &data);
    }

    /// Writes `Packages.xz` for `pkgs` (hashing the .debs on the mirror) without
    /// touching InRelease; returns the compressed bytes.
    pub fn write_packages_unsigned(&self, pkgs: &[Pkg]) -> Vec<u8> {
        let mut text = String::new();
        for p in pkgs {
            let deb = self.read(&p.pool_path());
            text.push_str(&format!(
                "Package: {}\nVersion: {}\nArchitecture: amd64\nMaintainer: Test <t@invalid>\n",
                p.name, p.version
            ));
            if !p.depends.is_empty() {
                text.push_str(&format!("Depends: {}\n", p.depends));
            }
            text.push_str(&format!(
                "Filename: {}\nSize: {}\nSHA256: {}\nDescription: test package\n more text\n\n",
                p.pool_path(),
                deb.len(),
                sha256(&deb)
            ));
        }
        let mut xz = Vec::new();
        xz2::read::XzEncoder::new(text.as_bytes(), 6)
            .read_to_end(&mut xz)
            .unwrap();
        self.write("dists/testing/main/binary-amd64/Packages.xz", &xz);
        xz
    }

    fn sign_release(&self, packages_xz: &[u8]) {
        let release = format!(
            "Origin: Test\nLabel: Test\nSuite: testing\nCodename: test\n\
             Date: Sat, 01 Jan 2000 00:00:00 UTC\n\
             Valid-Until: Fri, 01 Jan 2100 00:00:00 UTC\n\
             Architectures: amd64\nComponents: main\nSHA256:\n {} {} main/binary-amd64/Packages.xz\n",
            sha256(packages_xz),
            packages_xz.len()
        );
        let input = self.dir.path().join("Release");
        fs::write(&input, release).unwrap();
        let out = self.path("dists/testing/InRelease");
        self.gpg(&[
            "--clearsign",
            "-o",
            out.to_str().unwrap(),
            input.to_str().unwrap(),
        ]);
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn clear_log(&self) {
        self.log.lock().unwrap().clear();
    }
}

impl Drop for FakeMirror {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(&self.gnupg)
            .args(["--kill", "gpg-agent"])
            .status();
    }
}

/// Answers one request per connection (`Connection: close`).
fn serve(conn: TcpStream, root: &Path, log: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(&conn);
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line == "\r\n" || line == "\n" => break,
            Ok(_) => {}
        }
    }
    let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
    log.lock().unwrap().push(path.clone());
    let file = root.join(path.trim_start_matches('/'));
    let mut conn = &conn;
    let ok = !path.contains("..") && file.is_file();
    let _ = if ok {
        let body = fs::read(&file).unwrap();
        conn.write_all(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .and_then(|()| conn.write_all(&body))
    } else {
        conn.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    };
}
