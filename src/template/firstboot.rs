//! `mtkit firstboot`: the first boot of a clone of a sealed master target.
//!
//! The clone's identity (host name, static address, DNS) comes from VMware guestinfo
//! (`vmtoolsd --cmd "info-get guestinfo.mtkit.<key>"`) when any key is set, else from the
//! appliance.toml on a config ISO ([`super::medium`]), else the NIC stays on DHCP as seal
//! left it. Then: SSH host keys and the writer's server certificate are made anew, `apply`
//! runs with the clone's config, and the service disables itself. Each step is logged and
//! idempotent; a failure leaves the seal mark and the service in place for the next boot
//! and is recorded for `mtkit doctor`.

use super::{Address, CONFIG, FIRSTBOOT_LOG, SEAL_MARK, medium, service, tls};
use crate::config::{BootProto, Config};
use crate::doctor::Finding;
use crate::error::bad_input;
use crate::external::Tool;
use crate::files::{Links, Root};
use crate::provision::executor::{self, Done, Mode};
use crate::provision::{InitSystem, Plan, Wanted};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// The record of the last first boot, for `mtkit doctor`.
pub const STATUS: &str = "var/lib/mtkit/firstboot.json";
/// The guestinfo keys read, each as `guestinfo.mtkit.<key>`.
pub const GUESTINFO_KEYS: [&str; 5] = ["hostname", "ip", "prefix", "gateway", "dns"];

pub const VMTOOLSD: Tool = Tool::new("vmtoolsd", "open-vm-tools", "open-vm-tools");
pub const SSH_KEYGEN: Tool = Tool::new("ssh-keygen", "openssh-client", "openssh");

const MODE: Mode = Mode {
    what: "firstboot",
    log: FIRSTBOOT_LOG,
    record: false,
};

/// A clone's identity and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `guestinfo`, `ISO:<medium>:<path>` or `none`
    pub source: String,
    pub hostname: Option<String>,
    /// `None`: the address stays as seal left it (DHCP).
    pub address: Option<Address>,
}

impl Identity {
    fn none() -> Identity {
        Identity {
            source: "none".into(),
            hostname: None,
            address: None,
        }
    }
}

/// Reads one guestinfo key; `None` when it is not set, or when this is not a VMware guest
/// (vmtoolsd answers both with a non-zero exit) or vmtoolsd is not installed.
fn guestinfo(key: &str) -> Option<String> {
    VMTOOLSD.locate().ok()?;
    let o = VMTOOLSD
        .output(["--cmd", &format!("info-get guestinfo.mtkit.{key}")])
        .ok()?;
    let v = o.stdout.trim();
    (o.status == 0 && !v.is_empty()).then(|| v.to_string())
}

/// The identity in guestinfo (`None` when no `guestinfo.mtkit.*` key is set). Values are
/// checked before anything is changed: a bad one is bad input naming the key.
pub fn from_guestinfo() -> Result<Option<Identity>> {
    let got: Vec<(&str, String)> = GUESTINFO_KEYS
        .iter()
        .filter_map(|k| guestinfo(k).map(|v| (*k, v)))
        .collect();
    if got.is_empty() {
        return Ok(None);
    }
    let get = |k: &str| got.iter().find(|(g, _)| *g == k).map(|(_, v)| v.as_str());
    let bad =
        |k: &str, v: &str, want: &str| bad_input(format!("guestinfo.mtkit.{k} = {v:?}: {want}"));
    let hostname = match get("hostname") {
        Some(h) if crate::config::is_hostname(h) => Some(h.to_string()),
        Some(h) => {
            return Err(bad(
                "hostname",
                h,
                "not a host name (letters, digits, '-', '.'; e.g. \"mt02.dr.example\")",
            ));
        }
        None => None,
    };
    let ipv4 = |k: &str, v: &str| {
        v.parse::<Ipv4Addr>()
            .map_err(|_| bad(k, v, "not an IPv4 address, e.g. \"198.51.100.7\""))
    };
    let address = match get("ip") {
        None => None,
        Some(v) if v.eq_ignore_ascii_case("dhcp") => Some(Address::Dhcp),
        Some(v) => {
            let (ip, cidr) = match v.split_once('/') {
                Some((ip, p)) => (ip, Some(p)),
                None => (v, None),
            };
            let ip = ipv4("ip", ip)?;
            let prefix_text = cidr.or(get("prefix")).ok_or_else(|| {
                bad(
                    "ip",
                    v,
                    "no prefix length: give it as \"A.B.C.D/NN\" or set guestinfo.mtkit.prefix",
                )
            })?;
            let prefix = prefix_text
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= 32)
                .ok_or_else(|| bad("prefix", prefix_text, "a prefix length 0..=32, e.g. \"24\""))?;
            let gateway = get("gateway").map(|g| ipv4("gateway", g)).transpose()?;
            let dns = get("dns")
                .map(|d| {
                    d.split([',', ' '])
                        .filter(|s| !s.is_empty())
                        .map(|s| ipv4("dns", s))
                        .collect::<Result<Vec<_>>>()
                })
                .transpose()?
                .unwrap_or_default();
            Some(Address::Static {
                ip,
                prefix,
                gateway,
                dns,
            })
        }
    };
    Ok(Some(Identity {
        source: "guestinfo".into(),
        hostname,
        address,
    }))
}

