//! Driving xorriso: read-only queries of an ISO (listing, El Torito report, extraction),
//! and the image-writing run whose "UPDATE : Writing: ... NN.N%" lines become progress.

use crate::external::{Output, XORRISO};
use anyhow::{Result, bail};
use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::sync::Mutex;

/// Arguments every run starts with: no user startup files, and any SORRY-level event
/// (a file that could not be read or mapped) makes the run fail instead of exit 0.
fn base_args() -> Vec<OsString> {
    ["-no_rc", "-return_with", "SORRY", "32"]
        .into_iter()
        .map(OsString::from)
        .collect()
}

/// The drive address of `iso` for `-indev`: a block device (an optical drive `/dev/sr0`,
/// a loop device) is read as a plain file through `stdio:`, which xorriso otherwise
/// refuses for anything in /dev that is not an MMC burner (`-drive_class caution`).
pub fn drive(iso: &Path) -> OsString {
    use std::os::unix::fs::FileTypeExt;
    let is_block = std::fs::metadata(iso).is_ok_and(|m| m.file_type().is_block_device());
    if is_block {
        let mut a = OsString::from("stdio:");
        a.push(iso);
        a
    } else {
        iso.into()
    }
}

/// Runs a read-only query on `iso` (`-indev ISO` then `args`): results are on stdout,
/// what xorriso says about the loaded image (volume id, boot record) on stderr.
pub fn query<I, S>(iso: &Path, args: I) -> Result<Output>
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    let mut all = base_args();
    all.push("-indev".into());
    all.push(drive(iso));
    all.extend(args.into_iter().map(Into::into));
    XORRISO.run(all)
}

/// Like [`query`], but a failed step (a file to extract that is not there) neither stops
/// the run nor fails it: the caller checks what it got.
pub fn query_tolerant(iso: &Path, args: Vec<OsString>) -> Result<Output> {
    let mut all: Vec<OsString> = [
        "-no_rc",
        "-abort_on",
        "NEVER",
        "-return_with",
        "ABORT",
        "32",
    ]
    .map(OsString::from)
    .to_vec();
    all.extend(["-indev".into(), drive(iso)]);
    all.extend(args);
    XORRISO.run(all)
}

/// The paths `-find` printed (one quoted absolute ISO path a line), unquoted.
pub fn parse_find_output(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| {
            l.strip_prefix('\'')
                .and_then(|l| l.strip_suffix('\''))
                // xorriso quotes a ' inside a name as '"'"'.
                .map(|l| l.replace("'\"'\"'", "'"))
        })
        .collect()
}

/// Copies the ISO files `(iso_path, local_path)` out of `iso`, leaving it untouched.
pub fn extract(iso: &Path, files: &[(&str, &Path)]) -> Result<()> {
    if files.is_empty() {
        return Ok(());
    }
    let mut args: Vec<OsString> = vec!["-osirrox".into(), "on".into()];
    for (from, to) in files {
        args.extend(["-extract".into(), OsString::from(from), to.into()]);
    }
    query(iso, args)?;
    Ok(())
}

/// What `-report_el_torito plain` says about a boot record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootReport {
    /// Volume ID, as xorriso reads it.
    pub volume_id: String,
    /// ISO path of the BIOS El Torito image, when it is a file in the tree.
    pub bios_image: Option<String>,
    /// ISO path of the UEFI El Torito image, when it is a file in the tree.
    pub efi_image: Option<String>,
    /// The system area holds an isohybrid MBR (bootable when written to a USB stick).
    pub isohybrid: bool,
    /// Number of El Torito boot images.
    pub entries: usize,
}

/// Reads the boot records of `iso` with xorriso's own report.
pub fn boot_report(iso: &Path) -> Result<BootReport> {
    let out = query(
        iso,
        ["-report_el_torito", "plain", "-report_system_area", "plain"],
    )?;
    Ok(parse_boot_report(&format!(
        "{}\n{}",
        out.stderr, out.stdout
    )))
}

