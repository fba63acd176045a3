//! Every prerequisite of a master target, read through a root folder.

use super::Finding;
pub use super::context::Context;
use crate::config::{BootProto, Size};
use crate::host::diskref::{self, OsDisk};
use crate::host::scsi::{self, IdStatus};
use crate::host::{blockdev, mounts, release, resources};
use crate::provision::network::get_key;
use crate::provision::{self, executor, multipath, writer_service};
use crate::retention::linux::{self as retention_linux, Scope};
use crate::retention::{check as retention_check, rules};
use std::path::Path;
use std::time::Duration;

/// The sizing guide of a master target.
pub const MIN_CPUS: usize = 4;
pub const MIN_MEM_GIB: u64 = 6;
/// A VM with 6 GiB shows a MemTotal a little lower (kernel and firmware reservations):
/// accept down to 95 %.
const MEM_SLACK_PERCENT: u64 = 95;

/// Runs every check, in a fixed order.
pub fn run_all(cx: &Context) -> Vec<Finding> {
    let mut out = vec![os_release(cx)];
    out.extend(resources(cx));
    out.extend(programs(cx));
    out.extend(disks(cx));
    out.extend(retention(cx));
    out.push(custom_changes(cx));
    out.extend(network(cx));
    out.push(kdump(cx));
    out.push(writer(cx));
    out.extend(super::writer::findings(cx));
    // Only on templates and clones: a sealed system, or a first boot that failed.
    out.extend(crate::template::firstboot::doctor_finding(cx.root));
    out
}

fn gib(b: u64) -> String {
    format!("{:.1} GiB", b as f64 / Size::GIB as f64)
}

fn os_release(cx: &Context) -> Finding {
    const ID: &str = "os-release";
    let remedy = "install CentOS 6.6 minimal (mtkit build makes the kickstart media)";
    match release::read(cx.root) {
        Some(r) if r.id == "centos" && r.version == "6.6" => Finding::pass(ID, r.text),
        Some(r) if matches!(r.id.as_str(), "centos" | "rhel") && r.major() == Some(6) => {
            Finding::warn(
                ID,
                format!("{} (the master target is qualified on 6.6)", r.text),
                remedy,
            )
        }
        Some(r) => Finding::warn(ID, format!("{} ({} {})", r.text, r.id, r.version), remedy),
        None => Finding::fail(ID, "no etc/redhat-release or etc/os-release", remedy),
    }
}

fn resources(cx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    match resources::read(cx.root) {
        None => out.push(Finding::fail(
            "resources",
            "cannot read proc/cpuinfo and proc/meminfo",
            "run on the master target, or give --root a tree with proc/",
        )),
        Some(r) => {
            out.push(if r.cpus >= MIN_CPUS {
                Finding::pass("cpu", format!("{} cores", r.cpus))
            } else {
                Finding::fail(
                    "cpu",
                    format!("{} cores, need {MIN_CPUS}", r.cpus),
                    "power the VM off and give it at least 4 vCPUs",
                )
            });
            let need = MIN_MEM_GIB * Size::GIB * MEM_SLACK_PERCENT / 100;
            out.push(if r.mem_bytes >= need {
                Finding::pass("memory", gib(r.mem_bytes))
            } else {
                Finding::fail(
                    "memory",
                    format!("{}, need {MIN_MEM_GIB} GiB", gib(r.mem_bytes)),
                    "power the VM off and give it at least 6 GB of memory",
                )
            });
        }
    }
    let os = match os_disk(cx) {
        Ok(os) => os.name,
        Err((found, remedy)) => {
            out.push(Finding::fail("os-disk-size", found, remedy));
            return out;
        }
    };
    let os = &os;
    let want = cx.config.disks.os_disk_size.bytes();
    out.push(match blockdev::disk_size(cx.root, os) {
        Some(s) if s >= want => Finding::pass("os-disk-size", format!("{os}: {}", gib(s))),
        Some(s) => Finding::fail(
            "os-disk-size",
            format!("{os}: {}, need {}", gib(s), gib(want)),
            "give the OS disk at least 100 GB (grow the VMDK, then reinstall with mtkit build)",
        ),
        None => Finding::fail(
            "os-disk-size",
            format!("no OS disk {os} (sys/block/{os})"),
            "set [disks] os-disk in appliance.toml to the OS disk's kernel name",
        ),
    });
    out
}

