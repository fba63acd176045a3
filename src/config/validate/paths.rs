//! A rule across sections: every path-like value (of `[packages]`, `[media]`,
//! `[retention]`, `[appliance]`, `[writer]` and its disks) is one line of printable
//! characters: they land in systemd units and fstab.

use super::locate::{Checker, Seg, entry, path, q};
use crate::config::Config;

/// A control character (C0, DEL, C1) in a value: a newline in a path would add lines to a
/// systemd unit or fstab, a NUL would cut it.
fn control_char(s: &str) -> Option<char> {
    s.chars().find(|c| c.is_control())
}

/// Reports a path (or path-like) value holding a control character.
fn check_path_chars(ck: &mut Checker<'_>, at: &[Seg], value: &str) {
    if let Some(c) = control_char(value) {
        ck.report(
            at,
            q(value),
            format!(
                "holds the control character {:?}: a path is one line of printable characters",
                c
            ),
        );
    }
}

/// Every path-like value of the config, for the control-character check.
pub(super) fn check(c: &Config, ck: &mut Checker<'_>) {
    let mut vals: Vec<(Vec<Seg>, String)> = vec![
        (
            path(&["packages", "offline-repo"]),
            c.packages.offline_repo.clone(),
        ),
        (path(&["media", "source-iso"]), c.media.source_iso.clone()),
        (path(&["retention", "device"]), c.retention.device.clone()),
        (
            path(&["retention", "mountpoint"]),
            c.retention.mountpoint.to_string_lossy().into_owned(),
        ),
        (
            path(&["writer", "journal-dir"]),
            c.writer.journal_dir.clone(),
        ),
        (
            path(&["writer", "unix-socket"]),
            c.writer.unix_socket.to_string_lossy().into_owned(),
        ),
        (
            path(&["writer", "control-socket"]),
            c.writer.control_socket.to_string_lossy().into_owned(),
        ),
    ];
    if let Some(f) = &c.appliance.root_password_file {
        vals.push((
            path(&["appliance", "root-password-file"]),
            f.to_string_lossy().into_owned(),
        ));
    }
    if let Some(t) = &c.writer.tls {
        for (k, v) in [
            ("dir", &t.dir),
            ("cert", &t.cert),
            ("key", &t.key),
            ("ca", &t.ca),
        ] {
            if let Some(v) = v {
                vals.push((
                    path(&["writer", "tls", k]),
                    v.to_string_lossy().into_owned(),
                ));
            }
        }
    }
    for (i, d) in c.writer.disk.iter().enumerate() {
        vals.push((
            entry(&["writer", "disk"], i, "path"),
            d.path.to_string_lossy().into_owned(),
        ));
    }
    for (at, v) in vals {
        check_path_chars(ck, &at, &v);
    }
}
