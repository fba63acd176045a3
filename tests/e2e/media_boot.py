"""The media boot: mtkit's install media booted for real in QEMU, under SeaBIOS and OVMF.

The CentOS-6.6-like fixture ISO (iso/fixture/make-centos6-iso.sh --boot) carries a
Debian kernel and a busybox initramfs whose /init stands in for anaconda
(iso/fixture/standin/init): it prints its command line, gets the kickstart the
way RHEL 6's loader does, runs the kickstart's %post --nochroot (which installs mtkit and
appliance.toml from the media) and checks the installed mtkit. Each boot asserts on the
stand-in's serial lines; no key is pressed except in the two-CD boots, where QEMU types
the argument SUMMARY.txt tells users to add at the boot prompt.

Boots (all at once, each in its own QEMU):
  media-bios     `mtkit iso remaster` output as a CD, SeaBIOS
  media-uefi     the same ISO, OVMF (its EFI entry, BOOTX64.conf read from efiboot.img)
  media-hd       the same ISO as a hard disk (isohybrid MBR), SeaBIOS
  media-two-cds  the fixture ISO as it was, `mtkit build`'s kickstart ISO as the second CD
  media-ks-first the kickstart ISO as the first CD, the fixture ISO as the second
"""

import fnmatch
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

from guest import GuestError

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "iso/fixture"
# What make-centos6-iso.sh --boot adds to every entry (TCG on a loaded host); the remaster
# copies it into the mtkit entry like any other argument.
FIXTURE_ARGS = "console=ttyS0 no_timer_check panic=-1 quiet"
KS_ARG = "ks=cdrom:/ks.cfg"
BOOT_TIMEOUT = 600
# What the EFI loader stand-in (standin/grub.cfg) prints before reading the menu.
EFI_CONF_READ = "MTKIT-EFI: reading /EFI/BOOT/BOOTX64.conf from images/efiboot.img"
MARK = "MTKIT-STANDIN: "


def _run(step, *cmd, **kw):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise GuestError(f"step '{step}' (media): {' '.join(map(str, cmd))} exited "
                         f"{r.returncode}\n{r.stdout}\n{r.stderr}")
    return r.stdout