/// Programs the master target needs and the CentOS package that has each.
const PROGRAMS: [(&str, &str); 7] = [
    ("mkfs.xfs", "xfsprogs"),
    ("lsscsi", "lsscsi"),
    ("rsync", "rsync"),
    ("wget", "wget"),
    ("kexec", "kexec-tools"),
    ("multipath", "device-mapper-multipath"),
    ("perl", "perl"),
];

fn programs(cx: &Context) -> Vec<Finding> {
    let dirs = [
        "usr/local/sbin",
        "usr/local/bin",
        "usr/sbin",
        "usr/bin",
        "sbin",
        "bin",
    ];
    // which_in resolves relative folders against its cwd argument: make them absolute.
    let base = cx
        .root
        .canonicalize()
        .unwrap_or_else(|_| cx.root.to_path_buf());
    let path = std::env::join_paths(dirs.iter().map(|d| base.join(d))).unwrap_or_default();
    let mut wanted: Vec<(&str, &str)> = PROGRAMS.to_vec();
    if cx
        .config
        .sources
        .filesystems
        .iter()
        .any(|f| f == "reiserfs")
    {
        wanted.push(("mkreiserfs", "reiserfs-utils"));
        wanted.push(("reiserfsck", "reiserfs-utils"));
    }
    wanted
        .into_iter()
        .map(|(prog, pkg)| {
            let id = format!("program-{prog}");
            match which::which_in(prog, Some(&path), &base) {
                Ok(p) => Finding::pass(
                    id,
                    format!("/{}", p.strip_prefix(&base).unwrap_or(&p).display()),
                ),
                Err(_) => Finding::fail(
                    id,
                    format!("{prog} not found"),
                    format!("yum install {pkg}"),
                ),
            }
        })
        .collect()
}

/// `[disks] os-disk` resolved to the OS disk of this boot, or the failing finding's text and
/// remedy: a SCSI ID or link that names no disk, or several, is never guessed at.
fn os_disk(cx: &Context) -> Result<OsDisk, (String, &'static str)> {
    let configured = &cx.config.disks.os_disk;
    OsDisk::read(cx.root, configured).map_err(|e| {
        (
            format!("[disks] os-disk = \"{configured}\": {e}"),
            diskref::os_disk_remedy(&e),
        )
    })
}

