//! Services on at boot: multipathd, kdump, ntpd and the writer. SysV systems get the
//! `/etc/rc.d/rc?.d` links `chkconfig <name> on` would make (so it works under `--root`
//! with no chkconfig to run); systemd systems get the unit's enablement symlinks.

use super::{InitSystem, Plan, Reader, Wanted, writer_service};
use anyhow::Result;
use std::path::{Path, PathBuf};

/// Services turned on, with the package that provides each.
pub const SYSV: [(&str, &str); 4] = [
    ("multipathd", "device-mapper-multipath"),
    ("kdump", "kexec-tools"),
    ("ntpd", "ntp"),
    (writer_service::NAME, "mtkit"),
];
pub const SYSTEMD: [(&str, &str); 4] = [
    ("multipathd.service", "device-mapper-multipath"),
    ("kdump.service", "kexec-tools"),
    ("ntpd.service", "ntp"),
    ("mtkit-writer.service", "mtkit"),
];

pub const INIT_D: &str = "etc/rc.d/init.d";

/// The `# chkconfig: <levels> <start> <stop>` line of an init script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChkconfigHeader {
    pub start: u8,
    pub stop: u8,
}

pub fn parse_header(script: &str) -> Option<ChkconfigHeader> {
    script.lines().find_map(|l| {
        let rest = l.trim_start().strip_prefix('#')?.trim_start();
        let rest = rest.strip_prefix("chkconfig:")?;
        let mut f = rest.split_whitespace();
        let _levels = f.next()?;
        Some(ChkconfigHeader {
            start: f.next()?.parse().ok()?,
            stop: f.next()?.parse().ok()?,
        })
    })
}

/// The rc links of `chkconfig <name> on`: `S<start><name>` in runlevels 2-5,
/// `K<stop><name>` in 0, 1 and 6, and any other link of the service removed.
/// `existing` lists the entries of each `rcN.d` folder.
pub fn sysv_on(
    name: &str,
    h: ChkconfigHeader,
    existing: &[(u8, Vec<String>)],
) -> Vec<(PathBuf, Wanted)> {
    let target = PathBuf::from(format!("../init.d/{name}"));
    let mut out = Vec::new();
    for level in 0..=6u8 {
        let dir = PathBuf::from(format!("etc/rc.d/rc{level}.d"));
        let want = if (2..=5).contains(&level) {
            format!("S{:02}{name}", h.start)
        } else {
            format!("K{:02}{name}", h.stop)
        };
        let entries = existing
            .iter()
            .find(|(l, _)| *l == level)
            .map(|(_, e)| e.as_slice())
            .unwrap_or(&[]);
        for e in entries {
            if *e != want && is_link_of(e, name) {
                out.push((dir.join(e), Wanted::Absent));
            }
        }
        out.push((
            dir.join(want),
            Wanted::Symlink {
                target: target.clone(),
            },
        ));
    }
    out
}

/// `S13multipathd` / `K87multipathd` belong to `multipathd`.
fn is_link_of(entry: &str, name: &str) -> bool {
    let b = entry.as_bytes();
    b.len() == 3 + name.len()
        && (b[0] == b'S' || b[0] == b'K')
        && b[1].is_ascii_digit()
        && b[2].is_ascii_digit()
        && &entry[3..] == name
}

/// The targets a unit's `[Install]` section wants it in.
pub fn wanted_by(unit: &str) -> Vec<String> {
    let mut in_install = false;
    let mut out = Vec::new();
    for l in unit.lines() {
        let l = l.trim();
        if l.starts_with('[') {
            in_install = l == "[Install]";
        } else if in_install && let Some(v) = l.strip_prefix("WantedBy=") {
            out.extend(v.split_whitespace().map(str::to_string));
        }
    }
    out
}

