//! The config ISO of a clone: an ISO 9660 medium labelled like the kickstart ISO
//! (`[media] volume-label`) carrying `/mtkit/appliance.toml`, as `mtkit iso kickstart` makes
//! it (or any ISO with that file and label).
//!
//! Two ways to read it, the same file either way: with xorriso's `-osirrox` straight from
//! the image file or the device (no mount: the build host and the tests cannot mount ISO
//! 9660), or, in a guest without xorriso (CentOS 6 minimal), by mounting the labelled
//! device read-only for the time of the read.

use crate::external::{Tool, XORRISO};
use anyhow::{Context, Result, bail};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Where the config is looked for on the medium, in order: where mtkit's media carry it
/// (`iso/layout.toml`), else at the top.
pub fn config_paths() -> [&'static str; 2] {
    [&crate::media::layout::payload().config, "/appliance.toml"]
}

const MOUNT: Tool = Tool::new("mount", "mount", "util-linux-ng");
const UMOUNT: Tool = Tool::new("umount", "mount", "util-linux-ng");
const BLKID: Tool = crate::external::BLKID;

/// The ISO 9660 volume ID of an image file or device (primary volume descriptor, sector 16).
pub fn volume_id(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut pvd = [0u8; 2048];
    f.seek(SeekFrom::Start(16 * 2048))
        .and_then(|_| f.read_exact(&mut pvd))
        .with_context(|| format!("reading the volume descriptor of {}", path.display()))?;
    if pvd[0] != 1 || &pvd[1..6] != b"CD001" {
        bail!(
            "{} is not an ISO 9660 image (no primary volume descriptor at byte 32768)",
            path.display()
        );
    }
    Ok(String::from_utf8_lossy(&pvd[40..72]).trim_end().to_string())
}

/// The config found on a medium: its text and where it was read.
#[derive(Debug, Clone)]
pub struct Found {
    pub text: String,
    pub origin: String,
}

/// Reads the config from an image file or a device with xorriso (no mount). `None` when
/// the medium carries none of [`config_paths`]. A label other than `label` is warned about.
pub fn read_image(path: &Path, label: &str) -> Result<Option<Found>> {
    let id = volume_id(path)?;
    if id != label {
        tracing::warn!(
            medium = %path.display(),
            "volume label {id:?} is not {label:?} ([media] volume-label); reading it anyway"
        );
    }
    let scratch = tempfile::tempdir().context("creating a scratch folder")?;
    for (i, inside) in config_paths().iter().enumerate() {
        let out = scratch.path().join(format!("config-{i}.toml"));
        let o = XORRISO.output([
            "-osirrox".as_ref(),
            "on".as_ref(),
            "-indev".as_ref(),
            path.as_os_str(),
            "-extract".as_ref(),
            inside.as_ref(),
            out.as_os_str(),
        ])?;
        if o.status == 0 && out.is_file() {
            let text = std::fs::read_to_string(&out)
                .with_context(|| format!("reading {inside} from {}", path.display()))?;
            return Ok(Some(Found {
                text,
                origin: format!("{}:{inside}", path.display()),
            }));
        }
        tracing::debug!(medium = %path.display(), "{inside} not read: {}", o.stderr.trim());
    }
    Ok(None)
}

/// The device carrying the volume `label` in the running guest: udev's by-label link, else
/// `blkid -L`. `None` when no medium has that label.
pub fn find_label(label: &str) -> Option<PathBuf> {
    let link = Path::new("/dev/disk/by-label").join(label);
    if link.exists() {
        return Some(link);
    }
    let o = BLKID.output(["-L", label]).ok()?;
    let dev = o.stdout.trim();
    (o.status == 0 && !dev.is_empty()).then(|| PathBuf::from(dev))
}

/// Reads the config from the guest's medium labelled `label`: with xorriso when installed,
/// else by mounting it read-only (iso9660 only: a read-only mount of a target disk's
/// ext3/4 would still replay its journal) for the time of the read.
pub fn read_label(label: &str) -> Result<Option<Found>> {
    let Some(dev) = find_label(label) else {
        return Ok(None);
    };
    if XORRISO.locate().is_ok() {
        return read_image(&dev, label);
    }
    let dir = tempfile::Builder::new()
        .prefix("mtkit-config-iso-")
        .tempdir()
        .context("creating a mount point")?;
    MOUNT.run([
        "-t".as_ref(),
        "iso9660".as_ref(),
        "-o".as_ref(),
        "ro".as_ref(),
        dev.as_os_str(),
        dir.path().as_os_str(),
    ])?;
    let read = (|| -> Result<Option<Found>> {
        for inside in config_paths() {
            let p = dir.path().join(inside.trim_start_matches('/'));
            if p.is_file() {
                let text = std::fs::read_to_string(&p)
                    .with_context(|| format!("reading {}", p.display()))?;
                return Ok(Some(Found {
                    text,
                    origin: format!("{}:{inside}", dev.display()),
                }));
            }
        }
        Ok(None)
    })();
    if let Err(e) = UMOUNT.run([dir.path().as_os_str()]) {
        tracing::warn!("{e:#}");
    }
    read
}
