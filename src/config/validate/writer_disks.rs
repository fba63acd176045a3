//! `[[writer.disk]]` and `[[writer.group]]`: each disk's path and SCSI ID, and the names,
//! groups and journal ids the writer service checks again (`config::writer_names`).

use super::locate::{Checker, entry, q};
use crate::config::Config;

/// Every disk's path and scsi-id well-formed and its own (no two exports of one device),
/// the name rules of `writer_names`, and every group one that some disk is in.
pub(super) fn check(c: &Config, ck: &mut Checker<'_>) {
    let w = &c.writer;
    let mut paths: Vec<(&std::path::Path, usize)> = Vec::new();
    let mut ids: Vec<(&str, usize)> = Vec::new();
    for (i, d) in w.disk.iter().enumerate() {
        let at = |key: &str| entry(&["writer", "disk"], i, key);
        let has_id = !d.scsi_id.is_empty();
        if d.path.as_os_str().is_empty() {
            // Neither path nor scsi-id: a rule of writer_names, reported below.
        } else if !d.path.is_absolute() {
            ck.report(
                &at("path"),
                q(&d.path.display().to_string()),
                "must be an absolute path to a block device or file, e.g. \"/dev/mapper/36000c29...\"",
            );
        } else if let Some((_, first)) = paths.iter().find(|(p, _)| *p == d.path) {
            ck.report(
                &at("path"),
                q(&d.path.display().to_string()),
                format!(
                    "disk #{} has the same path: two exports would write one disk",
                    first + 1
                ),
            );
        } else {
            paths.push((&d.path, i));
        }
        if !has_id && is_sd_path(&d.path) {
            ck.warn(
                &at("path"),
                q(&d.path.display().to_string()),
                "a kernel disk name can change between boots (SCSI scan order): add \
                 scsi-id = \"...\" as `mtkit scsi-ids` prints it, so the writer finds the \
                 disk by its ID and refuses another disk at that name",
            );
        }
        if has_id {
            if let Some(msg) = scsi_id_problem(&d.scsi_id) {
                ck.report(&at("scsi-id"), q(&d.scsi_id), msg);
            } else if let Some((_, first)) = ids.iter().find(|(id, _)| *id == d.scsi_id) {
                ck.report(
                    &at("scsi-id"),
                    q(&d.scsi_id),
                    format!(
                        "disk #{} has the same scsi-id: two exports would write one disk",
                        first + 1
                    ),
                );
            } else {
                ids.push((&d.scsi_id, i));
            }
        }
    }
    // Names, groups and journal ids: the rules the service checks again before it opens a
    // journal, from one function.
    for p in crate::config::writer_names::disk_problems(&w.disk) {
        let d = &w.disk[p.index];
        let shown = match p.key {
            "name" => q(&d.name),
            "group" => q(&d.group),
            _ => q(&d.path.display().to_string()),
        };
        ck.report(
            &entry(&["writer", "disk"], p.index, p.key),
            shown,
            p.message,
        );
    }
    let mut seen: Vec<&str> = Vec::new();
    for (i, g) in w.group.iter().enumerate() {
        let at = entry(&["writer", "group"], i, "name");
        if g.name.trim().is_empty() {
            ck.report(&at, q(&g.name), "a group needs a name");
        } else if seen.contains(&g.name.as_str()) {
            ck.report(&at, q(&g.name), "listed twice: merge the two entries");
        } else if !w.disk.iter().any(|d| d.group == g.name) {
            let known: Vec<_> = w.disk.iter().map(|d| q(&d.group)).collect();
            let known = if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            };
            ck.report(
                &at,
                q(&g.name),
                format!(
                    "no [[writer.disk]] has this group (the disks' groups: {known}): fix the name"
                ),
            );
        }
        seen.push(&g.name);
    }
}

/// `/dev/sdb`, `/dev/sdaa`: a SCSI disk by its kernel name, which follows scan order.
pub fn is_sd_path(p: &std::path::Path) -> bool {
    p.to_str()
        .and_then(|s| s.strip_prefix("/dev/sd"))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_lowercase()))
}

