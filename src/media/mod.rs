//! Install media: the kickstart ISO and a remastered CentOS 6 install ISO, built with xorriso.
//!
//! Both kinds carry the same payload at the same paths (the kickstart's %post relies on
//! them), given by `iso/layout.toml` (see [`layout`]): `/ks.cfg`, `/mtkit/mtkit`,
//! `/mtkit/appliance.toml` and, optionally, a yum repository at `/mtkit/repo/`. How
//! ks.cfg is made is not this module's business.

pub mod bootcfg;
pub mod build;
pub mod build_id;
pub mod elf;
pub mod layout;
pub mod remaster;
pub mod repo;
pub mod xorriso;

pub use remaster::{RemasterOptions, RemasterReport, remaster};
pub use xorriso::Progress;

use crate::error::bad_input;
use anyhow::{Context, Result};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The kernel argument for the remastered disc, or for the kickstart ISO in the first CD drive.
pub fn boot_arg() -> &'static str {
    &layout::boot_menu().kickstart_argument
}

/// The kickstart ISO as the second CD drive (RHEL 6 anaconda names it sr1).
pub fn boot_arg_second_drive() -> &'static str {
    &layout::boot_menu().second_drive_argument
}

/// What goes onto the media besides the install tree.
#[derive(Debug, Clone)]
pub struct Payload {
    /// The kickstart text, written to `/ks.cfg` (the paths: [`layout::payload`]).
    pub ks_cfg: String,
    /// The resolved appliance.toml, written to `/mtkit/appliance.toml`.
    pub appliance_toml: String,
    /// The mtkit binary for the target, written to `/mtkit/mtkit` (mode 0755).
    pub binary: PathBuf,
    /// A folder of RPMs carried as a yum repository at `/mtkit/repo/`.
    pub offline_repo: Option<PathBuf>,
    /// Packages the kickstart installs from the offline repo: refused when it lacks one.
    pub repo_required: Vec<String>,
    /// Packages from the offline repo or the install disc (`[packages] extra`).
    pub repo_wanted: Vec<String>,
}

/// `SOURCE_DATE_EPOCH` (reproducible-builds.org): when set, every date on the media is
/// this time and two builds of the same inputs are byte-identical.
pub fn source_date_epoch() -> Result<Option<u64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Err(_) => Ok(None),
        Ok(v) => v.trim().parse().map(Some).map_err(|_| {
            bad_input(format!(
                "SOURCE_DATE_EPOCH={v:?} is not a number of seconds since 1970 (see reproducible-builds.org), e.g. $(git log -1 --format=%ct)"
            ))
        }),
    }
}

/// xorriso arguments that date every ISO path in `paths` (and what is below) at `epoch`.
fn dated(epoch: u64, paths: &[&str]) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec![
        "-alter_date_r".into(),
        "b".into(),
        format!("={epoch}").into(),
    ];
    a.extend(paths.iter().map(OsString::from));
    a.push("--".into());
    a
}

/// Checks that `path` can run on CentOS 6 (see [`elf`]) and logs the verdict. A binary
/// that will not (a glibc newer than 2.12, a kernel newer than 2.6.32) is refused (exit 2)
/// unless `allow`, when it is only warned about; `flag` is the option that allows it.
pub fn check_binary(path: &Path, allow: bool, flag: &str) -> Result<elf::Binary> {
    let binary = elf::inspect(path)?;
    let verdict = binary.describe();
    if binary.blocker().is_some() {
        let hint = "build the static one with scripts/build (or cargo build --release --target x86_64-unknown-linux-musl --no-default-features) and pass it with --binary";
        if !allow {
            return Err(bad_input(format!(
                "{} is {verdict}; refusing to embed it: {hint}, or pass {flag} to embed it anyway",
                path.display()
            )));
        }
        tracing::warn!(binary = %path.display(), "embedding it anyway ({flag}): the binary is {verdict}; {hint}");
    } else {
        tracing::info!(binary = %path.display(), "embedded binary is {verdict}");
    }
    Ok(binary)
}

/// Checks an ISO 9660 volume label: 1 to 32 characters, letters, digits, `_`, `-`, `.`
/// (the kickstart's %post finds the disc by it, so it must survive blkid unchanged).
pub fn check_volume_label(label: &str) -> Result<()> {
    let ok = !label.is_empty()
        && label.len() <= 32
        && label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(bad_input(format!(
            "volume label {label:?} is not usable: give 1 to 32 characters of A-Z, 0-9, _, - or . ([media] volume-label, e.g. \"MTKS\")"
        )))
    }
}

/// The payload written out to a scratch folder, and the xorriso arguments that add it.
struct Staged {
    _dir: tempfile::TempDir,
    args: Vec<OsString>,
}

