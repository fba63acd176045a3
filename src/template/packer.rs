//! The Packer template `mtkit build --packer` writes: HCL2 for the vsphere-iso builder of
//! packer-plugin-vsphere, with the VM shaped by appliance.toml and the install delivered by
//! the remastered ISO (no typing) or by the install ISO plus a `cd_files` CD labelled like
//! the kickstart ISO (the `ks=` line typed). vCenter, placement and credentials are
//! variables: nothing secret is written into the file.

use crate::config::{BootProto, Config, Size};
use anyhow::{Context, Result};
use std::io::Read;
use std::path::Path;

const TEMPLATE: &str = include_str!("../../templates/mtkit.pkr.hcl.j2");

/// The template's file name in the build folder.
pub const FILE: &str = "mtkit.pkr.hcl";
/// The folder `cd_files` takes (ks.cfg and mtkit/ at its top).
pub const CD_DIR: &str = "packer-cd";
/// The plugin versions the template needs: `configuration_parameters` (disk.EnableUUID)
/// reach the VM only from 1.4.1, where vmware/packer-plugin-vsphere#468 fixed issue 33
/// (values silently dropped); the names used were checked in its documentation of 1.4.1
/// and of 2.1.0-dev (tests/fixtures/packer/).
pub const PLUGIN_VERSION: &str = ">= 1.4.1";

/// How the template installs the OS.
#[derive(Debug, Clone)]
pub enum Install {
    /// The remastered ISO in the build folder, uploaded by Packer (`iso_url`).
    Remastered { file: String, sha256: String },
    /// The install ISO from a datastore and the kickstart on a `cd_files` CD.
    KickstartCd,
}

/// An HCL2 quoted string: `"` and `\` escaped, and `${`/`%{` doubled so that a value is
/// never read as a template interpolation or directive (HCL native syntax, "Template
/// Literals").
pub fn hcl_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The template text for `config`.
pub fn render(config: &Config, install: &Install) -> Result<String> {
    let mut env = minijinja::Environment::new();
    env.add_filter("hcl", |v: String| hcl_string(&v));
    let short = config.appliance.hostname.split('.').next().unwrap_or("mt");
    let ssh_host = match config.network.bootproto {
        BootProto::Static => config.network.ip.clone(),
        BootProto::Dhcp => String::new(),
    };
    let (remastered, iso_file, iso_sha256) = match install {
        Install::Remastered { file, sha256 } => (true, file.as_str(), sha256.as_str()),
        Install::KickstartCd => (false, "", ""),
    };
    // File names and the checksum land inside an HCL string next to ${path.root}: they
    // are ours (mt-install.iso, packer-cd) and hex, checked here all the same.
    let plain = |s: &str| {
        s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    };
    anyhow::ensure!(
        plain(iso_file) && plain(iso_sha256),
        "unexpected ISO name {iso_file:?}"
    );
    let mut text = env
        .render_str(
            TEMPLATE,
            minijinja::context! {
                file => FILE,
                label => &config.media.volume_label,
                plugin_version => PLUGIN_VERSION,
                vm_name => format!("{short}-template"),
                ssh_host => ssh_host,
                cpus => config.appliance.cpus,
                ram_mib => config.appliance.memory.0 / Size::MIB,
                disk_mib => config.disks.os_disk_size.0 / Size::MIB,
                notes => format!(
                    "mtkit master target template ({}), sealed by mtkit seal; clones run mtkit firstboot",
                    config.appliance.hostname
                ),
                remastered => remastered,
                iso_file => iso_file,
                iso_sha256 => iso_sha256,
                cd_dir => CD_DIR,
                boot_arg => crate::media::boot_arg_second_drive(),
            },
        )
        .context("rendering the Packer template")?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// SHA-256 of a file, lower-case hex (for `iso_checksum`).
pub fn sha256_file(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Warnings for a config that Packer cannot build from as it is.
pub fn warnings(config: &Config, install: &Install) -> Vec<String> {
    let mut out = Vec::new();
    let tools = config
        .packages
        .extra
        .iter()
        .any(|p| p == "open-vm-tools" || p.starts_with("vmware-tools"));
    if !tools {
        out.push(
            "[packages] extra has no open-vm-tools: vsphere-iso waits for the guest's address \
             from VMware Tools and clones read guestinfo with vmtoolsd; CentOS 6 has no \
             open-vm-tools of its own, carry it in [packages] offline-repo"
                .to_string(),
        );
    }
    if config.access.ssh_authorized_keys.is_empty() {
        out.push(format!(
            "[access] has no ssh-authorized-keys: {FILE} logs in as root with \
             var.ssh_private_key_file, which only works when its public key is in \
             [access] ssh-authorized-keys (or ssh-authorized-keys-file); without it Packer \
             waits for SSH until ssh_timeout and fails"
        ));
    }
    if matches!(install, Install::KickstartCd) && !config.packages.offline_repo.is_empty() {
        out.push(format!(
            "[packages] offline-repo is not on the cd_files CD of {FILE}: build with \
             --source-iso (the remastered ISO carries the repository)"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hcl_strings_escape_quotes_and_interpolation() {
        assert_eq!(hcl_string("mt01"), "\"mt01\"");
        assert_eq!(hcl_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(hcl_string("${var.x} %{if} $5"), "\"$${var.x} %%{if} $5\"");
        assert_eq!(hcl_string("a\nb"), "\"a\\nb\"");
    }

    #[test]
    fn both_install_kinds_render_without_placeholders() {
        let c = Config::default();
        for i in [
            Install::KickstartCd,
            Install::Remastered {
                file: "mt-install.iso".into(),
                sha256: "ab".repeat(32),
            },
        ] {
            let t = render(&c, &i).unwrap();
            assert!(!t.contains("{{") && !t.contains("{%"), "{t}");
            assert!(t.contains("\"disk.EnableUUID\" = \"TRUE\""));
            assert!(t.contains("version = \">= 1.4.1\""));
        }
    }

    #[test]
    fn a_template_nobody_can_log_into_is_warned_about() {
        let mut c = Config::default();
        let w = warnings(&c, &Install::KickstartCd);
        assert!(w.iter().any(|w| w.contains("ssh-authorized-keys")), "{w:?}");
        c.access.ssh_authorized_keys = vec!["ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ x".into()];
        let w = warnings(&c, &Install::KickstartCd);
        assert!(
            !w.iter().any(|w| w.contains("ssh-authorized-keys")),
            "{w:?}"
        );
    }
}
