//! How much room the retention journal needs, against what a mounted volume has.
//!
//! The estimate: the undo journal keeps the old contents of blocks overwritten within the
//! retention window, at most once per block per interval between points. Without measured
//! change rates mtkit assumes each target disk changes 10% of its size per day, so
//! `needed = max([retention] min-size, sum(target disk sizes) * 10% * retention / 24h)`.
//! It is checked against free space plus what the journal already uses (pruning recycles
//! that space).

use super::linux::{Scope, under};
use crate::config::Config;
use crate::host::blockdev;
use serde::Serialize;
use std::fs;
use std::path::Path;

/// Share of a target disk assumed to change per day.
pub const DAILY_CHANGE_PERCENT: u64 = 10;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Space {
    pub capacity: u64,
    pub free: u64,
    pub journal_used: u64,
    pub targets_total: u64,
    pub needed: u64,
    pub ok: bool,
}

/// The journal room the policy needs for `targets_total` bytes of target disks.
pub fn needed(config: &Config, targets_total: u64) -> u64 {
    let secs = config.policy.retention.secs().max(1) as u128;
    let per_window = targets_total as u128 * DAILY_CHANGE_PERCENT as u128 * secs / (100 * 86_400);
    (per_window.min(u64::MAX as u128) as u64).max(config.retention.min_size.bytes())
}

/// Total size of the configured writer disks (block devices through sysfs size, files by
/// length, else their `size` key).
pub fn targets_total(cx: &Scope) -> u64 {
    let mut total = 0u64;
    for d in &cx.config.writer.disk {
        let size = match fs::metadata(under(cx.host, &d.path)) {
            Ok(m) if m.is_file() => Some(m.len()),
            _ => cx
                .devnum_of(&d.path)
                .and_then(|n| n.sysfs(cx.host))
                .and_then(|s| blockdev::size_at(&s)),
        };
        // Sizes come from the config too: saturate, never wrap to a small total.
        total = total.saturating_add(size.or(d.size.map(|s| s.bytes())).unwrap_or(0));
    }
    total
}

/// Bytes used by the files under `dir` (0 when it does not exist).
pub fn used_under(dir: &Path) -> u64 {
    let Ok(rd) = fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => used_under(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .fold(0u64, u64::saturating_add)
}

/// Space on the filesystem mounted at `mountpoint` against the policy.
pub fn measure(
    mountpoint: &Path,
    journal: &Path,
    needed: u64,
    targets_total: u64,
) -> anyhow::Result<Space> {
    use anyhow::Context;
    let st = nix::sys::statvfs::statvfs(mountpoint)
        .with_context(|| format!("statvfs {}", mountpoint.display()))?;
    let frsize = st.fragment_size() as u64;
    let capacity = st.blocks() as u64 * frsize;
    let free = st.blocks_available() as u64 * frsize;
    let journal_used = used_under(journal);
    Ok(Space {
        capacity,
        free,
        journal_used,
        targets_total,
        needed,
        ok: free.saturating_add(journal_used) >= needed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Size, WriterDisk};

    #[test]
    fn min_size_is_the_floor_and_targets_scale_it() {
        let mut c = Config::default();
        assert_eq!(needed(&c, 0), Size::TIB);
        c.retention.min_size = Size(0);
        // 24h of 10% on 10 TiB = 1 TiB
        assert_eq!(needed(&c, 10 * Size::TIB), Size::TIB);
        c.policy.retention = "48h".parse().unwrap();
        assert_eq!(needed(&c, 10 * Size::TIB), 2 * Size::TIB);
    }

    #[test]
    fn target_sizes_come_from_files_and_the_size_key() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("disk.img");
        fs::write(&f, vec![0u8; 4096]).unwrap();
        let mut c = Config::default();
        c.writer.disk = vec![
            WriterDisk {
                name: "a".into(),
                path: f,
                group: "g".into(),
                size: None,
                ..WriterDisk::default()
            },
            WriterDisk {
                name: "b".into(),
                path: "/nonexistent/b".into(),
                group: "g".into(),
                size: Some(Size::from_mib(1)),
                ..WriterDisk::default()
            },
        ];
        let cx = Scope {
            host: Path::new("/"),
            root: Path::new("/"),
            config: &c,
        };
        assert_eq!(targets_total(&cx), 4096 + Size::MIB);
    }
}