/// The identity in an appliance.toml from a config ISO: `[appliance] hostname` when set,
/// and the `[network]` address when that section is there. The whole file is validated.
pub fn from_config_text(text: &str, origin: &str) -> Result<Identity> {
    let config = Config::parse(text, origin)?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| bad_input(format!("{origin}: {e}")))?;
    let has = |section: &str, key: Option<&str>| {
        table
            .get(section)
            .and_then(|s| s.as_table())
            .is_some_and(|t| key.is_none_or(|k| t.contains_key(k)))
    };
    let hostname = has("appliance", Some("hostname")).then(|| config.appliance.hostname.clone());
    let address = has("network", None).then(|| address_of(&config));
    Ok(Identity {
        source: format!("ISO {origin}"),
        hostname,
        address,
    })
}

/// The address `[network]` gives.
pub fn address_of(config: &Config) -> Address {
    let n = &config.network;
    match n.bootproto {
        BootProto::Dhcp => Address::Dhcp,
        BootProto::Static => Address::Static {
            // Validated by Config::parse: static has an IPv4 address.
            ip: n.ip.parse().unwrap_or(Ipv4Addr::UNSPECIFIED),
            prefix: n.prefix,
            gateway: n.gateway.parse().ok(),
            dns: n.dns.iter().filter_map(|d| d.parse().ok()).collect(),
        },
    }
}

/// Where the config ISO is.
#[derive(Debug, Clone)]
pub enum IsoSource {
    /// An image file or a device, read with xorriso.
    Path(PathBuf),
    /// The running guest's medium with the `[media] volume-label` label.
    Label,
    /// Not looked for (under `--root` without `--config-iso`: the host's devices are not
    /// the system's).
    Skip,
}

/// The clone's identity: guestinfo, else the config ISO, else none (DHCP).
pub fn gather(config: &Config, iso: &IsoSource) -> Result<Identity> {
    if let Some(id) = from_guestinfo()? {
        return Ok(id);
    }
    let label = &config.media.volume_label;
    let found = match iso {
        IsoSource::Path(p) => medium::read_image(p, label)?,
        IsoSource::Label => medium::read_label(label)?,
        IsoSource::Skip => None,
    };
    let Some(f) = found else {
        return Ok(Identity::none());
    };
    let id = from_config_text(&f.text, &f.origin)?;
    // The template's own kickstart ISO left attached carries the same label: taking it
    // would give every clone the template's name and address.
    if id.hostname.as_deref() == Some(config.appliance.hostname.as_str()) {
        tracing::warn!(
            "{} names the template itself ({}): ignored (is the install's kickstart ISO still attached?); the NIC stays on DHCP",
            f.origin,
            config.appliance.hostname
        );
        return Ok(Identity::none());
    }
    Ok(id)
}

