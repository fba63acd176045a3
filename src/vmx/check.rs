//! What a master target VM's .vmx must be: disk.EnableUUID on, LSI Logic controllers, at
//! most 60 disks, no snapshots, and a uuid.bios of its own.

use super::parse::{Encoding, Vmx};
use crate::doctor::Finding;
use regex::Regex;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

/// More disks than this on a master target is unsupported.
pub const MAX_DISKS: usize = 60;

/// The most a .vmx may hold (ESXi's are a few KiB): a device or a huge file is refused.
pub const MAX_VMX: u64 = 4 << 20;

/// A .vmx read from disk, with the .vmsd beside it.
#[derive(Debug)]
pub struct VmxFile {
    /// As the user named it.
    pub path: PathBuf,
    /// The file itself, links resolved: what `vmx patch` edits, and where its `.lck` is.
    pub real: PathBuf,
    pub vmx: Vmx,
    /// `<name>.vmsd` (the snapshot list) when it exists
    pub vmsd: Option<Vmx>,
}

impl VmxFile {
    /// Reads `path` (a symlink is followed to the real file, a FIFO or device refused) and
    /// refuses what is not a VM's configuration: a .vmx always has `config.version` and
    /// `virtualHW.version`, a README with one `key = "value"` line does not.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let bad = |e: &dyn std::fmt::Display| {
            crate::error::bad_input(format!(
                "reading {}: {e} (give a .vmx file)",
                path.display()
            ))
        };
        let real = std::fs::canonicalize(path).map_err(|e| bad(&e))?;
        let name = real.file_name().ok_or_else(|| bad(&"no file name"))?;
        let dir = crate::files::root::open_dir(crate::files::parent_dir(&real))?;
        // The final name is opened without following it: swapped for a link since it was
        // resolved, it is refused, not read.
        let bytes = crate::files::root::read_regular_at(
            std::os::fd::AsFd::as_fd(&dir),
            name,
            &real,
            MAX_VMX,
        )?
        .ok_or_else(|| bad(&"it vanished"))?
        .0;
        let vmx = Vmx::parse(&bytes);
        if !vmx.entries().any(|_| true) {
            return Err(crate::error::bad_input(format!(
                "{}: no `key = \"value\"` lines: not a .vmx file",
                path.display()
            )));
        }
        let missing: Vec<&str> = ["config.version", "virtualHW.version"]
            .into_iter()
            .filter(|k| vmx.get(k).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(crate::error::bad_input(format!(
                "{}: no {} line: not a VMware .vmx file (ESXi writes config.version and \
                 virtualHW.version in every one)",
                path.display(),
                missing.join(" or ")
            )));
        }
        let vmsd_path = sibling(&real, "vmsd");
        let vmsd = crate::files::read_input(&vmsd_path, MAX_VMX)
            .ok()
            .map(|b| Vmx::parse(&b));
        Ok(VmxFile {
            path: path.to_path_buf(),
            real,
            vmx,
            vmsd,
        })
    }

    /// The `<name>.vmx.lck` folder ESXi holds while the VM is powered on, beside the real
    /// file (a link to the .vmx elsewhere does not move the lock).
    pub fn lock_dir(&self) -> PathBuf {
        let mut p = self.real.clone().into_os_string();
        p.push(".lck");
        PathBuf::from(p)
    }
}

fn sibling(path: &Path, ext: &str) -> PathBuf {
    path.with_extension(ext)
}

fn is_true(v: Option<&str>) -> bool {
    v.is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// A virtual disk of the VM: `scsi0:1`, `sata0:0`, ...
#[derive(Debug)]
struct Disk {
    slot: String,
    file: String,
}

static DEVICE_KEY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)^((?:scsi|sata|ide|nvme)\d+:\d+)\.filename$").unwrap());
static DELTA: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)-\d{6}\.vmdk$").unwrap());
static CONTROLLER_KEY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)^(scsi\d+)\.present$").unwrap());

fn disks(v: &Vmx) -> Vec<Disk> {
    let mut out: Vec<Disk> = Vec::new();
    for e in v.entries() {
        let Some(c) = DEVICE_KEY.captures(&e.key) else {
            continue;
        };
        let slot = c[1].to_ascii_lowercase();
        if !is_true(v.get(&format!("{slot}.present"))) {
            continue;
        }
        let ty = v.get(&format!("{slot}.deviceType")).unwrap_or("");
        let is_disk = ty.to_ascii_lowercase().contains("disk")
            || (ty.is_empty() && e.value.to_ascii_lowercase().ends_with(".vmdk"));
        if is_disk && !ty.to_ascii_lowercase().contains("cdrom") {
            out.retain(|d| d.slot != slot);
            out.push(Disk {
                slot,
                file: e.value.clone(),
            });
        }
    }
    out
}