class Boot:
    """One QEMU boot of install media; its serial log is kept in `work`."""

    def __init__(self, a, work, name, drives, uefi=False):
        self.a, self.work, self.name = a, work, name
        self.serial_log = work / f"{name}.serial.log"
        self.qemu_log = work / f"{name}.qemu.log"
        self.monitor = work / f"{name}.monitor"
        args = [a["E2E_QEMU"], "-machine", "pc,accel=tcg", "-m", "768", "-smp", "1",
                # -nographic also has SeaBIOS copy the text screen (ISOLINUX) to the serial port.
                "-nographic", "-no-reboot", "-net", "none",
                "-serial", f"file:{self.serial_log}",
                "-monitor", f"unix:{self.monitor},server=on,wait=off"]
        if uefi:
            vars_copy = work / f"{name}.OVMF_VARS.fd"
            shutil.copyfile(a["E2E_OVMF_VARS"], vars_copy)
            args += ["-drive", f"if=pflash,format=raw,readonly=on,file={a['E2E_OVMF_CODE']}",
                     "-drive", f"if=pflash,format=raw,file={vars_copy}"]
        for d in drives:
            args += ["-drive", d]
        self.args = args
        self.proc = None
        self.error = None

    def fail(self, step, what):
        raise GuestError(f"step '{step}' in guest '{self.name}': {what}\n"
                         f"  serial log: {self.serial_log}")

    def start(self):
        self.serial_log.unlink(missing_ok=True)
        self.monitor.unlink(missing_ok=True)
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL,
                                     stdout=open(self.qemu_log, "w"), stderr=subprocess.STDOUT)
        self.started = time.monotonic()
        self.started_wall = time.time()

    def serial(self):
        try:
            return self.serial_log.read_bytes().decode("latin-1")
        except FileNotFoundError:
            return ""

    def wait_for(self, step, text, deadline):
        while text not in self.serial():
            if self.proc.poll() is not None:
                self.fail(step, f"QEMU exited ({self.proc.returncode}) before {text!r} "
                                f"appeared on the serial port")
            if time.monotonic() > deadline:
                self.fail(step, f"{text!r} did not appear on the serial port in time")
            time.sleep(0.2)

    def type_at_boot_prompt(self, step, text, deadline):
        """Tab on the menu's default entry, then ` TEXT` and Enter, through QEMU's monitor."""
        # SeaBIOS copies the text screen to the serial port: ISOLINUX's banner, then the
        # cursor home that vesamenu.c32 sends when it takes the screen. Keys typed before
        # the menu reads them wait in the BIOS buffer, which holds 15: type slowly, and
        # only once the menu is there.
        self.wait_for(step, "ISOLINUX", deadline)
        while "\x1b[01;01H" not in self.serial().split("ISOLINUX", 1)[1]:
            if time.monotonic() > deadline:
                self.fail(step, "the boot menu did not start in time")
            time.sleep(0.2)
        time.sleep(2)
        names = {" ": "spc", "=": "equal", ":": "shift-semicolon", "/": "slash", ".": "dot",
                 "-": "minus", "_": "shift-minus"}
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.monitor))
            for key in ["tab"] + [names.get(c, c) for c in " " + text] + ["ret"]:
                s.sendall(f"sendkey {key}\n".encode())
                time.sleep(0.4)

    def finish(self, step):
        """Waits for the stand-in's END line and QEMU's exit; returns the stand-in's lines."""
        deadline = self.started + BOOT_TIMEOUT
        try:
            self.wait_for(step, MARK + "END", deadline)
            self.proc.wait(timeout=max(5, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.fail(step, "the stand-in ended but QEMU did not power off")
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        return [line[line.index(MARK) + len(MARK):].rstrip()
                for line in self.serial().splitlines() if MARK in line]

    def expect(self, step, lines, wanted):
        """Every wanted line is there: exactly, or matching it when it holds a '*'."""
        for w in wanted:
            ok = any(fnmatch.fnmatchcase(l, w) for l in lines) if "*" in w else w in lines
            if not ok:
                self.fail(step, f"no stand-in line {w!r}; it printed:\n  " + "\n  ".join(lines))


def boot_files(a, work):
    """The fixture's kernel, stand-in initramfs and EFI loader."""
    out = work / "boot"
    _run("make boot files", "bash", FIXTURE / "make-boot-files.sh",
         "--kernel", a["E2E_KERNEL"],
         "--modules", Path(a["E2E_MODULES_ROOT"]) / "lib/modules" / a["E2E_KVER"],
         "--busybox", a["E2E_BUSYBOX"], "--grub-dir", a["E2E_GRUB_EFI_DIR"],
         "--grub-mkimage", a["E2E_GRUB_MKIMAGE"], out)
    return out


def media(mtkit, work, boot):
    """The fixture install ISO, mtkit's config, remastered ISO and `mtkit build` output."""
    fixture = work / "centos66.iso"
    _run("make fixture ISO", "bash", FIXTURE / "make-centos6-iso.sh", "--boot", boot, fixture)
    # The media carry the static binary without its debug info (as the release build).
    binary = work / "mtkit"
    _run("strip mtkit", "strip", "-o", binary, mtkit)
    # A config `mtkit build` accepts: root logs in by SSH key, inline and from a file.
    config = work / "appliance.toml"
    good = REPO / "tests/fixtures/config/good"
    shutil.copyfile(good / "ssh-keys.toml", config)
    shutil.copyfile(good / "admin.pub", work / "admin.pub")
    remastered = work / "mt-install.iso"
    _run("mtkit iso remaster", binary, "--config", config, "iso", "remaster", "--force",
         "--source", fixture, "--binary", binary, "-o", remastered)
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    _run("mtkit build", binary, "--config", config, "build", "--out", out, "--binary", binary)
    version = _run("mtkit --version", binary, "--version").strip()
    return fixture, remastered, out, version


def summary_boot_args(summary):
    """The arguments SUMMARY.txt tells users to add at the boot prompt: the line after
    "press Tab and add:" (the kickstart ISO in the second drive), then the one the next
    line gives in parentheses for the kickstart ISO in the first drive."""
    lines = summary.splitlines()
    for i, line in enumerate(lines):
        if "press Tab and add:" in line and i + 2 < len(lines):
            second = lines[i + 1].strip()
            first = lines[i + 2].strip().lstrip("(").split(" ", 1)[0]
            if second.startswith("ks=") and first.startswith("ks="):
                return second, first
    raise GuestError(f"step 'read SUMMARY.txt' (media): no 'press Tab and add:' line with "
                     f"two ks= arguments in\n{summary}")


MEDIA_KEYS = ("E2E_OVMF_CODE", "E2E_OVMF_VARS", "E2E_GRUB_EFI_DIR", "E2E_GRUB_MKIMAGE")


def run_media(a, work, results, mtkit):
    a = dict(a)
    for k in MEDIA_KEYS:
        a[k] = os.environ.get(k, "")
        if not a[k]:
            raise SystemExit(f"e2e: {k} unset: run through scripts/test-e2e")
    t0 = time.monotonic()
    boot = boot_files(a, work)
    fixture, remastered, out, version = media(mtkit, work, boot)
    arg, arg_ks_first = summary_boot_args((out / "SUMMARY.txt").read_text())
    results.append(f"media built in {time.monotonic() - t0:.0f} s; SUMMARY.txt says to type "
                   f"{arg!r}, or {arg_ks_first!r} with the kickstart ISO first")

    cd = lambda iso, index: f"file={iso},format=raw,if=ide,index={index},media=cdrom,readonly=on"
    boots = {
        "media-bios": Boot(a, work, "media-bios", [cd(remastered, 2)]),
        "media-uefi": Boot(a, work, "media-uefi", [cd(remastered, 2)], uefi=True),
        "media-hd": Boot(a, work, "media-hd",
                         [f"file={remastered},format=raw,if=ide,index=0,snapshot=on"]),
        "media-two-cds": Boot(a, work, "media-two-cds",
                              [cd(fixture, 2), cd(out / "mt-ks.iso", 3)]),
        # SeaBIOS passes over the kickstart ISO (no boot record) to the install disc.
        "media-ks-first": Boot(a, work, "media-ks-first",
                               [cd(out / "mt-ks.iso", 2), cd(fixture, 3)]),
    }
    # All at once: each TCG guest is one host thread, and most of a boot is waiting.
    for b in boots.values():
        b.start()
    typists = {name: threading.Thread(target=_type, args=(boots[name], text))
               for name, text in (("media-two-cds", arg), ("media-ks-first", arg_ks_first))}
    for t in typists.values():
        t.start()

    errors = []
    bios_cmdline = f"cmdline: BOOT_IMAGE=vmlinuz initrd=initrd.img {FIXTURE_ARGS} {KS_ARG}"
    installed = [f"mtkit --version: {version}",
                 "kickstart check: mtkit kickstart from the installed appliance.toml gives "
                 "the kickstart on the disc",
                 "END ok"]
    checks = {
        # The default entry is mtkit's, booted after its timeout with no key pressed.
        "media-bios": [bios_cmdline, f"kickstart: read * from /dev/sr0 ({KS_ARG})",
                       "install disc: /dev/sr0 mounted at /mnt/source",
                       "%post --nochroot: mtkit: installed mtkit and appliance.toml from /mnt/source",
                       *installed],
        "media-uefi": [f"cmdline: BOOT_IMAGE=/images/pxeboot/vmlinuz {FIXTURE_ARGS} {KS_ARG}",
                       f"kickstart: read * from /dev/sr0 ({KS_ARG})",
                       "%post --nochroot: mtkit: installed mtkit and appliance.toml from /mnt/source",
                       *installed],
        # Written to a disk (a USB stick), the isohybrid MBR boots mtkit's entry; RHEL 6's
        # loader then looks for ks=cdrom: on CD drives only, and this machine's is empty.
        "media-hd": [bios_cmdline, "block devices: sda sr0",
                     f"END FAIL kickstart: {KS_ARG}: no CD-ROM drive carries /ks.cfg "
                     "(the RHEL 6 loader says: Cannot find kickstart file on CDROM)"],
        # The kickstart ISO in the second drive, with what SUMMARY.txt says to type.
        "media-two-cds": [f"cmdline: BOOT_IMAGE=vmlinuz initrd=initrd.img {FIXTURE_ARGS} {arg}",
                          f"kickstart: read * from /dev/sr1 ({arg})",
                          "install disc: /dev/sr0 mounted at /mnt/source",
                          "%post --nochroot: mtkit: found the media on /dev/sr1",
                          *installed],
        # The kickstart ISO in the first drive, with the other argument SUMMARY.txt gives.
        "media-ks-first": [f"cmdline: BOOT_IMAGE=vmlinuz initrd=initrd.img {FIXTURE_ARGS} {arg_ks_first}",
                           f"kickstart: read * from /dev/sr0 ({arg_ks_first})",
                           "install disc: /dev/sr1 mounted at /mnt/source",
                           "%post --nochroot: mtkit: found the media on /dev/sr0",
                           *installed],
    }
    for name, b in boots.items():
        try:
            if name in typists:
                typists[name].join()
                if b.error:
                    raise b.error
            lines = b.finish("boot")
            b.expect("stand-in", lines, checks[name])
            if name == "media-uefi" and EFI_CONF_READ not in b.serial():
                b.fail("EFI loader", f"no {EFI_CONF_READ!r} on the serial port")
            # The serial log's last write is the power-off: the boot's own time, though the
            # boots are waited for one after the other.
            took = b.serial_log.stat().st_mtime - b.started_wall
            results.append(f"{name}: ok in {took:.0f} s "
                           f"({next(l for l in lines if l.startswith('cmdline: '))})")
        except GuestError as e:
            errors.append(str(e))
    if errors:
        raise GuestError("\n".join(errors))


def _type(b, arg):
    try:
        b.type_at_boot_prompt("type at the boot prompt", arg, b.started + BOOT_TIMEOUT)
    except (GuestError, OSError) as e:
        b.error = e if isinstance(e, GuestError) else GuestError(
            f"step 'type at the boot prompt' in guest '{b.name}': {e}\n  serial log: {b.serial_log}")
