//! The writer's TLS material: a private CA, the server certificate and client certificates,
//! in the folder layout qemu's `tls-creds-x509` and libnbd's `tls-certificates=` read. One
//! library for `mtkit writer certs`, `mtkit apply`, the service's first start and a
//! template's first boot; and the reading side: the files `[writer.tls]` names, loaded into
//! the rustls config the NBD server's TLS sessions run on ([`server_config`]), so one
//! module knows the file names.
//!
//! Every file is written to a temp file (O_EXCL), synced, then linked to its name, which
//! fails when the name exists: two runs at once, or a crash half-way, never truncate or
//! replace a CA; only an explicit `--force` replaces server and client certificates. Under
//! a root (apply, the service) the folders are walked by [`Root`] with links refused, so a
//! planted link cannot send a key out of the root.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use chrono::{Datelike, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType,
};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::config::{BootProto, Config, WriterTls};
use crate::error::bad_input;
use crate::files::{Links, Root};

/// Where the appliance keeps its own CA and server certificate (`[writer.tls]` unset).
pub const DEFAULT_DIR: &str = "/etc/mtkit/tls";
pub const CA_CERT: &str = "ca-cert.pem";
pub const CA_KEY: &str = "ca-key.pem";
pub const SERVER_CERT: &str = "server-cert.pem";
pub const SERVER_KEY: &str = "server-key.pem";
pub const CLIENTS: &str = "clients";
/// Validity of certificates made without a `--days`: ten years.
pub const DEFAULT_DAYS: u32 = 3650;
/// How to issue a client certificate, for status, doctor and SUMMARY.txt.
pub const ISSUE_CLIENT: &str = "mtkit writer certs --client NAME";

/// PEM files are a few KiB: a bigger "key" is not one (and is not read into memory).
const MAX_PEM: u64 = 1 << 20;

/// A certificate's last day (year, month, day), UTC.
#[derive(Debug, Clone, Copy)]
pub struct Expiry(pub i32, pub u8, pub u8);

impl Expiry {
    pub fn days_from_now(days: u32) -> Result<Expiry> {
        let end = Utc::now()
            .checked_add_signed(chrono::Duration::days(days.into()))
            .ok_or_else(|| bad_input(format!("--days {days} is too far")))?;
        Ok(Expiry(end.year(), end.month() as u8, end.day() as u8))
    }
}

/// The names the server certificate is valid for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerIdentity {
    pub hostnames: Vec<String>,
    pub ips: Vec<IpAddr>,
}

impl ServerIdentity {
    /// `[appliance] hostname` (full and short), `[network] ip` when static, and the
    /// machine's own host name at generation time when it is a real one: clients reach the
    /// appliance by any of them.
    pub fn of(cfg: &Config, machine: Option<&str>) -> ServerIdentity {
        let mut id = ServerIdentity::default();
        let mut add = |n: &str| {
            let n = n.trim().trim_end_matches('.').to_ascii_lowercase();
            let placeholder = n.is_empty() || n == "localhost" || n.starts_with("localhost.");
            if !placeholder && !id.hostnames.contains(&n) {
                id.hostnames.push(n);
            }
        };
        for name in [Some(cfg.appliance.hostname.as_str()), machine]
            .into_iter()
            .flatten()
        {
            add(name);
            if let Some((short, _)) = name.split_once('.') {
                add(short);
            }
        }
        if cfg.network.bootproto == BootProto::Static
            && let Ok(ip) = cfg.network.ip.parse()
        {
            id.ips.push(ip);
        }
        id
    }

    /// Subject alternative names: the host names and IPs, and loopback for clients on the
    /// appliance itself.
    pub fn sans(&self) -> Vec<SanType> {
        let mut names = Vec::new();
        for n in self
            .hostnames
            .iter()
            .map(String::as_str)
            .chain(["localhost"])
        {
            // Not every string is a DNS name (rcgen refuses some): skip those.
            if let Ok(n) = n.to_string().try_into() {
                names.push(SanType::DnsName(n));
            }
        }
        let mut ips = self.ips.clone();
        for lo in ["127.0.0.1", "::1"] {
            let lo: IpAddr = lo.parse().expect("loopback address");
            if !ips.contains(&lo) {
                ips.push(lo);
            }
        }
        names.extend(ips.into_iter().map(SanType::IpAddress));
        names
    }

    /// The certificate's CN: the first host name.
    fn cn(&self) -> &str {
        self.hostnames.first().map_or("localhost", String::as_str)
    }
}