/// Adds the enablement changes of every service to `plan` (after the writer's files are in
/// it: the writer's header or unit is read from the plan).
pub fn plan(r: &Reader, init: InitSystem, plan: &mut Plan) -> Result<()> {
    match init {
        InitSystem::SysV => {
            let mut existing = Vec::new();
            for level in 0..=6u8 {
                let mut names = r.list(&format!("etc/rc.d/rc{level}.d"))?;
                // Links an earlier apply removed still belong to the plan (as absent).
                let rel_dir = PathBuf::from(format!("etc/rc.d/rc{level}.d"));
                for p in &r.recorded {
                    if p.parent() == Some(rel_dir.as_path())
                        && let Some(n) = p.file_name()
                    {
                        names.push(n.to_string_lossy().into_owned());
                    }
                }
                names.sort();
                names.dedup();
                existing.push((level, names));
            }
            for (name, package) in SYSV {
                let rel = PathBuf::from(INIT_D).join(name);
                let script = match plan.planned_text(&rel) {
                    Some(t) => Some(t.to_string()),
                    None => r.text(&rel.to_string_lossy())?,
                };
                let Some(script) = script else {
                    plan.notes.push(format!(
                        "{name} not installed (no /{}): install {package}, then apply again",
                        rel.display()
                    ));
                    continue;
                };
                let Some(h) = parse_header(&script) else {
                    plan.notes.push(format!(
                        "/{} has no `# chkconfig:` header: {name} not enabled",
                        rel.display()
                    ));
                    continue;
                };
                for (path, wanted) in sysv_on(name, h, &existing) {
                    plan.want("services", path, wanted);
                }
            }
        }
        InitSystem::Systemd => {
            for (unit, package) in SYSTEMD {
                let candidates = [
                    format!("etc/systemd/system/{unit}"),
                    format!("usr/lib/systemd/system/{unit}"),
                    format!("lib/systemd/system/{unit}"),
                ];
                let mut found = None;
                for c in &candidates {
                    let text = match plan.planned_text(Path::new(c)) {
                        Some(t) => Some(t.to_string()),
                        None => r.text(c)?,
                    };
                    if let Some(t) = text {
                        found = Some((c.clone(), t));
                        break;
                    }
                }
                let Some((path, text)) = found else {
                    plan.notes.push(format!(
                        "{unit} not installed: install {package}, then apply again"
                    ));
                    continue;
                };
                for target in wanted_by(&text) {
                    plan.want(
                        "services",
                        format!("etc/systemd/system/{target}.wants/{unit}"),
                        Wanted::Symlink {
                            target: PathBuf::from(format!("/{path}")),
                        },
                    );
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_parsed() {
        let s = "#!/bin/bash\n#\n# chkconfig: - 13 87\n# description: x\n";
        assert_eq!(
            parse_header(s),
            Some(ChkconfigHeader {
                start: 13,
                stop: 87
            })
        );
        assert_eq!(parse_header("#!/bin/sh\n"), None);
    }

    #[test]
    fn on_replaces_kill_links_in_2345() {
        let existing: Vec<(u8, Vec<String>)> = (0..=6)
            .map(|l| {
                (
                    l,
                    vec!["K87multipathd".to_string(), "S10network".to_string()],
                )
            })
            .collect();
        let got = sysv_on(
            "multipathd",
            ChkconfigHeader {
                start: 13,
                stop: 87,
            },
            &existing,
        );
        let link = |_: &str| Wanted::Symlink {
            target: PathBuf::from("../init.d/multipathd"),
        };
        assert!(got.contains(&(
            PathBuf::from("etc/rc.d/rc3.d/K87multipathd"),
            Wanted::Absent
        )));
        assert!(got.contains(&(PathBuf::from("etc/rc.d/rc3.d/S13multipathd"), link(""))));
        assert!(got.contains(&(PathBuf::from("etc/rc.d/rc0.d/K87multipathd"), link(""))));
        assert!(!got.iter().any(|(p, _)| p.ends_with("S10network")));
        assert_eq!(got.len(), 7 + 4);
    }

    #[test]
    fn unit_install_section() {
        let u = "[Unit]\nWantedBy=nope\n[Service]\nExecStart=x\n[Install]\nWantedBy=sysinit.target multi-user.target\n";
        assert_eq!(wanted_by(u), ["sysinit.target", "multi-user.target"]);
    }
}