/// The parser behind [`boot_report`], on xorriso's text.
pub fn parse_boot_report(text: &str) -> BootReport {
    let mut r = BootReport::default();
    let mut platform_of = std::collections::HashMap::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "Volume id" => r.volume_id = value.trim_matches('\'').to_string(),
            "Boot record" | "System area summary" => r.isohybrid |= value.contains("MBR isohybrid"),
            "El Torito boot img" => {
                let mut words = value.split_whitespace();
                if let (Some(n), Some(platform)) = (words.next(), words.next()) {
                    platform_of.insert(n.to_string(), platform.to_string());
                    r.entries += 1;
                }
            }
            "El Torito img path" => {
                if let Some((n, path)) = value.split_once(char::is_whitespace) {
                    let path = Some(path.trim().to_string());
                    match platform_of.get(n).map(String::as_str) {
                        Some("BIOS") => r.bios_image = path,
                        Some("UEFI") => r.efi_image = path,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    r
}

/// Where long xorriso runs report how far they are (percent of the image written).
pub struct Progress {
    sink: Box<dyn Fn(f64) + Send + Sync>,
    last: Mutex<Option<u32>>,
}

impl Progress {
    /// Logs progress on stderr (tracing, info level), at most once per whole percent.
    pub fn log(what: &str) -> Progress {
        let what = what.to_string();
        Progress::with(move |p| tracing::info!("{what}: {p:.0}% written"))
    }

    /// Calls `f` with each new percentage (for tests and other front ends).
    pub fn with(f: impl Fn(f64) + Send + Sync + 'static) -> Progress {
        Progress {
            sink: Box::new(f),
            last: Mutex::new(None),
        }
    }

    /// Drops every report.
    pub fn none() -> Progress {
        Progress::with(|_| {})
    }

    fn report(&self, percent: f64) {
        let whole = percent.clamp(0.0, 100.0) as u32;
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if *last != Some(whole) {
            *last = Some(whole);
            (self.sink)(percent);
        }
    }
}

/// Runs an image-writing xorriso job, reporting its percentage lines to `progress` and
/// returning an error with the tail of its log when it fails.
pub fn write(args: Vec<OsString>, progress: &Progress) -> Result<()> {
    let mut all = base_args();
    // xorriso notices the end of the write only at its next progress tick (1 s by
    // default): a short interval saves up to a second and gives finer progress.
    all.extend(["-pacifier", "interval=0.1"].map(OsString::from));
    all.extend(args);
    // Result lines ("Added to ISO image: ...") go to stdout, one per file: not needed.
    let mut tail: VecDeque<String> = VecDeque::new();
    let status = XORRISO.stream_stderr(&all, |line| {
        if let Some(percent) = parse_percent(&line) {
            progress.report(percent);
        } else {
            tracing::trace!(target: "xorriso", "{line}");
        }
        if tail.len() == 12 {
            tail.pop_front();
        }
        tail.push_back(line);
    })?;
    if !status.success() {
        let log: Vec<String> = tail
            .into_iter()
            .filter(|l| !l.contains("UPDATE :"))
            .collect();
        bail!(
            "xorriso failed ({status}): {}\n(command: {})",
            log.join("\n"),
            shown(&all)
        );
    }
    progress.report(100.0);
    Ok(())
}

fn shown(args: &[OsString]) -> String {
    std::iter::once(OsStr::new("xorriso"))
        .chain(args.iter().map(OsString::as_os_str))
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The percentage in `xorriso : UPDATE : Writing:  89088s   57.0%   fifo  99% ...`.
pub fn parse_percent(line: &str) -> Option<f64> {
    let rest = line.split_once("UPDATE :")?.1.trim_start();
    let rest = rest.strip_prefix("Writing:")?;
    rest.split_whitespace()
        .find_map(|w| w.strip_suffix('%')?.parse::<f64>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_reports_each_whole_percent_once() {
        let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let p = Progress::with(move |v| s.lock().unwrap().push(v));
        for v in [1.0, 1.4, 2.0, 2.9, 57.0, 100.0, 100.0] {
            p.report(v);
        }
        assert_eq!(*seen.lock().unwrap(), vec![1.0, 2.0, 57.0, 100.0]);
    }

    #[test]
    fn writing_lines_give_percentages() {
        assert_eq!(
            parse_percent(
                "xorriso : UPDATE : Writing:      89088s   57.0%   fifo  99%  buf  50%  185.8xD "
            ),
            Some(57.0)
        );
        assert_eq!(
            parse_percent("xorriso : UPDATE :       1 files added in 1 seconds"),
            None
        );
        assert_eq!(
            parse_percent("Writing to 'o.iso' completed successfully."),
            None
        );
    }

    #[test]
    fn find_output_is_unquoted() {
        let out =
            "'/.discinfo'\n'/isolinux/isolinux.cfg'\n'/it'\"'\"'s'\nEl Torito catalog  : 42  1\n";
        assert_eq!(
            parse_find_output(out),
            ["/.discinfo", "/isolinux/isolinux.cfg", "/it's"]
        );
    }

    #[test]
    fn boot_report_is_parsed() {
        let text = "Boot record  : El Torito , MBR isohybrid cyl-align-on
Volume id    : 'CentOS_6.6_Final'
El Torito catalog  : 42  1
El Torito cat path : /isolinux/boot.cat
El Torito images   :   N  Pltf  B   Emul  Ld_seg  Hdpt  Ldsiz         LBA
El Torito boot img :   1  BIOS  y   none  0x0000  0x00      4        1067
El Torito boot img :   2  UEFI  y   none  0x0000  0x00   4096          43
El Torito img path :   1  /isolinux/isolinux.bin
El Torito img opts :   1  boot-info-table isohybrid-suitable
El Torito img path :   2  /images/efiboot.img
";
        let r = parse_boot_report(text);
        assert_eq!(
            r,
            BootReport {
                volume_id: "CentOS_6.6_Final".into(),
                bios_image: Some("/isolinux/isolinux.bin".into()),
                efi_image: Some("/images/efiboot.img".into()),
                isohybrid: true,
                entries: 2,
            }
        );
        let plain = parse_boot_report("Boot record  : El Torito\n");
        assert!(!plain.isohybrid);
    }
}
