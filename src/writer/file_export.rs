//! A plain file or block device served as an [`Export`]: pread/pwrite/fdatasync/fallocate.
//!
//! Also the target-disk store under the journal. Only syscalls Linux 2.6.32 has are
//! required: hole punching and zero ranges are tried first and fall back to writing
//! zeros when the kernel or the file system says EOPNOTSUPP (or EINVAL/ENODEV for
//! block devices on old kernels).

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{FallocateFlags, fallocate};

use super::export::Export;

/// Zeros are written in pieces of this size when the kernel cannot zero a range itself.
const ZERO_CHUNK: usize = 1 << 20;

#[derive(Debug)]
pub struct FileExport {
    file: File,
    path: PathBuf,
    size: u64,
    read_only: bool,
}

impl FileExport {
    /// Opens an existing file or block device; its size is its current length. A block
    /// device opened for writing is held with O_EXCL (EBUSY when mounted or held), so mkfs
    /// cannot format it while it is served.
    pub fn open(path: &Path, read_only: bool) -> io::Result<FileExport> {
        use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
        let mut opts = OpenOptions::new();
        opts.read(true).write(!read_only);
        if !read_only && std::fs::metadata(path)?.file_type().is_block_device() {
            opts.custom_flags(libc::O_EXCL);
        }
        let mut file = opts.open(path)?;
        // Block devices report a zero metadata length; the end offset is their size.
        let size = file.seek(SeekFrom::End(0))?;
        Ok(FileExport {
            file,
            path: path.to_owned(),
            size,
            read_only,
        })
    }

    /// Creates a sparse regular file of `size` bytes; refuses to replace an existing one.
    pub fn create(path: &Path, size: u64) -> io::Result<FileExport> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        file.set_len(size)?;
        Ok(FileExport {
            file,
            path: path.to_owned(),
            size,
            read_only: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    fn write_zero_bytes(&self, mut offset: u64, len: u64) -> io::Result<()> {
        let zeros = vec![0u8; ZERO_CHUNK.min(len as usize)];
        let end = offset + len;
        while offset < end {
            let n = (end - offset).min(zeros.len() as u64) as usize;
            self.file.write_all_at(&zeros[..n], offset)?;
            offset += n as u64;
        }
        Ok(())
    }

    /// Tries fallocate with `flags`; `Ok(false)` when this kernel/file cannot do it, or
    /// would "do" it without zeroing (a vanilla 2.6.32: see [`super::zeroing`]).
    fn try_fallocate(&self, flags: FallocateFlags, offset: u64, len: u64) -> io::Result<bool> {
        if !super::zeroing::mode_zeroes(&self.file, &self.path, flags.bits()) {
            return Ok(false);
        }
        match fallocate(&self.file, flags, offset as i64, len as i64) {
            Ok(()) => Ok(true),
            Err(
                nix::errno::Errno::EOPNOTSUPP
                | nix::errno::Errno::ENOSYS
                | nix::errno::Errno::EINVAL
                | nix::errno::Errno::ENODEV,
            ) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

impl Export for FileExport {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn write_at(&self, data: &[u8], offset: u64, fua: bool) -> io::Result<()> {
        self.file.write_all_at(data, offset)?;
        if fua {
            self.file.sync_data()?;
        }
        Ok(())
    }

    fn write_zeroes(&self, offset: u64, len: u64, may_trim: bool, fua: bool) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        let done = if may_trim {
            self.try_fallocate(
                FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE,
                offset,
                len,
            )?
        } else {
            // NO_HOLE: the range must stay allocated (zero range keeps the blocks).
            self.try_fallocate(
                FallocateFlags::FALLOC_FL_ZERO_RANGE | FallocateFlags::FALLOC_FL_KEEP_SIZE,
                offset,
                len,
            )?
        };
        if !done {
            self.write_zero_bytes(offset, len)?;
        }
        if fua {
            self.file.sync_data()?;
        }
        Ok(())
    }

    fn trim(&self, offset: u64, len: u64) -> io::Result<()> {
        // TRIM is advisory: where holes cannot be punched, doing nothing is correct.
        if len > 0 {
            self.try_fallocate(
                FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE,
                offset,
                len,
            )?;
        }
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn create_write_read_zero_trim() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("disk.img");
        let e = FileExport::create(&p, 4 << 20).unwrap();
        assert_eq!(e.size(), 4 << 20);
        assert!(
            FileExport::create(&p, 1).is_err(),
            "must not replace a file"
        );
        e.write_at(&[0xab; 8192], 4096, true).unwrap();
        let mut buf = [0u8; 8192];
        e.read_at(&mut buf, 4096).unwrap();
        assert!(buf.iter().all(|&b| b == 0xab));

        e.write_zeroes(4096, 4096, false, false).unwrap();
        e.read_at(&mut buf, 4096).unwrap();
        assert!(buf[..4096].iter().all(|&b| b == 0));
        assert!(buf[4096..].iter().all(|&b| b == 0xab));

        e.trim(8192, 4096).unwrap();
        e.flush().unwrap();
        let reopened = FileExport::open(&p, true).unwrap();
        assert!(reopened.read_only());
        assert_eq!(reopened.size(), 4 << 20);
    }

    #[test]
    fn punching_frees_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("disk.img");
        let e = FileExport::create(&p, 8 << 20).unwrap();
        e.write_at(&vec![1u8; 4 << 20], 0, false).unwrap();
        e.flush().unwrap();
        let before = std::fs::metadata(&p).unwrap().blocks();
        e.write_zeroes(0, 4 << 20, true, true).unwrap();
        let after = std::fs::metadata(&p).unwrap().blocks();
        // tmpfs and ext4/xfs punch holes; the data must read as zeros either way.
        assert!(after <= before);
        let mut buf = vec![9u8; 4 << 20];
        e.read_at(&mut buf, 0).unwrap();
        assert!(buf.iter().all(|&b| b == 0));
    }
}