/// This machine's host name now (`gethostname`), when it has one.
pub fn machine_hostname() -> Option<String> {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty() && h != "(none)")
}

/// Client names become folder names and certificate CNs: keep them plain.
pub fn check_client_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(bad_input(format!(
            "--client {name:?}: use up to 64 letters, digits, '-', '_' and '.' (not first)"
        )))
    }
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p
}

/// A certificate signed by the CA: (certificate PEM, key PEM).
pub fn leaf(
    cn: &str,
    names: Vec<SanType>,
    server: bool,
    not_after: Expiry,
    issuer: &Issuer<'_, KeyPair>,
) -> Result<(String, String)> {
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

/// A folder of TLS material: the CA, the server pair, `clients/NAME/`.
pub struct Pki {
    dir: Root,
    /// Folders `open_under` made (relative to the root), outermost first.
    made_dirs: Vec<PathBuf>,
}

/// The CA, loaded or made, ready to sign.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
    /// Made by this run (so an older server certificate is not signed by it).
    made: bool,
}

impl Pki {
    /// The folder at `path` (a path the user gave: links in it are theirs to make); made
    /// with mode 0700 when missing.
    pub fn open(path: &Path) -> Result<Pki> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        if !path.exists() {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            match std::fs::DirBuilder::new().mode(0o700).create(path) {
                Ok(()) => std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
                    .with_context(|| format!("setting mode of {}", path.display()))?,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
            }
        }
        Ok(Pki {
            dir: Root::open_folder(path)?,
            made_dirs: Vec::new(),
        })
    }

    /// `rel` (e.g. `etc/mtkit/tls`) under `root`, made when missing (the last folder with
    /// mode 0700), every component opened without following links: a link on the way is
    /// bad input, never followed out of the root.
    pub fn open_under(root: &Path, rel: &Path) -> Result<Pki> {
        let root = Root::open(root)?;
        // Intermediate folders as any tool makes them; the TLS folder itself private.
        let mut made_dirs = Vec::new();
        if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
            made_dirs = root.create_dirs_with(parent, 0o755, Links::Refuse)?;
        }
        made_dirs.extend(root.create_dirs_with(rel, 0o700, Links::Refuse)?);
        let dir = root
            .sub(rel, Links::Refuse)?
            .with_context(|| format!("{} vanished", root.show(rel).display()))?;
        Ok(Pki { dir, made_dirs })
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `name` in the folder, for messages.
    fn at(&self, name: &str) -> PathBuf {
        self.dir.show(Path::new(name))
    }

    /// Makes what is missing of the CA and the server certificate; an existing CA is never
    /// replaced, an existing server certificate only with `replace_server`. Returns the
    /// files written.
    pub fn ensure_server(
        &self,
        id: &ServerIdentity,
        not_after: Expiry,
        replace_server: bool,
    ) -> Result<Vec<PathBuf>> {
        let mut made = Vec::new();
        let ca = self.ca(id.cn(), not_after, &mut made)?;
        let has_cert = self.dir.exists(Path::new(SERVER_CERT))?;
        let has_key = self.dir.exists(Path::new(SERVER_KEY))?;
        if has_cert && !has_key && !replace_server {
            return Err(bad_input(format!(
                "{} exists without {SERVER_KEY}: the server cannot use it; run `mtkit writer \
                 certs --force` to make a new server certificate",
                self.at(SERVER_CERT).display()
            )));
        }
        // A CA made now did not sign an older server certificate: replace that one.
        if has_cert && ca.made && !replace_server {
            tracing::warn!(dir = %self.dir.path().display(), "a new CA was made: replacing the server certificate it did not sign");
        }
        if has_cert && !replace_server && !ca.made {
            return Ok(made);
        }
        let (cert, key) = leaf(id.cn(), id.sans(), true, not_after, &ca.issuer)?;
        if has_cert || has_key {
            self.dir
                .replace(Path::new(SERVER_KEY), key.as_bytes(), 0o600)?;
            self.dir
                .replace(Path::new(SERVER_CERT), cert.as_bytes(), 0o644)?;
        } else {
            // Key first: a certificate is never there without its key.
            self.dir
                .create_new(Path::new(SERVER_KEY), key.as_bytes(), 0o600)?;
            if !self
                .dir
                .create_new(Path::new(SERVER_CERT), cert.as_bytes(), 0o644)?
            {
                anyhow::bail!(
                    "{} appeared while it was being made: another mtkit made it; run again",
                    self.at(SERVER_CERT).display()
                );
            }
        }
        made.push(self.at(SERVER_KEY));
        made.push(self.at(SERVER_CERT));
        tracing::info!(path = %self.at(SERVER_CERT).display(), names = ?id.hostnames, ips = ?id.ips, "server certificate written");
        Ok(made)
    }

    /// Signs a client certificate with the CA into `clients/NAME/` (with the CA certificate
    /// beside it). An existing one is replaced only with `force`. Returns the folder.
    pub fn issue_client(&self, name: &str, not_after: Expiry, force: bool) -> Result<PathBuf> {
        check_client_name(name)?;
        let ca = self.existing_ca()?;
        let dir = private_sub(&private_sub(&self.dir, CLIENTS)?, name)?;
        let cert_path = dir.show(Path::new("client-cert.pem"));
        if dir.exists(Path::new("client-cert.pem"))? && !force {
            return Err(bad_input(format!(
                "{} exists; use --force to replace it",
                cert_path.display()
            )));
        }
        let (cert, key) = leaf(name, Vec::new(), false, not_after, &ca.issuer)?;
        dir.replace(Path::new("ca-cert.pem"), ca.pem.as_bytes(), 0o644)?;
        dir.replace(Path::new("client-key.pem"), key.as_bytes(), 0o600)?;
        dir.replace(Path::new("client-cert.pem"), cert.as_bytes(), 0o644)?;
        tracing::info!(client = %name, dir = %dir.path().display(), "client certificate written");
        Ok(dir.path().to_path_buf())
    }

    /// The clients that have a certificate here.
    pub fn clients(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.at(CLIENTS))
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.path().join("client-cert.pem").is_file())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The CA to sign with: loaded, or made when neither file exists.
    fn ca(&self, hostname: &str, not_after: Expiry, made: &mut Vec<PathBuf>) -> Result<Ca> {
        if self.dir.exists(Path::new(CA_CERT))? {
            return self.existing_ca();
        }
        // A key without its certificate (a crash between the two) is reused: nobody can
        // hold a certificate of it yet.
        let key = match read_pem(&self.dir, CA_KEY)? {
            Some(pem) => KeyPair::from_pem(&pem)
                .map_err(|e| bad_input(format!("{}: {e}", self.at(CA_KEY).display())))?,
            None => {
                let key = KeyPair::generate().context("generating the CA key")?;
                if !self
                    .dir
                    .create_new(Path::new(CA_KEY), key.serialize_pem().as_bytes(), 0o600)?
                {
                    // Another run made it just now: use that CA.
                    return self.existing_ca();
                }
                made.push(self.at(CA_KEY));
                key
            }
        };
        let mut params = ca_params(&format!("mtkit writer CA {hostname}"));
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        let cert = params.self_signed(&key).context("signing the CA")?;
        let pem = cert.pem();
        if !self
            .dir
            .create_new(Path::new(CA_CERT), pem.as_bytes(), 0o644)?
        {
            return self.existing_ca();
        }
        made.push(self.at(CA_CERT));
        tracing::info!(path = %self.at(CA_CERT).display(), "CA written");
        Ok(Ca {
            issuer: Issuer::new(params, key),
            pem,
            made: true,
        })
    }

    fn existing_ca(&self) -> Result<Ca> {
        let cert_path = self.at(CA_CERT);
        let key_path = self.at(CA_KEY);
        let pem = read_pem(&self.dir, CA_CERT)?.ok_or_else(|| {
            bad_input(format!(
                "{} missing: make the CA first (`mtkit writer certs`)",
                cert_path.display()
            ))
        })?;
        let key_pem = read_pem(&self.dir, CA_KEY)?.ok_or_else(|| {
            bad_input(format!(
                "{} missing: the CA key is needed to sign (copy it back, or sign elsewhere)",
                key_path.display()
            ))
        })?;
        let key = KeyPair::from_pem(&key_pem)
            .map_err(|e| bad_input(format!("{}: {e}", key_path.display())))?;
        let der = CertificateDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| bad_input(format!("{}: {e}", cert_path.display())))?;
        // The certificate embeds its public key as is: a key that is not in it is another
        // CA's, and what it signed would not verify.
        let public = key.der_bytes();
        if public.is_empty() || !der.windows(public.len()).any(|w| w == public) {
            return Err(bad_input(format!(
                "{} does not belong to {}: put the CA's own key there",
                key_path.display(),
                cert_path.display()
            )));
        }
        // Signing needs only the CA's subject (its CN, as this module writes it) and key.
        let cn = crate::writer::access::cert_identity(&der)
            .ok_or_else(|| bad_input(format!("{}: no subject CN", cert_path.display())))?;
        Ok(Ca {
            issuer: Issuer::new(ca_params(&cn), key),
            pem,
            made: false,
        })
    }
}

