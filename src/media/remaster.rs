//! Remastering a CentOS/RHEL 6 install ISO: check what it is, add the payload and a
//! default "Install mtkit master target" boot entry (BIOS and EFI), keep its volume ID
//! and El Torito records, make it isohybrid, and write the result beside the output
//! path first. The source is only ever read.

use super::xorriso::{self, BootReport};
use super::{Payload, PendingOutput, Progress, bootcfg, layout, stage};
use crate::error::bad_input;
use crate::external::MCOPY;
use anyhow::{Context, Result};
use std::ffi::OsString;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// Where syslinux's isohybrid MBR template lives on Debian, CentOS/Fedora and others.
const ISOHDPFX_PATHS: &[&str] = &[
    "/usr/lib/ISOLINUX/isohdpfx.bin",
    "/usr/share/syslinux/isohdpfx.bin",
    "/usr/lib/syslinux/mbr/isohdpfx.bin",
    "/usr/lib/syslinux/isohdpfx.bin",
];

/// Choices for a remaster.
pub struct RemasterOptions<'a> {
    pub progress: &'a Progress,
    /// isohybrid MBR template for a source that has none; `None` looks in the usual places.
    pub mbr_template: Option<PathBuf>,
}

/// What the remaster found and did.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RemasterReport {
    /// e.g. "CentOS 6.6 x86_64".
    pub release: String,
    pub volume_id: String,
    pub bios_image: String,
    pub efi_image: Option<String>,
    /// The source already had an isohybrid MBR (kept) or one was added.
    pub isohybrid_added: bool,
    /// ISO paths whose boot menus got the mtkit entry.
    pub boot_configs: Vec<String>,
}

/// What the source's ISO 9660 primary volume descriptor says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeHeader {
    pub volume_id: String,
    /// Bytes the volume claims: space size times logical block size.
    pub size: u64,
}

/// Reads the primary volume descriptor at sector 16 and checks the file holds the whole
/// volume (a truncated download fails here, before xorriso reads garbage).
pub fn read_volume_header(path: &Path) -> Result<VolumeHeader> {
    // Checked before the open: opening a FIFO blocks until a writer comes.
    if let Ok(m) = std::fs::metadata(path) {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let t = m.file_type();
        if t.is_fifo() || t.is_socket() || t.is_char_device() {
            return Err(bad_input(format!(
                "the source ISO {} is {}: give an ISO file or the block device holding the disc",
                path.display(),
                crate::files::root::kind_name(m.mode())
            )));
        }
    }
    let mut f = std::fs::File::open(path).map_err(|e| {
        bad_input(format!(
            "cannot open the source ISO {}: {e}",
            path.display()
        ))
    })?;
    let meta = f
        .metadata()
        .with_context(|| format!("reading {}", path.display()))?;
    // A folder opens fine on Linux; only the read would fail, as an I/O error (exit 1).
    if meta.is_dir() {
        return Err(bad_input(format!(
            "the source ISO {} is a folder; give a CentOS/RHEL 6 install ISO file",
            path.display()
        )));
    }
    // A block device (/dev/sr0, a loop device) has no file length: its size is where a
    // seek to the end lands.
    let len = if meta.file_type().is_block_device() {
        f.seek(SeekFrom::End(0))
            .with_context(|| format!("reading the size of {}", path.display()))?
    } else {
        meta.len()
    };
    let mut pvd = [0u8; 2048];
    let read = f
        .seek(SeekFrom::Start(16 * 2048))
        .and_then(|_| f.read(&mut pvd))
        .with_context(|| format!("reading {}", path.display()))?;
    if read < 190 || pvd[0] != 1 || &pvd[1..6] != b"CD001" {
        return Err(bad_input(format!(
            "{} is not an ISO 9660 image (no primary volume descriptor at byte 32768); give a CentOS/RHEL 6 install ISO",
            path.display()
        )));
    }
    let blocks = u32::from_le_bytes(pvd[80..84].try_into().expect("4 bytes"));
    let block_size = u16::from_le_bytes(pvd[128..130].try_into().expect("2 bytes"));
    let size = u64::from(blocks) * u64::from(block_size);
    if len < size {
        return Err(bad_input(format!(
            "{} is truncated: its volume descriptor says {size} bytes, the file has {len} (an incomplete download or copy? compare its sha256 with the vendor's)",
            path.display()
        )));
    }
    let volume_id = String::from_utf8_lossy(&pvd[40..72]).trim_end().to_string();
    Ok(VolumeHeader { volume_id, size })
}

