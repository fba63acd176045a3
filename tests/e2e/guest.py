"""The appliance guest: a busybox initramfs with the static mtkit, booted with Debian's
kernel in QEMU (TCG), and a command channel to it.

Commands go over a virtio-serial port (no tty line discipline, so no echo or mangled bytes):
the host sends one base64 line, the guest's init runs it with `sh` and answers with base64
stdout, stderr and the exit code. The kernel console goes to the serial log, which is
kept for every guest and named in every failure.
"""

import base64
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ASSET_KEYS = ("E2E_CACHE", "E2E_QEMU", "E2E_KERNEL", "E2E_KVER", "E2E_MODULES_ROOT",
              "E2E_BUSYBOX", "E2E_NBD_CLIENT")

# Kernel modules the guest loads, with their dependencies (modprobe --show-depends):
# the three SCSI controllers a VMware master target meets, disks and CD-ROM, the
# filesystems `retention prepare` offers, the kernel NBD client, the NIC and the channel.
MODULES = ("virtio_pci", "virtio_scsi", "sym53c8xx", "vmw_pvscsi", "sd_mod", "sr_mod",
           "crc32c_generic", "ext4", "xfs", "nbd", "virtio_net", "virtio_console")
# Host programs (glibc, copied with their libraries) that mtkit runs in the guest:
# mkfs for `retention prepare`, util-linux blkid for its low-level probe.
HOST_PROGRAMS = ("/sbin/mkfs.ext4", "/sbin/mkfs.xfs", "/sbin/blkid", "/sbin/mke2fs")

INIT = r"""#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /run /tmp /mnt /var/log /etc/mtkit /usr/bin /usr/sbin /sbin
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/busybox --install -s /bin
for m in $(cat /etc/e2e/modules); do insmod "$m" || echo "e2e: insmod $m failed"; done
ip link set lo up
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2
hostname mt01
echo "127.0.0.1 localhost mt01" > /etc/hosts
# Wait for the disks QEMU was given (SCSI scans run in the background).
want=$(sed -n 's/.*e2e.disks=\([0-9]*\).*/\1/p' /proc/cmdline)
i=0
while [ "$(ls /sys/class/scsi_disk 2>/dev/null | wc -l)" -lt "${want:-0}" ] && [ $i -lt 600 ]; do
  sleep 0.1; i=$((i+1))
done
port=""
for p in /sys/class/virtio-ports/*; do
  [ "$(cat "$p/name" 2>/dev/null)" = ctl ] && port=/dev/$(basename "$p")
done
echo "e2e: ready, $(ls /sys/class/scsi_disk | wc -l) SCSI disks, channel $port"
exec 3<>"$port"
echo READY >&3
while read -r line <&3; do
  echo "$line" | base64 -d > /tmp/cmd.sh
  sh /tmp/cmd.sh > /tmp/out 2> /tmp/err < /dev/null
  rc=$?
  { printf 'OUT '; base64 -w0 /tmp/out; echo; printf 'ERR '; base64 -w0 /tmp/err; echo; echo "RC $rc"; } >&3
done
echo "e2e: channel closed"
poweroff -f
"""


class GuestError(Exception):
    """A step failed: names the step, the guest and the serial log."""


def assets():
    """The KEY=VALUE lines of scripts/e2e-assets (run by scripts/test-e2e)."""
    env = {k: os.environ.get(k, "") for k in ASSET_KEYS}
    missing = [k for k, v in env.items() if not v]
    if missing:
        raise SystemExit(f"e2e: {', '.join(missing)} unset: run through scripts/test-e2e "
                         "(or eval \"$(scripts/e2e-assets)\")")
    return env


def _libs(program):
    """The shared libraries `program` loads; a library ldd cannot find is an error (the
    guest would fail the program with exit 127 much later)."""
    out = subprocess.run(["ldd", program], capture_output=True, text=True, check=True).stdout
    missing = [line.split()[0] for line in out.splitlines() if "not found" in line]
    if missing:
        raise RuntimeError(f"{program} needs {', '.join(missing)}, which this host does not have "
                           "(scripts/e2e-assets installs them)")
    libs = []
    for line in out.splitlines():
        parts = line.split()
        if "=>" in parts and len(parts) > parts.index("=>") + 1 and parts[parts.index("=>") + 1].startswith("/"):
            libs.append(parts[parts.index("=>") + 1])
        elif parts and parts[0].startswith("/"):
            libs.append(parts[0])
    return libs


def _copy(src, tree, dst=None):
    dst = tree / (dst or src).lstrip("/")
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(os.path.realpath(src), dst)


def _module_files(a):
    files = []
    for m in MODULES:
        out = subprocess.run(["modprobe", "-S", a["E2E_KVER"], "-d", a["E2E_MODULES_ROOT"],
                              "--show-depends", m], capture_output=True, text=True, check=True)
        for line in out.stdout.splitlines():
            parts = line.split()
            if parts[:1] == ["insmod"] and parts[1] not in files:
                files.append(parts[1])
    return files


