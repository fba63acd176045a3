//! `mtkit seal`: what makes an installed master target one machine is removed, so that its
//! clones each take their own identity at first boot.
//!
//! Removed: SSH host keys, the persistent-net udev rules (a clone's NIC would come up as
//! eth1), the NIC's HWADDR/MACADDR/UUID and static address (the NIC goes to DHCP until
//! first boot gives the clone its address), the writer's server key and certificate (and
//! its CA unless `[template] shared-ca`), `/etc/machine-id` (emptied, systemd makes a new
//! one), logs, shell history, yum caches, the random seed, DHCP leases, the retention
//! volume's fstab line. Installed: the first-boot service, enabled, and the seal mark.

use super::{Address, CONFIG, SEAL_MARK, TlsPaths, service};
use crate::config::Config;
use crate::files::{Links, Root};
use crate::host::mounts;
use crate::provision::{InitSystem, Plan, Wanted};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Reasons a template must not be made of this system (seal refuses unless `--force`).
pub fn refusals(root: &Path, config: &Config) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let disks = &config.writer.disk;
    if !disks.is_empty() {
        let names: Vec<&str> = disks.iter().map(|d| d.name.as_str()).collect();
        out.push(format!(
            "[[writer.disk]] lists {} target disk(s) ({}): every clone would claim them; remove \
             them from the config before sealing",
            disks.len(),
            names.join(", ")
        ));
    }
    let journal = config.writer.journal_dir(&config.retention);
    let files = Root::open(root)?.files(&journal, true)?;
    if !files.is_empty() {
        out.push(format!(
            "the writer's journal folder {} holds {} file(s) (recovery points of this machine's \
             groups): a clone must not start with another machine's journal; move them off first",
            journal.display(),
            files.len()
        ));
    }
    let mp = &config.retention.mountpoint;
    if let Some(m) = mounts::read(root).iter().find(|m| &m.mountpoint == mp) {
        out.push(format!(
            "the retention volume {} is mounted at {}: unmount it and detach its disk, each \
             clone gets its own (`mtkit retention prepare`)",
            m.device,
            mp.display()
        ));
    }
    Ok(out)
}

/// The text of the seal mark (no time in it: a second seal must change nothing).
pub fn mark_text() -> String {
    format!(
        "sealed by mtkit {}: the first boot of a clone is pending (mtkit firstboot)\n",
        crate::provision::executor::VERSION
    )
}

fn absent(plan: &mut Plan, area: &'static str, paths: impl IntoIterator<Item = PathBuf>) {
    for p in paths {
        plan.want(area, p, Wanted::Absent);
    }
}

/// Paths of `rel` in root when it is a regular file.
fn file_at(root: &Root, rel: impl AsRef<Path>) -> Result<Option<PathBuf>> {
    let p = root.resolve(rel)?;
    Ok(root.is_file(&p)?.then_some(p))
}

