//! `[media]`: the install disc's volume label.

use super::locate::{Checker, path, q};
use crate::config::Config;

/// An ISO 9660 volume label (its `source-iso` is checked with the other paths).
pub(super) fn check(c: &Config, ck: &mut Checker<'_>) {
    let label = &c.media.volume_label;
    let label_ok = !label.is_empty()
        && label.len() <= 32
        && label
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if !label_ok {
        ck.report(
            &path(&["media", "volume-label"]),
            q(label),
            "an ISO 9660 volume label is 1-32 of A-Z, 0-9 and '_', e.g. \"MTKS\"",
        );
    }
}
