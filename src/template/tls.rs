//! The writer's server key and certificate of a clone, signed by the kept (fleet) CA or by
//! a CA the clone makes for itself when seal removed the template's.

use super::{TlsPaths, inroot};
use crate::cli::writer_certs::{self, Expiry};
use crate::config::Config;
use anyhow::{Context, Result, bail};
use chrono::Datelike;
use std::path::Path;

/// Validity of the certificates firstboot makes (as `mtkit writer certs` by default).
pub const DAYS: i64 = 3650;

/// What [`ensure_server_cert`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    /// A server key and certificate were there already (a retried first boot).
    Kept,
    /// Made; `new_ca` when the CA was made too.
    Made { new_ca: bool },
}

/// Makes the server key and certificate for this clone's host name and address when they
/// are missing, signing with the CA in the TLS folder (made when missing). Everything is
/// written under `root`.
pub fn ensure_server_cert(root: &Path, config: &Config) -> Result<Done> {
    let p = TlsPaths::of(config);
    let under =
        |abs: &Path| -> Result<std::path::PathBuf> { Ok(root.join(inroot::resolve(root, abs)?)) };
    let (cert, key) = (under(&p.server_cert)?, under(&p.server_key)?);
    if cert.is_file() && key.is_file() {
        return Ok(Done::Kept);
    }
    if p.ca_cert.file_name().is_none_or(|n| n != "ca-cert.pem") {
        bail!(
            "[writer.tls] ca = {}: firstboot makes certificates only with the CA as ca-cert.pem \
             and ca-key.pem in one folder (the layout of `mtkit writer certs`)",
            p.ca_cert.display()
        );
    }
    let ca_dir = under(crate::files::parent_dir(&p.ca_cert))?;
    std::fs::create_dir_all(&ca_dir).with_context(|| format!("creating {}", ca_dir.display()))?;
    let new_ca = !ca_dir.join("ca-cert.pem").exists();
    if !new_ca && !ca_dir.join("ca-key.pem").exists() {
        bail!(
            "{} is there without its key {}: the shared CA's key must be on the machine to sign \
             this clone's server certificate (or remove ca-cert.pem to let the clone make its own CA)",
            ca_dir.join("ca-cert.pem").display(),
            ca_dir.join("ca-key.pem").display()
        );
    }
    let end = chrono::Utc::now() + chrono::Duration::days(DAYS);
    let not_after = Expiry(end.year(), end.month() as u8, end.day() as u8);
    let hostname = &config.appliance.hostname;
    let (ca_params, ca_key, _) = writer_certs::ca(&ca_dir, hostname, not_after)?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let names = writer_certs::server_names(hostname, &config.network.ip);
    let (cert_pem, key_pem) = writer_certs::leaf(hostname, names, true, not_after, &issuer)?;
    for (path, text, mode) in [(&key, &key_pem, 0o600), (&cert, &cert_pem, 0o644)] {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        crate::files::write_atomic(path, text.as_bytes(), mode)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(Done::Made { new_ca })
}