/// appliance.toml text with `hostname` and the address `addr` set (comments and the other
/// keys kept; `None` leaves a part as it is).
pub fn config_with(text: &str, hostname: Option<&str>, addr: Option<&Address>) -> Result<String> {
    use toml_edit::{Array, DocumentMut, value};
    let mut doc: DocumentMut = text.parse().context("parsing appliance.toml")?;
    if let Some(h) = hostname {
        doc["appliance"]["hostname"] = value(h);
    }
    match addr {
        None => {}
        Some(Address::Dhcp) => {
            let n = &mut doc["network"];
            n["bootproto"] = value("dhcp");
            n["ip"] = value("");
            n["gateway"] = value("");
            n["dns"] = value(Array::new());
        }
        Some(Address::Static {
            ip,
            prefix,
            gateway,
            dns,
        }) => {
            let n = &mut doc["network"];
            n["bootproto"] = value("static");
            n["ip"] = value(ip.to_string());
            n["prefix"] = value(i64::from(*prefix));
            n["gateway"] = value(gateway.map(|g| g.to_string()).unwrap_or_default());
            n["dns"] = value(dns.iter().map(|d| d.to_string()).collect::<Array>());
        }
    }
    Ok(doc.to_string())
}

/// What firstboot is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub iso: IsoSource,
    pub dry_run: bool,
}

/// One step and what it did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Step {
    pub step: &'static str,
    pub result: String,
}

/// What a run did (`--json`).
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Report {
    /// False when the system is not sealed (nothing was done).
    pub sealed: bool,
    pub source: String,
    pub hostname: Option<String>,
    pub address: Option<String>,
    pub steps: Vec<Step>,
    pub changed: Vec<Done>,
    pub notes: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub diff: String,
}

/// The record in [`STATUS`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Status {
    /// `done` or `failed`
    pub state: String,
    pub step: String,
    pub error: Option<String>,
    pub source: Option<String>,
    pub time: String,
    pub mtkit: String,
}

/// Runs the first boot under `root` with the installed config (or `base` when the system
/// has none). On failure the step and error are recorded in [`STATUS`] and the service
/// stays enabled.
pub fn run(root: &Path, base: &Config, opts: &Options) -> Result<Report> {
    let mut report = Report::default();
    let r = Root::open(root)?;
    if !r.is_file(&r.resolve(SEAL_MARK)?)? {
        report.source = "none".into();
        report.steps.push(Step {
            step: "check",
            result: format!("not sealed (no /{SEAL_MARK}): nothing to do"),
        });
        return Ok(report);
    }
    report.sealed = true;
    let mut step = "identity";
    let mut source = None;
    let result = steps(root, base, opts, &mut report, &mut step, &mut source);
    if !opts.dry_run {
        let status = Status {
            state: if result.is_ok() { "done" } else { "failed" }.into(),
            step: step.into(),
            error: result.as_ref().err().map(|e| format!("{e:#}")),
            source,
            time: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            mtkit: executor::VERSION.into(),
        };
        let line = match &status.error {
            Some(e) => {
                format!("failed at {step}: {e}; the service stays enabled for the next boot")
            }
            None => "done; service disabled".into(),
        };
        // The record of a failure must not hide the failure itself.
        if let Err(e) = write_status(root, &status).and_then(|_| log(root, &line)) {
            tracing::error!("recording the first boot: {e:#}");
        }
    }
    result.map(|_| report)
}