/// What is wrong with a `scsi-id`, if anything. It is compared as written with what
/// `mtkit scsi-ids` (udev's `scsi_id --whitelisted --replace-whitespace`) prints, so the
/// forms people copy from elsewhere (the kernel's `naa.` wwid, vSphere's bare NAA in
/// capitals) are refused with the form that would match.
pub(super) fn scsi_id_problem(id: &str) -> Option<String> {
    // udev keeps these characters in IDs and replaces every other one with '_'.
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"#+-.:=@_".contains(&b);
    if id.len() > 256 || !id.bytes().all(allowed) {
        return Some(
            "not a SCSI ID as `mtkit scsi-ids` prints it (letters, digits and #+-.:=@_), \
             e.g. \"36000c29a1b2c3d4e5f60718293a4b5c6\""
                .into(),
        );
    }
    let lower = id.to_ascii_lowercase();
    if let Some(form) = crate::host::scsi::id_from_sysfs_wwid(&lower) {
        return Some(format!(
            "this is the kernel's wwid form: write {} as `mtkit scsi-ids` prints it",
            q(&form)
        ));
    }
    let hex = id.bytes().all(|b| b.is_ascii_hexdigit());
    if hex && matches!(id.len(), 16 | 32) && (id.starts_with('5') || id.starts_with('6')) {
        return Some(format!(
            "an NAA identifier without scsi_id's type digit: write {} as `mtkit scsi-ids` \
             prints it",
            q(&format!("3{lower}"))
        ));
    }
    if id.starts_with(['2', '3']) && id.len() > 1 && hex && id != lower {
        return Some(format!(
            "`mtkit scsi-ids` prints the hex digits in lowercase: write {}",
            q(&lower)
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::testing::problems;
    use super::*;

    #[test]
    fn writer_disks_take_a_path_or_a_scsi_id_as_scsi_ids_prints_it() {
        let disk = |body: &str| format!("[[writer.disk]]\nname = \"d0\"\ngroup = \"g\"\n{body}");
        // Either is enough; both is fine.
        for ok in [
            "scsi-id = \"36000c29a1b2c3d4e5f60718293a4b5c6\"\n",
            "path = \"/dev/mapper/x\"\n",
            "path = \"/dev/sdb\"\nscsi-id = \"SQEMU_QEMU_HARDDISK_drive-scsi0\"\n",
        ] {
            assert_eq!(problems(&disk(ok)), Vec::<String>::new(), "{ok}");
        }
        let p = problems(&disk(""));
        assert_eq!(p.len(), 1, "{p:#?}");
        assert!(p[0].contains("a path or a scsi-id"), "{}", p[0]);
        for (bad, want) in [
            ("naa.6000C29A1B2C3D4E", "write \"36000c29a1b2c3d4e\""),
            (
                "6000C29A1B2C3D4E5F60718293A4B5C6",
                "write \"36000c29a1b2c3d4e5f60718293a4b5c6\"",
            ),
            (
                "36000C29A1B2C3D4E",
                "lowercase: write \"36000c29a1b2c3d4e\"",
            ),
            ("3600 0c29", "letters, digits"),
        ] {
            let p = problems(&disk(&format!("scsi-id = \"{bad}\"\n")));
            assert_eq!(p.len(), 1, "{bad}: {p:#?}");
            assert!(
                p[0].starts_with(&format!(
                    "t.toml:4:11: [[writer.disk]] #1 scsi-id = \"{bad}\": "
                )),
                "{}",
                p[0]
            );
            assert!(p[0].contains(want), "{}", p[0]);
        }
        let two = format!(
            "{}{}",
            disk("scsi-id = \"36000c29a\"\n"),
            disk("scsi-id = \"36000c29a\"\n").replace("d0", "d1")
        );
        let p = problems(&two);
        assert!(
            p.len() == 1 && p[0].contains("disk #1 has the same scsi-id"),
            "{p:#?}"
        );
    }

    #[test]
    fn a_kernel_disk_name_without_an_id_is_a_located_warning() {
        let text = "[[writer.disk]]\nname = \"d0\"\ngroup = \"g\"\npath = \"/dev/sdb\"\n\
                    [[writer.disk]]\nname = \"d1\"\ngroup = \"g\"\npath = \"/dev/sdc\"\n\
                    scsi-id = \"36000c29a\"\n\
                    [[writer.disk]]\nname = \"d2\"\ngroup = \"g\"\npath = \"/dev/mapper/x\"\n";
        let (_, w) = Config::parse_with_warnings(text, "t.toml").unwrap();
        assert_eq!(w.len(), 1, "{w:#?}");
        let w = w[0].to_string();
        assert!(
            w.starts_with("t.toml:4:8: [[writer.disk]] #1 path = \"/dev/sdb\": a kernel disk name"),
            "{w}"
        );
        assert!(w.contains("scsi-id"), "{w}");
    }
}
