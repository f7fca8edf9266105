//! Loading the ruleset into the kernel with the `nft` tool.
//!
//! Why `nft -f -` with text and not the `nftables` crate's JSON (`nft -j -f -`): both
//! are one `nft` run and therefore one atomic netlink batch, so the guarantee is the
//! same — if any rule is refused the kernel aborts the batch and the old table stays
//! in place. Text is what `--dry-run` prints and what the golden test pins, so the
//! operator reads exactly what is loaded, in the syntax every nftables document uses;
//! JSON would need a second renderer for humans (and has its own gotchas, e.g. CIDRs
//! must be prefix objects). JSON is still used for *reading* (`nft -j list`), where a
//! parser beats scraping text.
//!
//! nft's stderr is captured and becomes the error, so a refused ruleset is reported
//! with nft's own message (line and column into the text).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::ruleset::{Ruleset, DIGEST_PREFIX, FAMILY, TABLE};

/// Where the image puts `nft`; elsewhere it is found on `PATH`.
pub const NFT_IMAGE_PATH: &str = "/usr/sbin/nft";

/// A failed `nft` run.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// `nft` could not be started or fed.
    #[error("running {}", program.display())]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// nft (or the kernel) refused the ruleset; the old one is still loaded.
    #[error("nft refused the ruleset (the previous ruleset stays loaded): {stderr}")]
    Refused { stderr: String },
    /// A listing failed.
    #[error("nft {args}: {stderr}")]
    List { args: String, stderr: String },
    /// Reading the table over netlink failed.
    #[error(transparent)]
    TableRead(#[from] crate::nft_table::TableReadError),
    /// A listing was not the JSON we expect.
    #[error("nft {args}: unexpected output: {message}")]
    Parse { args: String, message: String },
}

/// The `nft` tool.
#[derive(Debug, Clone)]
pub struct Nft {
    program: PathBuf,
}

impl Default for Nft {
    fn default() -> Self {
        let program = if Path::new(NFT_IMAGE_PATH).exists() {
            PathBuf::from(NFT_IMAGE_PATH)
        } else {
            PathBuf::from("nft")
        };
        Self { program }
    }
}

impl Nft {
    /// Use a specific `nft` binary.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
        }
    }

    /// The `nft` binary this runs.
    pub fn program(&self) -> &Path {
        &self.program
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<(bool, String, String), NftError> {
        let spawn_err = |source| NftError::Spawn {
            program: self.program.clone(),
            source,
        };
        let mut child = Command::new(&self.program)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_err)?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes()).map_err(spawn_err)?;
        }
        let out = child.wait_with_output().map_err(spawn_err)?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).trim_end().to_owned(),
        ))
    }

    /// Load `text` as one transaction.
    pub fn load(&self, text: &str) -> Result<(), NftError> {
        let (ok, _, stderr) = self.run(&["-f", "-"], Some(text))?;
        if ok {
            Ok(())
        } else {
            Err(NftError::Refused { stderr })
        }
    }

    /// Load a generated ruleset.
    pub fn apply(&self, ruleset: &Ruleset) -> Result<(), NftError> {
        self.load(&ruleset.text)
    }

    fn list_json(&self, args: &[&str]) -> Result<Option<serde_json::Value>, NftError> {
        let joined = args.join(" ");
        let (ok, stdout, stderr) = self.run(args, None)?;
        if !ok {
            // A missing table is "No such file or directory"; anything else is real.
            if stderr.contains("No such file or directory") {
                return Ok(None);
            }
            return Err(NftError::List {
                args: joined,
                stderr,
            });
        }
        serde_json::from_str(&stdout)
            .map(Some)
            .map_err(|e| NftError::Parse {
                args: joined,
                message: e.to_string(),
            })
    }

    /// The digest in the loaded `inet hearth` table's comment: `None` when there is no
    /// table, `Some("")` when it has no netd digest. Read over netlink
    /// ([`crate::nft_table`]), not with `nft list`, which would build nft's whole
    /// cache first.
    pub fn loaded_digest(&self) -> Result<Option<String>, NftError> {
        let comment = crate::nft_table::inet_table_comment(TABLE)?;
        Ok(comment.map(|c| c.strip_prefix(DIGEST_PREFIX).unwrap_or_default().to_owned()))
    }

    /// The named counters of netd's table: (name, packets, bytes).
    pub fn counters(&self) -> Result<Vec<(String, u64, u64)>, NftError> {
        let Some(json) = self.list_json(&["-j", "list", "counters", "table", FAMILY, TABLE])?
        else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for o in json["nftables"].as_array().into_iter().flatten() {
            let c = &o["counter"];
            if let (Some(name), Some(p), Some(b)) = (
                c["name"].as_str(),
                c["packets"].as_u64(),
                c["bytes"].as_u64(),
            ) {
                out.push((name.to_owned(), p, b));
            }
        }
        Ok(out)
    }

    /// Remove netd's table (nothing else), e.g. on an explicit teardown.
    pub fn delete_table(&self) -> Result<(), NftError> {
        self.load(&format!(
            "table {FAMILY} {TABLE}\ndelete table {FAMILY} {TABLE}\n"
        ))
    }
}
