//! Renders the CentOS 6.6 master-target kickstart (RHEL 6 anaconda) from the config.
//!
//! The template is `templates/ks.cfg.j2`, embedded at build time. Output is deterministic
//! for a given config and [`RenderOptions`]: only a hash made from `root-password-file`
//! differs between runs, by its random salt (pass it in `RenderOptions` to pin it).

use crate::config::{BootProto, Config, REISERFS_FROM_OFFLINE, SelinuxMode, partitions};
use crate::host::diskref::DiskRef;
use anyhow::{Context, Result};
use std::net::Ipv4Addr;
use std::path::Path;

const TEMPLATE: &str = include_str!("../../templates/ks.cfg.j2");

/// Packages every master target gets, on top of `@core` (correct CentOS 6 names).
pub const BASE_PACKAGES: &[&str] = &[
    "@core",
    "xfsprogs",
    "perl",
    "lsscsi",
    "rsync",
    "wget",
    "kexec-tools",
    "device-mapper-multipath",
    "ntp",
    "openssh-server",
];

/// ELRepo's packages for reiserfs sources (not in CentOS 6 itself).
pub const REISERFS_PACKAGES: &[&str] = &["kmod-reiserfs", "reiserfs-utils"];

/// Default `[packages] reiserfs-repo`: ELRepo for EL6 x86_64.
pub const DEFAULT_REISERFS_REPO: &str = "http://elrepo.org/linux/elrepo/el6/x86_64/";

/// Services enabled at boot (SysV names on CentOS 6).
pub const SERVICES: &[&str] = &["multipathd", "kdump", "ntpd", "sshd"];

/// Written as root's hash when no password is configured: no crypt output matches it.
pub const LOCKED_HASH: &str = "!!";

/// Choices made outside the config when rendering.
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    /// Root's SHA-512 crypt hash, already resolved (see [`resolve_root_hash`]). `None` means
    /// take it from the config: `root-password-hash`, else hash `root-password-file`, else
    /// lock root.
    pub root_password_hash: Option<String>,
}

/// Root's hash from the config: the given hash, or the password file hashed with a random
/// salt, or `None` (root stays locked). The plain password is never logged.
pub fn resolve_root_hash(config: &Config) -> Result<Option<String>> {
    let a = &config.appliance;
    if !a.root_password_hash.is_empty() {
        return Ok(Some(a.root_password_hash.clone()));
    }
    match &a.root_password_file {
        Some(path) => hash_password_file(path).map(Some),
        None => Ok(None),
    }
}

/// The most a password file may hold: one line, a generous one.
const MAX_PASSWORD_FILE: u64 = 64 << 10;

/// The password on the first line of a password file's text (no line ending), refused
/// when it is empty, only blanks, or holds a NUL or another control character (crypt(3)
/// stops at a NUL: the hash would be of a shorter password than the admin typed).
pub fn password_from(text: &str, path: &Path) -> Result<String> {
    let password = text.lines().next().unwrap_or("");
    let bad = |why: &str| {
        crate::error::bad_input(format!(
            "root-password-file {}: the first line {why}; write the password on it",
            path.display()
        ))
    };
    if password.is_empty() {
        return Err(bad("is empty"));
    }
    if password.trim().is_empty() {
        return Err(bad("holds only blanks"));
    }
    if password.contains('\0') {
        return Err(bad(
            "holds a NUL byte, where crypt(3) would cut the password",
        ));
    }
    if password.chars().any(|c| c.is_control() && c != '\t') {
        return Err(bad("holds a control character"));
    }
    Ok(password.to_string())
}

/// Reads the first line of `path` (no trailing newline) and hashes it with SHA-512 crypt.
/// Only a regular file is read (a FIFO would hang the build), at most 64 KiB.
pub fn hash_password_file(path: &Path) -> Result<String> {
    use sha_crypt::{CustomizedPasswordHasher, Params, ShaCrypt};
    let bytes = crate::files::read_input(path, MAX_PASSWORD_FILE).map_err(|e| {
        crate::error::bad_input(format!(
            "reading [appliance] root-password-file {}: {e}",
            path.display()
        ))
    })?;
    let text = String::from_utf8(bytes).map_err(|_| {
        crate::error::bad_input(format!(
            "root-password-file {}: not UTF-8 text",
            path.display()
        ))
    })?;
    let password = password_from(&text, path)?;
    // 12 random bytes encode to exactly 16 salt characters, the most glibc's crypt uses:
    // a longer salt would be cut when CentOS checks the password, and looks malformed.
    let salt: [u8; 12] = rand::random();
    let hash = ShaCrypt::SHA512
        .hash_password_customized(password.as_bytes(), &salt, None, None, Params::RECOMMENDED)
        .map_err(|e| anyhow::anyhow!("hashing the root password: {e}"))?;
    Ok(hash.as_str().to_string())
}