/// Checks one VMX; `others` are the other files given, to find shared uuid.bios values.
pub fn check(f: &VmxFile, others: &[&VmxFile]) -> Vec<Finding> {
    let v = &f.vmx;
    let mut out = Vec::new();
    if let Encoding::Other(name) = &v.encoding {
        out.push(Finding::warn(
            "vmx-encoding",
            format!(".encoding = \"{name}\" is not UTF-8 or windows-1252; read as UTF-8"),
            "let ESXi rewrite the file (edit any setting in the vSphere client)",
        ));
    }

    match v.get("disk.EnableUUID") {
        Some(val) if is_true(Some(val)) => out.push(Finding::pass(
            "enable-uuid",
            format!("disk.EnableUUID = \"{val}\""),
        )),
        found => out.push(Finding::fail(
            "enable-uuid",
            match found {
                Some(val) => format!("disk.EnableUUID = \"{val}\""),
                None => "no disk.EnableUUID line: disks expose no SCSI ID".into(),
            },
            format!(
                "power the VM off, then `mtkit vmx patch {}` (or VM Options > Advanced > \
                 Configuration Parameters: disk.EnableUUID = TRUE), power on",
                f.path.display()
            ),
        )),
    }

    let mut controllers: Vec<(String, String)> = v
        .entries()
        .filter_map(|e| {
            CONTROLLER_KEY
                .captures(&e.key)
                .map(|c| c[1].to_ascii_lowercase())
        })
        .filter(|c| is_true(v.get(&format!("{c}.present"))))
        .map(|c| {
            let dev = v.get(&format!("{c}.virtualDev")).unwrap_or("").to_string();
            (c, dev)
        })
        .collect();
    controllers.sort();
    controllers.dedup();
    for (c, dev) in &controllers {
        let id = format!("controller-{c}");
        match dev.to_ascii_lowercase().as_str() {
            "lsilogic" | "lsisas1068" => out.push(Finding::pass(
                id,
                format!("{c}.virtualDev = \"{dev}\" (LSI Logic)"),
            )),
            "pvscsi" => out.push(Finding::fail(
                id,
                format!("{c}.virtualDev = \"pvscsi\" (VMware Paravirtual)"),
                "reprotect fails with PVSCSI: power off and change the controller type to LSI \
                 Logic Parallel or LSI Logic SAS",
            )),
            other => out.push(Finding::warn(
                id,
                format!(
                    "{c}.virtualDev = \"{}\"",
                    if other.is_empty() { "(unset)" } else { dev }
                ),
                "the master target supports LSI Logic controllers: change the controller type \
                 to LSI Logic Parallel or LSI Logic SAS",
            )),
        }
    }

    let ds = disks(v);
    if ds.len() > MAX_DISKS {
        out.push(Finding::fail(
            "disk-count",
            format!("{} disks attached", ds.len()),
            format!(
                "a master target supports at most {MAX_DISKS} disks: move protected \
                 machines to another master target"
            ),
        ));
    } else {
        out.push(Finding::pass(
            "disk-count",
            format!("{} disks attached", ds.len()),
        ));
    }

    let deltas: Vec<String> = ds
        .iter()
        .filter(|d| DELTA.is_match(&d.file))
        .map(|d| format!("{} = {}", d.slot, d.file))
        .collect();
    let snapshots = f.vmsd.as_ref().map(snapshot_names).unwrap_or_default();
    if deltas.is_empty() && snapshots.is_empty() {
        out.push(Finding::pass(
            "snapshots",
            "no snapshot deltas, no snapshots",
        ));
    } else {
        let mut found = Vec::new();
        if !deltas.is_empty() {
            found.push(format!("disks on snapshot deltas: {}", deltas.join(", ")));
        }
        if !snapshots.is_empty() {
            found.push(format!(
                "{} lists snapshots: {}",
                sibling(&f.path, "vmsd").display(),
                snapshots.join(", ")
            ));
        }
        out.push(Finding::fail(
            "snapshots",
            found.join("; "),
            "reprotect fails on a VM with snapshots: delete all snapshots (Snapshot Manager > \
             Delete All) so the disks are consolidated",
        ));
    }

    match v.get("uuid.bios") {
        None => out.push(Finding::warn(
            "uuid-bios",
            "no uuid.bios line",
            "power the VM on once so ESXi assigns a BIOS UUID",
        )),
        Some(u) => {
            let norm = |s: &str| s.to_ascii_lowercase().replace([' ', '-'], "");
            let clash: Vec<String> = others
                .iter()
                .filter(|o| o.vmx.get("uuid.bios").is_some_and(|x| norm(x) == norm(u)))
                .map(|o| o.path.display().to_string())
                .collect();
            if clash.is_empty() {
                out.push(Finding::pass("uuid-bios", format!("uuid.bios = \"{u}\"")));
            } else {
                out.push(Finding::fail(
                    "uuid-bios",
                    format!("uuid.bios = \"{u}\" also in {}", clash.join(", ")),
                    "clones of one template clash: power the clone off, delete its uuid.bios \
                     line (or answer \"I copied it\" when ESXi asks) so it gets a new one",
                ));
            }
        }
    }

    if f.lock_dir().is_dir() {
        out.push(Finding::warn(
            "powered-on",
            format!("{} exists: the VM is running", f.lock_dir().display()),
            "changes to the .vmx take effect only after a power-off; patch it while off",
        ));
    }
    out
}