/// Writes the payload's text files (and the offline repo's metadata) to a scratch folder
/// and returns the `-map` arguments that put everything at its media path. `source` lists
/// the packages of the install disc being remastered, when it has readable metadata.
fn stage(payload: &Payload, source: Option<&[repo::Package]>) -> Result<Staged> {
    if !payload.binary.is_file() {
        return Err(bad_input(format!(
            "the binary to embed {} is not a file (give it with --binary)",
            payload.binary.display()
        )));
    }
    let epoch = source_date_epoch()?;
    let dir = tempfile::Builder::new()
        .prefix("mtkit-media-")
        .tempdir()
        .context("creating a scratch folder")?;
    let ks = dir.path().join("ks.cfg");
    let toml = dir.path().join("appliance.toml");
    std::fs::write(&ks, &payload.ks_cfg).with_context(|| format!("writing {}", ks.display()))?;
    std::fs::write(&toml, &payload.appliance_toml)
        .with_context(|| format!("writing {}", toml.display()))?;
    // A symlinked binary, or the staged repo's links to the RPMs, must land on the disc as
    // the files they point at.
    let mut args: Vec<OsString> = vec!["-follow".into(), "link".into()];
    let mut map = |from: &Path, to: &str| {
        args.extend(["-map".into(), from.into(), OsString::from(to)]);
    };
    let at = layout::payload();
    map(&ks, &at.kickstart);
    map(&toml, &at.config);
    map(&payload.binary, &at.binary);
    if let Some(src) = &payload.offline_repo {
        let staged = repo::stage(src, dir.path(), epoch)?;
        repo::check_packages(
            src,
            &staged.packages,
            &payload.repo_required,
            &payload.repo_wanted,
            source,
        )?;
        map(&staged.dir, &at.repo);
    }
    // Modes on the disc come from Rock Ridge: make them right whatever the sources had.
    let folder = at.folder();
    let modes: [&[&str]; 4] = [
        &["-chmod_r", "a+r", folder, "--"],
        &[
            "-find", folder, "-type", "d", "-exec", "chmod", "0755", "--",
        ],
        &["-chmod", "0755", &at.binary, "--"],
        &["-chmod", "0644", &at.kickstart, &at.config, "--"],
    ];
    args.extend(modes.concat().into_iter().map(OsString::from));
    if let Some(e) = epoch {
        // The staged files are new and the binary's date is its build's: pin them all.
        args.extend(dated(e, &[folder, &at.kickstart]));
    }
    Ok(Staged { _dir: dir, args })
}

/// A file being written beside its final path, renamed over it only when complete, so a
/// failed run leaves nothing at the output path.
pub(crate) struct PendingOutput {
    tmp: tempfile::TempPath,
    out: PathBuf,
}

impl PendingOutput {
    pub(crate) fn new(out: &Path) -> Result<PendingOutput> {
        // Renaming over a device node or a folder would not write the image into it.
        if let Ok(meta) = std::fs::metadata(out)
            && !meta.is_file()
        {
            return Err(bad_input(format!(
                "{} exists and is not a regular file: write the ISO to a file (then dd it to a USB stick)",
                out.display()
            )));
        }
        crate::files::check_output(out)?;
        let dir = crate::files::parent_dir(out);
        let name = out
            .file_name()
            .with_context(|| format!("{} has no file name", out.display()))?;
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{}.", name.to_string_lossy()))
            .suffix(".mtkit-tmp")
            .tempfile_in(dir)
            .with_context(|| format!("creating a temporary file in {}", dir.display()))?
            .into_temp_path();
        Ok(PendingOutput {
            tmp,
            out: out.to_path_buf(),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.tmp
    }

    /// Syncs the finished image and moves it to the output path.
    pub(crate) fn commit(self) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        // The temporary file was made private; an install image is not secret.
        std::fs::File::open(&self.tmp)
            .and_then(|f| {
                f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
                f.sync_all()
            })
            .with_context(|| format!("syncing {}", self.tmp.display()))?;
        self.tmp
            .persist(&self.out)
            .with_context(|| format!("renaming the new image to {}", self.out.display()))?;
        Ok(())
    }
}

/// Makes the kickstart ISO: ISO 9660 + Joliet + Rock Ridge, volume `label`, holding the
/// payload and nothing else.
pub fn kickstart_iso(
    payload: &Payload,
    label: &str,
    out: &Path,
    progress: &Progress,
) -> Result<()> {
    check_volume_label(label)?;
    crate::external::XORRISO.locate()?;
    let pending = PendingOutput::new(out)?;
    let staged = stage(payload, None)?;
    let mut args: Vec<OsString> = ["-outdev"].map(OsString::from).to_vec();
    args.push(pending.path().into());
    args.extend(["-volid", label, "-joliet", "on", "-rockridge", "on"].map(OsString::from));
    args.extend(staged.args);
    xorriso::write(args, progress)?;
    pending.commit()?;
    tracing::info!(output = %out.display(), label, "kickstart ISO written");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_labels_are_checked() {
        check_volume_label("MTKS").unwrap();
        check_volume_label("CentOS_6.6_Final").unwrap();
        for bad in ["", "has space", "x".repeat(33).as_str(), "ÄB"] {
            let e = check_volume_label(bad).unwrap_err();
            assert_eq!(crate::error::exit_code(&e), 2);
        }
    }

    #[test]
    fn output_must_be_a_file_in_an_existing_folder() {
        let d = tempfile::tempdir().unwrap();
        let e = PendingOutput::new(d.path()).err().unwrap();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let e = PendingOutput::new(&d.path().join("no/such.iso"))
            .err()
            .unwrap();
        assert!(e.to_string().contains("does not exist"), "{e}");
        assert_eq!(crate::error::exit_code(&e), 2);
        let p = PendingOutput::new(&d.path().join("x.iso")).unwrap();
        std::fs::write(p.path(), b"image").unwrap();
        p.commit().unwrap();
        assert_eq!(std::fs::read(d.path().join("x.iso")).unwrap(), b"image");
        assert_eq!(
            std::fs::read_dir(d.path()).unwrap().count(),
            1,
            "no temp left"
        );
    }
}