/// The `[general]` facts of a `.treeinfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeInfo {
    pub family: String,
    pub version: String,
    pub arch: String,
}

/// Parses the `[general]` section of a `.treeinfo` (an INI file).
pub fn parse_treeinfo(text: &str) -> TreeInfo {
    let mut info = TreeInfo::default();
    let mut in_general = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_general = line == "[general]";
            continue;
        }
        let Some((k, v)) = line.split_once('=').filter(|_| in_general) else {
            continue;
        };
        let v = v.trim().to_string();
        match k.trim() {
            "family" => info.family = v,
            "version" => info.version = v,
            "arch" => info.arch = v,
            _ => {}
        }
    }
    info
}

/// Says whether `.treeinfo` and `.discinfo` describe a CentOS/RHEL 6 x86_64 install tree;
/// the error tells what they describe instead.
pub fn check_release(treeinfo: &TreeInfo, discinfo: &str) -> Result<String, String> {
    let disc_version = discinfo.lines().nth(1).unwrap_or_default().trim();
    let major = treeinfo.version.split('.').next().unwrap_or_default();
    let family_ok = ["CentOS", "Red Hat Enterprise Linux", "RHEL"]
        .iter()
        .any(|f| treeinfo.family.starts_with(f));
    let found = format!(
        "family {:?}, version {:?}, arch {:?} (.discinfo version {:?})",
        treeinfo.family, treeinfo.version, treeinfo.arch, disc_version
    );
    if !family_ok || major != "6" {
        return Err(format!(
            "it is not a CentOS/RHEL 6 install ISO: .treeinfo says {found}"
        ));
    }
    if treeinfo.arch != "x86_64" {
        return Err(format!(
            "it is not an x86_64 install ISO (the master target is 64-bit): .treeinfo says {found}"
        ));
    }
    Ok(format!(
        "{} {} {}",
        treeinfo.family, treeinfo.version, treeinfo.arch
    ))
}