fn steps(
    root: &Path,
    base: &Config,
    opts: &Options,
    report: &mut Report,
    step: &mut &'static str,
    source: &mut Option<String>,
) -> Result<()> {
    let dry = opts.dry_run;
    let note = |report: &mut Report, step: &'static str, result: String| {
        tracing::info!("{step}: {result}");
        if !dry {
            let _ = log(root, &format!("{step}: {result}"));
        }
        report.steps.push(Step { step, result });
    };

    // 1. Identity, checked before anything changes.
    let id = gather(base, &opts.iso)?;
    *source = Some(id.source.clone());
    report.source = id.source.clone();
    report.hostname = id.hostname.clone();
    report.address = id.address.as_ref().map(describe);
    note(
        report,
        "identity",
        format!(
            "from {}: host name {}, address {}",
            id.source,
            id.hostname.as_deref().unwrap_or("(kept)"),
            id.address.as_ref().map_or("(kept: DHCP)".into(), describe)
        ),
    );

    // 2. The identity written: appliance.toml, host name, the NIC's ifcfg.
    *step = "network";
    let init = InitSystem::detect(root);
    let r = &Root::open(root)?;
    let mut plan = Plan::default();
    let cfg_rel = r.resolve(CONFIG)?;
    let config = match r.file_text(&cfg_rel)? {
        Some(text) => {
            let new = config_with(&text, id.hostname.as_deref(), id.address.as_ref())?;
            let shown = r.show(&cfg_rel).display().to_string();
            let config = Config::parse(&new, &shown)?;
            plan.edit(
                "config",
                &cfg_rel.to_string_lossy(),
                Some(&text),
                Some(new),
                0o600,
            );
            config
        }
        None => {
            let mut c = base.clone();
            if let Some(h) = &id.hostname {
                c.appliance.hostname = h.clone();
            }
            plan.notes.push(format!(
                "no /{CONFIG}: the clone's identity is not recorded in a config"
            ));
            c
        }
    };
    if let Some(h) = &id.hostname {
        plan_hostname(r, init, h, &mut plan)?;
    }
    if let Some(addr) = &id.address {
        match super::ifcfg(r, &config)? {
            Some(rel) => super::edit_with_original(r, &mut plan, "network", &rel, |t| {
                super::ifcfg_text(t, Some(addr))
            })?,
            None => plan.notes.push(format!(
                "no network-scripts: give {} the address {} by hand",
                config.network.device,
                describe(addr)
            )),
        }
    }
    let out = executor::run(root, plan, dry, MODE)?;
    merge(report, out);
    note(report, "network", "identity written".into());

    // 3. SSH host keys.
    *step = "ssh-host-keys";
    let made = ensure_host_keys(root, init, dry)?;
    note(
        report,
        "ssh-host-keys",
        if made.is_empty() {
            "all present".into()
        } else {
            format!(
                "{} {}",
                if dry { "would make" } else { "made" },
                made.join(", ")
            )
        },
    );

    // 4. The writer's server key and certificate.
    *step = "writer-tls";
    let result = if dry {
        "would make the server key and certificate when missing".into()
    } else {
        match tls::ensure_server_cert(root, &config)? {
            tls::Done::Kept => "server key and certificate present".into(),
            tls::Done::Made { new_ca } => format!(
                "server key and certificate made for {}{}",
                config.appliance.hostname,
                if new_ca {
                    ", with a new CA"
                } else {
                    ", signed by the kept CA"
                }
            ),
        }
    };
    note(report, "writer-tls", result);

    // 5. apply with the clone's config.
    *step = "apply";
    let out = executor::apply(root, &config, dry, false)?;
    let n = out.changed.len();
    merge(report, out);
    note(report, "apply", format!("{n} change(s)"));

    // 6. Done: the service disabled, the seal mark removed.
    *step = "disable";
    let mut plan = Plan::default();
    service::plan_disabled(r, &mut plan)?;
    plan.want("firstboot", r.resolve(SEAL_MARK)?, Wanted::Absent);
    let out = executor::run(root, plan, dry, MODE)?;
    merge(report, out);
    note(
        report,
        "disable",
        "first-boot service disabled, seal mark removed".into(),
    );
    Ok(())
}

fn merge(report: &mut Report, out: executor::Outcome) {
    report.changed.extend(out.changed);
    report.notes.extend(out.notes);
    report.diff.push_str(&out.diff);
}

/// `198.51.100.7/24 gw 198.51.100.1 dns 198.51.100.53`, or `dhcp`.
pub fn describe(a: &Address) -> String {
    match a {
        Address::Dhcp => "dhcp".into(),
        Address::Static {
            ip,
            prefix,
            gateway,
            dns,
        } => {
            let mut s = format!("{ip}/{prefix}");
            if let Some(g) = gateway {
                s.push_str(&format!(" gw {g}"));
            }
            if !dns.is_empty() {
                let d: Vec<String> = dns.iter().map(|d| d.to_string()).collect();
                s.push_str(&format!(" dns {}", d.join(",")));
            }
            s
        }
    }
}

