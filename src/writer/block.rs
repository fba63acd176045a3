//! The block store: a target disk (a block device or a regular file) read and written in
//! place with positional I/O on one descriptor (pread/pwrite/fdatasync/fallocate).
//!
//! Both ways a disk is served stand on it: the plain NBD export ([`super::FileExport`])
//! and a journaled group's target ([`super::group::Target`]). Only syscalls Linux 2.6.32
//! has are required: hole punching and zero ranges are tried first and fall back to
//! writing zeros where the kernel or the filesystem cannot do them ([`zeroing`]).

pub mod zeroing;

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::fcntl::{FallocateFlags, PosixFadviseAdvice, fallocate, posix_fadvise};

/// Zeros are written in pieces of this size when the kernel cannot zero a range itself.
const ZERO_CHUNK: usize = 1 << 20;

/// What [`BlockFile::write_through`] asks of a write's memory, offset and length before it
/// bypasses the page cache: 4 KiB covers every logical block size (512 or 4096 bytes).
pub const DIRECT_ALIGN: usize = 4096;

/// Zeroed memory whose bytes start on a [`DIRECT_ALIGN`] boundary, as a direct write asks
/// of its buffer: what the NBD payloads and the journal's append buffer are made of.
#[derive(Default)]
pub struct AlignedMem {
    raw: Vec<u8>,
    start: usize,
}

impl AlignedMem {
    /// At least `room` zeroed bytes from an aligned address (fresh pages from the
    /// allocator: room never touched costs no memory).
    pub fn zeroed(room: usize) -> AlignedMem {
        let raw = vec![0u8; room + DIRECT_ALIGN - 1];
        let start = raw.as_ptr().align_offset(DIRECT_ALIGN);
        AlignedMem { raw, start }
    }

    /// Bytes usable from the aligned start.
    pub fn room(&self) -> usize {
        self.raw.len() - self.start
    }

    /// Bytes of memory held.
    pub fn capacity(&self) -> usize {
        self.raw.len()
    }

    /// The first `len` bytes from the aligned start.
    pub fn bytes(&self, len: usize) -> &[u8] {
        &self.raw[self.start..self.start + len]
    }

    pub fn bytes_mut(&mut self, len: usize) -> &mut [u8] {
        &mut self.raw[self.start..self.start + len]
    }
}

/// Writes smaller than this stay in the page cache even where [`BlockFile::write_through`]
/// could bypass it: each direct write into a sparse file's hole allocates its blocks
/// there and then (`dd oflag=direct` into a fresh file on this VM: 914-929 MB/s in 256 KiB
/// writes, 1.3-1.6 GB/s in 1-2 MiB ones), where the page cache allocates at write-back
/// in large extents. nbdcopy's 256 KiB writes measured 0.87x buffered by direct I/O,
/// qemu-img's 2 MiB ones 9x.
pub const DIRECT_MIN: usize = 1 << 20;

/// A block device or regular file and its size, fixed when it was opened.
#[derive(Debug)]
pub struct BlockFile {
    file: File,
    path: PathBuf,
    size: u64,
    /// A regular file (else a block device): fallocate's errors mean different things.
    regular: bool,
    /// The same file opened with O_DIRECT, for [`BlockFile::write_through`] (a target
    /// only; `None` where the filesystem refuses it, e.g. tmpfs).
    direct: Option<File>,
    /// A direct write succeeded: logged once, so that the log says which way an initial
    /// sync goes.
    direct_used: AtomicBool,
}

impl BlockFile {
    /// Opens an existing file or block device; its size is its current length. A block
    /// device opened for writing is held with O_EXCL (EBUSY when mounted or held), so mkfs
    /// cannot format it while it is served.
    pub fn open(path: &Path, read_only: bool) -> io::Result<BlockFile> {
        let mut opts = OpenOptions::new();
        opts.read(true).write(!read_only);
        if !read_only && std::fs::metadata(path)?.file_type().is_block_device() {
            opts.custom_flags(libc::O_EXCL);
        }
        BlockFile::sized(opts.open(path)?, path)
    }