/// The appliance's own TLS folder under `root` (`<root>/etc/mtkit/tls`).
pub fn default_dir(root: &Path) -> PathBuf {
    crate::host::under(root, Path::new(DEFAULT_DIR))
}

/// What [`ensure_default`] would write under `root`: the names missing now.
pub fn missing_default(root: &Path) -> Vec<&'static str> {
    let dir = default_dir(root);
    [CA_KEY, CA_CERT, SERVER_KEY, SERVER_CERT]
        .into_iter()
        .filter(|f| std::fs::symlink_metadata(dir.join(f)).is_err())
        .collect()
}

/// What [`ensure_default`] did.
#[derive(Debug, Default)]
pub struct Made {
    /// The TLS folder under the root.
    pub dir: PathBuf,
    /// Files written (full paths).
    pub files: Vec<PathBuf>,
    /// Folders made, relative to the root (`etc/mtkit`, `etc/mtkit/tls`), outermost first.
    pub dirs: Vec<PathBuf>,
}

/// The appliance's own CA and server certificate in `<root>/etc/mtkit/tls`, made when
/// missing (apply, the service's first start, a clone's first boot).
pub fn ensure_default(root: &Path, cfg: &Config) -> Result<Made> {
    let pki = Pki::open_under(root, default_rel())?;
    let id = ServerIdentity::of(cfg, machine_hostname().as_deref());
    let files = pki.ensure_server(&id, Expiry::days_from_now(DEFAULT_DAYS)?, false)?;
    Ok(Made {
        dir: pki.dir().to_path_buf(),
        files,
        dirs: pki.made_dirs,
    })
}

