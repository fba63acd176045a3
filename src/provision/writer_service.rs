//! The writer service: a SysV init script (CentOS 6) or a systemd unit, rendered from
//! templates/, with core dumps allowed in its environment.

use super::{InitSystem, Plan, Reader, Wanted};
use crate::config::Config;
use anyhow::{Context, Result};

pub const NAME: &str = "mtkit-writer";
pub const INIT_SCRIPT: &str = "etc/rc.d/init.d/mtkit-writer";
pub const SYSCONFIG: &str = "etc/sysconfig/mtkit-writer";
pub const UNIT: &str = "etc/systemd/system/mtkit-writer.service";
/// The init script's pid file (its `pidfile=/var/run/$prog.pid`).
pub const PIDFILE: &str = "var/run/mtkit-writer.pid";
/// Where the kickstart's %post installs mtkit.
pub const BIN: &str = "/usr/local/sbin/mtkit";
pub const CONFIG: &str = "/etc/mtkit/appliance.toml";

const INIT_TEMPLATE: &str = include_str!("../../templates/mtkit-writer.init");
const UNIT_TEMPLATE: &str = include_str!("../../templates/mtkit-writer.service");

/// The sysconfig file the init script sources: `ulimit -c` for the writer.
const SYSCONFIG_TEXT: &str =
    "# Environment of the mtkit writer service (sourced by /etc/init.d/mtkit-writer).
# Written by mtkit apply. Core dumps of the writer are kept: ulimit -c.
DAEMON_COREFILE_LIMIT=unlimited
";

/// Renders the init script or the unit.
pub fn render(init: InitSystem, config: &Config) -> Result<String> {
    let env = minijinja::Environment::new();
    let template = match init {
        InitSystem::SysV => INIT_TEMPLATE,
        InitSystem::Systemd => UNIT_TEMPLATE,
    };
    env.render_str(
        template,
        minijinja::context! {
            bin => BIN,
            config => CONFIG,
            mountpoint => systemd_path(&config.retention.mountpoint.to_string_lossy()),
        },
    )
    .map(|mut t| {
        // minijinja drops the template's final newline.
        if !t.ends_with('\n') {
            t.push('\n');
        }
        t
    })
    .context("rendering the writer service template")
}

/// A path as one value of a systemd list setting (`RequiresMountsFor=`): `%` doubled (a
/// specifier otherwise), and, when it has a blank, quote or backslash, double-quoted with
/// `\` and `"` escaped, so "/mnt/my retention" stays one path. Control characters never
/// get here (the config refuses them in paths), so no value can start a new line.
pub fn systemd_path(p: &str) -> String {
    let p = p.replace('%', "%%");
    if !p.contains([' ', '"', '\'', '\\']) {
        return p;
    }
    let mut out = String::from("\"");
    for c in p.chars() {
        if c == '\\' || c == '"' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Adds the service files to `plan`.
pub fn plan(_r: &Reader, init: InitSystem, config: &Config, plan: &mut Plan) -> Result<()> {
    let text = render(init, config)?;
    match init {
        InitSystem::SysV => {
            plan.want(
                "writer-service",
                INIT_SCRIPT,
                Wanted::File {
                    text: text.clone(),
                    mode: 0o755,
                },
            );
            plan.want(
                "writer-service",
                SYSCONFIG,
                Wanted::File {
                    text: SYSCONFIG_TEXT.to_string(),
                    mode: 0o644,
                },
            );
        }
        InitSystem::Systemd => {
            plan.want(
                "writer-service",
                UNIT,
                Wanted::File {
                    text: text.clone(),
                    mode: 0o644,
                },
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_script_has_chkconfig_header_pidfile_and_core_limit() {
        let t = render(InitSystem::SysV, &Config::default()).unwrap();
        assert!(t.starts_with("#!/bin/bash\n"));
        assert!(t.contains("\n# chkconfig: 345 95 05\n"));
        assert!(t.contains("pidfile=/var/run/$prog.pid"));
        assert!(t.contains("exec=/usr/local/sbin/mtkit\n"));
        assert!(t.contains("ulimit -c \"${DAEMON_COREFILE_LIMIT:-unlimited}\""));
        assert!(t.contains("ulimit -n \"${DAEMON_NOFILE_LIMIT:-65536}\""));
        assert!(t.contains("logger -t \"$prog\""));
        assert!(t.ends_with("exit $?\n"));
        assert!(!t.contains("{{"), "every placeholder rendered");
    }

    #[test]
    fn unit_allows_cores_and_restarts() {
        let t = render(InitSystem::Systemd, &Config::default()).unwrap();
        assert!(t.contains(
            "ExecStart=/usr/local/sbin/mtkit writer run --config /etc/mtkit/appliance.toml\n"
        ));
        assert!(t.contains("LimitCORE=infinity\n"));
        assert!(t.contains("LimitNOFILE=65536\n"));
        assert!(t.contains("Restart=always\n"));
        assert!(t.contains("RequiresMountsFor=/mnt/retention\n"));
        assert!(t.contains("WantedBy=multi-user.target\n"));
    }

    #[test]
    fn paths_are_escaped_for_systemd() {
        assert_eq!(systemd_path("/mnt/retention"), "/mnt/retention");
        assert_eq!(systemd_path("/mnt/my retention"), "\"/mnt/my retention\"");
        assert_eq!(systemd_path("/mnt/100%"), "/mnt/100%%");
        assert_eq!(systemd_path("/mnt/a\"b\\c"), "\"/mnt/a\\\"b\\\\c\"");
    }

    #[test]
    fn init_script_is_valid_bash() {
        let t = render(InitSystem::SysV, &Config::default()).unwrap();
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("mtkit-writer");
        std::fs::write(&p, t).unwrap();
        // The init script runs under CentOS 6's bash: a syntax error would only show at boot.
        crate::external::Tool::new("bash", "bash", "bash")
            .run([std::ffi::OsStr::new("-n"), p.as_os_str()])
            .expect("bash -n accepts the init script");
    }
}
