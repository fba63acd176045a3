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

    fn answer_early(&self, offset: u64, len: u64) -> Option<u64> {
        self.group.answer_early(self.disk, offset, len)
    }

    fn answered(&self, ticket: u64, r: &io::Result<()>) {
        self.group.answered(ticket, r)
    }

    fn answered_mark(&self) -> u64 {
        self.group.answered_mark()
    }

    fn wait_answered(&self, offset: u64, len: u64, mark: u64) {
        self.group.wait_answered(self.disk, offset, len, mark)
    }

    fn flush_after(&self, mark: u64) -> io::Result<()> {
        self.stats().observe(Command::Flush, 0, || {
            self.group.point_after(Some(mark), false, "").map(|_| ())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writer::group::testing::one_disk_group;
    use crate::writer::nbd::proto::{self, Request, SimpleReply};
    use crate::writer::nbd::transmit::{self, TransmitOptions};
    use std::io::{Read, Write};
    use std::os::unix::fs::FileExt;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    fn send(
        c: &mut UnixStream,
        command: u16,
        flags: u16,
        handle: u64,
        offset: u64,
        data: &[u8],
        len: u32,
    ) {
        let mut out = Vec::new();
        Request {
            flags,
            command,
            handle,
            offset,
            len,
        }
        .encode(&mut out);
        out.extend_from_slice(data);
        c.write_all(&out).unwrap();
    }

    /// The next reply header, or `None` when none comes within `wait`.
    fn reply(c: &mut UnixStream, wait: Duration) -> Option<SimpleReply> {
        c.set_read_timeout(Some(wait)).unwrap();
        let mut h = [0u8; proto::SIMPLE_REPLY_LEN];
        match c.read(&mut h[..1]) {
            Ok(1) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return None,
            other => panic!("reading a reply: {other:?}"),
        }
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.read_exact(&mut h[1..]).unwrap();
        Some(SimpleReply::decode(&mut &h[..]).unwrap())
    }

    /// A group of one 1 MiB disk (all 7s, past its baseline) served on a socket pair by
    /// `workers` workers: (temp dir, group, client end, the serving thread).
    fn served(
        workers: usize,
    ) -> (
        tempfile::TempDir,
        Arc<Group>,
        UnixStream,
        std::thread::JoinHandle<Result<transmit::End, transmit::TransmitError>>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (g, d) = one_disk_group(dir.path(), 1 << 20, 4 << 20);
        d.write_at(&vec![7u8; 1 << 20], 0, false).unwrap();
        g.point(true, "base").unwrap();
        let (client, server) = UnixStream::pair().unwrap();
        let opts = TransmitOptions {
            workers,
            ..TransmitOptions::default()
        };
        let serving = std::thread::spawn(move || {
            transmit::serve(server.try_clone().unwrap(), server, &d, &opts)
        });
        (dir, g, client, serving)
    }

    /// Held journal = a leader that cannot save undo: a write still pending in the group.
    #[test]
    fn a_plain_write_is_answered_before_its_undo_is_saved_and_reads_and_flush_after_it_see_it() {
        let (dir, g, mut client, serving) = served(TransmitOptions::default().workers);
        let held = g.journal();
        let data = vec![0xabu8; 4096];
        send(&mut client, proto::CMD_WRITE, 0, 1, 8192, &data, 4096);
        let r = reply(&mut client, Duration::from_secs(10)).expect("answered at once");
        assert_eq!((r.handle, r.error), (1, 0));
        // A read of it, a FUA write elsewhere and a flush all wait for the held save.
        send(&mut client, proto::CMD_READ, 0, 2, 8192 + 1024, &[], 1024);
        send(
            &mut client,
            proto::CMD_WRITE,
            proto::CMD_FLAG_FUA,
            3,
            65536,
            &data,
            4096,
        );
        send(&mut client, proto::CMD_FLUSH, 0, 4, 0, &[], 0);
        assert_eq!(reply(&mut client, Duration::from_millis(300)), None);
        let on_disk = |at: u64| {
            let mut b = vec![0u8; 4096];
            std::fs::File::open(dir.path().join("d.img"))
                .unwrap()
                .read_exact_at(&mut b, at)
                .unwrap();
            b
        };
        assert_eq!(on_disk(8192), vec![7u8; 4096], "not on the target yet");
        drop(held);
        let mut seen = Vec::new();
        for _ in 0..3 {
            let r = reply(&mut client, Duration::from_secs(10)).expect("a reply");
            assert_eq!(r.error, 0, "{r:?}");
            if r.handle == 2 {
                let mut got = vec![0u8; 1024];
                client.read_exact(&mut got).unwrap();
                assert_eq!(got, vec![0xab; 1024], "the read sees the answered write");
            }
            seen.push(r.handle);
        }
        seen.sort();
        assert_eq!(seen, [2, 3, 4]);
        // The flush made a point that holds the answered write.
        assert_eq!(g.points().len(), 2);
        assert_eq!(on_disk(8192), data);
        send(&mut client, proto::CMD_DISC, 0, 5, 0, &[], 0);
        assert_eq!(serving.join().unwrap().unwrap(), transmit::End::Disconnect);
    }

    /// A FUA write right behind an answered write it overlaps: one worker, busy while
    /// both are queued, so that it would take them in one run.
    #[test]
    fn a_fua_write_queued_behind_an_answered_write_it_overlaps_is_run_after_it() {
        let (dir, g, mut client, serving) = served(1);
        let held = g.journal();
        let (a, b) = (vec![0xaau8; 4096], vec![0xbbu8; 4096]);
        // The worker takes this one and waits for the held journal; the next two queue.
        send(&mut client, proto::CMD_WRITE, 0, 1, 0, &a, 4096);
        let r = reply(&mut client, Duration::from_secs(10)).expect("answered early");
        assert_eq!((r.handle, r.error), (1, 0));
        std::thread::sleep(Duration::from_millis(100));
        send(&mut client, proto::CMD_WRITE, 0, 2, 65536, &a, 4096);
        send(
            &mut client,
            proto::CMD_WRITE,
            proto::CMD_FLAG_FUA,
            3,
            65536 + 2048,
            &b,
            4096,
        );
        let r = reply(&mut client, Duration::from_secs(10)).expect("answered early");
        assert_eq!((r.handle, r.error), (2, 0));
        std::thread::sleep(Duration::from_millis(100));
        drop(held);
        let r = reply(&mut client, Duration::from_secs(10)).expect("the FUA write's answer");
        assert_eq!((r.handle, r.error), (3, 0));
        let mut got = vec![0u8; 8192];
        std::fs::File::open(dir.path().join("d.img"))
            .unwrap()
            .read_exact_at(&mut got, 65536)
            .unwrap();
        assert_eq!(&got[..2048], &a[..2048]);
        assert_eq!(&got[2048..6144], &b[..]);
        send(&mut client, proto::CMD_DISC, 0, 4, 0, &[], 0);
        assert_eq!(serving.join().unwrap().unwrap(), transmit::End::Disconnect);
    }

    /// A READ and a FLUSH wait only for the writes answered before them: one answered
    /// after them sits behind them in the queue (two workers here, one busy with the
    /// first write and one with the read, so waiting for it would wait forever).
    #[test]
    fn a_read_and_a_flush_do_not_wait_for_a_write_answered_after_them() {
        let (_dir, g, mut client, serving) = served(2);
        let held = g.journal();
        let data = vec![0xccu8; 4096];
        send(&mut client, proto::CMD_WRITE, 0, 1, 0, &data, 4096);
        let r = reply(&mut client, Duration::from_secs(10)).expect("answered early");
        assert_eq!((r.handle, r.error), (1, 0));
        std::thread::sleep(Duration::from_millis(100));
        send(&mut client, proto::CMD_READ, 0, 2, 65536, &[], 4096);
        send(&mut client, proto::CMD_FLUSH, 0, 3, 0, &[], 0);
        send(&mut client, proto::CMD_WRITE, 0, 4, 65536, &data, 4096);
        let mut seen = Vec::new();
        let mut next = |seen: &mut Vec<u64>| {
            let r = reply(&mut client, Duration::from_secs(10)).expect("no request waits forever");
            assert_eq!(r.error, 0, "{r:?}");
            if r.handle == 2 {
                let mut got = vec![0u8; 4096];
                client.read_exact(&mut got).unwrap();
                assert_eq!(got, vec![7u8; 4096], "read before the write was answered");
            }
            seen.push(r.handle);
        };
        // The READ waits for nothing (write 1 is elsewhere, write 4 came after it) and
        // write 4 is answered once queued: the two answers race, in either order.
        next(&mut seen);
        next(&mut seen);
        seen.sort();
        assert_eq!(seen, [2, 4]);
        // The FLUSH waits for write 1, whose undo waits for the journal.
        drop(held);
        next(&mut seen);
        assert_eq!(seen, [2, 4, 3]);
        send(&mut client, proto::CMD_DISC, 0, 5, 0, &[], 0);
        assert_eq!(serving.join().unwrap().unwrap(), transmit::End::Disconnect);
        assert_eq!(g.points().len(), 2);
    }

    #[test]
    fn an_answered_write_that_fails_refuses_every_later_point_and_a_recover_answers_nothing_early()
    {
        let dir = tempfile::tempdir().unwrap();
        let (g, _d) = one_disk_group(dir.path(), 1 << 20, 4 << 20);
        let t = g.answer_early(0, 0, 4096).unwrap();
        g.answered(t, &Err(io::Error::other("EIO from the target")));
        for _ in 0..2 {
            let e = g.point(true, "after").unwrap_err().to_string();
            assert!(
                e.contains("EIO from the target") && e.contains("resync"),
                "{e}"
            );
        }
        let q = g.quiesce();
        assert_eq!(g.answer_early(0, 0, 4096), None);
        drop(q);
        assert!(g.answer_early(0, 0, 4096).is_some());
        // `[writer] write-behind = false`: every write is answered once it has run.
        g.set_write_behind(false);
        assert_eq!(g.answer_early(0, 65536, 4096), None);
    }
}