/// A small note mtkit keeps in the TLS folder under `root` (apply's record of what it
/// made); `None` when the folder or the note is not there.
pub fn read_note(root: &Path, name: &str) -> Result<Option<String>> {
    match existing_default(root)? {
        Some(dir) => read_pem(&dir, name),
        None => Ok(None),
    }
}

/// Writes (or replaces) a note in the TLS folder under `root` (which must exist).
pub fn write_note(root: &Path, name: &str, text: &str) -> Result<()> {
    let dir = existing_default(root)?
        .ok_or_else(|| anyhow::anyhow!("{} does not exist", default_dir(root).display()))?;
    dir.replace(Path::new(name), text.as_bytes(), 0o600)
}

/// The TLS folder under `root` when every folder of it exists (links refused).
fn existing_default(root: &Path) -> Result<Option<Root>> {
    Root::open(root)?.sub(default_rel(), Links::Refuse)
}

/// `etc/mtkit/tls`: the default folder relative to a root.
pub fn default_rel() -> &'static Path {
    Path::new(DEFAULT_DIR).strip_prefix("/").expect("absolute")
}

/// Removes files `names` of the TLS folder under `root`, then the folders `dirs` (relative
/// to the root, innermost first) when empty; nothing is followed through a link. Names
/// come from a record on disk: only plain names are taken. Returns what was removed.
pub fn remove_under(root: &Path, names: &[String], dirs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let Some(dir) = existing_default(root)? else {
        return Ok(removed);
    };
    for n in names {
        let plain = !n.is_empty() && !n.contains('/') && n != "." && n != "..";
        if !plain {
            return Err(bad_input(format!(
                "{}: {n:?} is not a file name of it",
                dir.path().display()
            )));
        }
        if dir.remove(Path::new(n))? {
            removed.push(dir.show(Path::new(n)));
        }
    }
    drop(dir);
    let root_dir = Root::open(root)?;
    for d in dirs {
        let (Some(parent), Some(name)) = (d.parent(), d.file_name()) else {
            continue;
        };
        let p = if parent.as_os_str().is_empty() {
            Some(root_dir.try_clone()?)
        } else {
            root_dir.sub(parent, Links::Refuse)?
        };
        // Something else is in it now (or it is gone): it stays.
        if let Some(p) = p
            && p.remove_dir(Path::new(name))?
        {
            removed.push(root.join(d));
        }
    }
    Ok(removed)
}