/// Remasters `source` into `out` with `payload`; see the module doc. Bad sources are
/// refused with exit code 2 and nothing at `out`.
pub fn remaster(
    source: &Path,
    payload: &Payload,
    out: &Path,
    opts: &RemasterOptions,
) -> Result<RemasterReport> {
    if same_file(source, out) {
        return Err(bad_input(format!(
            "the output {} is the source ISO: write the remastered image elsewhere",
            out.display()
        )));
    }
    crate::external::XORRISO.locate()?;
    let header = read_volume_header(source)?;
    let scratch = tempfile::Builder::new()
        .prefix("mtkit-remaster-")
        .tempdir()
        .context("creating a scratch folder")?;
    let s = |name: &str| scratch.path().join(name);
    let disc = &layout::layout().install_disc;

    // One read of the source: boot records, file list, and the files to check and edit
    // at their usual CentOS 6 paths (absent ones are simply not extracted).
    let usual = [
        (disc.discinfo.as_str(), s("discinfo")),
        (disc.treeinfo.as_str(), s("treeinfo")),
        (disc.isolinux_cfg.as_str(), s("isolinux.cfg")),
        (disc.efi_grub_conf.as_str(), s("BOOTX64.conf")),
        (disc.efi_image.as_str(), s("efiboot.img")),
        (disc.repomd.as_str(), s("repomd.xml")),
    ];
    let mut args: Vec<OsString> = [
        "-report_el_torito",
        "plain",
        "-report_system_area",
        "plain",
        "-find",
        "/",
        "-maxdepth",
        "3",
        "-type",
        "f",
        "--",
        "-osirrox",
        "on",
    ]
    .map(OsString::from)
    .to_vec();
    for (from, to) in &usual {
        args.extend(["-extract".into(), OsString::from(from), to.into()]);
    }
    let listing = xorriso::query_tolerant(source, args).map_err(|e| {
        bad_input(format!(
            "{} cannot be read as an ISO image: {e:#}",
            source.display()
        ))
    })?;
    let boot = xorriso::parse_boot_report(&format!("{}\n{}", listing.stderr, listing.stdout));
    let found = xorriso::parse_find_output(&listing.stdout);
    let files: Vec<&str> = found.iter().map(String::as_str).collect();
    let missing: Vec<&str> = disc
        .required()
        .into_iter()
        .filter(|f| !files.contains(f))
        .collect();
    if !missing.is_empty() {
        let top: Vec<&str> = files
            .iter()
            .copied()
            .filter(|f| f.matches('/').count() == 1)
            .take(8)
            .collect();
        let problems: Vec<&str> = listing
            .stderr
            .lines()
            .filter(|l| l.contains("FAILURE") || l.contains("FATAL"))
            .filter(|l| !l.contains("Cannot determine attributes of (ISO) source file"))
            .collect();
        return Err(bad_input(format!(
            "{} is not a CentOS/RHEL 6 install ISO: {} missing (volume {:?}; top-level files: {}){}",
            source.display(),
            missing.join(", "),
            header.volume_id,
            if top.is_empty() {
                "none".into()
            } else {
                top.join(" ")
            },
            if problems.is_empty() {
                String::new()
            } else {
                format!("; xorriso: {}", problems.join("; "))
            }
        )));
    }
    let has_efi_conf = files.contains(&disc.efi_grub_conf.as_str());
    let efi_image = boot.efi_image.clone();
    if let Some(img) = efi_image.as_deref().filter(|i| *i != disc.efi_image) {
        xorriso::extract(source, &[(img, &s("efiboot.img"))])?;
    }

    // Files extracted from the source, named by their ISO path in errors (the scratch
    // copy's path means nothing to the user). Config files are Latin-1 as often as UTF-8:
    // their bytes are edited as Latin-1 text, which keeps every byte as it was.
    let read = |local: &Path, iso_path: &str| {
        std::fs::read(local)
            .map(|b| bootcfg::from_latin1(&b))
            .map_err(|e| {
                bad_input(format!(
                    "{}: cannot read {iso_path} from it: {e}",
                    source.display()
                ))
            })
    };
    let release = check_release(
        &parse_treeinfo(&read(&s("treeinfo"), &disc.treeinfo)?),
        &read(&s("discinfo"), &disc.discinfo)?,
    )
    .map_err(|e| bad_input(format!("{}: {e}", source.display())))?;
    let bios_image = boot.bios_image.clone().ok_or_else(|| {
        bad_input(format!(
            "{} has no BIOS El Torito boot image (xorriso found {} boot entries): it would not boot",
            source.display(),
            boot.entries
        ))
    })?;
    tracing::info!(source = %source.display(), %release, volume = %header.volume_id, "source checked");

    let mut edits: Vec<(PathBuf, String)> = Vec::new();
    let mut boot_configs = Vec::new();
    let isolinux_cfg = &disc.isolinux_cfg;
    let isolinux = bootcfg::edit_isolinux(&read(&s("isolinux.cfg"), isolinux_cfg)?)
        .map_err(|e| bad_input(format!("{}: {isolinux_cfg}: {e}", source.display())))?;
    std::fs::write(s("isolinux.cfg.new"), bootcfg::to_latin1(&isolinux))
        .context("writing the new isolinux.cfg")?;
    edits.push((s("isolinux.cfg.new"), isolinux_cfg.clone()));
    boot_configs.push(isolinux_cfg.clone());
    if has_efi_conf {
        let grub_conf = &disc.efi_grub_conf;
        let grub = bootcfg::edit_grub_legacy(&read(&s("BOOTX64.conf"), grub_conf)?)
            .map_err(|e| bad_input(format!("{}: {grub_conf}: {e}", source.display())))?;
        std::fs::write(s("BOOTX64.conf.new"), bootcfg::to_latin1(&grub))
            .context("writing the new BOOTX64.conf")?;
        edits.push((s("BOOTX64.conf.new"), grub_conf.clone()));
        boot_configs.push(grub_conf.clone());
    }
    if let Some(img) = &efi_image {
        // EFI firmware booting the disc reads the grub config inside the FAT image, not
        // the copy in the ISO tree: edit both.
        if edit_efi_image(&s("efiboot.img"))? {
            edits.push((s("efiboot.img"), img.clone()));
            boot_configs.push(format!("{img}:{}", &disc.efi_grub_conf_in_fat()[2..]));
        }
    }

    let source_packages = source_packages(source, &s("repomd.xml"), scratch.path());
    let mut args: Vec<OsString> = vec!["-indev".into(), xorriso::drive(source)];
    let pending = PendingOutput::new(out)?;
    args.extend(["-outdev".into(), pending.path().into()]);
    // Re-creates the El Torito entries, boot-info table and system area of the source
    // (an isohybrid MBR is copied from its first 16 sectors).
    args.extend(["-boot_image", "any", "replay"].map(OsString::from));
    let isohybrid_added = !boot.isohybrid;
    if isohybrid_added {
        let template = mbr_template(opts.mbr_template.as_deref())?;
        tracing::info!(template = %template.display(), "source has no isohybrid MBR: adding one");
        args.extend([
            "-boot_image".into(),
            "isolinux".into(),
            OsString::from(format!("system_area={}", template.display())),
            "-boot_image".into(),
            "isolinux".into(),
            "partition_table=on".into(),
        ]);
    }
    // Without no_emul_toc the boot-info table points at the wrong volume descriptor;
    // without -joliet on the Joliet tree is dropped.
    args.extend(["-compliance", "no_emul_toc", "-joliet", "on"].map(OsString::from));
    for (from, to) in &edits {
        args.extend(["-map".into(), from.into(), OsString::from(to)]);
    }
    let payload_folder = layout::payload().folder();
    if files
        .iter()
        .any(|f| f.starts_with(&format!("{payload_folder}/")))
    {
        // A disc remastered before: its old payload must not mix with the new one.
        tracing::info!("source already carries {payload_folder}: replacing it");
        args.extend(["-rm_r", payload_folder, "--"].map(OsString::from));
    }
    let staged = stage(payload, source_packages.as_deref())?;
    args.extend(staged.args.iter().cloned());
    if let Some(e) = super::source_date_epoch()? {
        // The edited files were written just now.
        let paths: Vec<&str> = edits.iter().map(|(_, to)| to.as_str()).collect();
        args.extend(super::dated(e, &paths));
    }

    xorriso::write(args, opts.progress)?;
    let written = xorriso::boot_report(pending.path())?;
    verify_written(&boot, &written, &header.volume_id)?;
    pending.commit()?;
    tracing::info!(output = %out.display(), "remastered image written");
    Ok(RemasterReport {
        release,
        volume_id: header.volume_id,
        bios_image,
        efi_image,
        isohybrid_added,
        boot_configs,
    })
}

