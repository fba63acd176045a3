//! Firewall: ssh and the writer's NBD port open in `/etc/sysconfig/iptables`, inserted
//! before the stock REJECT rules so they take effect.

use super::{InitSystem, Plan, Reader};
use crate::config::Config;
use anyhow::Result;
use std::net::SocketAddr;

pub const PATH: &str = "etc/sysconfig/iptables";
pub const SSH_PORT: u16 = 22;

/// Adds the iptables change to `plan`.
pub fn plan(r: &Reader, init: InitSystem, config: &Config, plan: &mut Plan) -> Result<()> {
    let mut ports = vec![SSH_PORT];
    match config.writer.listen.parse::<SocketAddr>() {
        Ok(a) if a.ip().is_loopback() => plan.notes.push(format!(
            "writer listens on {a} (loopback): its port is not opened in the firewall"
        )),
        Ok(a) => ports.push(a.port()),
        Err(_) if config.writer.listen.is_empty() => {}
        Err(_) => plan.notes.push(format!(
            "[writer] listen = \"{}\" is not an address:port; its port is not opened",
            config.writer.listen
        )),
    }
    let current = r.text(PATH)?;
    if current.is_none() && init == InitSystem::Systemd {
        plan.notes.push(format!(
            "no {PATH} (firewalld?): open tcp ports {ports:?} with firewall-cmd --permanent --add-port"
        ));
        return Ok(());
    }
    let new = plan_rules(current.as_deref().unwrap_or(STOCK), &ports);
    // A missing file on a SysV system is created with the stock rules plus ours.
    let new = match (current.is_none(), new) {
        (true, None) => Some(STOCK.to_string()),
        (_, n) => n,
    };
    plan.edit("firewall", PATH, current.as_deref(), new, 0o600);
    Ok(())
}

/// The rules file system-config-firewall writes on a fresh CentOS 6 (ssh open).
const STOCK: &str = "# Firewall configuration written by system-config-firewall
# Manual customization of this file is not recommended.
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m state --state ESTABLISHED,RELATED -j ACCEPT
-A INPUT -p icmp -j ACCEPT
-A INPUT -i lo -j ACCEPT
-A INPUT -m state --state NEW -m tcp -p tcp --dport 22 -j ACCEPT
-A INPUT -j REJECT --reject-with icmp-host-prohibited
-A FORWARD -j REJECT --reject-with icmp-host-prohibited
COMMIT
";

pub fn accept_rule(port: u16) -> String {
    format!("-A INPUT -m state --state NEW -m tcp -p tcp --dport {port} -j ACCEPT")
}

/// New rules text with an ACCEPT rule for each port, or `None` when all are there.
/// Rules go before the first INPUT REJECT/DROP of the filter table (or before its COMMIT).
pub fn plan_rules(current: &str, ports: &[u16]) -> Option<String> {
    let lines: Vec<&str> = current.lines().collect();
    let filter_start = lines.iter().position(|l| l.trim() == "*filter");
    let (start, end) = match filter_start {
        Some(s) => {
            let e = lines[s..]
                .iter()
                .position(|l| l.trim() == "COMMIT")
                .map(|e| s + e)
                .unwrap_or(lines.len());
            (s, e)
        }
        None => (lines.len(), lines.len()),
    };
    let missing: Vec<String> = ports
        .iter()
        .map(|&p| accept_rule(p))
        .filter(|r| {
            !lines[start.min(lines.len())..end]
                .iter()
                .any(|l| l.trim() == r)
        })
        .collect();
    if missing.is_empty() {
        return None;
    }
    let at = (start..end)
        .find(|&i| {
            let l = lines[i];
            l.starts_with("-A INPUT") && (l.contains("-j REJECT") || l.contains("-j DROP"))
        })
        .unwrap_or(end);
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    if filter_start.is_none() {
        out.extend(["*filter".into(), ":INPUT ACCEPT [0:0]".into()]);
        out.extend(missing);
        out.push("COMMIT".into());
    } else {
        for (k, r) in missing.into_iter().enumerate() {
            out.insert(at + k, r);
        }
    }
    Some(out.join("\n") + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_port_goes_before_reject() {
        let new = plan_rules(STOCK, &[22, 10809]).unwrap();
        assert!(new.contains(
            "--dport 22 -j ACCEPT\n-A INPUT -m state --state NEW -m tcp -p tcp --dport 10809 -j ACCEPT\n-A INPUT -j REJECT"
        ));
        assert_eq!(new.matches("--dport 22 ").count(), 1);
        assert_eq!(plan_rules(&new, &[22, 10809]), None);
    }

    #[test]
    fn file_without_filter_table_gets_one() {
        let new = plan_rules("*nat\nCOMMIT\n", &[22]).unwrap();
        assert!(new.ends_with("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m state --state NEW -m tcp -p tcp --dport 22 -j ACCEPT\nCOMMIT\n"));
    }
}
