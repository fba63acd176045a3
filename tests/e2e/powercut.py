"""Power cut: the host writes and flushes through the guest's writer while QEMU is killed
with SIGKILL at a random moment. After each reboot: every write whose FLUSH was
acknowledged is there (each 4 KiB either the acknowledged data or a later write to it),
every point listed since the round began recovers bit-exactly, and the journal opens by
itself (the writer starts, nothing is repaired by hand). Then a cut during `recover` and
one during `commit`, each finished after the reboot. Before all that, a cut during the
initial sync, whose large writes go to the disks by direct I/O (no journal yet): every
write whose FLUSH was acknowledged is there after it. MTKIT_POWERCUT_ROUNDS (default 1)
rounds per filesystem; MTKIT_POWERCUT_SEED replays a run."""

import hashlib
import json
import os
import random
import threading
import time

from appliance import (check, client_certs, config, dev_of, free_port, mount_os, run, sparse,
                       start_writer)
from guest import Disk, Guest
from nbd_client import Client

MIB = 1 << 20
KIB4 = 4096
BLOCK = 64 * 1024
DISK_SIZE = 8 * MIB
WWN = {"os": 0x5000C29000000101, "ret": 0x5000C29000000102, "d0": 0x5000C29000000103,
       "d1": 0x5000C29000000104}
DISKS = (("pc-disk0", WWN["d0"], "pc"), ("pc-disk1", WWN["d1"], "pc"))


def md5(b):
    return hashlib.md5(b).hexdigest()