/// Snapshot display names (or uids) listed in a .vmsd.
fn snapshot_names(vmsd: &Vmx) -> Vec<String> {
    static UID: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?i)^(snapshot\d+)\.uid$").unwrap());
    let mut names: Vec<String> = vmsd
        .entries()
        .filter_map(|e| UID.captures(&e.key).map(|c| c[1].to_string()))
        .map(|s| {
            vmsd.get(&format!("{s}.displayName"))
                .map(|n| format!("\"{n}\""))
                .unwrap_or(s)
        })
        .collect();
    let declared: usize = vmsd
        .get("snapshot.numSnapshots")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if names.is_empty() && declared > 0 {
        names.push(format!("{declared} (snapshot.numSnapshots)"));
    }
    names
}

/// What a VM template's .vmx must and must not have (`vmx check --template`): the master
/// target's checks (disk.EnableUUID, LSI Logic, no snapshots) without those that only a
/// running MT has (the disk count, a uuid.bios of its own), plus what would make every
/// clone share one identity: `uuid.action = "keep"` (clones keep the template's BIOS UUID,
/// which `vmx check` then flags across clones), a static MAC, target disks carried along
/// beside the OS disk, an ISO still connected at power-on.
pub fn check_template(f: &VmxFile) -> Vec<Finding> {
    let v = &f.vmx;
    let mut out: Vec<Finding> = check(f, &[])
        .into_iter()
        .filter(|x| x.id != "uuid-bios" && x.id != "disk-count")
        .collect();

    match v.get("uuid.action") {
        Some(a) if a.eq_ignore_ascii_case("keep") => out.push(Finding::fail(
            "template-uuid-action",
            format!("uuid.action = \"{a}\": clones keep the template's uuid.bios"),
            "power off and delete the uuid.action line (or set it to \"create\") so each clone \
             gets a BIOS UUID of its own",
        )),
        found => out.push(Finding::pass(
            "template-uuid-action",
            match found {
                Some(a) => format!("uuid.action = \"{a}\""),
                None => "no uuid.action: clones get a BIOS UUID of their own".into(),
            },
        )),
    }

    static NIC: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?i)^(ethernet\d+)\.present$").unwrap());
    let mut nics: Vec<String> = v
        .entries()
        .filter_map(|e| NIC.captures(&e.key).map(|c| c[1].to_ascii_lowercase()))
        .filter(|n| is_true(v.get(&format!("{n}.present"))))
        .collect();
    nics.sort();
    nics.dedup();
    let fixed: Vec<String> = nics
        .iter()
        .filter(|n| {
            v.get(&format!("{n}.addressType"))
                .is_some_and(|t| t.eq_ignore_ascii_case("static"))
        })
        .map(|n| {
            let mac = v.get(&format!("{n}.address")).unwrap_or("?");
            format!("{n}.address = \"{mac}\"")
        })
        .collect();
    if fixed.is_empty() {
        out.push(Finding::pass(
            "template-mac",
            format!(
                "{} NIC(s), MAC addresses assigned by ESXi/vCenter",
                nics.len()
            ),
        ));
    } else {
        out.push(Finding::fail(
            "template-mac",
            format!("static MAC: {}", fixed.join(", ")),
            "set the adapter's MAC address to Automatic: every clone would share it",
        ));
    }

    let ds = disks(v);
    if ds.len() > 1 {
        let extra: Vec<String> = ds
            .iter()
            .skip(1)
            .map(|d| format!("{} = {}", d.slot, d.file))
            .collect();
        out.push(Finding::warn(
            "template-disks",
            format!("{} disks: {}", ds.len(), extra.join(", ")),
            "a template carries only the OS disk: detach the retention and target disks, each \
             clone gets its own",
        ));
    } else {
        out.push(Finding::pass(
            "template-disks",
            format!("{} disk", ds.len()),
        ));
    }

    static CD: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?i)^((?:ide|sata)\d+:\d+)\.fileName$").unwrap());
    let isos: Vec<String> = v
        .entries()
        .filter_map(|e| {
            let slot = CD.captures(&e.key)?[1].to_ascii_lowercase();
            let connected = is_true(v.get(&format!("{slot}.startConnected")))
                || v.get(&format!("{slot}.startConnected")).is_none();
            (connected
                && is_true(v.get(&format!("{slot}.present")))
                && e.value.to_ascii_lowercase().ends_with(".iso"))
            .then(|| format!("{slot} = {}", e.value))
        })
        .collect();
    if isos.is_empty() {
        out.push(Finding::pass(
            "template-cdrom",
            "no ISO connected at power-on",
        ));
    } else {
        out.push(Finding::warn(
            "template-cdrom",
            format!("ISO connected at power-on: {}", isos.join(", ")),
            "disconnect the install ISO (a config ISO is attached to each clone, not the template)",
        ));
    }
    out
}
