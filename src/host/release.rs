//! The OS release of a root: `etc/redhat-release` (CentOS/RHEL), else `etc/os-release`.

use std::path::Path;

/// What the root says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// The line as written, e.g. "CentOS release 6.6 (Final)"
    pub text: String,
    /// "centos", "rhel", or os-release's ID
    pub id: String,
    /// "6.6"
    pub version: String,
}

impl Release {
    pub fn major(&self) -> Option<u32> {
        self.version.split('.').next()?.parse().ok()
    }
}

/// Parses a redhat-release line ("CentOS release 6.6 (Final)", "CentOS Linux release
/// 7.9.2009 (Core)", "Red Hat Enterprise Linux Server release 6.6 (Santiago)").
pub fn parse_redhat(line: &str) -> Option<Release> {
    let text = line.trim().to_string();
    let (name, rest) = text.split_once(" release ")?;
    let version = rest.split_whitespace().next()?.to_string();
    let id = if name.starts_with("CentOS") {
        "centos"
    } else if name.starts_with("Red Hat") {
        "rhel"
    } else {
        "other"
    };
    Some(Release {
        id: id.into(),
        version,
        text,
    })
}

/// Reads the release under `root`; `None` when neither file says anything usable.
pub fn read(root: &Path) -> Option<Release> {
    if let Ok(t) = crate::files::read_text(root.join("etc/redhat-release"))
        && let Some(r) = t.lines().next().and_then(parse_redhat)
    {
        return Some(r);
    }
    let t = crate::files::read_text(root.join("etc/os-release")).ok()?;
    let field = |k: &str| {
        t.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(|v| v.trim_matches('"').to_string())
    };
    Some(Release {
        text: field("PRETTY_NAME").unwrap_or_default(),
        id: field("ID")?,
        version: field("VERSION_ID").unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redhat_release_lines() {
        let r = parse_redhat("CentOS release 6.6 (Final)\n").unwrap();
        assert_eq!(
            (r.id.as_str(), r.version.as_str(), r.major()),
            ("centos", "6.6", Some(6))
        );
        let r = parse_redhat("CentOS Linux release 7.9.2009 (Core)").unwrap();
        assert_eq!((r.id.as_str(), r.version.as_str()), ("centos", "7.9.2009"));
        let r = parse_redhat("Red Hat Enterprise Linux Server release 6.6 (Santiago)").unwrap();
        assert_eq!(r.id, "rhel");
        assert!(parse_redhat("garbage").is_none());
    }
}
