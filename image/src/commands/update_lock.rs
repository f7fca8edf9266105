//! `hearth update-lock`: resolve the config's packages against the mirror again and
//! rewrite the lock file (the only command that changes package versions).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::assemble;
use crate::profile::ImageProfile;

#[derive(Debug, Clone, clap::Args)]
pub struct UpdateLockArgs {
    /// The config file (default: the embedded configs/default.toml).
    pub config: Option<PathBuf>,
    /// Lock file (default: hearth.lock beside the config, or ./hearth.lock).
    #[arg(long)]
    pub lock: Option<PathBuf>,
    /// Package cache directory.
    #[arg(long)]
    pub cache: Option<PathBuf>,
}

pub fn run(args: &UpdateLockArgs) -> anyhow::Result<ExitCode> {
    let profile = ImageProfile::load(args.config.as_deref())?;
    let lock = assemble::lock_path(args.lock.as_deref(), &profile);
    let progress = crate::progress::for_stderr();
    let packages = assemble::fetch(
        &profile,
        assemble::package_roots(&profile),
        lock.clone(),
        args.cache.clone(),
        false,
        true,
        &*progress,
    )?;
    println!("{}: {} packages locked", lock.display(), packages.len());
    Ok(ExitCode::SUCCESS)
}
