//! The appliance's own TLS material: with `[writer.tls]` unset and the writer listening
//! beyond loopback, apply makes the CA and server certificate in /etc/mtkit/tls, so the
//! service starts with forced TLS from its first boot.
//!
//! Outside the plan model on purpose: keys are random and made once (O_EXCL), never
//! replaced. What apply made is noted in the folder (`.mtkit-apply.json`); `--revert`
//! removes it, unless client certificates were issued from that CA since (replication
//! sources hold them): then the folder is kept and a note says so.

use super::executor::Done;
use crate::config::Config;
use crate::writer::certs;
use crate::writer::preflight::{TlsPlan, tls_plan};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const AREA: &str = "tls";
/// apply's record in the TLS folder.
const NOTE: &str = ".mtkit-apply.json";

/// What apply made: file names in the TLS folder, folders relative to the root.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Record {
    files: Vec<String>,
    dirs: Vec<PathBuf>,
}

fn rel(name: &str) -> PathBuf {
    certs::default_rel().join(name)
}

fn done(path: PathBuf, action: &'static str) -> Done {
    Done {
        area: AREA.into(),
        path,
        action,
    }
}

/// Makes (or with `dry_run` lists) what is missing of the appliance's own TLS material.
pub fn apply(root: &Path, cfg: &Config, dry_run: bool) -> Result<Vec<Done>> {
    if tls_plan(&cfg.writer) != Ok(TlsPlan::Own) {
        return Ok(Vec::new());
    }
    if dry_run {
        return Ok(certs::missing_default(root)
            .into_iter()
            .map(|n| done(rel(n), "create"))
            .collect());
    }
    let made = certs::ensure_default(root, cfg)?;
    if made.files.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<String> = made
        .files
        .iter()
        .filter_map(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    let mut record = read_record(root)?.unwrap_or_default();
    for n in &names {
        if !record.files.contains(n) {
            record.files.push(n.clone());
        }
    }
    record.dirs.extend(made.dirs);
    let text = serde_json::to_string_pretty(&record).expect("record serializes") + "\n";
    certs::write_note(root, NOTE, &text)?;
    tracing::info!(
        dir = %made.dir.display(),
        "the writer's own CA and server certificate are made; issue client certificates with `{}`",
        certs::ISSUE_CLIENT
    );
    Ok(names.iter().map(|n| done(rel(n), "create")).collect())
}

fn read_record(root: &Path) -> Result<Option<Record>> {
    let Some(text) = certs::read_note(root, NOTE)? else {
        return Ok(None);
    };
    let r: Record = serde_json::from_str(&text).with_context(|| {
        format!(
            "parsing {} (apply's record of the TLS files it made)",
            certs::default_dir(root).join(NOTE).display()
        )
    })?;
    // Only what apply can have made is ever removed, whatever the record says.
    let known = [
        certs::CA_KEY,
        certs::CA_CERT,
        certs::SERVER_KEY,
        certs::SERVER_CERT,
    ];
    let made_dirs: Vec<&Path> = certs::default_rel().ancestors().collect();
    let bad = r.files.iter().find(|f| !known.contains(&f.as_str()));
    let bad_dir = r.dirs.iter().find(|d| !made_dirs.contains(&d.as_path()));
    if bad.is_some() || bad_dir.is_some() {
        return Err(crate::error::bad_input(format!(
            "{}: names what apply does not make ({}); fix or remove the file",
            certs::default_dir(root).join(NOTE).display(),
            bad.cloned()
                .or_else(|| bad_dir.map(|d| d.display().to_string()))
                .unwrap_or_default()
        )));
    }
    Ok(Some(r))
}

/// Undoes [`apply`]: removes what it made, unless client certificates were issued since.
pub fn revert(root: &Path, dry_run: bool) -> Result<(Vec<Done>, Vec<String>)> {
    let Some(record) = read_record(root)? else {
        return Ok((Vec::new(), Vec::new()));
    };
    let dir = certs::default_dir(root);
    let clients = std::fs::read_dir(dir.join(certs::CLIENTS))
        .map(|rd| rd.count())
        .unwrap_or(0);
    if clients > 0 {
        let note = format!(
            "kept {}: client certificates were issued from its CA (remove it by hand once no \
             replication source uses them)",
            certs::DEFAULT_DIR
        );
        return Ok((Vec::new(), vec![note]));
    }
    let mut names = record.files.clone();
    names.push(NOTE.into());
    let mut dirs = record.dirs.clone();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    if dry_run {
        let mut out: Vec<Done> = record
            .files
            .iter()
            .map(|n| done(rel(n), "remove"))
            .collect();
        out.extend(dirs.iter().map(|d| done(d.clone(), "remove")));
        return Ok((out, Vec::new()));
    }
    let removed = certs::remove_under(root, &names, &dirs)?;
    let out = removed
        .iter()
        .filter(|p| p.file_name().is_none_or(|n| n != NOTE))
        .filter_map(|p| p.strip_prefix(root).ok())
        .map(|p| done(p.to_path_buf(), "remove"))
        .collect();
    Ok((out, Vec::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(root: &Path) -> Vec<String> {
        let mut v: Vec<String> = walk(root)
            .iter()
            .map(|p| p.strip_prefix(root).unwrap().display().to_string())
            .collect();
        v.sort();
        v
    }

    fn walk(p: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(p).unwrap().flatten() {
            out.push(e.path());
            if e.file_type().unwrap().is_dir() {
                out.extend(walk(&e.path()));
            }
        }
        out
    }

    #[test]
    fn made_once_listed_by_a_dry_run_and_reverted_to_nothing() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir(root.join("etc")).unwrap();
        let cfg = Config::default();
        let dry = apply(root, &cfg, true).unwrap();
        assert_eq!(dry.len(), 4);
        assert_eq!(tree(root), ["etc"], "a dry run writes nothing");
        let done = apply(root, &cfg, false).unwrap();
        let mut paths: Vec<_> = done.iter().map(|d| d.path.clone()).collect();
        paths.sort();
        let mut want: Vec<_> = dry.iter().map(|d| d.path.clone()).collect();
        want.sort();
        assert_eq!(paths, want);
        assert!(root.join("etc/mtkit/tls/server-cert.pem").is_file());
        assert!(apply(root, &cfg, false).unwrap().is_empty());
        assert!(apply(root, &cfg, true).unwrap().is_empty());
        // Revert: the files and the folders apply made, not the one that was there.
        let (dry, _) = revert(root, true).unwrap();
        assert_eq!(dry.len(), 6, "{dry:?}");
        assert!(root.join("etc/mtkit/tls/ca-key.pem").is_file());
        let (done, notes) = revert(root, false).unwrap();
        assert!(notes.is_empty());
        assert_eq!(done.len(), 6, "{done:?}");
        assert_eq!(tree(root), ["etc"]);
        assert!(revert(root, false).unwrap().0.is_empty());
    }

    #[test]
    fn a_ca_with_clients_is_kept_and_loopback_makes_nothing() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let cfg = Config::default();
        apply(root, &cfg, false).unwrap();
        let pki = certs::Pki::open(&certs::default_dir(root)).unwrap();
        pki.issue_client("x", certs::Expiry::days_from_now(1).unwrap(), false)
            .unwrap();
        let (done, notes) = revert(root, false).unwrap();
        assert!(done.is_empty());
        assert!(
            notes[0].contains("client certificates were issued"),
            "{notes:?}"
        );
        assert!(root.join("etc/mtkit/tls/ca-key.pem").is_file());
        // A record naming other files is refused, nothing removed.
        std::fs::write(
            root.join("etc/mtkit/tls/.mtkit-apply.json"),
            r#"{"files": ["../../passwd"], "dirs": []}"#,
        )
        .unwrap();
        let e = revert(root, false).unwrap_err();
        assert_eq!(crate::error::exit_code(&e), 2, "{e:#}");
        // Loopback only: nothing to make.
        let mut lo = Config::default();
        lo.writer.listen = "127.0.0.1:10809".into();
        let t2 = tempfile::tempdir().unwrap();
        assert!(apply(t2.path(), &lo, false).unwrap().is_empty());
        assert!(std::fs::read_dir(t2.path()).unwrap().next().is_none());
    }
}
