//! What a run of the executor reports and logs: the changes done ([`Outcome`]), how the run
//! is recorded ([`Mode`]), and the log line format.

use super::change::{action_name, show};
use crate::files::Root;
use crate::provision::plan::{Change, Current};
use anyhow::Result;
use serde::Serialize;
use std::path::{Path, PathBuf};

pub const LOG: &str = "var/log/mtkit-apply.log";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// One line of what apply or revert did (or would do).
#[derive(Debug, Clone, Serialize)]
pub struct Done {
    pub area: String,
    pub path: PathBuf,
    pub action: &'static str,
}

/// The result of a run: what changed, what was shown, what could not be done.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Outcome {
    pub changed: Vec<Done>,
    pub notes: Vec<String>,
    /// Unified diffs (dry run only).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub diff: String,
    /// The mtkit version found in the marker before this run, when different.
    pub upgraded_from: Option<String>,
    /// Files edited since mtkit wrote them whose edits were kept (merged).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept_edits: Vec<PathBuf>,
    /// Backups of edited files `--force` replaced (paths relative to the root).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub backups: Vec<PathBuf>,
    /// Dry run: why the real run would refuse (it exits 2 with this message).
    #[serde(skip)]
    pub refused: Option<String>,
}

impl Outcome {
    /// Lists each change of `todo` as done, with its diff on a dry run.
    pub(super) fn list(&mut self, todo: &[(Change, Current)], dry_run: bool) {
        for (c, cur) in todo {
            self.changed.push(Done {
                area: c.area.into(),
                path: c.path.clone(),
                action: action_name(cur, &c.wanted),
            });
            if dry_run {
                self.diff.push_str(&show(&c.path, cur, &c.wanted));
            }
        }
    }

    /// The log lines of the edits the run kept and of the edited files `--force` backed up.
    pub(super) fn edit_lines(&self) -> Vec<String> {
        let kept = self.kept_edits.iter().map(|p| {
            format!(
                "kept the edits made to {} since the last apply",
                p.display()
            )
        });
        let backups = self
            .backups
            .iter()
            .map(|b| format!("--force: the edited version is kept as {}", b.display()));
        kept.chain(backups).collect()
    }
}

/// How a run of the executor is recorded: `apply` keeps what it replaces so that `--revert`
/// can put it back; `seal` and `firstboot` must not (a copy of a sealed-away SSH host key
/// in the apply state would defeat the seal), and log to their own file.
#[derive(Debug, Clone, Copy)]
pub struct Mode {
    /// The verb in the log lines (`apply`, `seal`, ...).
    pub what: &'static str,
    /// The log file under root the run appends to.
    pub log: &'static str,
    /// Record originals and the version marker in the apply state (revertible).
    pub record: bool,
}

/// `mtkit apply`: revertible, logged to [`LOG`].
pub const APPLY: Mode = Mode {
    what: "apply",
    log: LOG,
    record: true,
};

pub(super) fn log(root: &Root, mode: Mode, lines: &[String]) -> Result<()> {
    let p = Path::new(mode.log);
    if let Some(parent) = p.parent() {
        root.create_dirs(parent, 0o755)?;
    }
    let stamp = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
    let mut text = String::new();
    for l in lines {
        text.push_str(&format!("{stamp} mtkit {VERSION} {}: {l}\n", mode.what));
    }
    root.append(p, text.as_bytes(), 0o644)
}
