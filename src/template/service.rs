//! The one-shot first-boot service: a SysV init script with its rc links (CentOS 6) or a
//! systemd unit with its `multi-user.target.wants` link, installed and enabled by seal and
//! disabled by firstboot once it has succeeded.

use super::SEAL_MARK;
use crate::files::{Links, Root};
use crate::provision::services::{parse_header, sysv_on};
use crate::provision::writer_service::{BIN, CONFIG};
use crate::provision::{InitSystem, Plan, Wanted};
use anyhow::{Context, Result};
use std::path::PathBuf;

pub const NAME: &str = "mtkit-firstboot";
pub const INIT_SCRIPT: &str = "etc/rc.d/init.d/mtkit-firstboot";
pub const UNIT: &str = "etc/systemd/system/mtkit-firstboot.service";
pub const WANTS: &str = "etc/systemd/system/multi-user.target.wants/mtkit-firstboot.service";

const INIT_TEMPLATE: &str = include_str!("../../templates/mtkit-firstboot.init");
const UNIT_TEMPLATE: &str = include_str!("../../templates/mtkit-firstboot.service");

/// The init script or the unit.
pub fn render(init: InitSystem) -> Result<String> {
    let template = match init {
        InitSystem::SysV => INIT_TEMPLATE,
        InitSystem::Systemd => UNIT_TEMPLATE,
    };
    let mut t = minijinja::Environment::new()
        .render_str(
            template,
            minijinja::context! { bin => BIN, config => CONFIG, mark => format!("/{SEAL_MARK}") },
        )
        .context("rendering the first-boot service template")?;
    // minijinja drops the template's final newline.
    if !t.ends_with('\n') {
        t.push('\n');
    }
    Ok(t)
}

/// The entries of each `etc/rc.d/rcN.d` folder (resolved in root).
fn rc_entries(root: &Root) -> Result<Vec<(u8, Vec<String>)>> {
    let mut out = Vec::new();
    for level in 0..=6u8 {
        let d = PathBuf::from(format!("etc/rc.d/rc{level}.d"));
        let names = root.list(&d, Links::InRoot)?.unwrap_or_default();
        let names = names
            .into_iter()
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        out.push((level, names));
    }
    Ok(out)
}

/// Plans the service installed and enabled (seal).
pub fn plan_enabled(root: &Root, init: InitSystem, plan: &mut Plan) -> Result<()> {
    let text = render(init)?;
    match init {
        InitSystem::SysV => {
            let header = parse_header(&text).context("the first-boot init script has a header")?;
            plan.want(
                "firstboot",
                root.resolve(INIT_SCRIPT)?,
                Wanted::File { text, mode: 0o755 },
            );
            for (path, wanted) in sysv_on(NAME, header, &rc_entries(root)?) {
                plan.want("firstboot", root.resolve(path)?, wanted);
            }
        }
        InitSystem::Systemd => {
            plan.want(
                "firstboot",
                root.resolve(UNIT)?,
                Wanted::File { text, mode: 0o644 },
            );
            plan.want(
                "firstboot",
                root.resolve(WANTS)?,
                Wanted::Symlink {
                    target: PathBuf::from(format!("/{UNIT}")),
                },
            );
        }
    }
    Ok(())
}

/// Plans every enablement link of the service removed (firstboot, once done). The script or
/// unit stays: without its links it never runs.
pub fn plan_disabled(root: &Root, plan: &mut Plan) -> Result<()> {
    for (level, names) in rc_entries(root)? {
        for n in names {
            if n.len() == 3 + NAME.len() && n.ends_with(NAME) && n.starts_with(['S', 'K']) {
                let p = root.resolve(format!("etc/rc.d/rc{level}.d/{n}"))?;
                plan.want("firstboot", p, Wanted::Absent);
            }
        }
    }
    let wants = root.resolve(WANTS)?;
    if root.exists(&wants)? {
        plan.want("firstboot", wants, Wanted::Absent);
    }
    Ok(())
}

/// True when the service would run at the next boot (an S link or the wants link).
pub fn enabled(root: &Root) -> bool {
    let sysv = rc_entries(root).is_ok_and(|levels| {
        levels.iter().any(|(_, names)| {
            names
                .iter()
                .any(|n| n.starts_with('S') && n.ends_with(NAME))
        })
    });
    sysv || root
        .resolve(WANTS)
        .and_then(|w| root.exists(&w))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_script_runs_before_the_network_and_is_valid_bash() {
        let t = render(InitSystem::SysV).unwrap();
        let h = parse_header(&t).unwrap();
        assert!(h.start < 10, "before network (S10): {}", h.start);
        assert!(t.contains("exec=/usr/local/sbin/mtkit\n"));
        assert!(t.contains("[ -e /var/lib/mtkit/seal ] || return 0"));
        assert!(!t.contains("{{"));
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s");
        std::fs::write(&p, t).unwrap();
        crate::external::Tool::new("bash", "bash", "bash")
            .run([std::ffi::OsStr::new("-n"), p.as_os_str()])
            .expect("bash -n accepts the init script");
    }

    #[test]
    fn unit_is_a_oneshot_before_the_network() {
        let t = render(InitSystem::Systemd).unwrap();
        for want in [
            "Type=oneshot\n",
            "ExecStart=/usr/local/sbin/mtkit firstboot --config /etc/mtkit/appliance.toml\n",
            "ConditionPathExists=/var/lib/mtkit/seal\n",
            "Before=network-pre.target sshd.service mtkit-writer.service shutdown.target\n",
            "WantedBy=multi-user.target\n",
        ] {
            assert!(t.contains(want), "{want} in {t}");
        }
    }
}