class Model:
    """What the host knows about the group's two disks: the content as of the last
    acknowledged FLUSH, the writes sent since (each may or may not have reached the disk),
    and a digest of the group at each acknowledged FLUSH (each is a point)."""

    def __init__(self, disks):
        self.acked = [bytearray(d) for d in disks]
        self.later = [dict() for _ in disks]  # 4 KiB index -> candidate contents
        self.current = [bytearray(d) for d in disks]
        self.points = []  # (digests of the two disks) per acknowledged flush
        self.pending = None  # digests if a FLUSH was sent but not acknowledged
        self.pending_content = None

    def wrote(self, disk, offset, data):
        self.current[disk][offset:offset + len(data)] = data
        for i in range(0, len(data), KIB4):
            self.later[disk].setdefault((offset + i) // KIB4, []).append(bytes(data[i:i + KIB4]))

    def flush_sent(self):
        self.pending = tuple(md5(d) for d in self.current)
        self.pending_content = [bytes(d) for d in self.current]

    def flush_acked(self):
        self.points.append(self.pending)
        self.acked = [bytearray(d) for d in self.current]
        self.later = [dict() for _ in self.current]
        self.pending = None

    def check(self, disk, got):
        """None when `got` is a state the disk may be in after the cut, else what is wrong."""
        for i in range(0, len(got), KIB4):
            chunk = got[i:i + KIB4]
            if chunk == self.acked[disk][i:i + KIB4]:
                continue
            if chunk in self.later[disk].get(i // KIB4, []):
                continue
            return f"disk {disk} offset {i}: neither the acknowledged data nor a later write"
        return None


def blocks(rng):
    """The rounds' burst: 1-4 random 64 KiB blocks."""
    return [(rng.randrange(DISK_SIZE // BLOCK) * BLOCK, rng.randbytes(BLOCK))
            for _ in range(rng.randint(1, 4))]


def sync_blocks(rng):
    """An initial sync's burst: 1-3 writes of 1 or 2 MiB at MiB offsets (large and aligned,
    so the writer sends them past the page cache)."""
    out = []
    for _ in range(rng.randint(1, 3)):
        n = rng.choice((1, 2)) * MIB
        out.append((rng.randrange((DISK_SIZE - n) // MIB + 1) * MIB, rng.randbytes(n)))
    return out


def load(model, port, certs, stop, rng, log, burst=blocks):
    """Writes a `burst` to a random disk, then FLUSHes it; repeats until the cut."""
    try:
        clients = [Client(port, name, certs) for name, _, _ in DISKS]
    except Exception as e:  # the cut may come before the connection
        log.append(f"connect: {e}")
        return
    try:
        while not stop.is_set():
            disk = rng.randrange(2)
            for off, data in burst(rng):
                model.wrote(disk, off, data)  # before sending: it may land though unacknowledged
                clients[disk].write(off, data)
            model.flush_sent()
            clients[disk].flush()
            model.flush_acked()
    except Exception as e:
        log.append(f"stopped by the cut: {type(e).__name__}: {e}")
    finally:
        for c in clients:
            c.close()


class PowerCut:
    def __init__(self, a, work, initrd, fs, results):
        self.work, self.fs, self.results = work, fs, results
        self.written_ahead = 0
        seed = int(os.environ.get("MTKIT_POWERCUT_SEED") or random.randrange(1 << 32))
        self.rng = random.Random(seed)
        self.port = free_port()
        d = lambda n, c, size: Disk(n, c, sparse(work / f"{n}.img", size), wwn=WWN[n],
                                    serial=f"MTPC{n.upper():0>4}")
        # mkfs.xfs wants more than 300 MB: the retention disk is 320 MiB (sparse).
        disks = [d("os", "virtio-scsi", 64 * MIB), d("ret", "virtio-scsi", 320 * MIB),
                 d("d0", "virtio-scsi", DISK_SIZE), d("d1", "pvscsi", DISK_SIZE)]
        run("mkfs.ext4", "-q", "-F", "-L", "mt-os", str(disks[0].image))
        self.g = Guest(f"powercut-{fs}", work, disks, a["E2E_KERNEL"], initrd, a["E2E_QEMU"],
                       hostfwd={self.port: 10809})
        self.results.append(f"seed {seed} (MTKIT_POWERCUT_SEED={seed} replays it)")

    def boot(self, first=False):
        g = self.g
        g.start()
        g.step = "mount after boot"
        mount_os(g, WWN["os"])
        # os-disk is the OS disk's SCSI ID, which names it whatever the scan order of this
        # boot (it used to be a kernel name, written again at every boot).
        # Every segment is written ahead (zeros, synced) and put in place before records go
        # into it: the cuts land in appends into written-ahead space too.
        config(g, WWN["os"], DISKS, self.fs, 'journal-write-ahead = "always"\n')
        if first:
            g.ok(f"mtkit retention prepare {dev_of(g, WWN['ret'])} --fs {self.fs}")
        else:
            # What the fstab line `retention prepare` wrote does at boot.
            g.ok(f"mkdir -p /mnt/retention && mount -t {self.fs} {dev_of(g, WWN['ret'])} /mnt/retention")
            # Segments the cut left at their written-ahead size (1 MiB): records went into
            # space written ahead.
            self.written_ahead += int(g.ok(
                "for f in /mnt/retention/mtkit/pc/journal/seg-*.log; do stat -c %s \"$f\"; done"
                " | grep -cx 1048576 || true").strip() or 0)
        g.step = "journal opens after the cut" if not first else "writer start"
        start_writer(g, ["pc"])
        # The retention disk shows no volatile cache (cache=directsync, as an ESXi disk):
        # the writer overlaps each journal sync with the next append, so the cuts land on
        # that path (on a write-back disk it syncs each append before the next).
        ret = dev_of(g, WWN["ret"]).removeprefix("/dev/")
        cache = g.ok(f"cat /sys/block/{ret}/queue/write_cache").strip()
        check(g, cache == "write through", f"retention disk {ret}: write_cache {cache!r}")
        check(g, "journal device writes through" in g.ok("cat /var/log/writer.log"),
              "the writer did not find its journal device writing through")
        self.certs = client_certs(g, self.work / "certs")

    def points(self):
        out = json.loads(self.g.ok("mtkit points --group pc --json"))
        return [p["id"] for grp in out for p in grp["points"]]

    def digests(self):
        out = self.g.ok(f"md5sum {dev_of(self.g, WWN['d0'])} {dev_of(self.g, WWN['d1'])}")
        return tuple(line.split()[0] for line in out.splitlines())

    def read_disks(self):
        got = []
        for name, _, _ in DISKS:
            dest = self.work / f"{name}.read"
            self.g.host("nbdcopy", f"nbds://127.0.0.1:{self.port}/{name}?tls-certificates={self.certs}", str(dest))
            got.append(dest.read_bytes())
        return got

    def run(self, rounds):
        g = self.g
        self.boot(first=True)
        self.cut_initial_sync()
        g.step = "initial sync and baseline"
        base = [self.rng.randbytes(DISK_SIZE) for _ in DISKS]
        for (name, _, _), content in zip(DISKS, base):
            c = Client(self.port, name, self.certs)
            for off in range(0, DISK_SIZE, MIB):
                c.write(off, content[off:off + MIB])
            c.flush()
            c.close()
        g.ok("mtkit bookmark --group pc --label baseline")
        model = Model(base)
        verified = 0
        for r in range(1, rounds + 1):
            model, n = self.round(r, model)
            verified += n
        self.results.append(f"{self.fs}: {rounds} power cuts during writes+flushes; every "
                            f"acknowledged write found, {verified} points recovered bit-exactly; "
                            f"{self.written_ahead} segments written ahead found after the cuts")
        if self.written_ahead == 0:
            g.fail("no segment written ahead was found after the cuts: the cuts did not "
                   "meet the write-ahead path")
        self.cut_recover_and_commit(model)
        g.shutdown()

    def cut_initial_sync(self):
        """A cut while the group has no point yet: the writes go to the disks by direct I/O
        and the FLUSHes sync them; every acknowledged one must be found after the reboot."""
        g = self.g
        g.step = "cut during the initial sync: load"
        model = Model([bytes(DISK_SIZE) for _ in DISKS])
        stop, log = threading.Event(), []
        t = threading.Thread(target=load, args=(model, self.port, self.certs, stop, self.rng, log,
                                                sync_blocks))
        t.start()
        time.sleep(self.rng.uniform(3.0, 8.0))
        # The writes took the direct path (the writer logs it once per disk), and the group
        # is still in its initial sync (no point), so nothing was journaled.
        direct = int(g.ok("grep -c 'target written by direct I/O' /var/log/writer.log || true").strip() or 0)
        points = len(self.points())
        g.power_cut()
        stop.set()
        t.join(60)
        acked = len(model.points)
        if direct == 0:
            g.fail("no initial-sync write went by direct I/O before the cut")
        if points:
            g.fail(f"{points} points listed during the initial sync")
        if acked == 0:
            g.fail(f"no FLUSH was acknowledged before the cut: {'; '.join(log)}")
        g.step = f"cut during the initial sync: reboot ({acked} flushes acknowledged; {'; '.join(log)})"
        self.boot()
        g.step = "cut during the initial sync: acknowledged writes"
        for disk, got in enumerate(self.read_disks()):
            wrong = model.check(disk, got)
            if wrong:
                g.fail(wrong)
        self.results.append(f"{self.fs}: power cut during an initial sync by direct I/O "
                            f"({direct} disks written direct, {acked} flushes acknowledged): "
                            "every acknowledged write found")

    def round(self, r, model):
        g = self.g
        g.step = f"round {r}: load and cut"
        before = set(self.points())
        stop, log = threading.Event(), []
        t = threading.Thread(target=load, args=(model, self.port, self.certs, stop, self.rng, log))
        t.start()
        time.sleep(self.rng.uniform(2.0, 8.0))
        g.power_cut()
        stop.set()
        t.join(60)
        acked = len(model.points)
        g.step = f"round {r}: reboot after the cut ({acked} flushes acknowledged; {'; '.join(log)})"
        self.boot()
        g.step = f"round {r}: acknowledged writes"
        for disk, got in enumerate(self.read_disks()):
            wrong = model.check(disk, got)
            if wrong:
                g.fail(wrong)
        g.step = f"round {r}: points"
        new = [p for p in self.points() if p not in before]
        expect = list(model.points)
        if model.pending is not None and len(new) == acked + 1:
            expect.append(model.pending)  # the cut came after the point, before its reply
        if len(new) != len(expect):
            g.fail(f"{len(new)} new points listed, {acked} flushes acknowledged"
                   f"{' (+1 unacknowledged)' if model.pending else ''}")
        for pid, want in zip(new, expect):
            g.ok(f"mtkit recover --group pc --to {pid}")
            got = self.digests()
            if got != want:
                g.fail(f"point {pid} recovered to {got}, expected {want}")
        # Go on from the newest point: commit it, and the model starts there.
        if new:
            target = new[-1]
            content = (model.pending_content if len(expect) > acked else
                       [bytes(d) for d in model.acked])
        else:
            target = max(before)
            content = [bytes(d) for d in model.acked]
        g.step = f"round {r}: commit"
        g.ok(f"mtkit recover --group pc --to {target} && mtkit commit --group pc")
        if self.digests() != tuple(md5(c) for c in content):
            g.fail("after commit the disks are not the newest point")
        return Model(content), len(new)

    def cut_recover_and_commit(self, model):
        """A recover to the oldest point cut short, finished after the reboot; then a commit
        cut short, finished by the next start."""
        g = self.g
        g.step = "cut during recover: writes"
        c = Client(self.port, "pc-disk0", self.certs)
        for _ in range(32):
            off = self.rng.randrange(DISK_SIZE // BLOCK) * BLOCK
            data = self.rng.randbytes(BLOCK)
            model.wrote(0, off, data)
            c.write(off, data)
        model.flush_sent()
        c.flush()
        model.flush_acked()
        c.close()
        oldest = min(self.points())
        want = tuple(md5(bytes(d)) for d in model.acked)
        g.sh(f"setsid mtkit recover --group pc --to {oldest} > /var/log/recover.log 2>&1 &")
        time.sleep(self.rng.uniform(0.3, 3.0))
        g.power_cut()
        g.step = "cut during recover: reboot"
        self.boot()
        g.step = "cut during recover: finish"
        g.ok(f"mtkit recover --group pc --to {oldest}")
        rolled = self.digests()
        g.step = "cut during recover: back to the newest point"
        newest = max(self.points())
        g.ok(f"mtkit recover --group pc --to {newest}")
        if self.digests() != want:
            g.fail("after the interrupted recover, the newest point does not recover bit-exactly")
        g.ok(f"mtkit recover --group pc --to {oldest}")
        if self.digests() != rolled:
            g.fail("the oldest point recovered differently the second time")
        g.step = "cut during commit"
        g.sh("setsid mtkit commit --group pc > /var/log/commit.log 2>&1 &")
        time.sleep(self.rng.uniform(0.1, 1.5))
        g.power_cut()
        g.step = "cut during commit: reboot"
        self.boot()
        g.step = "cut during commit: finish"
        g.sh("mtkit commit --group pc")  # finishes it, or says there is nothing to commit
        st = json.loads(g.ok("mtkit writer status --json"))
        grp = next(x for x in st["groups"] if x["name"] == "pc")
        if grp["state"] == "recovering":
            g.fail(f"the group is still recovering after commit: {grp}")
        if self.digests() != rolled:
            g.fail("after the interrupted commit the disks are not the committed point")
        c = Client(self.port, "pc-disk0", self.certs)  # replication resumes
        c.write(0, b"\x11" * BLOCK)
        c.flush()
        c.close()
        self.results.append(f"{self.fs}: recover cut short, finished after reboot; commit cut "
                            "short, finished by the next start; replication resumes")


def run_powercut(a, work, initrd, results, fs):
    rounds = int(os.environ.get("MTKIT_POWERCUT_ROUNDS") or 1)
    PowerCut(a, work, initrd, fs, results).run(rounds)
