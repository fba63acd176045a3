//! Recovery points as users see them (`mtkit points`, status, recover, views), made from
//! the journal's point records.

use crate::writer::journal::PointRecord;
use std::io;

/// What a recovery point is consistent with: a FLUSH gives a crash-consistent point, a
/// bookmark (the source quiesced) an app-consistent one. `crash`/`app` in JSON and tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PointKind {
    Crash,
    App,
}

impl std::fmt::Display for PointKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so that table widths ({:<5}) apply.
        f.pad(match self {
            PointKind::Crash => "crash",
            PointKind::App => "app",
        })
    }
}

/// A recovery point as users see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Point {
    pub id: u64,
    pub time: chrono::DateTime<chrono::Utc>,
    pub kind: PointKind,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub label: String,
    /// Why the point cannot be recovered (journal records it needs are damaged).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lost: Option<String>,
}

impl From<&PointRecord> for Point {
    fn from(p: &PointRecord) -> Point {
        Point {
            id: p.seq,
            time: chrono::DateTime::from_timestamp_micros(p.time_us).unwrap_or_default(),
            kind: if p.app {
                PointKind::App
            } else {
                PointKind::Crash
            },
            label: p.label.clone(),
            lost: None,
        }
    }
}

/// A recovery point that was listed and is not any more (a view of it closes).
#[derive(Debug, thiserror::Error)]
pub enum PointGone {
    #[error(
        "recovery point {point} of group {group} was pruned (past the retention window, or for space on a full retention volume): see `mtkit points` for the points there are"
    )]
    Pruned { group: String, point: u64 },
    #[error(
        "recovery point {point} of group {group} is gone: a commit made another point the baseline"
    )]
    CommittedPast { group: String, point: u64 },
}

impl From<PointGone> for io::Error {
    fn from(e: PointGone) -> io::Error {
        io::Error::other(e)
    }
}
