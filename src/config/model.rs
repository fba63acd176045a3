//! The appliance.toml model: every section and key with its embedded default. Parsing and
//! the rules a value must pass are `validate`; loading is `config` itself.

use super::ssh;
use super::units::{AutoSize, Size, Span};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[packages] reiserfs-repo` value meaning: the offline repo carries kmod-reiserfs and
/// reiserfs-utils, so no network repository line is written.
pub const REISERFS_FROM_OFFLINE: &str = "offline";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Config {
    pub appliance: Appliance,
    pub access: Access,
    pub network: Network,
    pub disks: Disks,
    pub sources: Sources,
    pub packages: Packages,
    pub media: Media,
    pub configuration_server: ConfigurationServer,
    pub retention: Retention,
    pub writer: Writer,
    pub policy: Policy,
    pub template: Template,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Appliance {
    /// RFC 1123 host name; empty (the default) takes the one DHCP gives. Static
    /// networks need one.
    pub hostname: String,
    pub timezone: String,
    pub lang: String,
    pub keyboard: String,
    /// SHA-512 crypt hash (`$6$...`); empty with no password file means root is locked.
    pub root_password_hash: String,
    /// A file holding a plain password, hashed at render time and never echoed.
    pub root_password_file: Option<PathBuf>,
    /// RAM the VM is given; drives the `auto` sizes of swap and /var/crash.
    pub memory: Size,
    /// Cores the VM is given (the doctor checks the real machine against it).
    pub cpus: u32,
    pub selinux: SelinuxMode,
}

impl Default for Appliance {
    fn default() -> Self {
        Appliance {
            hostname: String::new(),
            timezone: "UTC".into(),
            lang: "en_US.UTF-8".into(),
            keyboard: "us".into(),
            root_password_hash: String::new(),
            root_password_file: None,
            memory: Size::from_gib(8),
            cpus: 4,
            selinux: SelinuxMode::Permissive,
        }
    }
}

/// Ways into the appliance besides root's password: SSH public keys for root.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Access {
    /// OpenSSH public key lines (`TYPE BASE64 [COMMENT]`) for root's authorized_keys.
    pub ssh_authorized_keys: Vec<String>,
    /// A file of such lines (`#` comments allowed), relative to the config file's folder.
    /// Read when the config is loaded: its keys are added to `ssh_authorized_keys`.
    pub ssh_authorized_keys_file: Option<PathBuf>,
}

impl Access {
    /// True when some SSH key lets root in.
    pub fn has_ssh_keys(&self) -> bool {
        !self.ssh_authorized_keys.is_empty()
    }