/// The text of the PEM file (or note) `name` in `dir`; `None` when it does not exist. A
/// link there is refused, never followed; so is anything but a regular file under 1 MiB.
fn read_pem(dir: &Root, name: &str) -> Result<Option<String>> {
    let Some(text) = dir.read_text(Path::new(name), Links::Refuse)? else {
        return Ok(None);
    };
    if text.len() as u64 > MAX_PEM {
        return Err(bad_input(format!(
            "{} is not a PEM file (a regular file under 1 MiB)",
            dir.show(Path::new(name)).display()
        )));
    }
    Ok(Some(text))
}

/// The sub-folder `name` of `dir`, made with mode 0700 when missing; a link there is
/// refused.
fn private_sub(dir: &Root, name: &str) -> Result<Root> {
    let name = Path::new(name);
    dir.create_dirs_with(name, 0o700, Links::Refuse)?;
    dir.sub(name, Links::Refuse)?
        .with_context(|| format!("{} vanished", dir.show(name).display()))
}

/// The files of a `[writer.tls]` section: `dir` gives defaults, explicit paths win.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    pub fn resolve(t: &WriterTls) -> Result<TlsFiles> {
        let from_dir = |name: &str| t.dir.as_ref().map(|d| d.join(name));
        let pick = |explicit: &Option<PathBuf>, name: &str, key: &str| {
            explicit.clone().or_else(|| from_dir(name)).ok_or_else(|| {
                bad_input(format!(
                    "[writer.tls] needs `dir` (holding {name}) or `{key}`"
                ))
            })
        };
        Ok(TlsFiles {
            ca: pick(&t.ca, CA_CERT, "ca")?,
            cert: pick(&t.cert, SERVER_CERT, "cert")?,
            key: pick(&t.key, SERVER_KEY, "key")?,
        })
    }
}

