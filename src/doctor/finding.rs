//! A check's result: its id, pass/warn/fail/skip, what was found, and the remedy.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Pass,
    /// Not run here (offline, fixture root, feature not landed)
    Skip,
    Warn,
    Fail,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Pass => "pass",
            Status::Skip => "skip",
            Status::Warn => "warn",
            Status::Fail => "fail",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub id: String,
    pub status: Status,
    pub found: String,
    /// Empty when there is nothing to do
    pub remedy: String,
}

impl Finding {
    pub fn new(
        id: impl Into<String>,
        status: Status,
        found: impl Into<String>,
        remedy: impl Into<String>,
    ) -> Self {
        Finding {
            id: id.into(),
            status,
            found: found.into(),
            remedy: remedy.into(),
        }
    }
    pub fn pass(id: impl Into<String>, found: impl Into<String>) -> Self {
        Self::new(id, Status::Pass, found, "")
    }
    pub fn skip(id: impl Into<String>, why: impl Into<String>) -> Self {
        Self::new(id, Status::Skip, why, "")
    }
    pub fn warn(
        id: impl Into<String>,
        found: impl Into<String>,
        remedy: impl Into<String>,
    ) -> Self {
        Self::new(id, Status::Warn, found, remedy)
    }
    pub fn fail(
        id: impl Into<String>,
        found: impl Into<String>,
        remedy: impl Into<String>,
    ) -> Self {
        Self::new(id, Status::Fail, found, remedy)
    }

    /// The cells of a CHECK, STATUS, FOUND, REMEDY table row.
    pub fn row(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.status.to_string(),
            self.found.clone(),
            self.remedy.clone(),
        ]
    }
}

/// True when a finding failed (exit 1 for doctor and vmx check).
pub fn any_failed(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.status == Status::Fail)
}
