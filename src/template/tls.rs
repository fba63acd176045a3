//! The writer's server key and certificate of a clone, signed by the kept (fleet) CA or by
//! a CA the clone makes for itself when seal removed the template's.

use super::{TlsPaths, inroot};
use crate::config::Config;
use crate::writer::certs;
use anyhow::{Context, Result, bail};
use std::path::Path;

/// Validity of the certificates firstboot makes (as `mtkit writer certs` by default).
pub const DAYS: u32 = certs::DEFAULT_DAYS;

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
    let ca_dir = inroot::resolve(root, crate::files::parent_dir(&p.ca_cert))?;
    let new_ca = !root.join(&ca_dir).join("ca-cert.pem").exists();
    if !new_ca && !root.join(&ca_dir).join("ca-key.pem").exists() {
        bail!(
            "{} is there without its key {}: the shared CA's key must be on the machine to sign \
             this clone's server certificate (or remove ca-cert.pem to let the clone make its own CA)",
            root.join(&ca_dir).join("ca-cert.pem").display(),
            root.join(&ca_dir).join("ca-key.pem").display()
        );
    }
    // The clone's names are the ones firstboot just wrote into the config, not the
    // template's host name that the machine may still carry.
    let pki = certs::Pki::open_under(root, &ca_dir)?;
    let id = certs::ServerIdentity::of(config, None);
    let not_after = certs::Expiry::days_from_now(DAYS)?;
    pki.ensure_server(&id, not_after, true)
        .with_context(|| format!("making the server certificate in {}", pki.dir().display()))?;
    Ok(Done::Made { new_ca })
}