/// The packages of the source disc's own repository (`/repodata`), for the offline repo
/// check of `[packages] extra`; `None` (with a note) when it has no readable metadata.
fn source_packages(
    source: &Path,
    repomd: &Path,
    scratch: &Path,
) -> Option<Vec<super::repo::Package>> {
    let text = std::fs::read(repomd).ok()?;
    let fetched = super::repo::packages_via(&bootcfg::from_latin1(&text), |href| {
        let local = scratch.join("source-primary");
        xorriso::extract(source, &[(&format!("/{href}"), &local)])?;
        std::fs::read(&local).with_context(|| format!("reading /{href} of the source"))
    });
    match fetched {
        Ok(p) => p,
        Err(e) => {
            tracing::info!(
                "the source's package metadata is not readable ({e:#}): [packages] extra is not checked against it"
            );
            None
        }
    }
}

/// The written image must still boot the way the source did.
fn verify_written(source: &BootReport, written: &BootReport, volume_id: &str) -> Result<()> {
    let ok = written.bios_image == source.bios_image
        && written.efi_image == source.efi_image
        && written.isohybrid
        && written.volume_id == volume_id;
    anyhow::ensure!(
        ok,
        "the written image lost boot records (source: {source:?}, written: {written:?}); nothing was written at the output path"
    );
    Ok(())
}

