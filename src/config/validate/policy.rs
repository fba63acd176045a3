//! `[policy]`: recovery-point timing (RPO threshold, retention, app-consistent interval).

use super::locate::{Checker, path, q};
use crate::config::Config;

/// Every span above zero, and app-consistent points kept within retention.
pub(super) fn check(c: &Config, ck: &mut Checker<'_>) {
    let p = &c.policy;
    for (key, v) in [
        ("rpo-threshold", p.rpo_threshold),
        ("retention", p.retention),
        ("app-consistent-interval", p.app_consistent_interval),
    ] {
        if v.secs() == 0 {
            ck.report(
                &path(&["policy", key]),
                q(&v.to_string()),
                "must be above zero",
            );
        }
    }
    if p.app_consistent_interval > p.retention {
        ck.report(
            &path(&["policy", "app-consistent-interval"]),
            q(&p.app_consistent_interval.to_string()),
            format!(
                "longer than retention = {}: no app-consistent point would be kept",
                q(&p.retention.to_string())
            ),
        );
    }
}
