//! Whether a folder's filesystem comes back whole after a power cut: the retention journal
//! may only live on one that does. A journal is an append order that recovery trusts; on a
//! filesystem whose metadata a crash can leave half-written and that nothing repairs before
//! the writer reads it again (ext2, ext3/ext4 without the `has_journal` feature, FAT), blocks
//! of the segments end up cross-linked: records that read back valid are overwritten by later
//! appends, points vanish, and a recover can report success at the wrong data (seen on ext2
//! in a guest whose power was cut; ext4 with its journal and xfs held every point).
//!
//! The filesystem comes from statfs's magic on the running system and from the mount table
//! under a fixture root; ext2/3/4 share one magic, so their superblock's feature flags are
//! read from the backing device (Documentation/filesystems/ext4/super.rst: `s_magic` at
//! 0x38, `s_feature_compat` at 0x5C, `COMPAT_HAS_JOURNAL` = 0x4).

use super::blockdev::DevNum;
use super::mounts::{self, Mount};
use serde::Serialize;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

/// What a power cut does to a filesystem, as far as mtkit can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Safety {
    /// Metadata comes back consistent (a journal replayed, or copy-on-write commits).
    Safe,
    /// A power cut can lose or cross-link the journal's blocks, or loses it all (memory).
    Unsafe,
    /// Could not be told (an unknown filesystem, an unreadable superblock).
    Unknown,
}

/// The verdict on one filesystem, with the words every caller shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Judgement {
    pub safety: Safety,
    /// As said to the user: `ext4 with a journal`, `ext2 without a journal`, `tmpfs`.
    pub filesystem: String,
    /// `/dev/sdb1 on /mnt/retention`, when the mount is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mount: Option<String>,
    /// Why: what a power cut does there, or why it could not be told.
    pub why: String,
}

impl Judgement {
    pub fn is_safe(&self) -> bool {
        self.safety == Safety::Safe
    }

    /// `ext2 without a journal (/dev/sdb on /mnt/retention): <why>`.
    pub fn describe(&self) -> String {
        match &self.mount {
            Some(m) => format!("{} ({m}): {}", self.filesystem, self.why),
            None => format!("{}: {}", self.filesystem, self.why),
        }
    }
}

/// What to use instead: every refusal ends with it.
pub const REMEDY: &str = "put the journal on ext4 with its journal (mkfs.ext4's default) or \
     xfs: `mtkit retention prepare DEVICE` makes one; an ext2/ext3/ext4 volume gets a journal \
     in place with `e2fsck -f DEVICE && tune2fs -O has_journal DEVICE` (unmounted)";

const NO_JOURNAL: &str = "a power cut leaves its metadata half-written and nothing \
     repairs it before the writer reads the journal again, so segment blocks can be \
     cross-linked, records that read back valid are overwritten by later appends, and points \
     are lost or recover to the wrong data";

const NO_BARRIER: &str = "it is mounted with write barriers off (nobarrier or barrier=0): \
     fdatasync returns before the disk's write cache holds the data, so a power cut loses \
     journal records and target writes that the writer acknowledged; remount it with \
     barriers (the default: drop nobarrier from /etc/fstab, then `mount -o remount,barrier=1 \
     MOUNTPOINT` on ext4; xfs needs an unmount and a mount without nobarrier)";

/// A safe verdict made unsafe when the mount turns write barriers off.
fn with_barriers(j: Judgement, m: Option<&Mount>) -> Judgement {
    match m {
        Some(m) if j.is_safe() && m.barriers_off() => Judgement {
            safety: Safety::Unsafe,
            filesystem: format!("{} mounted nobarrier", j.filesystem),
            mount: j.mount,
            why: NO_BARRIER.into(),
        },
        _ => j,
    }
}

/// The feature flags of an ext2/ext3/ext4 superblock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtSuper {
    pub compat: u32,
    pub incompat: u32,
    pub ro_compat: u32,
}

impl ExtSuper {
    /// The superblock's place on the device and the bytes read from it.
    pub const OFFSET: u64 = 1024;
    pub const LEN: usize = 1024;
    const MAGIC: u16 = 0xEF53;
    const COMPAT_HAS_JOURNAL: u32 = 0x4;
    /// Features only ext4 has (extents, 64bit, flex_bg; huge_file, dir_nlink, extra_isize,
    /// metadata_csum), as blkid tells ext4 from ext2/ext3.
    const INCOMPAT_EXT4: u32 = 0x40 | 0x80 | 0x200;
    const RO_COMPAT_EXT4: u32 = 0x8 | 0x20 | 0x40 | 0x400;