    /// Creates a sparse regular file of `size` bytes, 0600; refuses to replace an existing one.
    pub fn create(path: &Path, size: u64) -> io::Result<BlockFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        file.set_len(size)?;
        BlockFile::sized(file, path)
    }

    /// Opens a writer service's target for writing. With `size`, a regular file that does not
    /// exist is made (0600: it holds a machine's disk) and one that is shorter is grown to
    /// it. No O_EXCL: the service already holds a block device exclusively on another
    /// descriptor ([`super::targets::Host::claim`]), which an O_EXCL open would collide with.
    pub fn open_target(path: &Path, size: Option<u64>) -> io::Result<BlockFile> {
        let mut opts = OpenOptions::new();
        opts.read(true).write(true);
        if size.is_some() {
            opts.create(true).mode(0o600);
        }
        let file = opts.open(path)?;
        let meta = file.metadata()?;
        if let Some(want) = size.filter(|&w| meta.is_file() && w > meta.len()) {
            file.set_len(want)?;
        }
        let mut b = BlockFile::sized(file, path)?;
        b.direct = match OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
        {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "no direct I/O on this target: every write goes through the page cache");
                None
            }
        };
        Ok(b)
    }

    fn sized(mut file: File, path: &Path) -> io::Result<BlockFile> {
        let regular = file.metadata()?.is_file();
        // Block devices report a zero metadata length; the end offset is their size.
        let size = file.seek(SeekFrom::End(0))?;
        Ok(BlockFile {
            file,
            path: path.to_owned(),
            size,
            regular,
            direct: None,
            direct_used: AtomicBool::new(false),
        })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    /// Asks the kernel to start reading `[offset, offset+len)` into the page cache
    /// (POSIX_FADV_WILLNEED) and returns at once. A hint: a kernel or file that cannot
    /// take it only loses the head start, so its error is logged, not returned.
    pub fn read_ahead(&self, offset: u64, len: u64) {
        let (Ok(offset), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len))
        else {
            return;
        };
        if let Err(e) = posix_fadvise(
            &self.file,
            offset,
            len,
            PosixFadviseAdvice::POSIX_FADV_WILLNEED,
        ) {
            tracing::debug!(path = %self.path.display(), error = %e, "read-ahead hint refused");
        }
    }

    pub fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(data, offset)
    }

    /// Writes `data` at `offset` past the page cache (O_DIRECT) when the target has a direct
    /// descriptor and the write is [`DIRECT_ALIGN`]-aligned in memory, offset and length, and
    /// at least [`DIRECT_MIN`] long; otherwise as [`BlockFile::write_at`]. Durable only after [`BlockFile::sync`], like any
    /// write (a device cache, and the file's block map for a sparse file). The kernel keeps
    /// the two descriptors coherent: a direct write first writes back and drops the cached
    /// pages of its range.
    pub fn write_through(&self, data: &[u8], offset: u64) -> io::Result<()> {
        let aligned = |n: usize| n.is_multiple_of(DIRECT_ALIGN);
        if let Some(d) = &self.direct
            && data.len() >= DIRECT_MIN
            && aligned(data.as_ptr() as usize)
            && aligned(data.len())
            && offset.is_multiple_of(DIRECT_ALIGN as u64)
        {
            match d.write_all_at(data, offset) {
                // A filesystem may still refuse a direct write (alignment it wants larger):
                // the page cache takes it.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    tracing::debug!(path = %self.path.display(), offset, len = data.len(), "direct write refused: written through the page cache");
                }
                Ok(()) => {
                    if !self.direct_used.load(Ordering::Relaxed)
                        && !self.direct_used.swap(true, Ordering::Relaxed)
                    {
                        tracing::info!(path = %self.path.display(), "target written by direct I/O: the initial sync's large writes go past the page cache");
                    }
                    return Ok(());
                }
                r => return r,
            }
        }
        self.file.write_all_at(data, offset)
    }

    /// Makes what was written durable (fdatasync).
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Zeroes `[offset, offset+len)`: a hole punched when `may_trim`, else a zero range that
    /// stays allocated (NBD_CMD_FLAG_NO_HOLE), or zeros written where neither can be done.
    pub fn write_zeroes(&self, offset: u64, len: u64, may_trim: bool) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        let mode = if may_trim {
            FallocateFlags::FALLOC_FL_PUNCH_HOLE
        } else {
            FallocateFlags::FALLOC_FL_ZERO_RANGE
        };
        if !self.try_fallocate(mode | FallocateFlags::FALLOC_FL_KEEP_SIZE, offset, len)? {
            self.write_zero_bytes(offset, len)?;
        }
        Ok(())
    }

    /// Frees `[offset, offset+len)` where holes can be punched; elsewhere does nothing, as
    /// TRIM is advisory.
    pub fn trim(&self, offset: u64, len: u64) -> io::Result<()> {
        if len > 0 {
            self.try_fallocate(
                FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE,
                offset,
                len,
            )?;
        }
        Ok(())
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
    /// would "do" it without zeroing (a vanilla 2.6.32: see [`zeroing`]). Any other failure
    /// (EIO, ENOSPC, ...) is the caller's: writing zeros over a failing disk would hide it.
    fn try_fallocate(&self, flags: FallocateFlags, offset: u64, len: u64) -> io::Result<bool> {
        if !zeroing::mode_zeroes(&self.file, &self.path, flags.bits()) {
            return Ok(false);
        }
        match fallocate(&self.file, flags, offset as i64, len as i64) {
            Ok(()) => Ok(true),
            Err(e) if cannot_here(e, self.regular) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

/// Whether fallocate failing with `e` means "this mode cannot be done on this file"
/// (zeros are written instead) rather than a failure to report. fallocate(2), ERRORS:
/// EOPNOTSUPP (ENOTSUP on Linux) "the filesystem ... does not support this operation; or
/// the mode is not supported"; ENOSYS "this kernel does not implement fallocate()";
/// ENODEV "fd does not refer to a regular file or a directory" (a block device before
/// Linux 4.9); EINVAL "mode is ... FALLOC_FL_ZERO_RANGE, but the file referred to by fd is
/// not a regular file". On a block device EINVAL is also the kernel's answer to a range
/// not aligned to its logical block size (block/fops.c, blkdev_fallocate), which
/// pwrite can still zero. On a regular file, EINVAL means a bad offset or length: a bug
/// to report, not a missing feature.
fn cannot_here(e: Errno, regular: bool) -> bool {
    match e {
        Errno::EOPNOTSUPP | Errno::ENOSYS => true,
        Errno::ENODEV | Errno::EINVAL => !regular,
        _ => false,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn only_a_mode_this_file_cannot_do_falls_back_to_writing_zeros() {
        for regular in [true, false] {
            assert!(cannot_here(Errno::EOPNOTSUPP, regular));
            assert!(cannot_here(Errno::ENOTSUP, regular));
            assert!(cannot_here(Errno::ENOSYS, regular));
            // A failing or full disk is reported, never papered over with zeros.
            for e in [
                Errno::EIO,
                Errno::ENOSPC,
                Errno::EPERM,
                Errno::EBADF,
                Errno::EINTR,
            ] {
                assert!(!cannot_here(e, regular), "{e} (regular file: {regular})");
            }
        }
        // A block device: an unsupported mode or a range off its sector size.
        assert!(cannot_here(Errno::ENODEV, false));
        assert!(cannot_here(Errno::EINVAL, false));
        // A regular file: EINVAL/ENODEV are a bad request, not a missing feature.
        assert!(!cannot_here(Errno::ENODEV, true));
        assert!(!cannot_here(Errno::EINVAL, true));
    }

    #[test]
    fn create_write_read_zero_trim() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("disk.img");
        let b = BlockFile::create(&p, 4 << 20).unwrap();
        assert_eq!(b.size(), 4 << 20);
        assert!(BlockFile::create(&p, 1).is_err(), "must not replace a file");
        b.write_at(&[0xab; 8192], 4096).unwrap();
        let mut buf = [0u8; 8192];
        b.read_at(&mut buf, 4096).unwrap();
        assert!(buf.iter().all(|&x| x == 0xab));

        b.write_zeroes(4096, 4096, false).unwrap();
        b.read_at(&mut buf, 4096).unwrap();
        assert!(buf[..4096].iter().all(|&x| x == 0));
        assert!(buf[4096..].iter().all(|&x| x == 0xab));

        b.trim(8192, 4096).unwrap();
        b.sync().unwrap();
        let reopened = BlockFile::open(&p, true).unwrap();
        assert_eq!(reopened.size(), 4 << 20);
        assert!(reopened.write_at(&[1], 0).is_err(), "opened read-only");
    }

    /// Bytes of `path` in the page cache, as util-linux's fincore counts them.
    pub(crate) fn resident(path: &Path) -> u64 {
        let out = std::process::Command::new("fincore")
            .args(["--bytes", "--noheadings", "--raw", "--output", "RES"])
            .arg(path)
            .output()
            .expect("fincore (util-linux) runs");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }

    #[test]
    fn read_ahead_brings_that_range_into_the_page_cache_and_no_more() {
        // On a disk filesystem: tmpfs pages cannot be dropped.
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let p = dir.path().join("t.img");
        let b = BlockFile::create(&p, 8 << 20).unwrap();
        b.write_at(&vec![0x5a; 8 << 20], 0).unwrap();
        b.sync().unwrap();
        posix_fadvise(&b.file, 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED).unwrap();
        assert_eq!(resident(&p), 0, "the synced pages were dropped");

        b.read_ahead(1 << 20, 2 << 20);
        // The hint only starts the reads: wait for them.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while resident(&p) < 2 << 20 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(resident(&p), 2 << 20, "exactly the range asked for");
        // Past the end, or beyond what an off_t holds: nothing to do, no panic.
        b.read_ahead(8 << 20, 1 << 20);
        b.read_ahead(u64::MAX - 1, 1);
    }

    /// `len` bytes of `byte` at a [`DIRECT_ALIGN`]-aligned address, in `mem`.
    pub(crate) fn aligned(mem: &mut AlignedMem, len: usize, byte: u8) -> &mut [u8] {
        *mem = AlignedMem::zeroed(len);
        let bytes = mem.bytes_mut(len);
        bytes.fill(byte);
        bytes
    }

    #[test]
    fn an_aligned_write_through_bypasses_the_page_cache_and_others_go_through_it() {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let p = dir.path().join("t.img");
        let b = BlockFile::open_target(&p, Some(4 << 20)).unwrap();
        assert!(b.direct.is_some(), "a disk filesystem takes O_DIRECT");
        let mut raw = AlignedMem::default();
        let data = aligned(&mut raw, 1 << 20, 0x77);
        // (The same short write as below, so that the page counts there hold.)
        b.write_through(&data[..65536], (3 << 20) + 65536).unwrap();
        assert!(
            !b.direct_used.load(Ordering::Relaxed),
            "a short write is buffered"
        );
        b.write_through(data, 0).unwrap();
        assert_eq!(
            resident(&p),
            65536,
            "past the page cache: only the short write is cached"
        );
        assert!(
            b.direct_used.load(Ordering::Relaxed),
            "the direct write is logged"
        );

        // Misaligned memory, offset or length, or short: through the page cache, still
        // written.
        let big = (1 << 20) + 4096;
        b.write_through(
            &aligned(&mut AlignedMem::default(), big + 1, 0x77)[1..],
            1 << 20,
        )
        .unwrap();
        b.write_through(&data[..4096], (2 << 20) + 8192 + 512)
            .unwrap();
        b.write_through(&data[..1000], 3 << 20).unwrap();
        b.write_through(&data[..65536], (3 << 20) + 65536).unwrap();
        let cached = resident(&p);
        assert!(
            // The short writes' pages: 2 (across a boundary), 1 and 16.
            cached >= big as u64 + 3 * 4096 + 65536,
            "{cached} bytes cached"
        );
        let mut back = vec![0u8; 1 << 20];
        b.read_at(&mut back, 0).unwrap();
        assert!(
            back.iter().all(|&x| x == 0x77),
            "the buffered descriptor reads it"
        );
        for (at, len) in [
            (1 << 20, big),
            ((2 << 20) + 8192 + 512, 4096),
            (3 << 20, 1000),
            ((3 << 20) + 65536, 65536),
        ] {
            let mut got = vec![0u8; len];
            b.read_at(&mut got, at).unwrap();
            assert!(got.iter().all(|&x| x == 0x77), "at {at}");
        }

        // A direct write over cached pages: what a later read sees is the new data.
        let newer = aligned(&mut raw, 1 << 20, 0x99);
        b.write_through(newer, 1 << 20).unwrap();
        let mut got = vec![0u8; 1 << 20];
        b.read_at(&mut got, 1 << 20).unwrap();
        assert!(got.iter().all(|&x| x == 0x99));

        // Only targets get a direct descriptor.
        let plain = BlockFile::open(&p, false).unwrap();
        assert!(plain.direct.is_none());
    }

    #[test]
    fn a_target_is_made_or_grown_to_its_size_and_never_shrunk() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.img");
        assert!(
            BlockFile::open_target(&p, None).is_err(),
            "no size: not made"
        );
        let t = BlockFile::open_target(&p, Some(1 << 20)).unwrap();
        assert_eq!(t.size(), 1 << 20);
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        drop(t);
        assert_eq!(
            BlockFile::open_target(&p, Some(2 << 20)).unwrap().size(),
            2 << 20
        );
        assert_eq!(
            BlockFile::open_target(&p, Some(1 << 20)).unwrap().size(),
            2 << 20
        );
        assert_eq!(BlockFile::open_target(&p, None).unwrap().size(), 2 << 20);
    }

    #[test]
    fn punching_frees_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("disk.img");
        let b = BlockFile::create(&p, 8 << 20).unwrap();
        b.write_at(&vec![1u8; 4 << 20], 0).unwrap();
        b.sync().unwrap();
        let before = std::fs::metadata(&p).unwrap().blocks();
        b.write_zeroes(0, 4 << 20, true).unwrap();
        let after = std::fs::metadata(&p).unwrap().blocks();
        // tmpfs and ext4/xfs punch holes; the data must read as zeros either way.
        assert!(after <= before);
        let mut buf = vec![9u8; 4 << 20];
        b.read_at(&mut buf, 0).unwrap();
        assert!(buf.iter().all(|&x| x == 0));
    }
}