fn disks(cx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    let resolved = os_disk(cx);
    let os_name = match &resolved {
        Ok(o) => o.name.clone(),
        Err(_) => cx.config.disks.os_disk.clone(),
    };
    let os = os_name.as_str();
    match scsi::list_disks(cx.root) {
        Err(e) => out.push(Finding::fail(
            "scsi-ids",
            format!("reading SCSI disks: {e:#}"),
            "",
        )),
        Ok(all) => {
            // The same split the multipath planner blacklists by: a second path to the OS
            // disk's LU is the OS disk too.
            // An os-disk that names no disk, or several, leaves every disk a data disk
            // here, so the ID check still shows duplicates (os-disk-size says why).
            let os_disk = match &resolved {
                Ok(_) => OsDisk::identify(cx.root, os, &all),
                Err(_) => OsDisk {
                    name: os.to_string(),
                    id: None,
                },
            };
            let statuses = scsi::id_statuses(&all);
            let data: Vec<_> = all
                .iter()
                .zip(statuses)
                .filter(|(d, _)| !os_disk.is(d))
                .collect();
            let worst = data.iter().map(|(_, s)| *s).max_by_key(|s| match s {
                IdStatus::Ok => 0,
                IdStatus::Weak => 1,
                IdStatus::Missing | IdStatus::Duplicate => 2,
            });
            let list = |want: &[IdStatus]| {
                data.iter()
                    .filter(|(_, s)| want.contains(s))
                    .map(|(d, s)| format!("{} {:?}", d.name, s).to_lowercase())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            out.push(match worst {
                None => Finding::warn(
                    "scsi-ids",
                    "no data disks besides the OS disk",
                    "attach the target and retention disks to the VM",
                ),
                Some(IdStatus::Ok) => {
                    Finding::pass("scsi-ids", format!("{} data disks, unique IDs", data.len()))
                }
                Some(IdStatus::Weak) => Finding::warn(
                    "scsi-ids",
                    format!("weak IDs: {}", list(&[IdStatus::Weak])),
                    IdStatus::Weak.remedy(),
                ),
                Some(_) => {
                    let bad = list(&[IdStatus::Missing, IdStatus::Duplicate]);
                    let remedy = if data.iter().any(|(_, s)| *s == IdStatus::Missing) {
                        IdStatus::Missing.remedy()
                    } else {
                        IdStatus::Duplicate.remedy()
                    };
                    Finding::fail("scsi-ids", format!("{bad} (mtkit scsi-ids)"), remedy)
                }
            });
            out.push(match &resolved {
                Ok(_) => multipath(
                    cx,
                    &os_disk,
                    &data.iter().map(|(d, _)| *d).collect::<Vec<_>>(),
                ),
                Err((found, remedy)) => Finding::fail(
                    "multipath",
                    format!("the OS disk cannot be told from the data disks: {found}"),
                    *remedy,
                ),
            });
        }
    }
    // The OS disk must be plain partitions: LVM on it would let LVM grab target disks'
    // volume groups (replicated from the protected machines) at boot.
    let dms = blockdev::dm_devices(cx.root);
    let lvm_on_os: Vec<String> = blockdev::holders_of(cx.root, &dms, os)
        .into_iter()
        .filter(|d| d.is_lvm())
        .map(|d| d.name.clone())
        .collect();
    let mounts = mounts::read(cx.root);
    let root_dev = mounts::containing(&mounts, Path::new("/")).map(|m| m.device.clone());
    let root_on_dm = root_dev
        .as_deref()
        // Text from proc/mounts, not a path mtkit opens.
        .is_some_and(|d| d.starts_with("/dev/mapper/") || d.starts_with("/dev/dm-"));
    if let Err((found, remedy)) = resolved {
        let found = format!("its layout cannot be checked: {found}");
        out.push(Finding::fail("os-disk-lvm", found, remedy));
        return out;
    }
    // A disk that is not there holds no LVM, but that proves nothing about the real one.
    if !cx.at("sys/block").join(os).exists() {
        let mut found = format!("no OS disk {os} (sys/block/{os}): its layout cannot be checked");
        if root_on_dm {
            found.push_str(&format!("; / is on {}", root_dev.unwrap_or_default()));
        }
        out.push(Finding::fail(
            "os-disk-lvm",
            found,
            "set [disks] os-disk in appliance.toml to the OS disk's kernel name (lsblk shows it)",
        ));
        return out;
    }
    out.push(if lvm_on_os.is_empty() && !root_on_dm {
        Finding::pass(
            "os-disk-lvm",
            format!(
                "{os}: plain partitions, / on {}",
                root_dev.as_deref().unwrap_or("?")
            ),
        )
    } else {
        let mut found = Vec::new();
        if !lvm_on_os.is_empty() {
            found.push(format!("{os} holds LVM volumes {}", lvm_on_os.join(", ")));
        }
        if root_on_dm {
            found.push(format!("/ is on {}", root_dev.unwrap_or_default()));
        }
        Finding::fail(
            "os-disk-lvm",
            found.join("; "),
            "reinstall with the mtkit kickstart (plain partitions, no LVM on the OS disk)",
        )
    });
    out
}

fn multipath(cx: &Context, os: &OsDisk, data: &[&scsi::ScsiDisk]) -> Finding {
    const ID: &str = "multipath";
    if !cx.at(multipath::PATH).is_file() {
        return Finding::fail(
            ID,
            "no /etc/multipath.conf",
            "mtkit apply (writes /etc/multipath.conf and turns multipathd on at boot), then \
             start it now: service multipathd start",
        );
    }
    let dms = blockdev::dm_devices(cx.root);
    let maps: Vec<(&str, &str)> = dms
        .iter()
        .filter_map(|d| Some((d.kernel.as_str(), d.mpath_wwid()?)))
        .collect();
    // Some multipath versions name a map by the scsi_id without its type prefix character.
    let mapped = |id: &str| {
        maps.iter()
            .find(|(_, m)| *m == id || id.get(1..) == Some(*m))
            .map(|(k, _)| *k)
    };
    // The OS disk must stay a plain sd device: apply blacklists it by the same ID.
    if let Some(id) = &os.id
        && let Some(dm) = mapped(id)
    {
        return Finding::fail(
            ID,
            format!(
                "the OS disk {} ({id}) is mapped by multipath as {dm}",
                os.name
            ),
            "mtkit apply (blacklists the OS disk by its ID in /etc/multipath.conf), then \
             service multipathd reload and multipath -f the map, or reboot",
        );
    }
    let unmapped: Vec<String> = data
        .iter()
        .filter_map(|d| d.id.as_ref().map(|id| (d, id)))
        .filter(|(_, id)| mapped(id).is_none())
        .map(|(d, id)| format!("{} ({id})", d.name))
        .collect();
    if unmapped.is_empty() {
        Finding::pass(ID, format!("{} multipath maps", maps.len()))
    } else {
        Finding::fail(
            ID,
            format!("not mapped by ID: {}", unmapped.join(", ")),
            "service multipathd start && multipath -r (check blacklist in /etc/multipath.conf)",
        )
    }
}

/// The retention volume: the device mounted at `[retention] mountpoint` through the
/// retention module's own check (the rules of `mtkit retention check`, and free space
/// against the policy's estimate), so the two commands cannot disagree.
fn retention(cx: &Context) -> Vec<Finding> {
    const ID: &str = "retention";
    let mp = &cx.config.retention.mountpoint;
    let scope = Scope {
        host: cx.root,
        root: cx.root,
        config: cx.config,
    };
    let Some(device) = retention_linux::mounted_at(&scope, mp) else {
        return vec![Finding::fail(
            ID,
            format!("nothing mounted at {}", mp.display()),
            "mtkit retention prepare DEVICE (formats, mounts, adds it to /etc/fstab)",
        )];
    };
    let report = match retention_check::check(&scope, &device) {
        Ok(r) => r,
        Err(e) => {
            return vec![Finding::warn(
                ID,
                format!(
                    "{} on {}: cannot collect its facts: {e:#}",
                    device.display(),
                    mp.display()
                ),
                "mtkit retention check shows every rule",
            )];
        }
    };
    let f = &report.facts;
    let on = format!(
        "{} on {} ({}, {})",
        device.display(),
        mp.display(),
        f.filesystem.as_deref().unwrap_or("?"),
        rules::human(f.size)
    );
    let failed: Vec<_> = report
        .verdict
        .failures()
        .filter(|x| x.rule != "space")
        .collect();
    let mut out = vec![match failed.first() {
        None => Finding::pass(ID, format!("{on}: every retention rule passes")),
        Some(first) => Finding::fail(
            ID,
            format!(
                "{on}: {}",
                failed
                    .iter()
                    .map(|x| format!("{}: {}", x.rule, x.detail))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            rules::remedy(first.rule),
        ),
    }];
    let space = report.verdict.findings.iter().find(|x| x.rule == "space");
    out.push(match space {
        Some(s) if s.ok => Finding::pass("retention-space", s.detail.clone()),
        Some(s) => Finding::fail("retention-space", s.detail.clone(), rules::remedy("space")),
        None => Finding::skip(
            "retention-space",
            format!(
                "free space not checked under --root (statvfs needs the running system); the \
                 policy needs {}",
                rules::human(report.needed)
            ),
        ),
    });
    if !report.not_checked.is_empty() {
        out.push(Finding::skip(
            "retention-probe",
            format!(
                "not checked under --root: {}; mtkit retention check on the master target \
                 checks them",
                report.not_checked.join(", ")
            ),
        ));
    }
    out
}

/// `mtkit apply`'s plan for this root and config: anything still to change is reported,
/// and a pending LVM filter or a multipath.conf that does not blacklist the OS disk fails
/// (LVM or multipath could then take over replicated disks or the OS disk).
fn custom_changes(cx: &Context) -> Finding {
    const ID: &str = "custom-changes";
    let planned = provision::plan(cx.root, cx.config).and_then(|p| executor::pending(cx.root, p));
    let executor::Pending { todo, notes } = match planned {
        Ok(t) => t,
        Err(e) => {
            return Finding::warn(
                ID,
                format!("cannot compute the mtkit apply plan: {e:#}"),
                "mtkit apply --dry-run shows why",
            );
        }
    };
    if todo.is_empty() {
        let notes = match notes.len() {
            0 => String::new(),
            n => format!(" ({n} notes: mtkit apply --dry-run)"),
        };
        return Finding::pass(ID, format!("nothing for mtkit apply to change{notes}"));
    }
    // Files by name; service links (SysV rc?.d, systemd wants) only counted.
    let (links, files): (Vec<_>, Vec<_>) = todo.iter().partition(|(c, cur)| {
        matches!(c.wanted, provision::Wanted::Symlink { .. })
            || matches!(cur, provision::Current::Symlink { .. })
    });
    let mut listed: Vec<String> = files
        .iter()
        .map(|(c, _)| format!("/{}", c.path.display()))
        .collect();
    if !links.is_empty() {
        listed.push(format!("{} service links", links.len()));
    }
    let os = multipath::OsDiskId::read(cx.root, &cx.config.disks.os_disk)
        .unwrap_or_else(|_| OsDisk::unresolved(&cx.config.disks.os_disk).into());
    let mut critical = Vec::new();
    for (c, cur) in &todo {
        let text = match cur {
            provision::Current::File { bytes, .. } => String::from_utf8_lossy(bytes).into_owned(),
            _ => String::new(),
        };
        match c.area {
            "lvm" => critical.push(format!(
                "the LVM filter does not limit LVM to the OS disk {}",
                cx.config.disks.os_disk
            )),
            "multipath" if !multipath::blacklists(&text, &os) => critical.push(format!(
                "/{} does not blacklist the OS disk {}",
                multipath::PATH,
                cx.config.disks.os_disk
            )),
            _ => {}
        }
    }
    let found = format!("pending: {}", listed.join(", "));
    let remedy = "mtkit apply (mtkit apply --dry-run shows the diffs)";
    if critical.is_empty() {
        Finding::warn(ID, found, remedy)
    } else {
        Finding::fail(ID, format!("{}; {found}", critical.join("; ")), remedy)
    }
}

fn network(cx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    let dev = &cx.config.network.device;
    let ifcfg = cx
        .at(provision::network::SCRIPTS)
        .join(format!("ifcfg-{dev}"));
    let text = crate::files::read_text(&ifcfg).ok();
    let mut addresses: Vec<String> = Vec::new();
    match &text {
        None => out.push(Finding::fail(
            "nic",
            format!("no /etc/sysconfig/network-scripts/ifcfg-{dev}"),
            format!("mtkit apply (writes ifcfg-{dev}), or set [network] device"),
        )),
        Some(t) => {
            let onboot = get_key(t, "ONBOOT").unwrap_or_default();
            let nm = get_key(t, "NM_CONTROLLED");
            let nm_installed = cx.at("usr/sbin/NetworkManager").exists();
            let nm_on = match nm.as_deref() {
                Some(v) => v.eq_ignore_ascii_case("yes"),
                None => nm_installed,
            };
            let mut bad = Vec::new();
            if !onboot.eq_ignore_ascii_case("yes") {
                bad.push(format!(
                    "ONBOOT={}",
                    if onboot.is_empty() {
                        "(unset)"
                    } else {
                        &onboot
                    }
                ));
            }
            if nm_on {
                bad.push(format!(
                    "NM_CONTROLLED={}",
                    nm.as_deref().unwrap_or("(unset)")
                ));
            }
            out.push(if bad.is_empty() {
                Finding::pass(
                    "nic",
                    format!("{dev}: ONBOOT=yes, not NetworkManager-controlled"),
                )
            } else {
                Finding::fail(
                    "nic",
                    format!("{dev}: {}", bad.join(", ")),
                    format!("set ONBOOT=yes and NM_CONTROLLED=no in ifcfg-{dev} (mtkit apply)"),
                )
            });
            addresses.extend(get_key(t, "IPADDR"));
        }
    }
    if cx.config.network.bootproto == BootProto::Static && !cx.config.network.ip.is_empty() {
        addresses.push(cx.config.network.ip.clone());
    }
    addresses.sort();
    addresses.dedup();
    out.push(hosts(cx, &addresses));
    out.push(config_server(cx));
    out
}

/// The name the machine itself has (CentOS 6 `HOSTNAME=` in /etc/sysconfig/network, else
/// /etc/hostname): what doctor checks when the config leaves the name to DHCP.
fn machine_hostname(cx: &Context) -> Option<String> {
    let network = std::fs::read_to_string(cx.at("etc/sysconfig/network")).ok();
    network
        .as_deref()
        .and_then(|t| get_key(t, "HOSTNAME"))
        .or_else(|| {
            std::fs::read_to_string(cx.at("etc/hostname"))
                .ok()
                .map(|t| t.trim().to_string())
        })
        .filter(|h| !h.is_empty() && !h.starts_with("localhost"))
}

/// The host name resolves to the MT's address. `mtkit apply` maps it in /etc/hosts only
/// for a static `[network] ip` (a DHCP address can change): with DHCP a missing line is a
/// warning whose remedy is DNS or a line added by hand, never apply.
fn hosts(cx: &Context, addresses: &[String]) -> Finding {
    const ID: &str = "hosts";
    let configured = &cx.config.appliance.hostname;
    let Some(name) = Some(configured.clone())
        .filter(|h| !h.is_empty())
        .or_else(|| machine_hostname(cx))
    else {
        return Finding::skip(
            ID,
            "no host name: none in [appliance] hostname (DHCP gives it) and none set on the machine",
        );
    };
    let name = name.as_str();
    let short = name.split('.').next().unwrap_or(name);
    let text = crate::files::read_text(cx.at(provision::hosts::PATH)).unwrap_or_default();
    let mapped: Vec<String> = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let ip = f.next()?;
            f.any(|n| n == name || n == short).then(|| ip.to_string())
        })
        .collect();
    let net = &cx.config.network;
    let managed =
        net.bootproto == BootProto::Static && !net.ip.is_empty() && !configured.is_empty();
    let address = addresses.first().map(String::as_str).unwrap_or("ADDRESS");
    let remedy = if managed {
        format!(
            "add \"{} {name} {short}\" to /etc/hosts (mtkit apply does)",
            net.ip
        )
    } else {
        format!(
            "with DHCP mtkit apply leaves /etc/hosts alone (the address can change): make DNS \
             resolve {name}, or add \"{address} {name} {short}\" to /etc/hosts by hand"
        )
    };
    let loopback_only = !mapped.is_empty()
        && mapped
            .iter()
            .all(|ip| ip.starts_with("127.") || ip == "::1");
    let status = |found: String| {
        if managed {
            Finding::fail(ID, found, remedy.clone())
        } else {
            Finding::warn(ID, found, remedy.clone())
        }
    };
    if mapped.is_empty() {
        return status(format!("{name} is not in /etc/hosts"));
    }
    if addresses.iter().any(|a| mapped.contains(a)) {
        Finding::pass(ID, format!("{name} -> {}", mapped.join(", ")))
    } else if loopback_only || !addresses.is_empty() {
        let the = if addresses.is_empty() {
            "unknown: DHCP".to_string()
        } else {
            addresses.join(", ")
        };
        status(format!(
            "{name} -> {} (the MT's address is {the})",
            mapped.join(", ")
        ))
    } else {
        Finding::warn(
            ID,
            format!("{name} -> {} (MT address unknown: DHCP)", mapped.join(", ")),
            "",
        )
    }
}

