//! `[access]`: the SSH public keys that may log in, inline and from a key file.

use super::locate::{Checker, element, path, q};
use crate::config::Config;
use crate::config::ssh;

/// Each inline key is a real OpenSSH public key line (see `super::ssh`).
pub(super) fn check(c: &Config, ck: &mut Checker<'_>) {
    for (i, line) in c.access.ssh_authorized_keys.iter().enumerate() {
        if let Err(e) = ssh::parse_public_key(line.trim()) {
            ck.report(&element(&["access", "ssh-authorized-keys"], i), q(line), e);
        }
    }
    if c.access
        .ssh_authorized_keys_file
        .as_ref()
        .is_some_and(|f| f.as_os_str().is_empty())
    {
        ck.report(
            &path(&["access", "ssh-authorized-keys-file"]),
            "\"\"",
            "empty path: name a file of public key lines (e.g. ~/.ssh/id_rsa.pub), or remove the key",
        );
    }
}

/// Reads `[access] ssh-authorized-keys-file` (relative to `base`), checks every line and
/// adds its keys to `ssh-authorized-keys`; problems name the file and line.
pub(super) fn read_key_file(c: &mut Config, base: &std::path::Path, ck: &mut Checker<'_>) {
    let Some(file) = c.access.ssh_authorized_keys_file.clone() else {
        return;
    };
    if file.as_os_str().is_empty() {
        return;
    }
    let full = base.join(&file);
    let at = path(&["access", "ssh-authorized-keys-file"]);
    let shown = q(&file.display().to_string());
    // A regular file of at most 1 MiB (a FIFO would hang the command), as UTF-8.
    let read = crate::files::read_input(&full, 1 << 20).and_then(|b| {
        String::from_utf8(b)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
    });
    let text = match read {
        Ok(t) => t,
        Err(e) => {
            ck.report(
                &at,
                shown,
                format!(
                    "cannot read {}: {e} (name a file of public key lines, e.g. ~/.ssh/id_rsa.pub)",
                    full.display()
                ),
            );
            return;
        }
    };
    match ssh::parse_key_file(&text) {
        Ok(keys) if keys.is_empty() => {
            ck.report(&at, shown, format!("{} holds no key line", full.display()))
        }
        Ok(keys) => {
            for k in keys {
                let line = k.to_string();
                if !c.access.ssh_authorized_keys.contains(&line) {
                    c.access.ssh_authorized_keys.push(line);
                }
            }
            c.access.ssh_authorized_keys_file = Some(full);
        }
        Err((line, e)) => ck.report(&at, shown, format!("{}:{line}: {e}", full.display())),
    }
}
