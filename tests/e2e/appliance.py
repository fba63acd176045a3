"""The appliance guest: disks on virtio-scsi, LSI and PVSCSI, one without any ID, a CD-ROM.
Inside it, with nothing faked: scsi-ids, doctor, retention check and prepare, the writer
serving the host over TLS (nbdcopy, qemu-img), bookmark, recover, commit, and the kernel's
NBD client (nbd_kernel.py) against the same writer."""

import json
import os
import subprocess
from pathlib import Path

from guest import Disk, Guest

MIB = 1 << 20
# NAA 5 world wide names in VMware's OUI (00:0c:29) shape; udev prints "3" + the 16 digits.
WWN = {"os": 0x5000C29000000001, "ret": 0x5000C29000000002, "t1": 0x5000C29000000003,
       "t2": 0x5000C29000000004, "part": 0x5000C29000000005, "kern": 0x5000C29000000006}
NBD_PORT = 10809


def sparse(path, size):
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def run(*cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r.stdout


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check(g, cond, what):
    if not cond:
        g.fail(what)


def disks(work):
    d = lambda n, c, size, **kw: Disk(n, c, sparse(work / f"{n}.img", size), **kw)
    os_img = d("os", "virtio-scsi", 64 * MIB, wwn=WWN["os"], serial="MTOS0001")
    # The OS disk holds /etc/mtkit (config, TLS), so it survives power cuts like a real one.
    run("mkfs.ext4", "-q", "-F", "-L", "mt-os", str(os_img.image))
    part = d("part", "lsi", 32 * MIB, wwn=WWN["part"], serial="MTPART01")
    run("sfdisk", "-q", str(part.image), input="label: dos\n,16M,83\n")
    cd = work / "cd.iso"
    (work / "cdroot").mkdir(exist_ok=True)
    (work / "cdroot/hello.txt").write_text("mtkit e2e\n")
    run("xorriso", "-as", "mkisofs", "-quiet", "-V", "MTKIT_E2E", "-o", str(cd), str(work / "cdroot"))
    return [
        os_img,
        d("ret", "virtio-scsi", 256 * MIB, wwn=WWN["ret"], serial="MTRET001"),
        d("kern", "virtio-scsi", 64 * MIB, wwn=WWN["kern"], serial="MTKERN01"),
        d("t1", "lsi", 16 * MIB, wwn=WWN["t1"], serial="MTT10001"),
        part,
        d("t2", "pvscsi", 16 * MIB, wwn=WWN["t2"], serial="MTT20001"),
        d("noid", "pvscsi", 8 * MIB),
        Disk("cd", "pvscsi", cd, cdrom=True),
    ]


def scsi_ids(g):
    """mtkit's own listing: {id or None: row}; exit 1 is expected with the ID-less disk."""
    rc, out, err = g.sh("mtkit scsi-ids --json")
    rows = json.loads(out)
    return rc, rows, err


def dev_of(g, wwn):
    """The kernel name of the disk with this WWN, found by its ID, never assumed."""
    _, rows, _ = scsi_ids(g)
    hits = [r["name"] for r in rows if r.get("id") == f"3{wwn:016x}"]
    check(g, len(hits) == 1, f"disk 3{wwn:016x}: {len(hits)} matches in scsi-ids")
    return "/dev/" + hits[0]


def mount_os(g, wwn=WWN["os"]):
    g.ok(f"mount -t ext4 {dev_of(g, wwn)} /etc/mtkit")


VM1_DISKS = (("vm1-disk0", WWN["t1"], "vm1"), ("vm1-disk1", WWN["t2"], "vm1"),
             ("kern-disk0", WWN["kern"], "kern"))


def config(g, os_wwn, targets, ret_fs="ext4", writer=""):
    """The appliance config, on the OS disk; disks by SCSI ID only, the OS disk too (the
    same at every boot, whatever kernel name it gets); `writer`: more `[writer]` keys."""
    text = (f'[disks]\nos-disk = "3{os_wwn:016x}"\n\n'
            f'[retention]\nfilesystem = "{ret_fs}"\nmin-size = "100M"\n\n'
            '[writer]\nlisten = "0.0.0.0:10809"\nmetrics-listen = "127.0.0.1:9810"\n'
            'journal-segment-size = "1M"\n' + writer)
    for name, wwn, group in targets:
        text += f'\n[[writer.disk]]\nname = "{name}"\nscsi-id = "3{wwn:016x}"\ngroup = "{group}"\n'
    g.ok(f"cat > /etc/mtkit/appliance.toml <<'EOF'\n{text}EOF")


def start_writer(g, groups):
    """Starts the service and waits until each of `groups` is served or refused."""
    want = " ".join(groups)
    # Status is asked only once the control socket is there: with no service answering,
    # `writer status` opens the journal itself and holds the disks with O_EXCL, and a
    # service starting at that moment refuses them as busy (seen here; see the notes).
    g.ok("mkdir -p /run/mtkit; setsid mtkit writer run > /var/log/writer.log 2>&1 < /dev/null &\n"
         "for i in $(seq 600); do\n"
         "  [ -S /run/mtkit/writer.sock ] || { sleep 0.2; continue; }\n"
         "  s=$(mtkit writer status --json 2>/dev/null) && {\n"
         f"    ok=1; for grp in {want}; do echo \"$s\" | grep -q \"\\\"$grp\\\"\" || ok=0; done\n"
         "    [ $ok = 1 ] && exit 0; }\n"
         "  sleep 0.2\ndone\ncat /var/log/writer.log; exit 1")


def client_certs(g, dest):
    """Issues a client certificate in the guest and brings it to the host."""
    g.ok("[ -d /etc/mtkit/tls/clients/host ] || mtkit writer certs --client host")
    dest.mkdir(parents=True, exist_ok=True)
    for f in ("ca-cert.pem", "client-cert.pem", "client-key.pem"):
        (dest / f).write_text(g.ok(f"cat /etc/mtkit/tls/clients/host/{f}"))
    (dest / "client-key.pem").chmod(0o600)
    return dest


class Remote:
    """The host's side of replication: exports of the guest's writer over TLS."""

    def __init__(self, g, port, certs):
        self.g, self.port, self.certs = g, port, certs

    def uri(self, export):
        return f"nbds://127.0.0.1:{self.port}/{export}?tls-certificates={self.certs}"

    def qemu_opts(self, export):
        return (["--object", f"tls-creds-x509,id=tls0,dir={self.certs},endpoint=client"],
                f"driver=nbd,host=127.0.0.1,port={self.port},export={export},tls-creds=tls0")

    def nbdcopy_to(self, src, export):
        self.g.host("nbdcopy", "--flush", str(src), self.uri(export))

    def qemu_img_to(self, src, export):
        obj, opts = self.qemu_opts(export)
        self.g.host("qemu-img", "convert", "-n", *obj, "-f", "raw", "--target-image-opts", str(src), opts)

    def qemu_io(self, export, *cmds):
        obj, opts = self.qemu_opts(export)
        args = ["qemu-io", *obj, "--image-opts", opts]
        for c in cmds:
            args += ["-c", c]
        return self.g.host(*args)

    def read(self, export, dest):
        self.g.host("nbdcopy", self.uri(export), str(dest))
        return Path(dest).read_bytes()


def run_appliance(a, work, initrd, results):
    port = free_port()
    g = Guest("appliance", work, disks(work), a["E2E_KERNEL"], initrd, a["E2E_QEMU"],
              hostfwd={port: NBD_PORT})
    g.start()
    try:
        appliance_steps(g, work, port, results)
        from nbd_kernel import kernel_client_steps
        kernel_client_steps(g, results)
    finally:
        g.shutdown()
    # With the guest off, its disk images are the SCSI disks it wrote: compare them too.
    g.step = "images after shutdown"
    for key, export in (("t1", "vm1-disk0"), ("t2", "vm1-disk1")):
        want = (work / f"{export}.expected").read_bytes()
        got = (work / f"{key}.img").read_bytes()
        check(g, got == want, f"{key}.img differs from what {export} was recovered to")
    results.append("appliance: target disk images equal the recovered content bit for bit")


def appliance_steps(g, work, port, results):
    g.step = "scsi-ids"
    rc, rows, err = scsi_ids(g)
    by_id = {r.get("id"): r for r in rows}
    for key, wwn in WWN.items():
        row = by_id.get(f"3{wwn:016x}")
        check(g, row is not None, f"no disk with ID 3{wwn:016x} ({key}) in {json.dumps(rows)}")
        check(g, row["status"] == "ok", f"{key}: status {row['status']}")
    no_id = [r for r in rows if not r.get("id")]
    check(g, len(no_id) == 1 and no_id[0]["status"] != "ok",
          f"the disk without wwn/serial: {json.dumps(no_id)}")
    check(g, rc == 1, f"scsi-ids exited {rc} with an ID-less disk (want 1)\n{err}")
    check(g, len(rows) == len(WWN) + 1, f"{len(rows)} disks listed, the CD-ROM must not be one")
    cd = g.ok("cat /sys/block/sr0/device/type; dd if=/dev/sr0 bs=2048 skip=16 count=1 2>/dev/null | head -c 49 | tail -c 9")
    check(g, "MTKIT_E2E" in cd, f"the CD-ROM is not the ISO given: {cd!r}")
    results.append("scsi-ids: 6 disks on virtio-scsi/LSI/PVSCSI carry the WWN QEMU was given; "
                   "the ID-less disk is flagged, exit 1; the CD-ROM is not listed")

    g.step = "doctor"
    mount_os(g)
    config(g, WWN["os"], VM1_DISKS)
    rc, out, err = g.sh("mtkit doctor --json")
    doc = json.loads(out)
    check(g, rc in (0, 1), f"doctor exited {rc}\n{err}")
    text = json.dumps(doc)
    check(g, "scsi" in text.lower(), f"doctor says nothing about SCSI IDs: {text[:400]}")
    results.append(f"doctor --json on the live guest: exit {rc}, {len(text)} bytes of findings")

    g.step = "retention check"
    ret = dev_of(g, WWN["ret"])
    rc, out, err = g.sh(f"mtkit retention check {ret} --json")
    check(g, rc == 0, f"retention check {ret} exited {rc}\n{out}\n{err}")
    rc, out, err = g.sh(f"mtkit retention check {dev_of(g, WWN['part'])} --json")
    check(g, rc == 1 and "no-data" in out, f"retention check on the partitioned disk: {rc}\n{out}")
    results.append("retention check: the blank disk passes, the partitioned one fails no-data")

    g.step = "retention prepare refusals"
    os_dev, part, busy = dev_of(g, WWN["os"]), dev_of(g, WWN["part"]), dev_of(g, WWN["kern"])
    g.ok(f"mkfs.ext4 -q {busy} && mkdir -p /mnt/busy && mount {busy} /mnt/busy")
    # Mounted filesystems change their own blocks (lazy init): compare what blkid probes,
    # and for the unmounted, partitioned disk its first MiB.
    probe = "blkid -p -o export {0}; dd if={0} bs=1M count=1 2>/dev/null | md5sum"
    for dev, rule in ((os_dev, "not-os-disk"), (busy, "not-mounted"), (part, "no-data")):
        look = probe if dev == part else probe.split(";")[0]
        before = g.sh(look.format(dev))
        rc, out, err = g.sh(f"mtkit retention prepare {dev}")
        check(g, rc == 2 and rule in out + err, f"prepare {dev} ({rule}): exit {rc}\n{out}\n{err}")
        after = g.sh(look.format(dev))
        check(g, before == after, f"prepare {dev} refused but changed the disk: {before} {after}")
    g.ok(f"umount /mnt/busy && dd if=/dev/zero of={busy} bs=1M count=4 2>/dev/null && sync")
    results.append("retention prepare refuses the OS disk, a mounted disk and a partitioned "
                   "disk (exit 2, the disks unchanged)")

    g.step = "retention prepare"
    g.ok(f"mtkit retention prepare {ret} --fs ext4")
    mounts = g.ok("cat /proc/mounts")
    check(g, f"{ret} /mnt/retention ext4" in mounts, f"not mounted: {mounts}")
    label = g.ok(f"blkid -p -s LABEL -o value {ret}").strip()
    check(g, label == "mt-retention", f"label {label!r}")
    results.append(f"retention prepare formatted {ret} (found by ID) as ext4 and mounted it")

    g.step = "writer run"
    start_writer(g, ["vm1", "kern"])
    certs = client_certs(g, work / "certs")
    remote = Remote(g, port, certs)
    status = json.loads(g.ok("mtkit writer status --json"))
    served = sorted(d["name"] for grp in status["groups"] for d in grp["disks"])
    check(g, served == ["kern-disk0", "vm1-disk0", "vm1-disk1"], f"served: {served}")

    g.step = "replication over TLS"
    src0 = work / "src0.img"
    src1 = work / "src1.img"
    src0.write_bytes(os.urandom(16 * MIB))
    src1.write_bytes(os.urandom(16 * MIB))
    remote.nbdcopy_to(src0, "vm1-disk0")
    remote.qemu_img_to(src1, "vm1-disk1")
    g.step = "bookmark"
    g.ok("mtkit bookmark --group vm1 --label e2e-app")
    (work / "vm1-disk0.expected").write_bytes(src0.read_bytes())
    (work / "vm1-disk1.expected").write_bytes(src1.read_bytes())
    g.step = "writes after the bookmark"
    remote.qemu_io("vm1-disk0", "write -P 0x5a 1M 2M", "flush")
    remote.qemu_io("vm1-disk1", "write -P 0xa5 8M 3M", "write -z 12M 1M", "flush")
    changed = remote.read("vm1-disk0", work / "changed0.img")
    check(g, changed[MIB:3 * MIB] == b"\x5a" * 2 * MIB, "the writes after the bookmark were not served back")
    g.step = "recover latest-app"
    out = json.loads(g.ok("mtkit recover --group vm1 --to latest-app --json"))
    check(g, out["point"]["kind"] == "app", f"recovered to {out}")
    g.ok("mtkit commit --group vm1")
    g.step = "read back"
    for export, src in (("vm1-disk0", src0), ("vm1-disk1", src1)):
        got = remote.read(export, work / f"{export}.readback")
        check(g, got == src.read_bytes(), f"{export} read back differs from the source at the bookmark")
    results.append("writer: nbdcopy and qemu-img replicated over TLS with a client certificate "
                   "through QEMU's port forwarding; bookmark, more writes, recover --to "
                   "latest-app and commit in the guest; read back bit for bit")
