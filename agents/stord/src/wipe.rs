//! Wiping a disk listed in `storage.wipe` before it joins a new array: zeroes the
//! first and last MiB, which covers every signature [`crate::signature`] recognises
//! (partition tables and their GPT backup, file system superblocks up to btrfs at
//! 64 KiB, md 0.90/1.0/1.1/1.2, LUKS, LVM, swap). Nothing else on the disk is
//! touched; the new array overwrites it anyway.
//!
//! Only the reconcile calls this, only for a disk whose serial is wipe-listed, that
//! carries no superblock of the array being created, and that nothing holds open.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Bytes zeroed at each end.
pub const WIPE_BYTES: u64 = 1 << 20;

/// A wipe that failed, naming the device.
#[derive(Debug, thiserror::Error)]
#[error("wiping {path}")]
pub struct WipeError {
    /// The device node.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: io::Error,
}

/// Zero the first and last [`WIPE_BYTES`] of the device (or file) at `path`.
pub fn wipe(path: &Path) -> Result<(), WipeError> {
    let err = |source| WipeError {
        path: path.to_owned(),
        source,
    };
    let file = OpenOptions::new().write(true).open(path).map_err(err)?;
    let size = {
        use std::io::Seek;
        (&file).seek(io::SeekFrom::End(0)).map_err(err)?
    };
    let zeros = vec![0u8; usize::try_from(WIPE_BYTES.min(size)).unwrap_or(0)];
    file.write_all_at(&zeros, 0).map_err(err)?;
    let tail = size.saturating_sub(WIPE_BYTES);
    file.write_all_at(&zeros[..usize::try_from(size - tail).unwrap_or(0)], tail)
        .map_err(err)?;
    file.sync_all().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::{scan, DeviceFile};

    #[test]
    fn wiped_disk_scans_blank_and_the_middle_is_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        let size = 8u64 << 20;
        let mut data = vec![0xabu8; size as usize];
        data[1080..1082].copy_from_slice(&[0x53, 0xef]); // ext superblock magic
        data[4096..4100].copy_from_slice(&0xa92b_4efcu32.to_le_bytes()); // md 1.2
        std::fs::write(&path, &data).unwrap();
        assert!(!scan(&DeviceFile::open(&path).unwrap()).unwrap().is_empty());
        wipe(&path).unwrap();
        assert!(scan(&DeviceFile::open(&path).unwrap()).unwrap().is_empty());
        let after = std::fs::read(&path).unwrap();
        assert_eq!(after.len() as u64, size);
        assert!(after[..1 << 20].iter().all(|b| *b == 0));
        assert!(after[(size - (1 << 20)) as usize..].iter().all(|b| *b == 0));
        assert!(after[1 << 20..(size - (1 << 20)) as usize]
            .iter()
            .all(|b| *b == 0xab));
    }

    #[test]
    fn small_disk_is_zeroed_whole_and_errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny");
        std::fs::write(&path, [1u8; 1000]).unwrap();
        wipe(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), vec![0u8; 1000]);
        let e = wipe(&dir.path().join("gone")).unwrap_err();
        assert!(e.to_string().contains("gone"), "{e}");
    }
}
