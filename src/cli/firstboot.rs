//! `mtkit firstboot`: a clone of a sealed master target takes its own identity.

use super::Global;
use crate::config::{Config, Loaded};
use crate::template::{self, firstboot};
use std::io::Write;
use std::path::{Path, PathBuf};

/// First boot of a clone: its own identity, host keys and writer certificate (run once by
/// the mtkit-firstboot service that seal installs)
///
/// Identity (host name, static address, DNS) from VMware guestinfo when any
/// guestinfo.mtkit.<key> is set (hostname, ip as A.B.C.D/NN or "dhcp", prefix, gateway,
/// dns), else from /mtkit/appliance.toml on an ISO labelled like the kickstart ISO
/// ([media] volume-label), else the NIC stays on DHCP. Then new SSH host keys and writer
/// server certificate, `mtkit apply`, and the service disables itself. Does nothing on a
/// system that is not sealed. A failed step leaves the service enabled for the next boot;
/// `mtkit doctor` shows it.
#[derive(Debug, clap::Args)]
pub struct FirstbootArgs {
    /// The system is mounted here (an image, a test fixture)
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Read the config ISO from this image file or device (else, on the running system,
    /// the medium with the [media] volume-label; under --root, none)
    #[arg(long, value_name = "ISO")]
    pub config_iso: Option<PathBuf>,
    /// Show what would change; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// JSON output (identity, steps, what changed)
    #[arg(long)]
    pub json: bool,
}

/// The config of the system under `root`: `--config` when given, else its installed
/// appliance.toml, else the embedded defaults (not the host's /etc/mtkit under --root).
pub fn load_config(g: &Global, root: &Path) -> anyhow::Result<Loaded> {
    if g.config.is_some() || root == Path::new("/") {
        return g.load_config();
    }
    let installed = root.join(crate::files::Root::open(root)?.resolve(template::CONFIG)?);
    let path = installed.is_file().then_some(installed.as_path());
    Ok(Config::load(path)?)
}

impl FirstbootArgs {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        super::check_root(&self.root)?;
        let loaded = load_config(g, &self.root)?;
        let iso = match (&self.config_iso, self.root == Path::new("/")) {
            (Some(p), _) => firstboot::IsoSource::Path(p.clone()),
            (None, true) => firstboot::IsoSource::Label,
            (None, false) => firstboot::IsoSource::Skip,
        };
        let opts = firstboot::Options {
            iso,
            dry_run: self.dry_run,
        };
        let report = firstboot::run(&self.root, &loaded.config, &opts)?;
        for n in &report.notes {
            tracing::warn!("{n}");
        }
        let mut out = std::io::stdout().lock();
        if self.json {
            serde_json::to_writer_pretty(&mut out, &report)?;
            writeln!(out)?;
            return Ok(());
        }
        if self.dry_run {
            write!(out, "{}", report.diff)?;
        }
        for s in &report.steps {
            writeln!(out, "{}: {}", s.step, s.result)?;
        }
        Ok(())
    }
}
