//! Retention policy: pruning points (and their journal space) older than the window, RPO
//! lag and app-consistency warnings.

use super::group::{Group, now_us};
use crate::config::Policy;

/// Drops points older than `retention` (always keeping the newest point, the baseline to
/// go back to) and the journal segments that only served them. Returns segments removed.
pub fn prune(g: &Group, policy: &Policy, now_us: i64) -> usize {
    let cutoff = now_us - policy.retention.0.as_micros() as i64;
    let mut j = g.journal();
    let Some((dropped, keep_from)) = j.prune_points_older_than(cutoff) else {
        return 0;
    };
    if dropped > 0 {
        tracing::info!(group = %g.name, points = dropped, "pruned points past the retention window");
    }
    // Undo records before the oldest kept point only lead to pruned points: a segment whose
    // newest record is older than that point can go (never the one being written).
    let mut removed = 0;
    while j.segments().len() > 1 && j.segments()[0].max_seq < keep_from {
        match j.remove_oldest() {
            Ok(_) => {
                removed += 1;
                super::test_pause("prune: journal segment removed");
            }
            Err(e) => {
                tracing::warn!(group = %g.name, error = %e, "pruning journal segment");
                break;
            }
        }
    }
    if removed > 0 {
        j.forget_removed_damage();
    }
    removed
}

/// Lag and warnings of a group at `now_us`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Health {
    /// Seconds since the last point while writes are waiting for the next one.
    pub rpo_lag_secs: u64,
    pub warnings: Vec<String>,
}

pub fn health(g: &Group, policy: &Policy, now_us: i64) -> Health {
    let a = g.activity();
    let mut h = Health::default();
    if a.initial_sync || a.recovering {
        return h;
    }
    if let (Some(first_dirty), Some(last)) = (a.first_dirty_us, a.newest_point_us) {
        h.rpo_lag_secs = ((now_us - last.min(first_dirty)).max(0) / 1_000_000) as u64;
        if h.rpo_lag_secs > policy.rpo_threshold.secs() {
            h.warnings.push(format!(
                "RPO lag {}s exceeds rpo-threshold {}",
                h.rpo_lag_secs, policy.rpo_threshold
            ));
        }
    }
    let since_app = a
        .newest_app_point_us
        .map_or(u64::MAX, |t| ((now_us - t).max(0) / 1_000_000) as u64);
    if since_app > policy.app_consistent_interval.secs() {
        h.warnings.push(format!(
            "no app-consistent point within app-consistent-interval {}",
            policy.app_consistent_interval
        ));
    }
    if let Some(t) = a.history_dropped_us {
        let when = chrono::DateTime::from_timestamp_micros(t).unwrap_or_default();
        h.warnings.push(format!(
            "retention volume full: oldest history dropped at {when}"
        ));
    }
    h
}

/// How often the policy pass runs: every 10 s, or 4 times per retention window when it is
/// shorter (so a short window still prunes near its edge), at most once a second.
pub fn tick_period(policy: &Policy) -> std::time::Duration {
    let d = std::time::Duration::from_secs(10).min(policy.retention.0 / 4);
    d.max(std::time::Duration::from_secs(1))
}

/// One policy pass over every group: prune, then log warnings that are new.
pub fn tick(groups: &[std::sync::Arc<Group>], policy: &Policy, last: &mut Vec<Vec<String>>) {
    let now = now_us();
    last.resize(groups.len(), Vec::new());
    for (g, seen) in groups.iter().zip(last.iter_mut()) {
        prune(g, policy, now);
        let h = health(g, policy, now);
        for w in h.warnings.iter().filter(|w| !seen.contains(w)) {
            tracing::warn!(group = %g.name, "{w}");
        }
        *seen = h.warnings;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writer::Export;
    use crate::writer::group::testing::one_disk_group;

    #[test]
    fn prune_drops_old_points_and_their_segments_but_keeps_the_newest() {
        let t = tempfile::tempdir().unwrap();
        let (g, d) = one_disk_group(t.path(), 1 << 20, 16 << 10);
        d.write_at(&[0xaa; 1 << 18], 0, false).unwrap();
        g.point(true, "base").unwrap();
        for i in 0..20u8 {
            d.write_at(&[i + 1; 8192], u64::from(i) * 8192, false)
                .unwrap();
            d.flush().unwrap();
        }
        let segs = g.journal().segments().len();
        assert!(segs > 3, "{segs}");
        let policy = Policy::default();
        let now = now_us();
        assert_eq!(prune(&g, &policy, now), 0, "all points are recent");
        // A day later, everything but the newest point is past the window.
        let later = now + 25 * 3600 * 1_000_000;
        assert!(prune(&g, &policy, later) > 0);
        assert_eq!(g.points().len(), 1);
        assert_eq!(g.journal().segments().len(), 1);
        let h = health(&g, &policy, later);
        assert!(
            h.warnings.iter().any(|w| w.contains("app-consistent")),
            "{h:?}"
        );
        d.write_at(&[9; 10], 0, false).unwrap();
        let h = health(&g, &policy, later);
        assert!(h.rpo_lag_secs > 15 * 60, "{h:?}");
        assert!(h.warnings.iter().any(|w| w.contains("RPO lag")));
    }
}
