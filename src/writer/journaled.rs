//! `JournaledDisk`: a target disk served through its group's undo journal.

use super::Export;
use super::export::WriteReq;
use super::group::Group;
use super::stats::{Command, DiskStats};
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// One disk of a group as an NBD export. Writes save what they overwrite first (after the
/// group's baseline); a completed FLUSH is a crash-consistent point of the whole group.
pub struct JournaledDisk {
    group: Arc<Group>,
    disk: usize,
}

impl JournaledDisk {
    pub fn new(group: Arc<Group>, disk: usize) -> JournaledDisk {
        group.disks[disk].clients.fetch_add(1, Ordering::Relaxed);
        JournaledDisk { group, disk }
    }
}

impl JournaledDisk {
    fn stats(&self) -> &DiskStats {
        &self.group.disks[self.disk].stats
    }
}

impl Drop for JournaledDisk {
    fn drop(&mut self) {
        self.group.disks[self.disk]
            .clients
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl Export for JournaledDisk {
    fn size(&self) -> u64 {
        self.group.disks[self.disk].size()
    }

    fn read_only(&self) -> bool {
        false
    }

    fn group(&self) -> &str {
        &self.group.name
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let t = &self.group.disks[self.disk];
        let n = buf.len() as u64;
        t.stats.observe(Command::Read, n, || t.read_at(buf, offset))
    }

    fn write_at(&self, data: &[u8], offset: u64, fua: bool) -> io::Result<()> {
        let n = data.len() as u64;
        self.stats().count_fua(fua);
        self.stats().observe(Command::Write, n, || {
            self.group.write(self.disk, data, offset, fua)
        })
    }

    /// The writes share one place in the group commit (one wake-up for all of them).
    fn write_many(&self, writes: &[WriteReq<'_>]) -> Vec<io::Result<()>> {
        let t0 = Instant::now();
        let out = self.group.write_many(self.disk, writes);
        let secs = t0.elapsed().as_secs_f64();
        for (w, r) in writes.iter().zip(&out) {
            self.stats().count_fua(w.fua);
            self.stats()
                .record(Command::Write, w.data.len() as u64, secs, r.is_ok());
        }
        out
    }

    fn write_zeroes(&self, offset: u64, len: u64, may_trim: bool, fua: bool) -> io::Result<()> {
        self.stats().count_fua(fua);
        self.stats().observe(Command::WriteZeroes, len, || {
            self.group
                .write_zeroes(self.disk, offset, len, may_trim, fua)
        })
    }

    /// TRIM is advisory in NBD: dropping it keeps the undo journal exact for free.
    fn trim(&self, _offset: u64, len: u64) -> io::Result<()> {
        self.stats().observe(Command::Trim, len, || Ok(()))
    }

    fn flush(&self) -> io::Result<()> {
        self.stats().observe(Command::Flush, 0, || {
            self.group.point(false, "").map(|_| ())
        })
    }
}
