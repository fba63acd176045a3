//! Whether fallocate's PUNCH_HOLE / ZERO_RANGE really zero a range on a file's filesystem.
//!
//! Linux before 2.6.38 checked only FALLOC_FL_KEEP_SIZE in sys_fallocate (v2.6.32
//! fs/open.c: `if (mode && !(mode & FALLOC_FL_KEEP_SIZE)) return -EOPNOTSUPP`) and its ext4
//! and xfs ignored the other mode bits, so PUNCH_HOLE|KEEP_SIZE returned 0 and left the old
//! data: an NBD WRITE_ZEROES "done" that way reads back the old bytes (RHEL 6 kernels that
//! backported hole punching check the mode; a vanilla or early 2.6.32 does not). So before
//! a mode is first used on a filesystem, a scratch file beside the target is filled, zeroed
//! with it and read back; where that did not zero (or could not be tried), callers write
//! zeros themselves. Newer kernels give the answer using the mode would: one small
//! unlinked file per filesystem and mode is the whole cost.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::Mutex;

/// What the scratch files showed: (st_dev, mode) → the mode zeroed.
static TRIED: Mutex<Option<HashMap<(u64, i32), bool>>> = Mutex::new(None);

/// True when fallocate(`mode`) zeroes what it is given in `file` (found at `path`). Only
/// regular files are tried: on block devices 2.6.32 answers ENODEV to every mode and the
/// kernels that accept one there (4.9 and later) check it.
pub fn mode_zeroes(file: &File, path: &Path, mode: i32) -> bool {
    let Ok(meta) = file.metadata() else {
        return false;
    };
    if !meta.is_file() {
        return true;
    }
    let mut tried = TRIED.lock().unwrap_or_else(|e| e.into_inner());
    let tried = tried.get_or_insert_with(HashMap::new);
    *tried.entry((meta.dev(), mode)).or_insert_with(|| {
        let dir = crate::files::parent_dir(path);
        match scratch_zeroes(dir, mode) {
            Ok(true) => true,
            Ok(false) => {
                tracing::info!(
                    "fallocate mode {mode:#x} returned 0 but does not zero on the filesystem of {} (an old kernel): writing zeros instead",
                    dir.display()
                );
                false
            }
            Err(e) => {
                tracing::debug!(
                    "fallocate mode {mode:#x} not usable in {} ({e}): writing zeros instead",
                    dir.display()
                );
                false
            }
        }
    })
}

/// Fills an unlinked scratch file in `dir`, zeroes its first 4 KiB with `mode` and reads
/// it back: whether that zeroed exactly those bytes.
fn scratch_zeroes(dir: &Path, mode: i32) -> std::io::Result<bool> {
    let f = tempfile::tempfile_in(dir)?;
    f.write_all_at(&[0xa5; 8192], 0)?;
    // Any bits: an unknown mode must fail here, as it would on the target.
    let flags = nix::fcntl::FallocateFlags::from_bits_retain(mode);
    nix::fcntl::fallocate(&f, flags, 0, 4096)?;
    let mut b = [0u8; 8192];
    f.read_exact_at(&mut b, 0)?;
    Ok(b[..4096].iter().all(|&x| x == 0) && b[4096..].iter().all(|&x| x == 0xa5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_kernel_punches_and_devices_are_not_tried() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t.img");
        let f = File::create(&p).unwrap();
        let punch = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        assert!(mode_zeroes(&f, &p, punch));
        assert!(scratch_zeroes(d.path(), punch).unwrap());
        // Not a mode at all: fails, so not trusted.
        assert!(scratch_zeroes(d.path(), 0x4000).is_err());
        // No folder to try in: not trusted.
        assert!(scratch_zeroes(&d.path().join("missing"), punch).is_err());
        // Not a regular file (here a folder; in use, a block device): not tried.
        let dir = File::open(d.path()).unwrap();
        assert!(mode_zeroes(&dir, d.path(), 0x4000));
    }
}