/// The TCP port of `[writer] listen` (`host:port`), opened in the firewall (0, any free
/// port, opens none).
pub fn writer_port(config: &Config) -> Option<u16> {
    config
        .writer
        .listen
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
}

/// Every package the kickstart installs, in a stable order without duplicates (a set
/// beside the list: linear in the number of packages, which may be hundreds of thousands).
pub fn packages(config: &Config) -> Vec<String> {
    let mut out: Vec<String> = BASE_PACKAGES.iter().map(|s| s.to_string()).collect();
    if config.sources.uses_reiserfs() {
        out.extend(REISERFS_PACKAGES.iter().map(|s| s.to_string()));
    }
    let mut seen: std::collections::HashSet<&str> = out.iter().map(String::as_str).collect();
    let mut extra = Vec::new();
    for p in &config.packages.extra {
        if seen.insert(p.as_str()) {
            extra.push(p.clone());
        }
    }
    out.extend(extra);
    out
}

/// Why the install needs network access, if it does: an install tree URL, or the reiserfs
/// packages from a network repository (ELRepo by default). `None`: it installs from the
/// media alone.
pub fn needs_network(config: &Config) -> Option<String> {
    let p = &config.packages;
    let mut why = Vec::new();
    if !p.mirror.is_empty() {
        why.push(format!(
            "it installs from [packages] mirror = {:?}",
            p.mirror
        ));
    }
    if config.sources.uses_reiserfs() && p.reiserfs_repo != REISERFS_FROM_OFFLINE {
        let url = if p.reiserfs_repo.is_empty() {
            DEFAULT_REISERFS_REPO
        } else {
            &p.reiserfs_repo
        };
        why.push(format!(
            "kmod-reiserfs and reiserfs-utils come from {url} ([packages] reiserfs-repo); to \
             install without network, carry them in [packages] offline-repo and set \
             reiserfs-repo = \"offline\""
        ));
    }
    (!why.is_empty()).then(|| why.join("; "))
}

/// The packages the kickstart takes from `[packages] offline-repo`: those it must find
/// there (kmod-reiserfs and reiserfs-utils with `reiserfs-repo = "offline"`), and those it
/// may find there or on the install source (the plain names of `[packages] extra`).
pub fn offline_repo_packages(config: &Config) -> (Vec<String>, Vec<String>) {
    let p = &config.packages;
    if p.offline_repo.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let required = if config.sources.uses_reiserfs() && p.reiserfs_repo == REISERFS_FROM_OFFLINE {
        REISERFS_PACKAGES.iter().map(|s| s.to_string()).collect()
    } else {
        Vec::new()
    };
    let wanted = p
        .extra
        .iter()
        .filter(|n| !n.starts_with('@') && !n.starts_with('-'))
        .filter(|n| !required.contains(*n))
        .cloned()
        .collect();
    (required, wanted)
}

fn netmask(prefix: u8) -> Ipv4Addr {
    let bits = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    };
    Ipv4Addr::from(bits)
}