def initramfs(a, mtkit):
    """Builds (or reuses, keyed by its inputs) the guest's initramfs; returns its path."""
    mods = _module_files(a)
    programs = list(HOST_PROGRAMS) + [a["E2E_NBD_CLIENT"]]
    h = hashlib.sha256(INIT.encode())
    # The libraries are inputs too: a tree built while one was missing must not be reused.
    libs = sorted({lib for p in programs for lib in _libs(p)})
    for f in [mtkit, a["E2E_BUSYBOX"], *programs, *libs, *mods]:
        st = os.stat(f)
        h.update(f"{f}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    out = Path(a["E2E_CACHE"]) / f"initramfs-{h.hexdigest()[:16]}.cpio.gz"
    if out.exists():
        return out
    with tempfile.TemporaryDirectory(dir=a["E2E_CACHE"]) as t:
        tree = Path(t) / "tree"
        (tree / "bin").mkdir(parents=True)
        (tree / "etc/e2e").mkdir(parents=True)
        shutil.copy2(a["E2E_BUSYBOX"], tree / "bin/busybox")
        (tree / "sbin").mkdir()
        # The debug build carries its debug info: strip it, the guest has 1 GiB of RAM.
        subprocess.run(["strip", "-o", str(tree / "sbin/mtkit"), mtkit], check=True)
        for p in programs:
            _copy(p, tree, "/sbin/" + os.path.basename(p))
            for lib in _libs(p):
                _copy(lib, tree)
        _copy("/etc/mke2fs.conf", tree)
        guest_mods = []
        for m in mods:
            rel = os.path.relpath(m, a["E2E_MODULES_ROOT"])
            dst = tree / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(m, dst)
            guest_mods.append("/" + rel)
        (tree / "etc/e2e/modules").write_text("\n".join(guest_mods) + "\n")
        (tree / "init").write_text(INIT)
        (tree / "init").chmod(0o755)
        files = subprocess.run(["find", "."], cwd=tree, capture_output=True, check=True).stdout
        cpio = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=tree, input=files,
                              capture_output=True, check=True).stdout
        tmp = out.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            subprocess.run(["gzip", "-1"], input=cpio, stdout=f, check=True)
        tmp.rename(out)
    return out


@dataclass
class Disk:
    """One disk QEMU is given: `controller` is virtio-scsi, lsi or pvscsi; `wwn` and
    `serial` None leave the ID out (device_id is emptied too, so page 0x83 is bare)."""
    name: str
    controller: str
    image: Path
    wwn: int | None = None
    serial: str | None = None
    cdrom: bool = False

    @property
    def scsi_id(self):
        """What udev's scsi_id prints for it: NAA designators are prefixed with type 3."""
        return None if self.wwn is None else f"3{self.wwn:016x}"


CONTROLLERS = {"virtio-scsi": "virtio-scsi-pci", "lsi": "lsi53c895a", "pvscsi": "pvscsi"}
# Disk caches as a VMware guest sees them: ESXi acknowledges a virtual disk's write only once
# it is on stable storage and presents no volatile write cache (the guest's sd driver logs
# "Write cache: disabled"). cache=directsync gives the guest the same (WCE off) and writes
# the image with O_DIRECT|O_DSYNC, so what a SIGKILL leaves in the image is exactly what the
# guest's disk had acknowledged: the power cut loses the guest's page cache and in-flight
# requests, nothing that the disk had accepted.
CACHE_MODE = "directsync"