    /// The keys, checked and normalized (`TYPE BASE64 [COMMENT]`), without duplicates.
    pub fn keys(&self) -> Result<Vec<ssh::PublicKey>, String> {
        let mut out: Vec<ssh::PublicKey> = Vec::new();
        for (i, line) in self.ssh_authorized_keys.iter().enumerate() {
            let k = ssh::parse_public_key(line.trim())
                .map_err(|e| format!("[access] ssh-authorized-keys[{i}]: {e}"))?;
            if !out.iter().any(|o| o.kind == k.kind && o.blob == k.blob) {
                out.push(k);
            }
        }
        Ok(out)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SelinuxMode {
    Enforcing,
    Permissive,
    Disabled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BootProto {
    Static,
    Dhcp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Network {
    pub device: String,
    pub bootproto: BootProto,
    /// IPv4 address; required with `bootproto = "static"`.
    pub ip: String,
    pub prefix: u8,
    pub gateway: String,
    pub dns: Vec<String>,
    pub ntp: Vec<String>,
}

/// DHCP by default: the only setting that reaches the VM on a network mtkit knows nothing
/// about (a static example address would leave it unreachable).
impl Default for Network {
    fn default() -> Self {
        Network {
            device: "eth0".into(),
            bootproto: BootProto::Dhcp,
            ip: String::new(),
            prefix: 24,
            gateway: String::new(),
            dns: Vec::new(),
            ntp: vec!["0.centos.pool.ntp.org".into()],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Disks {
    /// Kernel name of the OS disk (`sda`); the only disk the kickstart touches.
    pub os_disk: String,
    /// Smallest OS disk the layout must fit on (the sizing guide says 100G).
    pub os_disk_size: Size,
    pub root_size: Size,
    pub var_crash_size: AutoSize,
    pub home_size: Size,
    pub swap_size: AutoSize,
}

impl Default for Disks {
    fn default() -> Self {
        Disks {
            os_disk: "sda".into(),
            os_disk_size: Size::from_gib(100),
            root_size: Size::from_gib(40),
            var_crash_size: AutoSize::Auto,
            home_size: Size::from_gib(4),
            swap_size: AutoSize::Auto,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Sources {
    /// Filesystems the protected machines use: ext2/3/4, xfs, reiserfs, btrfs, vfat.
    pub filesystems: Vec<String>,
}

impl Default for Sources {
    fn default() -> Self {
        Sources {
            filesystems: vec!["ext4".into(), "xfs".into()],
        }
    }
}

impl Sources {
    pub fn uses_reiserfs(&self) -> bool {
        self.filesystems.iter().any(|f| f == "reiserfs")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Packages {
    pub extra: Vec<String>,
    /// A folder of RPMs carried on the media as a yum repository.
    pub offline_repo: String,
    /// An install tree URL (`url --url=`); empty means install from the CD-ROM.
    pub mirror: String,
    /// Repository carrying the reiserfs kmod and utils (ELRepo-style); empty means ELRepo's
    /// el6 tree, `offline` means the offline repo carries them.
    pub reiserfs_repo: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Media {
    /// ISO 9660 volume label of the kickstart ISO.
    pub volume_label: String,
    /// A CentOS 6 install ISO to remaster in `mtkit build`; empty means kickstart ISO only.
    pub source_iso: String,
}

impl Default for Media {
    fn default() -> Self {
        Media {
            volume_label: "MTKS".into(),
            source_iso: String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct ConfigurationServer {
    pub address: String,
    pub port: u16,
}

impl Default for ConfigurationServer {
    fn default() -> Self {
        ConfigurationServer {
            address: "192.0.2.5".into(),
            port: 443,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Retention {
    /// `auto`, a device path, or a SCSI ID.
    pub device: String,
    pub filesystem: String,
    pub mountpoint: PathBuf,
    pub min_size: Size,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            device: "auto".into(),
            filesystem: "ext4".into(),
            mountpoint: PathBuf::from("/mnt/retention"),
            min_size: Size(Size::TIB),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Writer {
    /// TCP address of the NBD server.
    pub listen: String,
    /// Unix socket of the NBD server (local clients); empty disables it.
    pub unix_socket: PathBuf,
    /// Empty means `<retention mountpoint>/mtkit`.
    pub journal_dir: String,
    pub control_socket: PathBuf,
    /// Prometheus text metrics over HTTP; empty disables them.
    pub metrics_listen: String,
    /// Allow listening on a non-loopback address without TLS (logged at every start).
    pub insecure: bool,
    /// Start with the journal on a filesystem that a power cut can corrupt or empty (ext2,
    /// ext4 without a journal, tmpfs, vfat, or one mtkit cannot judge): tests and labs only,
    /// warned at every start.
    pub allow_unsafe_journal: bool,
    /// NBD connections in transmission at once.
    pub max_connections: u32,
    /// NBD connections still negotiating at once (a cap of their own: a client that never
    /// finishes negotiating cannot take the slot of one replicating).
    pub max_negotiating: u32,
    /// Deadline for a connection's whole negotiation, TLS handshake included.
    pub negotiation_timeout: Span,
    /// A request's header and payload must arrive within this (plus time for the payload
    /// at 64 KiB/s), and a client must read its replies within it.
    pub request_timeout: Span,
    /// Largest READ/WRITE payload a client may send.
    pub max_request_size: Size,
    /// A connection with no request for this long is closed.
    pub idle_timeout: Span,
    /// Request payload buffered by all connections together (bounds the service's memory).
    pub max_buffer: Size,
    /// A group's journal starts a new segment file past this size; pruning frees whole segments.
    pub journal_segment_size: Size,
    /// When a group's journal writes its next segment ahead (zeros, synced) so that syncing
    /// an append commits no file-size change: `auto` (after 256 small appends into a
    /// segment), `always`, `never` (a thin-provisioned retention disk).
    pub journal_write_ahead: crate::writer::journal::WriteAhead,
    /// Answer a WRITE without FUA once the connection has queued it, before it reaches
    /// the journal and the target (FLUSH and points still wait for it, reads see it);
    /// false: answer each write once it is on the target.
    pub write_behind: bool,
    /// Writes of a group in initial sync (no baseline yet) bypass the page cache (O_DIRECT)
    /// when 1 MiB or more and aligned to 4 KiB; false: through the page cache, as after
    /// the baseline.
    pub initial_sync_direct_io: bool,
    pub tls: Option<WriterTls>,
    pub disk: Vec<WriterDisk>,
    /// Consistency groups and who may open their disks (a disk's group need not be listed).
    pub group: Vec<WriterGroup>,
}

impl Default for Writer {
    fn default() -> Self {
        Writer {
            listen: "0.0.0.0:10809".into(),
            unix_socket: PathBuf::from("/run/mtkit/nbd.sock"),
            journal_dir: String::new(),
            control_socket: PathBuf::from("/run/mtkit/writer.sock"),
            metrics_listen: "127.0.0.1:9810".into(),
            insecure: false,
            allow_unsafe_journal: false,
            max_connections: 64,
            max_negotiating: 16,
            negotiation_timeout: "30s".parse().unwrap(),
            request_timeout: "30s".parse().unwrap(),
            max_request_size: Size(32 * Size::MIB),
            idle_timeout: "15m".parse().unwrap(),
            max_buffer: Size(256 * Size::MIB),
            journal_segment_size: Size(64 * Size::MIB),
            journal_write_ahead: Default::default(),
            write_behind: true,
            initial_sync_direct_io: true,
            tls: None,
            disk: Vec::new(),
            group: Vec::new(),
        }
    }
}

/// TLS for the NBD server: a folder in qemu's tls-creds-x509 layout, or explicit files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct WriterTls {
    /// Holds ca-cert.pem, server-cert.pem, server-key.pem.
    pub dir: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub ca: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct WriterGroup {
    pub name: String,
    /// Client certificate identities (subject CN or SAN) allowed to open this group's disks.
    pub clients: Vec<String>,
}

impl Writer {
    /// The journal folder with its default resolved against the retention mountpoint.
    pub fn journal_dir(&self, retention: &Retention) -> PathBuf {
        if self.journal_dir.is_empty() {
            retention.mountpoint.join("mtkit")
        } else {
            PathBuf::from(&self.journal_dir)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct WriterDisk {
    pub name: String,
    /// The device or file; may be left out when `scsi_id` names the disk.
    pub path: PathBuf,
    /// The disk's SCSI ID as `mtkit scsi-ids` prints it: the device is found by it at
    /// every start, and a `path` whose device carries another ID is not served.
    pub scsi_id: String,
    pub group: String,
    /// Needed only for a regular file that does not exist yet.
    pub size: Option<Size>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Policy {
    pub rpo_threshold: Span,
    pub retention: Span,
    pub app_consistent_interval: Span,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            rpo_threshold: "15m".parse().unwrap(),
            retention: "24h".parse().unwrap(),
            app_consistent_interval: "60m".parse().unwrap(),
        }
    }
}

/// VM templates (`mtkit seal`, `mtkit firstboot`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Template {
    /// The writer's CA is the fleet's: seal keeps ca-cert.pem and ca-key.pem, and every clone
    /// signs its own server certificate with it (clients trust one CA). Else seal removes the
    /// CA and each clone makes its own at first boot.
    pub shared_ca: bool,
}