/// The host name where the system reads it at boot: `/etc/sysconfig/network` on CentOS 6,
/// `/etc/hostname` on systemd.
fn plan_hostname(root: &Root, init: InitSystem, name: &str, plan: &mut Plan) -> Result<()> {
    match init {
        InitSystem::SysV => {
            let rel = root.resolve("etc/sysconfig/network")?;
            let cur = root.file_text(&rel)?;
            let base = cur.clone().unwrap_or_else(|| "NETWORKING=yes\n".into());
            let new = crate::provision::network::set_key(&base, "HOSTNAME", name);
            plan.edit(
                "hostname",
                &rel.to_string_lossy(),
                cur.as_deref(),
                Some(new),
                0o644,
            );
        }
        InitSystem::Systemd => {
            let rel = root.resolve("etc/hostname")?;
            let cur = root.file_text(&rel)?;
            plan.edit(
                "hostname",
                &rel.to_string_lossy(),
                cur.as_deref(),
                Some(format!("{name}\n")),
                0o644,
            );
        }
    }
    Ok(())
}

/// The host keys sshd loads: its `HostKey` lines, else the defaults of the OpenSSH the
/// system has (5.3 on CentOS 6: RSA and DSA; newer: RSA, ECDSA, Ed25519). Protocol 1's
/// `ssh_host_key` is left out.
pub fn host_keys(root: &Root, init: InitSystem) -> Result<Vec<(String, PathBuf)>> {
    let conf = root.resolve("etc/ssh/sshd_config")?;
    let mut listed = Vec::new();
    for line in root.file_text(&conf)?.unwrap_or_default().lines() {
        let mut f = line.split_whitespace();
        if f.next().is_some_and(|k| k.eq_ignore_ascii_case("HostKey"))
            && let Some(p) = f.next()
        {
            listed.push(PathBuf::from(p));
        }
    }
    if listed.is_empty() {
        let types: &[&str] = match init {
            InitSystem::SysV => &["rsa", "dsa"],
            InitSystem::Systemd => &["rsa", "ecdsa", "ed25519"],
        };
        listed = types
            .iter()
            .map(|t| PathBuf::from(format!("/etc/ssh/ssh_host_{t}_key")))
            .collect();
    }
    Ok(listed
        .into_iter()
        .filter_map(|p| {
            let name = p.file_name()?.to_string_lossy().into_owned();
            let t = name
                .strip_prefix("ssh_host_")?
                .strip_suffix("_key")?
                .to_string();
            Some((t, p))
        })
        .collect())
}

/// Makes each missing host key with ssh-keygen; returns the types made (or to make).
fn ensure_host_keys(root: &Path, init: InitSystem, dry_run: bool) -> Result<Vec<String>> {
    let r = Root::open(root)?;
    if !r.is_dir(Path::new("etc/ssh"), Links::InRoot)? {
        tracing::warn!("no /etc/ssh: openssh-server is not installed, no host keys made");
        return Ok(Vec::new());
    }
    let mut made = Vec::new();
    for (t, path) in host_keys(&r, init)? {
        let rel = r.resolve(&path)?;
        if r.exists(&rel)? {
            continue;
        }
        // ssh-keygen writes by path: the folders on the way were resolved inside the root.
        let full = root.join(&rel);
        if !dry_run {
            let mut args: Vec<std::ffi::OsString> =
                vec!["-q".into(), "-t".into(), t.clone().into()];
            args.extend(["-N".into(), "".into(), "-C".into(), "".into(), "-f".into()]);
            args.push(full.clone().into());
            // Under --root this ssh-keygen is the host's: its default private key format is
            // one CentOS 6's OpenSSH 5.3 cannot read, so ask for PEM (Ed25519 has none).
            if root != Path::new("/") && t != "ed25519" {
                args.extend(["-m".into(), "PEM".into()]);
            }
            SSH_KEYGEN
                .run(args)
                .with_context(|| format!("making the {t} host key {}", full.display()))?;
        }
        made.push(t);
    }
    Ok(made)
}

fn write_status(root: &Path, status: &Status) -> Result<()> {
    let r = Root::open(root)?;
    let rel = Path::new(STATUS);
    r.create_dirs(crate::files::parent_dir(rel), 0o755)?;
    let text = serde_json::to_string_pretty(status).expect("status serializes") + "\n";
    r.write_atomic(rel, text.as_bytes(), 0o644)
}

/// The last first-boot record, when there is one.
pub fn read_status(root: &Path) -> Option<Status> {
    let text = Root::open(root).ok()?.file_text(Path::new(STATUS)).ok()??;
    serde_json::from_str(&text).ok()
}

