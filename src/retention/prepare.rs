//! `retention prepare`: format (ext4 or xfs, labelled), mount, register in fstab and create
//! the journal folder; every step checked first and skipped when already done.

use super::linux::{self, Device, Scope, under};
use super::rules::{self, LABEL, Requirements, Verdict};
use crate::error::bad_input;
use crate::external::{MKFS_EXT4, MKFS_XFS};
use crate::files::root::rel_of;
use crate::files::{Links, Root};
use crate::host::crashsafe;
use crate::host::mounts;
use anyhow::{Context, Result};
use serde::Serialize;
use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fs {
    Ext4,
    Xfs,
}

impl Fs {
    pub fn parse(s: &str) -> Result<Fs> {
        match s {
            "ext4" => Ok(Fs::Ext4),
            "xfs" => Ok(Fs::Xfs),
            _ => Err(bad_input(format!(
                "filesystem \"{s}\" is not supported for retention: use ext4 or xfs"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Fs::Ext4 => "ext4",
            Fs::Xfs => "xfs",
        }
    }
}

pub struct Options {
    pub fs: Fs,
    /// As the prepared system sees it (`/mnt/retention`).
    pub mountpoint: PathBuf,
    /// The journal folder as the system sees it.
    pub journal_dir: PathBuf,
    pub force: bool,
    /// Unmount another volume mounted at the mountpoint and replace another device's fstab
    /// line for it (the old retention volume is being retired).
    pub replace: bool,
    /// Say what would be formatted, mounted and written; change nothing.
    pub dry_run: bool,
}

/// What prepare did, or would do with `--dry-run` (empty `steps`: already prepared).
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Prepared {
    pub device: PathBuf,
    pub steps: Vec<String>,
    pub fstab_line: String,
    pub dry_run: bool,
}

/// Checks `device` against the rules and prepares it; refuses (bad input, exit 2) and
/// touches nothing when a rule fails, when another volume is mounted at the mountpoint or
/// fstab mounts another device there (unless `replace`), or when a path under the root
/// (the mountpoint, `etc/fstab`, the journal folder) goes through a symbolic link.
pub fn prepare(cx: &Scope, device: &Path, opts: &Options) -> Result<Prepared> {
    let rel_mp = rel_of(&opts.mountpoint).map_err(|e| bad_input(format!("mountpoint: {e}")))?;
    let rel_journal =
        rel_of(&opts.journal_dir).map_err(|e| bad_input(format!("journal folder: {e}")))?;
    let fstab_rel = Path::new("etc/fstab");
    let root = Root::open(cx.root)?;
    // A link here would take the mount or a write outside the root (R/mnt/retention ->
    // /srv, R/etc -> /etc): refused before any step, not resolved.
    for rel in [rel_mp.as_path(), fstab_rel, rel_journal.as_path()] {
        root.check_no_links(rel)?;
    }
    let target = under(cx.root, &opts.mountpoint);
    let (facts, dev) = linux::collect(cx, device)?;
    let req = Requirements {
        min_size: cx.config.retention.min_size.bytes(),
        mountpoint: Some(target.clone()),
        force: opts.force,
    };
    let verdict = rules::evaluate(&facts, &req);
    if !verdict.ok {
        return Err(bad_input(refusal(&verdict)));
    }
    let dev = dev.expect("an existing device passed the rules");
    let nums = dev.nums();
    // Another volume at the mountpoint is most likely the live retention volume with the
    // only copy of the recovery history: never mounted over without --replace.
    let others: Vec<mounts::Mount> = mounts::read(cx.host)
        .into_iter()
        .filter(|m| m.mountpoint == target)
        .filter(|m| !m.devnum(cx.host).is_some_and(|n| nums.contains(&n)))
        .collect();
    let current_fstab = root.read_text(fstab_rel, Links::Refuse)?;
    let other_lines: Vec<String> = current_fstab
        .as_deref()
        .map(|t| entries_for(t, &opts.mountpoint))
        .unwrap_or_default()
        .into_iter()
        .filter(|spec| !names_device(spec, &dev, facts.uuid.as_deref(), device))
        .collect();
    if !opts.replace && (!others.is_empty() || !other_lines.is_empty()) {
        let mut msg = format!(
            "{} cannot be prepared at {}: the mountpoint is taken",
            device.display(),
            opts.mountpoint.display()
        );
        for m in &others {
            msg.push_str(&format!(
                "\n  - {} ({}) is mounted at {}: the retention volume in use? its journal \
                 would be hidden and its fstab line replaced",
                m.device,
                m.fstype,
                target.display()
            ));
        }
        for spec in &other_lines {
            msg.push_str(&format!(
                "\n  - {} mounts {spec} at {}",
                root.show(fstab_rel).display(),
                opts.mountpoint.display()
            ));
        }
        msg.push_str(
            "\nchoose another --mountpoint, or give --replace to unmount the other volume and \
             put this device in its place (stop the writer first)\nnothing was changed",
        );
        return Err(bad_input(msg));
    }

    let mut steps = Vec::new();
    let verb = |done: &str, would: &str| {
        if opts.dry_run {
            would.to_string()
        } else {
            done.to_string()
        }
    };
    let mut fs_name = facts.filesystem.clone().unwrap_or_default();
    let mut uuid = facts.uuid.clone();
    if verdict.prepared {
        if fs_name != opts.fs.name() {
            return Err(bad_input(format!(
                "{} is already a retention volume with {fs_name}, not {}: keep it, or unmount and wipe it (wipefs -a) to change",
                device.display(),
                opts.fs.name()
            )));
        }
    } else {
        if !opts.dry_run {
            mkfs(&dev, opts)?;
            uuid = linux::probe(&dev.node)?.uuid;
        }
        fs_name = opts.fs.name().into();
        steps.push(format!(
            "{} {} as {} labelled {LABEL}",
            verb("formatted", "would format"),
            device.display(),
            opts.fs.name()
        ));
    }
    if !facts.mounts.contains(&target) || !verdict.prepared {
        for m in &others {
            if !opts.dry_run {
                nix::mount::umount(&target).with_context(|| {
                    format!(
                        "unmounting {} from {} (--replace; stop the writer first)",
                        m.device,
                        target.display()
                    )
                })?;
            }
            steps.push(format!(
                "{} {} from {}",
                verb("unmounted", "would unmount"),
                m.device,
                opts.mountpoint.display()
            ));
        }
        if !opts.dry_run {
            root.create_dirs_with(&rel_mp, 0o755, Links::Refuse)?;
            mount(&root, &rel_mp, &dev, &fs_name, &target).with_context(|| {
                format!("mounting {} at {}", device.display(), target.display())
            })?;
        }
        steps.push(format!(
            "{} at {}",
            verb("mounted", "would mount"),
            opts.mountpoint.display()
        ));
    }
    let spec = match (&uuid, opts.dry_run) {
        (None, true) if !dev.multipath => "UUID=<the new filesystem's>".to_string(),
        _ => fstab_spec(&dev, uuid.as_deref())?,
    };
    let line = fstab_line(&spec, &opts.mountpoint, &fs_name);
    if let Some(new) = plan_fstab(
        current_fstab.as_deref().unwrap_or(""),
        &line,
        &opts.mountpoint,
    ) {
        if !opts.dry_run {
            if current_fstab.is_some() {
                root.backup(fstab_rel)?;
            } else {
                root.create_dirs_with(Path::new("etc"), 0o755, Links::Refuse)?;
            }
            root.write_atomic(fstab_rel, new.as_bytes(), 0o644)?;
        }
        steps.push(format!(
            "fstab{}: {line}",
            if opts.dry_run { " (would write)" } else { "" }
        ));
    }
    if !root.is_dir(&rel_journal, Links::Refuse).unwrap_or(false) {
        if !opts.dry_run {
            root.create_dirs_with(&rel_journal, 0o700, Links::Refuse)?;
        }
        steps.push(format!(
            "{} journal folder {}",
            verb("created", "would create"),
            opts.journal_dir.display()
        ));
    }
    Ok(Prepared {
        device: device.to_path_buf(),
        steps,
        fstab_line: line,
        dry_run: opts.dry_run,
    })
}

/// Mounts `dev` on the folder `rel` of the root, reached through a descriptor opened with
/// no link on the way: `/proc/self/fd/N` names exactly that folder, so nothing swapped in
/// since the check can redirect the mount. Without /proc, the checked path is used.
fn mount(root: &Root, rel: &Path, dev: &Device, fs_name: &str, target: &Path) -> Result<()> {
    let fd = root
        .open_dir(rel, Links::Refuse)?
        .with_context(|| format!("{} vanished", target.display()))?;
    let via_fd = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    let at = if via_fd.exists() {
        via_fd.as_path()
    } else {
        target
    };
    nix::mount::mount(
        Some(&dev.node),
        at,
        Some(fs_name),
        nix::mount::MsFlags::MS_NOATIME,
        None::<&str>,
    )?;
    Ok(())
}

/// The devices fstab mounts at `mountpoint` (their first field).
fn entries_for(fstab: &str, mountpoint: &Path) -> Vec<String> {
    let mp = fstab_escape(mountpoint);
    fstab
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let spec = f.next()?;
            (f.next() == Some(mp.as_str())).then(|| spec.to_string())
        })
        .collect()
}

/// True when an fstab `spec` names `dev`: its filesystem UUID, its node or the path given,
/// or its multipath map.
fn names_device(spec: &str, dev: &Device, uuid: Option<&str>, given: &Path) -> bool {
    if let Some(u) = spec.strip_prefix("UUID=") {
        return uuid.is_some_and(|x| x.eq_ignore_ascii_case(u.trim_matches('"')));
    }
    let p = Path::new(spec);
    if p == given || p == dev.path || p == dev.node {
        return true;
    }
    dev.multipath
        && fs::read_to_string(dev.sysfs.join("dm/name"))
            .is_ok_and(|n| spec == format!("/dev/mapper/{}", n.trim()))
}

/// The message of a refused device: every failed rule with its reason.
pub fn refusal(v: &Verdict) -> String {
    let mut msg = format!("{} cannot be the retention volume:", v.volume);
    for f in v.failures() {
        msg.push_str(&format!("\n  - {}: {}", f.rule, f.detail));
    }
    msg.push_str("\nnothing was changed");
    msg
}

fn mkfs(dev: &Device, opts: &Options) -> Result<()> {
    // The force flag only with --force: without it mkfs itself refuses a device in doubt.
    let (tool, force) = match opts.fs {
        Fs::Ext4 => (&MKFS_EXT4, "-F"),
        Fs::Xfs => (&MKFS_XFS, "-f"),
    };
    let mut args = vec!["-q".as_ref(), "-L".as_ref(), LABEL.as_ref()];
    // The journal explicitly: a mke2fs.conf without has_journal would make an ext4 that a
    // power cut can cross-link (host::crashsafe).
    if opts.fs == Fs::Ext4 {
        args.extend([
            std::ffi::OsStr::new("-O"),
            std::ffi::OsStr::new("has_journal"),
        ]);
    }
    if opts.force {
        args.push(force.as_ref());
    }
    args.push(dev.node.as_os_str());
    tool.run(args)?;
    let made = crashsafe::of_device(opts.fs.name(), &dev.node);
    anyhow::ensure!(
        made.is_safe(),
        "{} was formatted as {}, which is not crash-safe: {}",
        dev.node.display(),
        made.filesystem,
        made.why
    );
    Ok(())
}

/// `UUID=...`, or `/dev/mapper/<name>` for a multipath map (its name is the SCSI ID and
/// stays stable, while the filesystem UUID would also match each path's sd device).
fn fstab_spec(dev: &Device, uuid: Option<&str>) -> Result<String> {
    if dev.multipath {
        let name = fs::read_to_string(dev.sysfs.join("dm/name"))
            .with_context(|| format!("reading {}", dev.sysfs.join("dm/name").display()))?;
        return Ok(format!("/dev/mapper/{}", name.trim()));
    }
    uuid.map(|u| format!("UUID={u}"))
        .ok_or_else(|| anyhow::anyhow!("{} has no filesystem UUID after mkfs", dev.path.display()))
}

pub fn fstab_line(spec: &str, mountpoint: &Path, fs: &str) -> String {
    // xfs is never fsck'd at boot (fsck.xfs does nothing); nofail lets the MT boot and
    // report a missing retention disk instead of stopping in the emergency shell.
    let pass = if fs == "xfs" { 0 } else { 2 };
    format!(
        "{spec} {} {fs} defaults,noatime,nofail 0 {pass}",
        fstab_escape(mountpoint)
    )
}

/// A path as an fstab field (fstab(5)): blanks and backslashes as octal escapes, so that
/// "/mnt/my retention" stays one field instead of making "retention" the filesystem type.
pub fn fstab_escape(p: &Path) -> String {
    let mut out = String::new();
    for c in p.to_string_lossy().chars() {
        match c {
            ' ' => out.push_str("\\040"),
            '\t' => out.push_str("\\011"),
            '\n' => out.push_str("\\012"),
            '\\' => out.push_str("\\134"),
            c => out.push(c),
        }
    }
    out
}

/// New fstab text with `line` as the only entry for `mountpoint`, or `None`.
pub fn plan_fstab(current: &str, line: &str, mountpoint: &Path) -> Option<String> {
    let mp = fstab_escape(mountpoint);
    let mut out = String::with_capacity(current.len() + line.len() + 1);
    let mut placed = false;
    for l in current.lines() {
        let mut f = l.split_whitespace();
        let is_entry = !l.trim_start().starts_with('#') && f.next().is_some();
        if is_entry && f.next() == Some(mp.as_ref()) {
            if !placed {
                out.push_str(line);
                out.push('\n');
                placed = true;
            }
            continue;
        }
        out.push_str(l);
        out.push('\n');
    }
    if !placed {
        out.push_str(line);
        out.push('\n');
    }
    (out != current).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fstab_escapes_blanks_in_the_mountpoint() {
        let mp = Path::new("/mnt/my retention");
        let line = fstab_line("UUID=abc", mp, "ext4");
        assert_eq!(
            line,
            "UUID=abc /mnt/my\\040retention ext4 defaults,noatime,nofail 0 2"
        );
        assert_eq!(line.split_whitespace().count(), 6);
        // The escaped entry is recognised again: replaced, not added a second time.
        let once = plan_fstab("UUID=r / ext4 defaults 1 1\n", &line, mp).unwrap();
        assert_eq!(plan_fstab(&once, &line, mp), None);
        let moved = fstab_line("UUID=def", mp, "ext4");
        let twice = plan_fstab(&once, &moved, mp).unwrap();
        assert_eq!(twice.matches("040retention").count(), 1, "{twice}");
        assert_eq!(fstab_escape(Path::new("/a\\b\tc")), "/a\\134b\\011c");
    }

    #[test]
    fn fstab_gets_one_line_per_mountpoint() {
        let mp = Path::new("/mnt/retention");
        let line = fstab_line("UUID=abc", mp, "ext4");
        assert_eq!(
            line,
            "UUID=abc /mnt/retention ext4 defaults,noatime,nofail 0 2"
        );
        let cur =
            "# /etc/fstab\nUUID=r / ext4 defaults 1 1\n/dev/sdc1 /mnt/retention xfs defaults 0 0\n";
        let new = plan_fstab(cur, &line, mp).unwrap();
        assert_eq!(
            new,
            format!("# /etc/fstab\nUUID=r / ext4 defaults 1 1\n{line}\n")
        );
        assert_eq!(plan_fstab(&new, &line, mp), None);
        let appended = plan_fstab("UUID=r / ext4 defaults 1 1", &line, mp).unwrap();
        assert_eq!(appended, format!("UUID=r / ext4 defaults 1 1\n{line}\n"));
    }

    #[test]
    fn multipath_maps_are_named_by_their_scsi_id() {
        let d = tempfile::tempdir().unwrap();
        let sysfs = d.path().join("dm-3");
        fs::create_dir_all(sysfs.join("dm")).unwrap();
        fs::write(sysfs.join("dm/name"), "36000c29a1b2c3d4e5f60718293a4b5c6\n").unwrap();
        let mut dev = Device {
            path: "/dev/mapper/36000c29a1b2c3d4e5f60718293a4b5c6".into(),
            node: "/dev/dm-3".into(),
            num: linux::DevNum {
                major: 253,
                minor: 3,
            },
            sysfs,
            kname: "dm-3".into(),
            parent: None,
            partitions: vec![],
            multipath: true,
        };
        assert_eq!(
            fstab_spec(&dev, Some("u-u-i-d")).unwrap(),
            "/dev/mapper/36000c29a1b2c3d4e5f60718293a4b5c6"
        );
        dev.multipath = false;
        assert_eq!(fstab_spec(&dev, Some("u-u-i-d")).unwrap(), "UUID=u-u-i-d");
    }

    #[test]
    fn only_ext4_and_xfs() {
        assert_eq!(Fs::parse("xfs").unwrap(), Fs::Xfs);
        assert_eq!(crate::error::exit_code(&Fs::parse("vfat").unwrap_err()), 2);
    }
}
