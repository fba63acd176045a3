//! The block store's zeroing on real filesystems and devices, through a group's target
//! disk served over NBD: where the kernel cannot punch or zero a range (tmpfs has no zero
//! range; a loop device refuses a range off its 512-byte sectors) zeros are written
//! instead, but an I/O error from fallocate (a loop device over a shut-down xfs) reaches
//! the client as EIO rather than being papered over with buffered zeros.

mod support;

use std::os::unix::fs::{FileExt, MetadataExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::thread::JoinHandle;

use mtkit::writer::group::{DiskSpec, Group};
use mtkit::writer::journaled::JournaledDisk;
use mtkit::writer::nbd::proto::{self, CMD_FLAG_NO_HOLE, CMD_WRITE_ZEROES};
use mtkit::writer::nbd::{Server, ServerOptions, StaticResolver};
use support::nbd::{Raw, socketpair};
use support::{have, is_root, sh_text};

const FILL: u8 = 0xab;

/// Mounts and loop devices made by a test, undone in reverse order on drop.
#[derive(Default)]
struct Undo {
    mounts: Vec<PathBuf>,
    loops: Vec<String>,
}

impl Undo {
    fn mount(&mut self, args: &[&str], at: &Path) {
        std::fs::create_dir_all(at).unwrap();
        let mut a = args.to_vec();
        a.push(at.to_str().unwrap());
        sh_text("mount", &a);
        self.mounts.push(at.to_owned());
    }

    fn losetup(&mut self, file: &Path) -> String {
        let dev = sh_text("losetup", &["-f", "--show", file.to_str().unwrap()]);
        self.loops.push(dev.clone());
        dev
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        // A loop device over a file of a mount goes first, then that mount.
        for d in self.loops.iter().rev() {
            let _ = Command::new("losetup").args(["-d", d]).output();
        }
        for m in self.mounts.iter().rev() {
            let _ = Command::new("umount").arg(m).output();
        }
    }
}

/// A client in transmission on export "d": `disk` as the one target of a group in initial
/// sync (writes go straight to it), journal in `journal`, served over a socket pair. On
/// drop the client hangs up and the serving thread ends, so nothing holds the disk open.
struct Served {
    client: Option<Raw<UnixStream>>,
    thread: Option<JoinHandle<String>>,
}

impl Served {
    fn new(journal: &Path, disk: &Path) -> Served {
        let spec = DiskSpec {
            name: "d".into(),
            path: disk.to_owned(),
            size: None,
        };
        let group = Group::open("g", journal, &[spec], 1 << 20).unwrap();
        let export = Arc::new(JournaledDisk::new(group, 0));
        let resolver = StaticResolver::new().with("d", "", export);
        let server = Server::new(Arc::new(resolver), ServerOptions::default());
        let (s, thread) = socketpair(&server);
        let mut c = Raw::greet(s, proto::FLAG_C_FIXED_NEWSTYLE | proto::FLAG_C_NO_ZEROES);
        assert_eq!(c.go("d").reply, proto::REP_ACK);
        Served {
            client: Some(c),
            thread: Some(thread),
        }
    }

    /// Sends WRITE_ZEROES of `[offset, offset+len)` (NO_HOLE unless `may_trim`) and checks
    /// the reply's error.
    #[track_caller]
    fn zeroes(&mut self, offset: u64, len: u32, may_trim: bool, error: u32) {
        let c = self.client.as_mut().unwrap();
        let flags = if may_trim { 0 } else { CMD_FLAG_NO_HOLE };
        c.request(CMD_WRITE_ZEROES, flags, offset, offset, len);
        c.expect_reply(offset, error);
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.client.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Bytes `[offset, offset+len)` of `disk` read back from the device or file itself.
fn bytes(disk: &Path, offset: u64, len: usize) -> Vec<u8> {
    let mut b = vec![0x55; len];
    std::fs::File::open(disk)
        .unwrap()
        .read_exact_at(&mut b, offset)
        .unwrap();
    b
}

/// True when `[offset, offset+len)` reads as zeros and 4 KiB on either side kept FILL.
fn zeroed_alone(disk: &Path, offset: u64, len: usize) -> bool {
    let around = bytes(disk, offset - 4096, len + 8192);
    around[..4096].iter().all(|&b| b == FILL)
        && around[4096..4096 + len].iter().all(|&b| b == 0)
        && around[4096 + len..].iter().all(|&b| b == FILL)
}

#[test]
fn zeros_are_written_where_the_kernel_cannot_zero_the_range() {
    require!(
        is_root() && have("losetup"),
        "needs root (tmpfs mount, loop devices) and losetup"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut undo = Undo::default();
    let tmpfs = dir.path().join("tmpfs");
    undo.mount(&["-t", "tmpfs", "-o", "size=16m", "mtkit-test"], &tmpfs);

    // A file on tmpfs: it punches holes but has no FALLOC_FL_ZERO_RANGE.
    let file = tmpfs.join("d.img");
    std::fs::write(&file, vec![FILL; 4 << 20]).unwrap();
    let mut c = Served::new(&dir.path().join("j1"), &file);
    c.zeroes(64 << 10, 64 << 10, false, 0);
    assert!(zeroed_alone(&file, 64 << 10, 64 << 10));
    let blocks = std::fs::metadata(&file).unwrap().blocks();
    assert_eq!(blocks, 8192, "NO_HOLE: the zeroed range stays allocated");
    c.zeroes(1 << 20, 1 << 20, true, 0);
    assert!(zeroed_alone(&file, 1 << 20, 1 << 20));
    let punched = std::fs::metadata(&file).unwrap().blocks();
    assert_eq!(punched, 8192 - 2048, "a hole was punched");
    drop(c);

    // A loop device (over a file of the tmpfs, so the device zeroes by punching): a range
    // off its 512-byte sectors is refused by the kernel with EINVAL; zeros are written.
    let backing = tmpfs.join("loop.img");
    std::fs::write(&backing, vec![FILL; 4 << 20]).unwrap();
    let dev = PathBuf::from(undo.losetup(&backing));
    let mut c = Served::new(&dir.path().join("j2"), &dev);
    for may_trim in [true, false] {
        let at = if may_trim { 8192 + 100 } else { 3 << 20 };
        c.zeroes(at, 1000, may_trim, 0);
        assert!(zeroed_alone(&dev, at, 1000), "may_trim {may_trim}");
    }
    // Aligned, the device does it itself.
    c.zeroes(2 << 20, 64 << 10, true, 0);
    assert!(zeroed_alone(&dev, 2 << 20, 64 << 10));
}

#[test]
fn an_io_error_from_fallocate_reaches_the_client_as_eio() {
    require!(
        is_root() && have("losetup") && have("mkfs.xfs") && have("xfs_io"),
        "needs root, losetup, mkfs.xfs and xfs_io (xfsprogs)"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut undo = Undo::default();
    let img = dir.path().join("xfs.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(300 << 20)
        .unwrap();
    let vol = undo.losetup(&img);
    sh_text("mkfs.xfs", &["-q", &vol]);
    let mnt = dir.path().join("xfs");
    undo.mount(&[&vol], &mnt);
    let backing = mnt.join("disk.img");
    std::fs::write(&backing, vec![FILL; 4 << 20]).unwrap();
    let dev = PathBuf::from(undo.losetup(&backing));
    let mut c = Served::new(&dir.path().join("journal"), &dev);
    c.zeroes(64 << 10, 64 << 10, true, 0);
    assert!(zeroed_alone(&dev, 64 << 10, 64 << 10));

    // The filesystem under the device fails every I/O from now on, as a dying disk does.
    sh_text("xfs_io", &["-x", "-c", "shutdown", mnt.to_str().unwrap()]);
    // fallocate on the device answers EIO. Buffered zeros would still "succeed" (into the
    // page cache, lost at the next sync): the client must hear EIO instead.
    c.zeroes(1 << 20, 64 << 10, true, proto::EIO);
    c.zeroes(2 << 20, 64 << 10, false, proto::EIO);
}