/// Everything seal would change under `root`, reading only.
pub fn plan(root: &Path, config: &Config) -> Result<Plan> {
    let mut plan = Plan::default();
    let init = InitSystem::detect(root);
    let root = &Root::open(root)?;

    let host_keys = root.files("etc/ssh", false)?.into_iter().filter(|p| {
        p.file_name().map(|n| n.to_string_lossy()).is_some_and(|n| {
            n.starts_with("ssh_host_") && (n.ends_with("_key") || n.ends_with("_key.pub"))
        })
    });
    absent(&mut plan, "ssh", host_keys);

    let udev = file_at(root, "etc/udev/rules.d/70-persistent-net.rules")?;
    absent(&mut plan, "udev", udev);

    match super::ifcfg(root, config)? {
        Some(rel) => super::edit_with_original(root, &mut plan, "network", &rel, |t| {
            super::ifcfg_text(t, Some(&Address::Dhcp))
        })?,
        None => plan.notes.push(format!(
            "no network-scripts: check by hand that {} has no MAC address or static address",
            config.network.device
        )),
    }
    let cfg = root.resolve(CONFIG)?;
    if let Some(text) = root.file_text(&cfg)? {
        let new =
            config_dhcp(&text).with_context(|| format!("editing {}", root.show(&cfg).display()))?;
        plan.edit(
            "config",
            &cfg.to_string_lossy(),
            Some(&text),
            Some(new),
            0o600,
        );
    }

    let tls = TlsPaths::of(config);
    let mut tls_files = vec![tls.server_key, tls.server_cert];
    if !config.template.shared_ca {
        tls_files.extend([tls.ca_key, tls.ca_cert]);
    }
    for f in tls_files {
        absent(&mut plan, "writer-tls", file_at(root, &f)?);
    }
    if !config.template.shared_ca {
        // Client keys issued by a CA that is gone are of no use to anyone.
        let clients = root.files(&tls.clients, true)?;
        absent(&mut plan, "writer-tls", clients);
    }

    if init == InitSystem::Systemd
        && let Some(p) = file_at(root, "etc/machine-id")?
    {
        // Empty, not removed: systemd then makes a new one at boot (a missing file is taken
        // for a read-only /etc on some versions).
        plan.want(
            "machine-id",
            p,
            Wanted::File {
                text: String::new(),
                mode: 0o444,
            },
        );
    }
    absent(
        &mut plan,
        "machine-id",
        file_at(root, "var/lib/dbus/machine-id")?,
    );

    let logs = root.files("var/log", true)?.into_iter().filter(|p| {
        // mtkit's own logs tell how the template was made (and seal logs there itself).
        !p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("mtkit-"))
    });
    absent(&mut plan, "logs", logs);

    let mut history = vec![file_at(root, "root/.bash_history")?];
    let users = root
        .list(Path::new("home"), Links::InRoot)
        .ok()
        .flatten()
        .unwrap_or_default();
    for u in users {
        history.push(file_at(
            root,
            Path::new("home").join(u).join(".bash_history"),
        )?);
    }
    absent(&mut plan, "history", history.into_iter().flatten());

    for dir in ["var/cache/yum", "var/cache/dnf"] {
        absent(&mut plan, "package-cache", root.files(dir, true)?);
    }
    for seed in ["var/lib/random-seed", "var/lib/systemd/random-seed"] {
        absent(&mut plan, "random-seed", file_at(root, seed)?);
    }
    for dir in ["var/lib/dhclient", "var/lib/dhcp", "var/lib/NetworkManager"] {
        let leases = root
            .files(dir, false)?
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "lease" || e == "leases"));
        absent(&mut plan, "dhcp", leases);
    }

    let fstab = root.resolve("etc/fstab")?;
    if let Some(text) = root.file_text(&fstab)? {
        let new = fstab_without(&text, &config.retention.mountpoint);
        plan.edit(
            "retention",
            &fstab.to_string_lossy(),
            Some(&text),
            Some(new),
            0o644,
        );
    }

    // A clone of a clone: the old first boot's record is not this template's.
    absent(
        &mut plan,
        "firstboot",
        file_at(root, super::firstboot::STATUS)?,
    );
    service::plan_enabled(root, init, &mut plan)?;
    plan.want(
        "firstboot",
        root.resolve(SEAL_MARK)?,
        Wanted::File {
            text: mark_text(),
            mode: 0o644,
        },
    );
    Ok(plan)
}

/// appliance.toml with `[network]` on DHCP and no address of its own (comments kept).
pub fn config_dhcp(text: &str) -> Result<String> {
    super::firstboot::config_with(text, None, Some(&Address::Dhcp))
}

/// fstab without the lines mounting something at `mountpoint`.
pub fn fstab_without(text: &str, mountpoint: &Path) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let comment = line.trim_start().starts_with('#');
        if !comment && f.nth(1).is_some_and(|m| Path::new(m) == mountpoint) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_fstab_line_goes() {
        let t = "UUID=a / ext4 defaults 1 1\n# UUID=b /mnt/retention ext4 defaults 0 2\nUUID=c /mnt/retention ext4 defaults,nofail 0 2\n";
        assert_eq!(
            fstab_without(t, Path::new("/mnt/retention")),
            "UUID=a / ext4 defaults 1 1\n# UUID=b /mnt/retention ext4 defaults 0 2\n"
        );
    }

    #[test]
    fn config_goes_to_dhcp_keeping_comments() {
        let t = "# mine\n[appliance]\nhostname = \"mt07.dr.example\"\n[network]\n# the MT NIC\nip = \"192.0.2.77\"\ngateway = \"192.0.2.1\"\n";
        let n = config_dhcp(t).unwrap();
        assert!(
            n.contains("# mine\n") && n.contains("# the MT NIC\n"),
            "{n}"
        );
        let c = Config::parse(&n, "t").unwrap();
        assert_eq!(c.network.bootproto, crate::config::BootProto::Dhcp);
        assert_eq!(
            (c.network.ip.as_str(), c.network.gateway.as_str()),
            ("", "")
        );
        assert!(c.network.dns.is_empty());
        assert_eq!(c.appliance.hostname, "mt07.dr.example");
        assert_eq!(config_dhcp(&n).unwrap(), n, "idempotent");
    }
}