/// Adds the mtkit entry to the grub config inside the EFI FAT image, with mtools (the
/// image is never mounted). Returns false when the image has no such config.
fn edit_efi_image(img: &Path) -> Result<bool> {
    use std::os::unix::fs::PermissionsExt;
    // Extracted files keep the disc's read-only modes.
    std::fs::set_permissions(img, std::fs::Permissions::from_mode(0o644))
        .with_context(|| format!("making {} writable", img.display()))?;
    MCOPY.locate()?;
    let in_fat = layout::layout().install_disc.efi_grub_conf_in_fat();
    // Copied out as bytes (mtype's text would not keep a Latin-1 file as it is).
    let current_file = img.with_extension("conf");
    let current = MCOPY.output([
        OsString::from("-n"),
        "-i".into(),
        img.into(),
        OsString::from(&in_fat),
        current_file.clone().into(),
    ])?;
    if current.status != 0 || !current_file.is_file() {
        tracing::warn!(
            "the EFI boot image has no {}: its menu is left as it is ({})",
            &in_fat[2..],
            current.stderr.trim()
        );
        return Ok(false);
    }
    let text = std::fs::read(&current_file).context("reading the EFI boot image's BOOTX64.conf")?;
    let new = bootcfg::edit_grub_legacy(&bootcfg::from_latin1(&text))
        .map_err(|e| bad_input(format!("EFI boot image's {}: {e}", &in_fat[2..])))?;
    let local = img.with_extension("conf.new");
    std::fs::write(&local, bootcfg::to_latin1(&new))
        .context("writing the new BOOTX64.conf for the EFI boot image")?;
    if let Some(e) = super::source_date_epoch()? {
        // mcopy -m keeps this date in the FAT entry instead of the time of the copy.
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(e);
        std::fs::File::options()
            .write(true)
            .open(&local)
            .and_then(|f| f.set_modified(when))
            .context("dating the new BOOTX64.conf")?;
    }
    MCOPY.run([
        OsString::from("-o"),
        "-m".into(),
        "-i".into(),
        img.into(),
        local.into(),
        in_fat.into(),
    ])?;
    Ok(true)
}

fn mbr_template(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    ISOHDPFX_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            bad_input(format!(
                "the source ISO has no isohybrid MBR and syslinux's isohdpfx.bin was not found (looked in {}): install it (Debian/Ubuntu: apt-get install isolinux; CentOS/RHEL: yum install syslinux)",
                ISOHDPFX_PATHS.join(", ")
            ))
        })
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TREEINFO: &str = "[general]\nfamily = CentOS\ntimestamp = 1414159991.96\nvariant = \nversion = 6.6\narch = x86_64\n\n[stage2]\nmainimage = images/install.img\n";

    #[test]
    fn centos_6_is_accepted_and_named() {
        let t = parse_treeinfo(TREEINFO);
        assert_eq!(
            t,
            TreeInfo {
                family: "CentOS".into(),
                version: "6.6".into(),
                arch: "x86_64".into()
            }
        );
        assert_eq!(
            check_release(&t, "1414159991.958686\n6.6\nx86_64\n1\n").unwrap(),
            "CentOS 6.6 x86_64"
        );
    }

    #[test]
    fn other_releases_are_refused_saying_what_they_are() {
        let c7 = parse_treeinfo(&TREEINFO.replace("6.6", "7"));
        let e = check_release(&c7, "").unwrap_err();
        assert!(
            e.contains("not a CentOS/RHEL 6") && e.contains("\"7\""),
            "{e}"
        );
        let i386 = parse_treeinfo(&TREEINFO.replace("x86_64", "i386"));
        assert!(check_release(&i386, "").unwrap_err().contains("x86_64"));
        let fedora = parse_treeinfo(&TREEINFO.replace("CentOS", "Fedora"));
        assert!(check_release(&fedora, "").unwrap_err().contains("Fedora"));
    }

    #[test]
    fn volume_header_catches_non_iso_and_truncation() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.iso");
        std::fs::write(&p, vec![0u8; 40000]).unwrap();
        let e = read_volume_header(&p).unwrap_err().to_string();
        assert!(e.contains("not an ISO 9660 image"), "{e}");

        let mut img = vec![0u8; 18 * 2048];
        let pvd = &mut img[16 * 2048..17 * 2048];
        pvd[0] = 1;
        pvd[1..6].copy_from_slice(b"CD001");
        pvd[40..72].copy_from_slice(format!("{:<32}", "CentOS_6.6_Final").as_bytes());
        pvd[80..84].copy_from_slice(&100u32.to_le_bytes());
        pvd[128..130].copy_from_slice(&2048u16.to_le_bytes());
        std::fs::write(&p, &img).unwrap();
        let e = read_volume_header(&p).unwrap_err();
        assert_eq!(crate::error::exit_code(&e), 2);
        assert!(e.to_string().contains("truncated"), "{e}");
        img.resize(100 * 2048, 0);
        std::fs::write(&p, &img).unwrap();
        let h = read_volume_header(&p).unwrap();
        assert_eq!(h.volume_id, "CentOS_6.6_Final");
        assert_eq!(h.size, 100 * 2048);
    }
}