    /// From the [`Self::LEN`] bytes at [`Self::OFFSET`]; `None` without the ext magic.
    pub fn decode(sb: &[u8]) -> Option<ExtSuper> {
        let u16_at = |o: usize| Some(u16::from_le_bytes(sb.get(o..o + 2)?.try_into().ok()?));
        let u32_at = |o: usize| Some(u32::from_le_bytes(sb.get(o..o + 4)?.try_into().ok()?));
        if u16_at(0x38)? != Self::MAGIC {
            return None;
        }
        // Revision 0 (s_rev_level at 0x4C) has no feature fields: no journal.
        if u32_at(0x4C)? == 0 {
            return Some(ExtSuper {
                compat: 0,
                incompat: 0,
                ro_compat: 0,
            });
        }
        Some(ExtSuper {
            compat: u32_at(0x5C)?,
            incompat: u32_at(0x60)?,
            ro_compat: u32_at(0x64)?,
        })
    }

    /// Reads the superblock of `dev` (a block device, or an image file).
    pub fn read(dev: &Path) -> io::Result<Option<ExtSuper>> {
        let f = std::fs::File::open(dev)?;
        let mut buf = vec![0u8; Self::LEN];
        match f.read_exact_at(&mut buf, Self::OFFSET) {
            Ok(()) => Ok(Self::decode(&buf)),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn has_journal(&self) -> bool {
        self.compat & Self::COMPAT_HAS_JOURNAL != 0
    }

    /// ext2, ext3 or ext4, as blkid names it.
    pub fn name(&self) -> &'static str {
        if self.incompat & Self::INCOMPAT_EXT4 != 0 || self.ro_compat & Self::RO_COMPAT_EXT4 != 0 {
            "ext4"
        } else if self.has_journal() {
            "ext3"
        } else {
            "ext2"
        }
    }
}

/// Filesystem families with one answer each.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Ext,
    Xfs,
    Btrfs,
    Memory(&'static str),
    Fat(&'static str),
    Other(String),
}

impl Kind {
    /// From a mount table's or blkid's type name.
    fn from_name(name: &str) -> Kind {
        match name.to_ascii_lowercase().as_str() {
            "ext2" | "ext3" | "ext4" | "ext4dev" => Kind::Ext,
            "xfs" => Kind::Xfs,
            "btrfs" => Kind::Btrfs,
            "tmpfs" => Kind::Memory("tmpfs"),
            "ramfs" => Kind::Memory("ramfs"),
            "vfat" | "msdos" | "fat" | "fat12" | "fat16" | "fat32" => Kind::Fat("vfat"),
            "exfat" => Kind::Fat("exfat"),
            other => Kind::Other(other.to_string()),
        }
    }

    /// From statfs's `f_type` (linux/magic.h).
    fn from_magic(magic: u64) -> Option<Kind> {
        Some(match magic & 0xffff_ffff {
            0xEF53 => Kind::Ext,
            0x5846_5342 => Kind::Xfs,
            0x9123_683E => Kind::Btrfs,
            0x0102_1994 => Kind::Memory("tmpfs"),
            0x8584_58F6 => Kind::Memory("ramfs"),
            0x4d44 => Kind::Fat("vfat"),
            0x2011_BAB0 => Kind::Fat("exfat"),
            _ => return None,
        })
    }
}

/// What is known of an ext filesystem's journal: its flavour's name and whether it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ExtJournal {
    name: String,
    has_journal: bool,
}

impl From<ExtSuper> for ExtJournal {
    fn from(sb: ExtSuper) -> Self {
        ExtJournal {
            name: sb.name().into(),
            has_journal: sb.has_journal(),
        }
    }
}

/// The judgement for a filesystem of `kind`; `ext` tells the journal when it is an ext.
fn judge(kind: Kind, ext: impl FnOnce() -> Result<ExtJournal, String>) -> Judgement {
    let made = |safety, filesystem: String, why: String| Judgement {
        safety,
        filesystem,
        mount: None,
        why,
    };
    match kind {
        Kind::Ext => match ext() {
            Ok(e) if e.has_journal => made(
                Safety::Safe,
                format!("{} with a journal", e.name),
                "metadata changes are journaled and replayed at the next mount".into(),
            ),
            Ok(e) => made(
                Safety::Unsafe,
                format!("{} without a journal (no has_journal feature)", e.name),
                NO_JOURNAL.into(),
            ),
            Err(e) => made(Safety::Unknown, "ext2/ext3/ext4".into(), e),
        },
        Kind::Xfs => made(
            Safety::Safe,
            "xfs".into(),
            "metadata changes are journaled (the xfs log)".into(),
        ),
        Kind::Btrfs => made(
            Safety::Safe,
            "btrfs".into(),
            "copy-on-write with atomic commits".into(),
        ),
        Kind::Memory(name) => made(
            Safety::Unsafe,
            name.into(),
            "held in memory: a power cut or a reboot loses the whole journal and every \
             recovery point"
                .into(),
        ),
        Kind::Fat(name) => made(
            Safety::Unsafe,
            name.into(),
            "no journal: a power cut can leave the allocation table and folders inconsistent \
             (lost or cross-linked clusters), and the journal's history with them"
                .into(),
        ),
        Kind::Other(name) => made(
            Safety::Unknown,
            name,
            "not a filesystem mtkit knows to keep its metadata whole across a power cut \
             (ext4 with a journal, xfs and btrfs are)"
                .into(),
        ),
    }
}

/// The journal of the ext on `dev` from its superblock, or why it cannot be told.
fn ext_of(dev: &Path) -> Result<ExtJournal, String> {
    match ExtSuper::read(dev) {
        Ok(Some(sb)) => Ok(sb.into()),
        Ok(None) => Err(format!("{} holds no ext superblock", dev.display())),
        Err(e) => Err(format!(
            "cannot read the superblock of {}: {e}",
            dev.display()
        )),
    }
}

/// Judges the filesystem of the device `node` whose type blkid (or a mount table) names
/// `fs_type`: the retention volume itself, mounted or not.
pub fn of_device(fs_type: &str, node: &Path) -> Judgement {
    judge(Kind::from_name(fs_type), || ext_of(node))
}

/// Judges the filesystem that holds (or, once created, will hold) the folder `path` of the
/// system under `root`. On the running system (`root` is `/`) from the nearest folder that
/// exists: statfs, then its device by number (sysfs, `dev/<kernel name>`); under any other
/// root from that root's mount table, the device's superblock read at its path under the
/// root (a fixture holds it as a small file; missing, the answer is `Unknown`).
pub fn of_folder(root: &Path, path: &Path) -> Judgement {
    let table = mounts::read(root);
    if root == Path::new("/") {
        return live(root, path, &table);
    }
    let Some(m) = mounts::containing(&table, path) else {
        return Judgement {
            safety: Safety::Unknown,
            filesystem: "unknown".into(),
            mount: None,
            why: format!(
                "not checked under --root {}: its mount table does not show what holds {}",
                root.display(),
                path.display()
            ),
        };
    };
    let dev = super::under(root, Path::new(&m.device));
    let mut j = judge(Kind::from_name(&m.fstype), || {
        if dev.exists() {
            ext_of(&dev)
        } else {
            Err(format!(
                "not checked under --root: no {} there to read its superblock",
                m.device
            ))
        }
    });
    j.mount = Some(shown(m));
    with_barriers(j, Some(m))
}

fn shown(m: &Mount) -> String {
    format!("{} on {}", m.device, m.mountpoint.display())
}

fn live(root: &Path, path: &Path, table: &[Mount]) -> Judgement {
    let Some(existing) = path.ancestors().find(|p| p.exists()) else {
        return Judgement {
            safety: Safety::Unknown,
            filesystem: "unknown".into(),
            mount: None,
            why: format!("no folder of {} exists", path.display()),
        };
    };
    let unknown = |why: String| Judgement {
        safety: Safety::Unknown,
        filesystem: "unknown".into(),
        mount: None,
        why,
    };
    let (st, meta) = match (nix::sys::statfs::statfs(existing), existing.metadata()) {
        (Ok(st), Ok(meta)) => (st, meta),
        (Err(e), _) => return unknown(format!("statfs {}: {e}", existing.display())),
        (_, Err(e)) => return unknown(format!("stat {}: {e}", existing.display())),
    };
    let num = DevNum::of(meta.dev());
    let real = existing
        .canonicalize()
        .unwrap_or_else(|_| existing.to_path_buf());
    // The mount of that device that holds the folder (a device can be mounted twice).
    let m = table
        .iter()
        .filter(|m| m.devnum == Some(num) && real.starts_with(&m.mountpoint))
        .max_by_key(|m| m.mountpoint.components().count())
        .or_else(|| mounts::containing(table, &real));
    let magic = st.filesystem_type().0 as u64;
    let kind = Kind::from_magic(magic).unwrap_or_else(|| match m {
        Some(m) => Kind::from_name(&m.fstype),
        None => Kind::Other(format!("filesystem with magic {magic:#x}")),
    });
    let mut j = judge(kind, || {
        // By number: a mount table's source may be /dev/root or a name udev never made.
        let node = num
            .sysfs(root)
            .and_then(|s| s.file_name().map(|k| root.join("dev").join(k)))
            .filter(|n| n.exists())
            .or_else(|| m.map(|m| PathBuf::from(&m.device)))
            .ok_or_else(|| {
                format!(
                    "no device node for {num} (the device under {})",
                    path.display()
                )
            })?;
        ext_of(&node).or_else(|e| mounted_journal(root, &node, m).ok_or(e))
    });
    j.mount = m.map(shown);
    with_barriers(j, m)
}

/// The journal of a mounted ext as the running kernel shows it, for when its device cannot
/// be read (a sandbox may refuse even root): the ext4 driver (which mounts ext2 and ext3 too
/// on current kernels) lists the filesystem in `proc/fs/ext4/<dev>`, and jbd2 lists an
/// internal journal as `proc/fs/jbd2/<dev>-<inode>`. `None` when the kernel does not say
/// (another driver, no procfs); an external journal device is not recognised.
fn mounted_journal(root: &Path, node: &Path, m: Option<&Mount>) -> Option<ExtJournal> {
    let kname = node.file_name()?.to_string_lossy().into_owned();
    let proc_fs = root.join("proc/fs");
    if !proc_fs.join("ext4").join(&kname).is_dir() || !proc_fs.join("jbd2").is_dir() {
        return None;
    }
    let has_journal = std::fs::read_dir(proc_fs.join("jbd2"))
        .ok()?
        .flatten()
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_prefix(kname.as_str())
                .is_some_and(|rest| rest.starts_with('-'))
        });
    Some(ExtJournal {
        name: m.map_or("ext4".into(), |m| m.fstype.clone()),
        has_journal,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A superblock with the given feature words, as mke2fs lays it out.
    fn superblock(compat: u32, incompat: u32, ro: u32) -> Vec<u8> {
        let mut b = vec![0u8; ExtSuper::LEN];
        b[0x38..0x3A].copy_from_slice(&0xEF53u16.to_le_bytes());
        b[0x4C..0x50].copy_from_slice(&1u32.to_le_bytes());
        b[0x5C..0x60].copy_from_slice(&compat.to_le_bytes());
        b[0x60..0x64].copy_from_slice(&incompat.to_le_bytes());
        b[0x64..0x68].copy_from_slice(&ro.to_le_bytes());
        b
    }

    #[test]
    fn the_superblock_tells_journal_and_flavour() {
        // mkfs.ext4 defaults (has_journal, extent, flex_bg, 64bit; huge_file, metadata_csum).
        let ext4 = ExtSuper::decode(&superblock(0x3c, 0x2c2, 0x46b)).unwrap();
        assert!(ext4.has_journal());
        assert_eq!(ext4.name(), "ext4");
        // mkfs.ext4 -O ^has_journal: ext4 still, without a journal.
        let bare = ExtSuper::decode(&superblock(0x38, 0x2c2, 0x46b)).unwrap();
        assert!(!bare.has_journal());
        assert_eq!(bare.name(), "ext4");
        assert_eq!(
            ExtSuper::decode(&superblock(0x3c, 0x2, 0x3))
                .unwrap()
                .name(),
            "ext3"
        );
        assert_eq!(
            ExtSuper::decode(&superblock(0x38, 0x2, 0x3))
                .unwrap()
                .name(),
            "ext2"
        );
        // Revision 0 has no feature words; no magic is no ext at all; short input is none.
        let mut rev0 = superblock(0x4, 0, 0);
        rev0[0x4C..0x50].copy_from_slice(&0u32.to_le_bytes());
        assert!(!ExtSuper::decode(&rev0).unwrap().has_journal());
        assert_eq!(ExtSuper::decode(&[0u8; 1024]), None);
        assert_eq!(ExtSuper::decode(&superblock(4, 0, 0)[..0x50]), None);
    }

    #[test]
    fn each_family_gets_its_answer() {
        let none = || Err("unused".to_string());
        for (name, safety) in [
            ("xfs", Safety::Safe),
            ("btrfs", Safety::Safe),
            ("tmpfs", Safety::Unsafe),
            ("ramfs", Safety::Unsafe),
            ("vfat", Safety::Unsafe),
            ("nfs4", Safety::Unknown),
            ("ext4", Safety::Unknown),
        ] {
            assert_eq!(judge(Kind::from_name(name), none).safety, safety, "{name}");
        }
        let sb = |c| move || Ok(ExtSuper::decode(&superblock(c, 0, 0)).unwrap().into());
        let j = judge(Kind::Ext, sb(0x38));
        assert_eq!(j.safety, Safety::Unsafe);
        assert_eq!(
            j.filesystem,
            "ext2 without a journal (no has_journal feature)"
        );
        assert!(j.why.contains("cross-linked"), "{}", j.why);
        assert_eq!(judge(Kind::Ext, sb(0x3c)).filesystem, "ext3 with a journal");
        assert_eq!(Kind::from_magic(0x5846_5342), Some(Kind::Xfs));
        assert_eq!(Kind::from_magic(0x1234), None);
    }

    #[test]
    fn a_fixture_root_is_judged_by_its_mount_table_and_superblock_file() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("proc")).unwrap();
        std::fs::create_dir_all(r.join("dev")).unwrap();
        std::fs::write(
            r.join("proc/mounts"),
            "/dev/sda2 / ext4 rw 0 0\n/dev/sdb /mnt/retention ext4 rw 0 0\n\
             none /mnt/mem tmpfs rw 0 0\n",
        )
        .unwrap();
        let mut img = vec![0u8; 1024];
        img.extend(superblock(0x38, 0x2c2, 0x46b));
        std::fs::write(r.join("dev/sdb"), &img).unwrap();
        let j = of_folder(r, Path::new("/mnt/retention/mtkit"));
        assert_eq!(j.safety, Safety::Unsafe, "{j:?}");
        assert_eq!(j.mount.as_deref(), Some("/dev/sdb on /mnt/retention"));
        assert!(j.describe().starts_with("ext4 without a journal"), "{j:?}");
        let j = of_folder(r, Path::new("/mnt/mem/j"));
        assert_eq!((j.safety, j.filesystem.as_str()), (Safety::Unsafe, "tmpfs"));
        // / is on sda2, whose superblock the fixture does not hold: not judged.
        let j = of_folder(r, Path::new("/var/lib/mtkit"));
        assert_eq!(j.safety, Safety::Unknown);
        assert!(j.why.contains("not checked under --root"), "{j:?}");
        let j = of_folder(d.path().join("nothing").as_path(), Path::new("/x"));
        assert_eq!(j.safety, Safety::Unknown);
    }

    #[test]
    fn a_journaled_filesystem_mounted_without_write_barriers_is_not_crash_safe() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("proc/self")).unwrap();
        std::fs::create_dir_all(r.join("dev")).unwrap();
        // As CentOS 6 shows them: xfs with nobarrier, ext4 with barrier=0, one with barriers.
        std::fs::write(
            r.join("proc/self/mountinfo"),
            "20 1 8:2 / / rw,relatime - ext4 /dev/sda2 rw,barrier=1,data=ordered\n\
             30 20 8:16 / /mnt/retention rw,relatime - xfs /dev/sdb rw,attr2,nobarrier,noquota\n\
             31 20 8:32 / /mnt/other rw,relatime - ext4 /dev/sdc rw,barrier=0,data=ordered\n",
        )
        .unwrap();
        let mut img = vec![0u8; 1024];
        img.extend(superblock(0x3c, 0x2c2, 0x46b));
        std::fs::write(r.join("dev/sdc"), &img).unwrap();
        std::fs::write(r.join("dev/sda2"), &img).unwrap();
        let j = of_folder(r, Path::new("/mnt/retention/mtkit"));
        assert_eq!(j.safety, Safety::Unsafe, "{j:?}");
        assert_eq!(j.filesystem, "xfs mounted nobarrier");
        assert!(
            j.why.contains("power cut") && j.why.contains("remount"),
            "{j:?}"
        );
        let j = of_folder(r, Path::new("/mnt/other/j"));
        assert_eq!(j.safety, Safety::Unsafe, "{j:?}");
        assert_eq!(j.filesystem, "ext4 with a journal mounted nobarrier");
        let j = of_folder(r, Path::new("/var/lib/mtkit"));
        assert_eq!(j.safety, Safety::Safe, "{j:?}");
    }
}
