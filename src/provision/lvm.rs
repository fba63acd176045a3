//! `/etc/lvm/lvm.conf`: a `filter` that accepts only the OS disk, so volume groups inside
//! replicated source disks are never activated on the master target.
//!
//! The file is edited in place: only the active `filter` setting of the `devices { }`
//! section is replaced (or added), every other line and comment stays as shipped.

use crate::host::diskref::DiskRef;

pub const PATH: &str = "etc/lvm/lvm.conf";
const MARK: &str = "# mtkit: accept only the OS disk";

/// The filter line for `os_disk` as configured: a kernel name (`sda` → `/dev/sda` and its
/// partitions), or, for a SCSI ID or a /dev/disk link, udev's link and its `-partN` links.
/// LVM accepts a device when any of its names matches, so a link keeps naming the OS disk
/// when kernel names change; where udev made no links (an initramfs without its rules)
/// nothing is accepted, which is safe: the OS disk carries no LVM (doctor's os-disk-lvm).
pub fn filter_line(os_disk: &str) -> String {
    let accept = match DiskRef::parse(os_disk) {
        Some(DiskRef::ScsiId(id)) => {
            format!("^/dev/disk/by-id/scsi-{}(-part[0-9]+)?$", literal(&id))
        }
        Some(DiskRef::Link(l)) => format!("^{}(-part[0-9]+)?$", literal(&l)),
        Some(DiskRef::Kernel(_)) | None => format!("^/dev/{os_disk}[0-9]*$"),
    };
    format!("    filter = [ \"a|{accept}|\", \"r|.*|\" ]")
}

/// `s` matched literally by LVM's regex engine: `.` and `+` (the only special characters
/// udev leaves in a link) in brackets, since lvm.conf strings treat backslashes themselves.
fn literal(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '.' | '+' => format!("[{c}]"),
            c => c.to_string(),
        })
        .collect()
}

/// New text for lvm.conf, or `None` when the filter is already the wanted one.
pub fn plan(current: &str, os_disk: &str) -> Option<String> {
    let lines: Vec<&str> = current.lines().collect();
    let want = filter_line(os_disk);
    let Some((open, close)) = devices_section(&lines) else {
        let mut text = current.to_string();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!("\ndevices {{\n    {MARK}\n{want}\n}}\n"));
        return Some(text);
    };
    // Active filter settings inside the section (a value may span lines until its `]`).
    let mut filters: Vec<(usize, usize)> = Vec::new();
    let mut i = open + 1;
    while i < close {
        if setting_name(lines[i]) == Some("filter") {
            let mut end = i;
            let mut depth = bracket_depth(lines[i]);
            while depth > 0 && end + 1 < close {
                end += 1;
                depth += bracket_depth(lines[end]);
            }
            filters.push((i, end));
            i = end + 1;
        } else {
            i += 1;
        }
    }
    if let [(s, e)] = filters[..]
        && s == e
        && lines[s].trim() == want.trim()
    {
        return None;
    }
    let mut out: Vec<String> = Vec::with_capacity(lines.len() + 2);
    let insert_at = filters.first().map(|f| f.0).unwrap_or(close);
    for (n, line) in lines.iter().enumerate() {
        if n == insert_at {
            out.push(format!("    {MARK} ({os_disk})"));
            out.push(want.clone());
        }
        let in_filter = filters.iter().any(|&(s, e)| (s..=e).contains(&n));
        // Our own comment above a filter being replaced goes with it.
        let our_mark =
            line.trim_start().starts_with(MARK) && filters.iter().any(|&(s, _)| s == n + 1);
        if !in_filter && !our_mark {
            out.push(line.to_string());
        }
    }
    let mut text = out.join("\n");
    if current.ends_with('\n') || current.is_empty() {
        text.push('\n');
    }
    Some(text)
}

/// Line numbers of `devices {` and of its closing `}`.
fn devices_section(lines: &[&str]) -> Option<(usize, usize)> {
    let mut depth = 0i32;
    let mut open = None;
    for (n, line) in lines.iter().enumerate() {
        let code = strip_comment(line);
        if depth == 0 && open.is_none() {
            let t = code.trim();
            if let Some(rest) = t.strip_prefix("devices")
                && rest.trim_start().starts_with('{')
            {
                open = Some(n);
            }
        }
        for c in code.chars() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0
                        && let Some(o) = open
                    {
                        return Some((o, n));
                    }
                }
                _ => {}
            }
        }
    }
    None
}

