//! `mtkit writer certs`: a private CA, the server certificate and client certificates for
//! the writer's TLS, in the folder layout qemu's tls-creds-x509 and libnbd read.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{Datelike, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use super::Global;
use crate::error::bad_input;

/// Make TLS certificates for the writer: CA, server, one per client
///
/// Writes DIR/ca-cert.pem, DIR/ca-key.pem, DIR/server-cert.pem, DIR/server-key.pem and
/// DIR/clients/NAME/{ca-cert,client-cert,client-key}.pem. Point `[writer.tls] dir` at DIR
/// and give each replication source its DIR/clients/NAME folder (qemu:
/// `--object tls-creds-x509,dir=...,endpoint=client`; libnbd: `tls-certificates=...`).
/// Run again with more --client names to add clients: an existing CA and server
/// certificate are reused, existing files are never replaced without --force.
#[derive(Debug, clap::Args)]
pub struct CertsArgs {
    /// Folder to write the certificates to
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Client identity (certificate CN) to make a certificate for; repeat for more
    #[arg(long = "client", value_name = "NAME")]
    pub clients: Vec<String>,
    /// Validity of new certificates, in days
    #[arg(long, default_value_t = 3650)]
    pub days: u32,
    /// Replace existing server and client certificates (the CA is kept)
    #[arg(long)]
    pub force: bool,
}

impl CertsArgs {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let loaded = g.load_config()?;
        let c = &loaded.config;
        for name in &self.clients {
            check_client_name(name)?;
        }
        let not_after = days_from_now(self.days)?;
        std::fs::create_dir_all(&self.out)
            .with_context(|| format!("creating {}", self.out.display()))?;
        let (ca_params, ca_key, ca_pem) = ca(&self.out, &c.appliance.hostname, not_after)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let server_cert = self.out.join("server-cert.pem");
        if self.force || !server_cert.exists() {
            let names = server_names(&c.appliance.hostname, &c.network.ip);
            let (cert, key) = leaf(&c.appliance.hostname, names, true, not_after, &issuer)?;
            write(&self.out.join("server-key.pem"), &key, 0o600)?;
            write(&server_cert, &cert, 0o644)?;
            tracing::info!(path = %server_cert.display(), "server certificate written");
        }
        for name in &self.clients {
            let dir = self.out.join("clients").join(name);
            let cert_path = dir.join("client-cert.pem");
            if cert_path.exists() && !self.force {
                return Err(bad_input(format!(
                    "{} exists; use --force to replace it",
                    cert_path.display()
                )));
            }
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let (cert, key) = leaf(name, Vec::new(), false, not_after, &issuer)?;
            write(&dir.join("ca-cert.pem"), &ca_pem, 0o644)?;
            write(&dir.join("client-key.pem"), &key, 0o600)?;
            write(&cert_path, &cert, 0o644)?;
            tracing::info!(client = %name, dir = %dir.display(), "client certificate written");
        }
        println!("{}", self.out.display());
        Ok(())
    }
}

/// Client names become folder names and certificate CNs: keep them plain.
fn check_client_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(bad_input(format!(
            "--client {name:?}: use letters, digits, '-', '_' and '.' (not first)"
        )))
    }
}

/// A certificate's last day (year, month, day), UTC.
#[derive(Debug, Clone, Copy)]
pub struct Expiry(pub i32, pub u8, pub u8);

fn days_from_now(days: u32) -> anyhow::Result<Expiry> {
    let end = Utc::now()
        .checked_add_signed(chrono::Duration::days(days.into()))
        .ok_or_else(|| bad_input(format!("--days {days} is too far")))?;
    Ok(Expiry(end.year(), end.month() as u8, end.day() as u8))
}

/// The names the server certificate is valid for: the appliance's host name (full and
/// short), its IP, and loopback for clients on the appliance itself.
pub fn server_names(hostname: &str, ip: &str) -> Vec<SanType> {
    let mut names = Vec::new();
    let mut dns = |n: &str| {
        if let Ok(n) = n.to_string().try_into() {
            names.push(SanType::DnsName(n));
        }
    };
    if !hostname.is_empty() {
        dns(hostname);
        if let Some((short, _)) = hostname.split_once('.') {
            dns(short);
        }
    }
    dns("localhost");
    let mut ips: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
    if let Ok(ip) = ip.parse() {
        ips.insert(0, ip);
    }
    names.extend(ips.into_iter().map(SanType::IpAddress));
    names
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p
}

/// Loads the CA in `dir`, or makes one (`mtkit firstboot` uses it too, for a clone's server
/// certificate). Returns its parameters (enough to sign with), key
/// and certificate PEM.
pub fn ca(
    dir: &Path,
    hostname: &str,
    not_after: Expiry,
) -> anyhow::Result<(CertificateParams, KeyPair, String)> {
    let cert_path = dir.join("ca-cert.pem");
    let key_path = dir.join("ca-key.pem");
    if cert_path.exists() {
        let pem = std::fs::read_to_string(&cert_path)
            .with_context(|| format!("reading {}", cert_path.display()))?;
        let key_pem = std::fs::read_to_string(&key_path).with_context(|| {
            format!(
                "reading {} (the CA key, needed to sign)",
                key_path.display()
            )
        })?;
        let key = KeyPair::from_pem(&key_pem)
            .map_err(|e| bad_input(format!("{}: {e}", key_path.display())))?;
        use rustls::pki_types::pem::PemObject;
        let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| bad_input(format!("{}: {e}", cert_path.display())))?;
        // Signing needs only the CA's subject (its CN, as this command writes it) and key.
        let cn = crate::writer::tls::cert_identity(&der)
            .ok_or_else(|| bad_input(format!("{}: no subject CN", cert_path.display())))?;
        return Ok((ca_params(&cn), key, pem));
    }
    let cn = format!("mtkit writer CA {hostname}");
    let mut params = ca_params(&cn);
    params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
    let key = KeyPair::generate().context("generating the CA key")?;
    let cert = params.self_signed(&key).context("signing the CA")?;
    let pem = cert.pem();
    write(&key_path, &key.serialize_pem(), 0o600)?;
    write(&cert_path, &pem, 0o644)?;
    tracing::info!(path = %cert_path.display(), "CA written");
    Ok((params, key, pem))
}

/// A certificate signed by the CA: (certificate PEM, key PEM).
pub fn leaf(
    cn: &str,
    names: Vec<SanType>,
    server: bool,
    not_after: Expiry,
    issuer: &Issuer<'_, KeyPair>,
) -> anyhow::Result<(String, String)> {
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.subject_alt_names = names;
    p.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
    p.use_authority_key_identifier_extension = true;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![if server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    let key = KeyPair::generate().context("generating a key")?;
    let cert = p
        .signed_by(&key, issuer)
        .with_context(|| format!("signing the certificate for {cn}"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn write(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    crate::files::write_atomic(path, text.as_bytes(), mode)
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_names() {
        assert!(check_client_name("ps-azure-01").is_ok());
        assert!(check_client_name("a.b_c").is_ok());
        for bad in ["", "../x", ".hidden", "a/b", "a b"] {
            assert!(check_client_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn server_names_cover_host_ip_and_loopback() {
        let n = server_names("mt01.example.local", "192.0.2.10");
        let s = format!("{n:?}");
        for want in [
            "mt01.example.local",
            "\"mt01\"",
            "localhost",
            "192.0.2.10",
            "127.0.0.1",
        ] {
            assert!(s.contains(want), "{want} in {s}");
        }
        // DHCP: no IP configured.
        assert_eq!(server_names("mt01", "").len(), 4);
    }
}
