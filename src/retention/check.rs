//! The whole retention check of a Linux system: the rules over the device's facts, and, when
//! it is mounted at the retention mountpoint, its free space against what the policy needs.
//! `mtkit retention check` and `mtkit doctor` both call [`check`], so they never disagree.

use super::linux::{self, Scope};
use super::rules::{self, Requirements, Verdict, VolumeFacts, human};
use super::space::{self, Space};
use anyhow::Result;
use serde::Serialize;
use std::path::Path;

#[derive(Debug, Serialize)]
pub struct Report {
    #[serde(flatten)]
    pub verdict: Verdict,
    /// Free space against the policy; `None` when the device is not mounted at the
    /// retention mountpoint, or the host is not the running system (no statvfs)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub space: Option<Space>,
    /// Journal room the policy needs (space.rs's estimate)
    pub needed: u64,
    /// What could not be checked here (under a fixture root): not judged, not faked
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_checked: Vec<String>,
    #[serde(skip)]
    pub facts: VolumeFacts,
}

/// Checks `device` as the retention volume of the system in `cx`.
pub fn check(cx: &Scope, device: &Path) -> Result<Report> {
    let config = cx.config;
    let (facts, _) = linux::collect(cx, device)?;
    let target = cx.seen_from_host(&config.retention.mountpoint);
    let req = Requirements {
        min_size: config.retention.min_size.bytes(),
        mountpoint: Some(target.clone()),
        force: false,
    };
    let mut verdict = rules::evaluate(&facts, &req);
    let total = space::targets_total(cx);
    let needed = space::needed(config, total);
    let space = if cx.live() && facts.mounts.contains(&target) {
        let journal = cx.seen_from_host(&config.writer.journal_dir(&config.retention));
        Some(space::measure(&target, &journal, needed, total)?)
    } else {
        None
    };
    add_space(&mut verdict, space.as_ref());
    Ok(Report {
        verdict,
        space,
        needed,
        not_checked: facts.not_checked.clone(),
        facts,
    })
}

/// The space comparison as one more finding (rule `space`), so it decides the verdict too.
pub fn add_space(v: &mut Verdict, s: Option<&Space>) {
    let Some(s) = s else { return };
    v.findings.push(rules::Finding {
        rule: "space",
        ok: s.ok,
        detail: format!(
            "free {} + journal {} {} needed {} (policy estimate)",
            human(s.free),
            human(s.journal_used),
            if s.ok { ">=" } else { "<" },
            human(s.needed)
        ),
    });
    v.ok &= s.ok;
}
