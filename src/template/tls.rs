//! The writer's server key and certificate of a clone, signed by the kept (fleet) CA or by
//! a CA the clone makes for itself when seal removed the template's.

use super::TlsPaths;
use crate::config::Config;
use crate::files::Root;
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
    let r = Root::open(root)?;
    let p = TlsPaths::of(config);
    if r.is_file(&r.resolve(&p.server_cert)?)? && r.is_file(&r.resolve(&p.server_key)?)? {
        return Ok(Done::Kept);
    }
    if p.ca_cert.file_name().is_none_or(|n| n != "ca-cert.pem") {
        bail!(
            "[writer.tls] ca = {}: firstboot makes certificates only with the CA as ca-cert.pem \
             and ca-key.pem in one folder (the layout of `mtkit writer certs`)",
            p.ca_cert.display()
        );
    }
    let ca_dir = r.resolve(crate::files::parent_dir(&p.ca_cert))?;
    let (ca_cert, ca_key) = (ca_dir.join("ca-cert.pem"), ca_dir.join("ca-key.pem"));
    let new_ca = !r.exists(&ca_cert)?;
    if !new_ca && !r.exists(&ca_key)? {
        bail!(
            "{} is there without its key {}: the shared CA's key must be on the machine to sign \
             this clone's server certificate (or remove ca-cert.pem to let the clone make its own CA)",
            r.show(&ca_cert).display(),
            r.show(&ca_key).display()
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