/// The kickstart for `config`. Expects a validated config (see `Config::parse`).
pub fn render(config: &Config, opts: &RenderOptions) -> Result<String> {
    use minijinja::{Environment, context, syntax::SyntaxConfig};
    let (root_hash, root_locked) = match &opts.root_password_hash {
        Some(h) => (h.clone(), false),
        None => match resolve_root_hash(config)? {
            Some(h) => (h, false),
            None => (LOCKED_HASH.to_string(), true),
        },
    };
    let a = &config.appliance;
    let n = &config.network;
    let p = &config.packages;
    let reiserfs_repo = if p.reiserfs_repo.is_empty() {
        DEFAULT_REISERFS_REPO
    } else {
        &p.reiserfs_repo
    };
    let selinux = match a.selinux {
        SelinuxMode::Enforcing => "enforcing",
        SelinuxMode::Permissive => "permissive",
        SelinuxMode::Disabled => "disabled",
    };
    let port = writer_port(config).context("[writer] listen has no port")?;
    let ssh_keys: Vec<String> = config
        .access
        .keys()
        .map_err(crate::error::bad_input)?
        .iter()
        .map(ToString::to_string)
        .collect();

    let mut env = Environment::new();
    env.set_syntax(
        SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build()
            .expect("static syntax config"),
    );
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.add_filter("word", word);
    // RHEL 6 anaconda resolves a /dev/disk link in ignoredisk, clearpart, part --ondisk
    // and bootloader --driveorder through udev (see templates/ks.cfg.j2): an OS disk named
    // by SCSI ID or link is named the same way to the installer, never by a guessed name.
    let os_disk = DiskRef::parse(&config.disks.os_disk).ok_or_else(|| {
        crate::error::bad_input(format!(
            "[disks] os-disk = \"{}\" is not a disk name",
            config.disks.os_disk
        ))
    })?;
    env.add_template("ks.cfg", TEMPLATE)
        .context("loading the kickstart template")?;
    let text = env
        .get_template("ks.cfg")
        .and_then(|t| {
            t.render(context! {
                mirror => &p.mirror,
                offline_repo => !p.offline_repo.is_empty(),
                reiserfs => config.sources.uses_reiserfs(),
                reiserfs_repo => (p.reiserfs_repo != REISERFS_FROM_OFFLINE).then_some(reiserfs_repo),
                lang => &a.lang,
                keyboard => &a.keyboard,
                timezone => &a.timezone,
                root_hash,
                root_locked,
                selinux,
                selinux_on => a.selinux != SelinuxMode::Disabled,
                ssh_keys,
                writer_port => port,
                static => n.bootproto == BootProto::Static,
                device => &n.device,
                ip => &n.ip,
                netmask => netmask(n.prefix).to_string(),
                gateway => &n.gateway,
                nameservers => n.dns.join(","),
                hostname => &a.hostname,
                services => SERVICES.join(","),
                os_disk => os_disk.installer_name(),
                os_disk_link => !matches!(os_disk, DiskRef::Kernel(_)),
                os_disk_asked => &config.disks.os_disk,
                parts => minijinja::value::Serde(partitions::partitions(config)),
                packages => packages(config),
                label => &config.media.volume_label,
                ntp => &n.ntp,
            })
        })
        .map_err(|e| match e.kind() {
            minijinja::ErrorKind::InvalidOperation => crate::error::bad_input(format!(
                "the kickstart cannot be rendered: {}",
                e.detail().unwrap_or("a value is not one plain word")
            )),
            _ => anyhow::Error::new(e).context("rendering the kickstart"),
        })?;
    // The template itself holds none: anything else came from a value.
    if let Some(c) = text.chars().find(|&c| c.is_control() && c != '\n') {
        return Err(crate::error::bad_input(format!(
            "the kickstart would hold the control character {c:?}: refused"
        )));
    }
    Ok(text)
}

/// Characters a kickstart value may have: those pykickstart's shell-style split, anaconda's
/// option parser and the %post shell (`echo "server {{ s }} iburst"`) all take literally.
/// No blank, quote, `#`, backslash, backquote, `<`, `>`, `|`, or anything not ASCII.
fn is_word(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._~!$&()*+,;=:@/?%+-[]".contains(&b))
}

/// The `word` filter of templates/ks.cfg.j2: the value as is, or an error naming it. The
/// config checks keep every value to its own strict pattern; this is the last line, so a
/// value that slipped past them cannot change what the kickstart says.
fn word(v: minijinja::Value) -> Result<String, minijinja::Error> {
    let s = v.to_string();
    if is_word(&s) {
        Ok(s)
    } else {
        Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("{s:?} is not one plain word (letters, digits and ._~!$&()*+,;=:@/?%-)"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netmasks() {
        assert_eq!(netmask(24).to_string(), "255.255.255.0");
        assert_eq!(netmask(0).to_string(), "0.0.0.0");
        assert_eq!(netmask(32).to_string(), "255.255.255.255");
        assert_eq!(netmask(19).to_string(), "255.255.224.0");
    }

    #[test]
    fn default_config_renders_a_locked_root() {
        let ks = render(&Config::default(), &RenderOptions::default()).unwrap();
        assert!(ks.contains("\nrootpw --iscrypted --lock !!\n"), "{ks}");
        assert!(ks.contains("\nfirewall --enabled --ssh --port=10809:tcp\n"));
        assert!(ks.contains("\ncdrom\n"));
        assert!(!ks.contains("repo --name"));
    }

    #[test]
    fn password_file_is_hashed_not_copied() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("pw");
        std::fs::write(&f, "s3cret-Pass\n").unwrap();
        let mut c = Config::default();
        c.appliance.root_password_file = Some(f);
        let ks = render(&c, &RenderOptions::default()).unwrap();
        assert!(!ks.contains("s3cret"));
        let line = ks.lines().find(|l| l.starts_with("rootpw")).unwrap();
        assert!(line.starts_with("rootpw --iscrypted $6$"), "{line}");
        let hash = line.rsplit(' ').next().unwrap();
        assert!(crate::config::is_sha512_crypt(hash), "{hash}");
        use sha_crypt::{PasswordVerifier, ShaCrypt};
        ShaCrypt::default()
            .verify_password(b"s3cret-Pass", hash)
            .unwrap();
    }
}