@dataclass
class Guest:
    """One boot of a guest; `name` labels its logs and failures."""
    name: str
    workdir: Path
    disks: list
    kernel: str
    initrd: Path
    qemu: str
    hostfwd: dict = field(default_factory=dict)  # host port -> guest port
    memory: str = "1024"
    proc: subprocess.Popen | None = None
    chan: socket.socket | None = None
    boot: int = 0
    step: str = "boot"
    diagnose: str = ("tail -n 40 /var/log/writer.log 2>/dev/null; grep -v '^[a-z]*fs \\|proc\\|sysfs' "
                     "/proc/mounts; ps; ls -l /proc/[0-9]*/fd 2>/dev/null | grep /dev/sd")

    @property
    def serial_log(self):
        return self.workdir / f"{self.name}-boot{self.boot}.serial.log"

    def fail(self, what):
        if self.diagnose and self.chan and not getattr(self, "_diagnosing", False):
            self._diagnosing = True
            try:
                rc, out, err = self.sh(self.diagnose, timeout=30)
                what += f"\n--- {self.diagnose}\n{out}{err}"
            except GuestError:
                pass
        raise GuestError(f"step '{self.step}' in guest '{self.name}' (boot {self.boot}): {what}\n"
                         f"  serial log: {self.serial_log}")

    def args(self):
        a = [self.qemu, "-machine", "q35,accel=tcg", "-cpu", "max", "-m", self.memory,
             "-smp", "1", "-nographic", "-no-reboot", "-nodefaults",
             "-chardev", f"file,id=con,path={self.serial_log}", "-serial", "chardev:con",
             "-kernel", self.kernel, "-initrd", str(self.initrd),
             "-append", f"console=ttyS0 panic=-1 loglevel=5 e2e.disks={sum(not d.cdrom for d in self.disks)}",
             "-device", "virtio-serial-pci,id=vser",
             "-chardev", f"socket,id=ctl,path={self.workdir / (self.name + '.ctl')},server=on,wait=off",
             "-device", "virtserialport,bus=vser.0,chardev=ctl,name=ctl"]
        fwd = "".join(f",hostfwd=tcp:127.0.0.1:{h}-:{g}" for h, g in self.hostfwd.items())
        a += ["-netdev", f"user,id=net0{fwd}", "-device", "virtio-net-pci,netdev=net0,romfile="]
        for c in sorted({d.controller for d in self.disks}):
            a += ["-device", f"{CONTROLLERS[c]},id={c.replace('-', '')}"]
        for i, d in enumerate(self.disks):
            bus = d.controller.replace("-", "")
            if d.cdrom:
                a += ["-drive", f"if=none,id=d{i},media=cdrom,readonly=on,file={d.image},format=raw",
                      "-device", f"scsi-cd,bus={bus}.0,drive=d{i}"]
                continue
            a += ["-drive", f"if=none,id=d{i},file={d.image},format=raw,cache={CACHE_MODE},aio=threads"]
            dev = f"scsi-hd,bus={bus}.0,drive=d{i}"
            if d.wwn is not None:
                dev += f",wwn=0x{d.wwn:016x}"
            if d.serial is not None:
                dev += f",serial={d.serial}"
            if d.wwn is None and d.serial is None:
                dev += ",device_id="
            a += ["-device", dev]
        return a

    def start(self, timeout=300):
        self.boot += 1
        self.step = "boot"
        sock_path = self.workdir / (self.name + ".ctl")
        sock_path.unlink(missing_ok=True)
        self.proc = subprocess.Popen(self.args(), stdin=subprocess.DEVNULL,
                                     stdout=open(self.workdir / f"{self.name}-boot{self.boot}.qemu.log", "w"),
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                self.fail(f"QEMU exited ({self.proc.returncode}) before the guest was ready; "
                          f"QEMU log {self.workdir / f'{self.name}-boot{self.boot}.qemu.log'}")
            try:
                self.chan = socket.socket(socket.AF_UNIX)
                self.chan.connect(str(sock_path))
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.fail("QEMU's channel socket never appeared")
                time.sleep(0.2)
        self.buf = b""
        line = self._line(deadline)
        if line != "READY":
            self.fail(f"expected READY from the guest, got {line!r}")
        return self

    def _line(self, deadline):
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self.fail("no answer from the guest in time")
            self.chan.settimeout(min(left, 5))
            try:
                chunk = self.chan.recv(1 << 16)
            except socket.timeout:
                if self.proc.poll() is not None:
                    self.fail(f"QEMU exited ({self.proc.returncode})")
                continue
            if not chunk:
                self.fail("the guest closed its channel")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode().strip()

    def sh(self, script, timeout=600):
        """Runs a shell script in the guest: (exit code, stdout, stderr)."""
        self.chan.sendall(base64.b64encode(script.encode()) + b"\n")
        deadline = time.monotonic() + timeout
        out = self._line(deadline)
        err = self._line(deadline)
        rc = self._line(deadline)
        if not (out.startswith("OUT") and err.startswith("ERR") and rc.startswith("RC ")):
            self.fail(f"garbled answer from the guest: {out[:80]!r} {err[:80]!r} {rc[:80]!r}")
        dec = lambda s: base64.b64decode(s[3:].strip()).decode(errors="replace")
        return int(rc[3:]), dec(out), dec(err)

    def ok(self, script, timeout=600):
        """Runs a script that must succeed; returns its stdout."""
        rc, out, err = self.sh(script, timeout)
        if rc != 0:
            self.fail(f"`{script.strip()[:200]}` exited {rc}\n--- stdout\n{out}\n--- stderr\n{err}")
        return out

    def host(self, *cmd, **kw):
        """Runs a host command of this step (nbdcopy, qemu-img): its failure is the step's."""
        r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
        if r.returncode != 0:
            self.fail(f"{' '.join(map(str, cmd))} exited {r.returncode}\n{r.stdout}\n{r.stderr}")
        return r.stdout

    def power_cut(self):
        """SIGKILL: the guest's page cache and in-flight requests are lost."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        if self.chan:
            self.chan.close()
            self.chan = None

    def shutdown(self):
        """A clean end: sync in the guest, then stop QEMU."""
        if self.proc and self.proc.poll() is None:
            try:
                self.sh("sync", timeout=60)
            except GuestError:
                pass
        self.power_cut()