/// How long the configuration-server check may take in all: name lookup and connects.
pub const CONFIG_SERVER_TIMEOUT: Duration = Duration::from_secs(3);

fn config_server(cx: &Context) -> Finding {
    const ID: &str = "config-server";
    let c = &cx.config.configuration_server;
    if cx.offline {
        return Finding::skip(ID, "skipped: --offline");
    }
    if !cx.live() {
        return Finding::skip(ID, format!("skipped under --root {}", cx.root.display()));
    }
    let target = format!("{}:{}", c.address, c.port);
    let limit = CONFIG_SERVER_TIMEOUT.as_secs();
    let deadline = std::time::Instant::now() + CONFIG_SERVER_TIMEOUT;
    // getaddrinfo has no timeout of its own (resolv.conf's timeout x attempts x servers
    // can add up to minutes): resolve on a thread and stop waiting for it at the deadline.
    let (tx, rx) = std::sync::mpsc::channel();
    let name = target.clone();
    std::thread::spawn(move || {
        let _ =
            tx.send(std::net::ToSocketAddrs::to_socket_addrs(&name).map(|a| a.collect::<Vec<_>>()));
    });
    let addrs: Vec<std::net::SocketAddr> = match rx.recv_timeout(CONFIG_SERVER_TIMEOUT) {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => {
            return Finding::fail(
                ID,
                format!("cannot resolve {target}: {e}"),
                "check DNS in /etc/resolv.conf, or set [configuration-server] address",
            );
        }
        Err(_) => {
            return Finding::fail(
                ID,
                format!(
                    "cannot resolve {target}: no answer from DNS within {limit} s (doctor waits at most {limit} s; --offline skips this check)"
                ),
                "check the name servers in /etc/resolv.conf, or set [configuration-server] address to an IP address",
            );
        }
    };
    for a in &addrs {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break;
        }
        if std::net::TcpStream::connect_timeout(a, left).is_ok() {
            return Finding::pass(ID, format!("{target} answers"));
        }
    }
    Finding::fail(
        ID,
        format!(
            "{target}: no answer within {limit} s (doctor waits at most {limit} s; --offline skips this check)"
        ),
        format!(
            "open TCP {} from the master target to the configuration server (firewall, route)",
            c.port
        ),
    )
}