/// The setting a line assigns (`filter = ...` → `filter`), comments ignored.
fn setting_name(line: &str) -> Option<&str> {
    let code = strip_comment(line);
    let (name, _) = code.split_once('=')?;
    let name = name.trim();
    (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then_some(name)
}

fn bracket_depth(line: &str) -> i32 {
    strip_comment(line)
        .chars()
        .map(|c| match c {
            '[' => 1,
            ']' => -1,
            _ => 0,
        })
        .sum()
}

/// The line without a trailing `#` comment (a `#` inside a quoted string is kept).
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '#' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    const STOCK: &str = "# comment {\nconfig {\n    checks = 1\n}\n\ndevices {\n    dir = \"/dev\"\n    # filter = [ \"r|/dev/cdrom|\" ]\n    filter = [ \"a/.*/\" ]\n    cache_dir = \"/etc/lvm/cache\"\n}\n\nlog {\n    verbose = 0\n}\n";

    #[test]
    fn replaces_the_active_filter_and_keeps_the_rest() {
        let new = plan(STOCK, "sda").unwrap();
        assert!(new.contains("    # filter = [ \"r|/dev/cdrom|\" ]\n"));
        assert!(!new.contains("\"a/.*/\""));
        assert!(new.contains(
            "    # mtkit: accept only the OS disk (sda)\n    filter = [ \"a|^/dev/sda[0-9]*$|\", \"r|.*|\" ]\n    cache_dir"
        ));
        assert_eq!(new.lines().count(), STOCK.lines().count() + 1);
        assert_eq!(plan(&new, "sda"), None, "second plan changes nothing");
    }

    #[test]
    fn changing_the_os_disk_replaces_our_lines() {
        let first = plan(STOCK, "sda").unwrap();
        let second = plan(&first, "vda").unwrap();
        assert_eq!(second.matches("# mtkit:").count(), 1, "{second}");
        assert!(second.contains("a|^/dev/vda[0-9]*$|"));
        assert!(!second.contains("/dev/sda"));
    }

    #[test]
    fn an_os_disk_named_by_id_or_link_is_accepted_by_its_udev_links() {
        let id = "36000c290f1e2d3c4b5a69788796a5b4c3d2e1f0";
        assert_eq!(
            filter_line(id),
            format!("    filter = [ \"a|^/dev/disk/by-id/scsi-{id}(-part[0-9]+)?$|\", \"r|.*|\" ]")
        );
        let new = plan(STOCK, id).unwrap();
        assert!(
            new.contains(&format!("# mtkit: accept only the OS disk ({id})")),
            "{new}"
        );
        assert_eq!(plan(&new, id), None);
        assert_eq!(
            filter_line("/dev/disk/by-path/pci-0000:00:10.0-scsi-2:0:0:0"),
            "    filter = [ \"a|^/dev/disk/by-path/pci-0000:00:10[.]0-scsi-2:0:0:0(-part[0-9]+)?$|\", \"r|.*|\" ]"
        );
    }

    #[test]
    fn multi_line_and_duplicate_filters_collapse_to_one() {
        let cur = "devices {\n    filter = [ \"a|sd|\",\n        \"r|.*|\" ]\n    filter = [ \"a/.*/\" ]\n}\n";
        let new = plan(cur, "sda").unwrap();
        assert_eq!(new.matches("filter =").count(), 1, "{new}");
        assert!(!new.contains("a|sd|"));
    }

    #[test]
    fn global_filter_is_not_a_filter_and_missing_filter_is_added() {
        let cur = "devices {\n    global_filter = [ \"a/.*/\" ]\n}\n";
        let new = plan(cur, "sda").unwrap();
        assert!(new.contains("global_filter = [ \"a/.*/\" ]\n    # mtkit"));
        assert!(new.ends_with("\"r|.*|\" ]\n}\n"), "{new}");
    }

    #[test]
    fn missing_devices_section_is_appended() {
        let new = plan("log {\n}\n", "sda").unwrap();
        assert!(new.starts_with("log {\n}\n\ndevices {\n"));
        assert_eq!(plan(&new, "sda"), None);
    }
}
