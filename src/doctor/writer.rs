//! The writer's rows of doctor: whether the service starts with this config (the same check
//! it makes itself), whether the journal folder's filesystem survives a power cut (the same
//! judgement as at start), its TLS and how clients get certificates, and each target disk
//! (the same resolution and refusals the service applies at start). Nothing is changed.

use super::Finding;
use super::context::Context;
use crate::config::WriterTls;
use crate::host::crashsafe::{self, Safety};
use crate::writer::certs;
use crate::writer::preflight::{self, TlsPlan};
use crate::writer::targets;

/// Every writer row, in a fixed order.
pub fn findings(cx: &Context) -> Vec<Finding> {
    let mut out = vec![config(cx), journal_fs(cx)];
    if let Some(f) = tls(cx) {
        out.push(f);
    }
    out.extend(disks(cx));
    out
}

fn config(cx: &Context) -> Finding {
    const ID: &str = "writer-config";
    let problems = preflight::problems(cx.config);
    if problems.is_empty() {
        Finding::pass(ID, "the writer service starts with this config")
    } else {
        Finding::fail(
            ID,
            format!("the writer would refuse to start: {}", problems.join("; ")),
            "fix these keys in appliance.toml (`mtkit kickstart` and `mtkit build` refuse it too)",
        )
    }
}

/// The journal folder's filesystem: refused at start unless crash-safe (a warning with
/// `allow-unsafe-journal`); under a fixture root what cannot be read is not judged.
fn journal_fs(cx: &Context) -> Finding {
    const ID: &str = "journal-fs";
    let j = preflight::journal_filesystem(cx.config, cx.root);
    let dir = cx.config.writer.journal_dir(&cx.config.retention);
    let Some(why) = preflight::journal_refusal(cx.config, &j) else {
        return Finding::pass(
            ID,
            format!(
                "the journal folder {} is on {}",
                dir.display(),
                j.describe()
            ),
        );
    };
    if j.safety == Safety::Unknown && !cx.live() {
        return Finding::skip(ID, why);
    }
    if cx.config.writer.allow_unsafe_journal {
        return Finding::warn(
            ID,
            format!("{why}; the writer starts anyway ([writer] allow-unsafe-journal = true)"),
            format!("for tests and labs only: {}", crashsafe::REMEDY),
        );
    }
    Finding::fail(
        ID,
        format!("{why}; the writer refuses to start"),
        crashsafe::REMEDY,
    )
}

fn tls(cx: &Context) -> Option<Finding> {
    const ID: &str = "writer-tls";
    let plan = preflight::tls_plan(&cx.config.writer).ok()?;
    let issue = format!(
        "per replication source: `{}`, then give it {}/clients/NAME/",
        certs::ISSUE_CLIENT,
        certs::DEFAULT_DIR
    );
    Some(match plan {
        TlsPlan::Plain => Finding::pass(ID, plan.describe(cx.config)),
        TlsPlan::Insecure => Finding::warn(
            ID,
            plan.describe(cx.config),
            "remove [writer] insecure = true: the appliance then makes its own CA and forces TLS",
        ),
        TlsPlan::Configured => {
            let t = cx.config.writer.tls.clone().unwrap_or_default();
            let at = |p: Option<std::path::PathBuf>| p.map(|p| crate::host::under(cx.root, &p));
            let rebased = WriterTls {
                dir: at(t.dir),
                cert: at(t.cert),
                key: at(t.key),
                ca: at(t.ca),
            };
            match crate::writer::certs::server_config(&rebased) {
                Ok(_) => Finding::new(ID, super::Status::Pass, plan.describe(cx.config), issue),
                Err(e) => Finding::fail(
                    ID,
                    format!("[writer.tls] does not load: {e:#}"),
                    "fix the [writer.tls] files, or remove [writer.tls] so the appliance makes its own",
                ),
            }
        }
        TlsPlan::Own => {
            let dir = certs::default_dir(cx.root);
            let missing = certs::missing_default(cx.root);
            if !missing.is_empty() {
                // Not a fault: the service makes them at its first start.
                return Some(Finding::new(
                    ID,
                    super::Status::Pass,
                    format!(
                        "forced TLS; the appliance's CA and server certificate are made in {} \
                         by `mtkit apply` or the service's first start ({} not there yet)",
                        certs::DEFAULT_DIR,
                        missing.join(", ")
                    ),
                    format!("then {issue}"),
                ));
            }
            let loaded = crate::writer::certs::server_config(&WriterTls {
                dir: Some(dir.clone()),
                ..WriterTls::default()
            });
            if let Err(e) = loaded {
                return Some(Finding::fail(
                    ID,
                    format!("{} does not load: {e:#}", certs::DEFAULT_DIR),
                    "move the folder away and run `mtkit apply` for a new CA (clients then \
                     need new certificates)",
                ));
            }
            let mut clients: Vec<String> = std::fs::read_dir(dir.join(certs::CLIENTS))
                .map(|rd| {
                    rd.flatten()
                        .filter(|e| e.path().join("client-cert.pem").is_file())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            clients.sort();
            let own = format!(
                "forced TLS with the appliance's own CA in {}",
                certs::DEFAULT_DIR
            );
            if clients.is_empty() {
                // Replication needs one, but an appliance just installed has none yet.
                Finding::new(
                    ID,
                    super::Status::Pass,
                    format!("{own}; no client certificate issued yet"),
                    issue,
                )
            } else {
                Finding::new(
                    ID,
                    super::Status::Pass,
                    format!("{own}; client certificates: {}", clients.join(", ")),
                    issue,
                )
            }
        }
    })
}

fn disks(cx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    for (d, checked) in targets::check_all(cx.root, cx.config) {
        let id = format!("writer-disk:{}", d.name);
        out.push(match checked {
            Err((path, reason)) => Finding::fail(
                id,
                format!(
                    "not served: {}{reason}",
                    if path.is_empty() {
                        String::new()
                    } else {
                        format!("{path} ")
                    }
                ),
                "fix [[writer.disk]] path/scsi-id (`mtkit scsi-ids` lists the disks and IDs), \
                 or free the device",
            ),
            Ok(t) if d.scsi_id.is_empty() && crate::config::is_sd_path(&d.path) => Finding::warn(
                id,
                format!(
                    "{}: named by its kernel name only, which can change between boots",
                    t.path.display()
                ),
                "add scsi-id = \"...\" to this [[writer.disk]], as `mtkit scsi-ids` prints it",
            ),
            Ok(t) => Finding::pass(
                id,
                match d.scsi_id.as_str() {
                    "" => t.path.display().to_string(),
                    sid => format!("{} (SCSI ID {sid})", t.path.display()),
                },
            ),
        });
    }
    out
}