fn kdump(cx: &Context) -> Finding {
    const ID: &str = "kdump";
    let Some(r) = resources::read(cx.root) else {
        return Finding::skip(ID, "memory size unknown");
    };
    let mounts = mounts::read(cx.root);
    let Some(m) = mounts::containing(&mounts, &Path::new("/").join("var/crash")) else {
        return Finding::fail(ID, "no mounts found (proc/mounts)", "");
    };
    let Some((size, free)) = mounts::size_of(cx.root, m) else {
        return Finding::warn(ID, format!("/var/crash on {}: size unknown", m.device), "");
    };
    // A dump can be as large as RAM (makedumpfile filtering usually shrinks it).
    let room = free.unwrap_or(size);
    let found = format!(
        "/var/crash on {} ({}, {} {}), RAM {}",
        m.device,
        m.mountpoint.display(),
        gib(room),
        if free.is_some() { "free" } else { "size" },
        gib(r.mem_bytes)
    );
    if room >= r.mem_bytes {
        Finding::pass(ID, found)
    } else {
        Finding::fail(
            ID,
            found,
            "give /var/crash its own partition at least as large as RAM (var-crash-size = \
             \"auto\" in the mtkit kickstart)",
        )
    }
}

fn writer(cx: &Context) -> Finding {
    const ID: &str = "writer";
    let installed = [
        // Where apply installs it, and the other names the same files have.
        writer_service::INIT_SCRIPT,
        "etc/init.d/mtkit-writer",
        writer_service::UNIT,
        "usr/lib/systemd/system/mtkit-writer.service",
    ]
    .iter()
    .find(|p| cx.at(p).exists())
    .map(|p| format!("/{p}"));
    let Some(unit) = installed else {
        return Finding::warn(
            ID,
            "mtkit writer service not installed",
            "mtkit apply (installs the mtkit-writer service and turns it on at boot), then \
             service mtkit-writer start",
        );
    };
    let pidfile = cx.at(writer_service::PIDFILE);
    let running = crate::files::read_text(&pidfile)
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
        .is_some_and(|pid| cx.root.join(format!("proc/{pid}")).is_dir());
    if running {
        Finding::pass(ID, format!("{unit}: running"))
    } else {
        Finding::fail(
            ID,
            format!("{unit}: not running"),
            "service mtkit-writer start",
        )
    }
}