fn log(root: &Path, line: &str) -> Result<()> {
    let r = Root::open(root)?;
    let rel = Path::new(FIRSTBOOT_LOG);
    r.create_dirs(crate::files::parent_dir(rel), 0o755)?;
    let stamp = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
    let line = format!("{stamp} mtkit {} firstboot: {line}\n", executor::VERSION);
    r.append(rel, line.as_bytes(), 0o644)
}

/// What `mtkit doctor` says about templates: a failed first boot fails, a pending one (a
/// sealed template, or a clone before its first boot) warns; nothing otherwise.
pub fn doctor_finding(root: &Path) -> Option<Finding> {
    const ID: &str = "firstboot";
    let r = Root::open(root).ok()?;
    let sealed = r
        .resolve(SEAL_MARK)
        .and_then(|m| r.is_file(&m))
        .unwrap_or(false);
    let status = read_status(root);
    match status {
        Some(s) if s.state == "failed" && sealed => Some(Finding::fail(
            ID,
            format!(
                "first boot failed at {} ({}): {}",
                s.step,
                s.time,
                s.error.unwrap_or_default()
            ),
            format!(
                "fix the cause, then run `mtkit firstboot` or reboot (the service is still {}); \
                 steps are in /{FIRSTBOOT_LOG}",
                if service::enabled(&r) {
                    "enabled"
                } else {
                    "NOT enabled: enable it"
                }
            ),
        )),
        _ if sealed => Some(Finding::warn(
            ID,
            format!("sealed template: first boot pending (/{SEAL_MARK})"),
            "expected on the template itself; on a clone, boot it (or run `mtkit firstboot`)",
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_config_identity_takes_only_what_is_set() {
        let id = from_config_text("[appliance]\nhostname = \"mt02.dr.example\"\n", "t").unwrap();
        assert_eq!(id.hostname.as_deref(), Some("mt02.dr.example"));
        assert_eq!(id.address, None);
        let id = from_config_text(
            "[network]\nbootproto = \"static\"\nip = \"198.51.100.7\"\nprefix = 25\ngateway = \"198.51.100.1\"\ndns = [\"198.51.100.53\"]\n",
            "t",
        )
        .unwrap();
        assert_eq!(id.hostname, None);
        assert_eq!(
            id.address.as_ref().map(describe).as_deref(),
            Some("198.51.100.7/25 gw 198.51.100.1 dns 198.51.100.53")
        );
        let e = from_config_text("[network]\nprefix = 40\n", "ISO:x").unwrap_err();
        assert_eq!(crate::error::exit_code(&e), 2, "{e}");
    }

    #[test]
    fn config_with_static_address_parses_back() {
        let a = Address::Static {
            ip: "198.51.100.7".parse().unwrap(),
            prefix: 25,
            gateway: None,
            dns: vec![],
        };
        let t = config_with(
            "# c\n[network]\nbootproto = \"dhcp\"\n",
            Some("mt02"),
            Some(&a),
        )
        .unwrap();
        let c = Config::parse(&t, "t").unwrap();
        assert_eq!(c.appliance.hostname, "mt02");
        assert_eq!(address_of(&c), a);
        // The comment stays with the table it was written above.
        assert!(t.contains("# c\n[network]\n"), "{t}");
    }

    #[test]
    fn host_keys_from_sshd_config_or_defaults() {
        let d = tempfile::tempdir().unwrap();
        let keys = |init| {
            host_keys(&Root::open(d.path()).unwrap(), init)
                .unwrap()
                .into_iter()
                .map(|(t, _)| t)
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(InitSystem::SysV), ["rsa", "dsa"]);
        assert_eq!(keys(InitSystem::Systemd), ["rsa", "ecdsa", "ed25519"]);
        std::fs::create_dir_all(d.path().join("etc/ssh")).unwrap();
        std::fs::write(
            d.path().join("etc/ssh/sshd_config"),
            "#HostKey /etc/ssh/ssh_host_dsa_key\nHostKey /etc/ssh/ssh_host_ed25519_key\nHostKey /etc/ssh/ssh_host_key\n",
        )
        .unwrap();
        assert_eq!(keys(InitSystem::SysV), ["ed25519"]);
    }
}