fn load_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad_input(format!("reading certificates from {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(bad_input(format!(
            "{} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// Builds the server's TLS config: its certificate, and client certificates required and
/// verified against the CA (expired or foreign ones fail the handshake).
pub fn server_config(t: &WriterTls) -> Result<Arc<ServerConfig>> {
    let files = TlsFiles::resolve(t)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for ca in load_pem_certs(&files.ca)? {
        roots
            .add(ca)
            .with_context(|| format!("adding the CA in {}", files.ca.display()))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .context("building the client certificate verifier")?;
    let certs = load_pem_certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        bad_input(format!(
            "reading the private key {}: {e}",
            files.key.display()
        ))
    })?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .with_context(|| format!("server certificate {}", files.cert.display()))?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn client_names() {
        assert!(check_client_name("ps-azure-01").is_ok());
        assert!(check_client_name("a.b_c").is_ok());
        for bad in ["", "../x", ".hidden", "a/b", "a b", &"x".repeat(65)] {
            assert!(check_client_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn server_names_cover_config_machine_ip_and_loopback() {
        // A static network with a host name (the defaults are DHCP with the name it gives).
        let mut cfg = Config::default();
        cfg.appliance.hostname = "mt01.example.local".into();
        cfg.network.bootproto = BootProto::Static;
        cfg.network.ip = "192.0.2.10".into();
        let id = ServerIdentity::of(&cfg, Some("build-host.lab"));
        assert_eq!(
            id.hostnames,
            ["mt01.example.local", "mt01", "build-host.lab", "build-host"]
        );
        assert_eq!(id.ips, ["192.0.2.10".parse::<IpAddr>().unwrap()]);
        let s = format!("{:?}", id.sans());
        for want in ["mt01.example.local", "\"mt01\"", "build-host", "localhost"] {
            assert!(s.contains(want), "{want} in {s}");
        }
        for ip in ["192.0.2.10", "127.0.0.1", "::1"] {
            assert!(s.contains(ip), "{ip} in {s}");
        }
        // DHCP: no configured IP; an installer's "localhost" is no name of the appliance.
        let mut dhcp = cfg.clone();
        dhcp.network.bootproto = BootProto::Dhcp;
        let id = ServerIdentity::of(&dhcp, Some("localhost.localdomain"));
        assert!(id.ips.is_empty());
        assert_eq!(id.hostnames, ["mt01.example.local", "mt01"]);
    }

    #[test]
    fn ensure_makes_a_private_pki_once_and_never_replaces_the_ca() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let cfg = Config::default();
        assert_eq!(missing_default(root).len(), 4);
        let made = ensure_default(root, &cfg).unwrap();
        let dir = made.dir.clone();
        assert_eq!(dir, root.join("etc/mtkit/tls"));
        assert_eq!(made.files.len(), 4, "{made:?}");
        let want: Vec<PathBuf> = ["etc", "etc/mtkit", "etc/mtkit/tls"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(made.dirs, want);
        assert!(missing_default(root).is_empty());
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(CA_KEY)), 0o600);
        assert_eq!(mode(&dir.join(SERVER_KEY)), 0o600);
        assert_eq!(mode(&root.join("etc/mtkit")), 0o755);
        let ca = std::fs::read(dir.join(CA_CERT)).unwrap();
        let server = std::fs::read(dir.join(SERVER_CERT)).unwrap();
        // Again: nothing made, nothing replaced, no temp files left.
        let made = ensure_default(root, &cfg).unwrap();
        assert!(made.files.is_empty() && made.dirs.is_empty(), "{made:?}");
        assert_eq!(std::fs::read(dir.join(CA_CERT)).unwrap(), ca);
        assert_eq!(std::fs::read(dir.join(SERVER_CERT)).unwrap(), server);
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 4, "{names:?}");
        // The server certificate is lost: a new one from the same CA.
        std::fs::remove_file(dir.join(SERVER_CERT)).unwrap();
        std::fs::remove_file(dir.join(SERVER_KEY)).unwrap();
        let made = ensure_default(root, &cfg).unwrap();
        assert_eq!(made.files.len(), 2);
        assert_eq!(std::fs::read(dir.join(CA_CERT)).unwrap(), ca);
        // Clients are signed by that CA, beside it.
        let pki = Pki::open(&dir).unwrap();
        let c = pki
            .issue_client("x", Expiry::days_from_now(1).unwrap(), false)
            .unwrap();
        assert_eq!(std::fs::read(c.join("ca-cert.pem")).unwrap(), ca);
        assert_eq!(mode(&c.join("client-key.pem")), 0o600);
        assert_eq!(pki.clients(), ["x"]);
        let e = pki
            .issue_client("x", Expiry::days_from_now(1).unwrap(), false)
            .unwrap_err();
        assert_eq!(crate::error::exit_code(&e), 2);
    }

    #[test]
    fn a_ca_key_of_another_ca_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        let id = ServerIdentity::of(&Config::default(), None);
        let exp = Expiry::days_from_now(1).unwrap();
        Pki::open(&a)
            .unwrap()
            .ensure_server(&id, exp, false)
            .unwrap();
        Pki::open(&b)
            .unwrap()
            .ensure_server(&id, exp, false)
            .unwrap();
        std::fs::copy(b.join(CA_KEY), a.join(CA_KEY)).unwrap();
        let e = Pki::open(&a)
            .unwrap()
            .issue_client("x", exp, false)
            .unwrap_err();
        assert!(e.to_string().contains("does not belong"), "{e}");
    }

    #[test]
    fn links_under_the_root_are_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let (root, outside) = (t.path().join("root"), t.path().join("outside"));
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("etc/mtkit")).unwrap();
        let e = ensure_default(&root, &Config::default()).unwrap_err();
        assert_eq!(crate::error::exit_code(&e), 2, "{e:#}");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        // A planted key link in the folder itself is not followed either.
        std::fs::remove_file(root.join("etc/mtkit")).unwrap();
        std::fs::create_dir_all(root.join("etc/mtkit/tls")).unwrap();
        std::os::unix::fs::symlink(outside.join("k"), root.join("etc/mtkit/tls/ca-key.pem"))
            .unwrap();
        let e = ensure_default(&root, &Config::default()).unwrap_err();
        assert_eq!(crate::error::exit_code(&e), 2, "{e:#}");
        assert!(!outside.join("k").exists());
    }

    #[test]
    fn tls_files_resolve() {
        let t = WriterTls {
            dir: Some("/d".into()),
            key: Some("/k.pem".into()),
            ..WriterTls::default()
        };
        let f = TlsFiles::resolve(&t).unwrap();
        assert_eq!(f.ca, Path::new("/d/ca-cert.pem"));
        assert_eq!(f.cert, Path::new("/d/server-cert.pem"));
        assert_eq!(f.key, Path::new("/k.pem"));
        assert!(TlsFiles::resolve(&WriterTls::default()).is_err());
    }
}
