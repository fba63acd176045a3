//! The writer service: config → groups and disks, the export resolver the NBD server asks,
//! the operations behind the control socket, and the run loop (SIGTERM drains and exits 0).

use super::group::{DiskSpec, Group, Point};
use super::journal::Access;
use super::journaled::JournaledDisk;
use super::policy;
use super::recover::{PointSpec, RecoverReport};
pub use super::targets::Refused;
use super::{ClientInfo, Export, ExportInfo, ExportResolver, OpenError};
use crate::config::{Config, Policy};
use crate::error::bad_input;
use crate::host::under;
use anyhow::Context;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

/// The groups of a config, opened (their journals locked by this process).
pub struct Writer {
    pub groups: BTreeMap<String, Arc<Group>>,
    /// Disk name → (group, index in the group).
    disks: HashMap<String, (String, usize)>,
    clients: HashMap<String, Vec<String>>,
    pub policy: Policy,
    /// Disks not served (a group with one is not served at all), and why.
    pub refused: Vec<Refused>,
    /// Groups whose journal or recovery session could not be opened: closed, the others
    /// serve.
    pub closed: Vec<ClosedGroup>,
    /// Disk name → its closed group.
    closed_disks: HashMap<String, String>,
    /// The O_EXCL descriptors of block-device targets, held while the writer lives.
    _claims: Vec<std::fs::File>,
}

/// The disks of `[[writer.disk]]` by group, in config order. Config validation has
/// checked their names already; the same rules are checked again here, from the same
/// function, because a wrong group name or journal id would write outside the journal
/// folder or mix two disks' undo records.
pub fn plan_groups(cfg: &Config) -> anyhow::Result<BTreeMap<String, Vec<DiskSpec>>> {
    let problems = crate::config::writer_names::disk_problems(&cfg.writer.disk);
    if !problems.is_empty() {
        let lines: Vec<String> = problems
            .iter()
            .map(|p| {
                let d = &cfg.writer.disk[p.index];
                format!(
                    "[[writer.disk]] #{} ({:?}) {}: {}",
                    p.index + 1,
                    d.name,
                    p.key,
                    p.message
                )
            })
            .collect();
        return Err(bad_input(lines.join("\n")));
    }
    let mut groups: BTreeMap<String, Vec<DiskSpec>> = BTreeMap::new();
    for d in &cfg.writer.disk {
        groups.entry(d.group.clone()).or_default().push(DiskSpec {
            name: d.name.clone(),
            path: d.path.clone(),
            size: d.size.map(|s| s.bytes()),
        });
    }
    for g in &cfg.writer.group {
        if !groups.contains_key(&g.name) {
            tracing::warn!(group = %g.name, "[[writer.group]] names a group without disks");
        }
    }
    Ok(groups)
}

impl Writer {
    pub fn open(cfg: &Config) -> anyhow::Result<Writer> {
        Writer::open_at(cfg, Path::new("/"))
    }

    /// Opens the groups of `cfg` on the system under `root` (`/` but in tests): every disk
    /// found and checked as `super::targets` says; a group with a refused disk is not
    /// served, and is reported in the log and in status.
    pub fn open_at(cfg: &Config, root: &Path) -> anyhow::Result<Writer> {
        Writer::open_with(cfg, root, Access::Write)
    }

    /// [`Writer::open_at`]; [`Access::ReadOnly`] for commands that only list (`status`,
    /// `points`): they then change nothing in any journal.
    pub fn open_with(cfg: &Config, root: &Path, access: Access) -> anyhow::Result<Writer> {
        let mut plan = plan_groups(cfg)?;
        let dir = under(root, &cfg.writer.journal_dir(&cfg.retention));
        let host = super::targets::Host::read(root, cfg);
        let mut refused = Vec::new();
        let mut claims = Vec::new();
        plan.retain(|gname, specs| {
            let mut held = Vec::new();
            let mut bad = Vec::new();
            for spec in specs.iter_mut() {
                let Some(d) = cfg.writer.disk.iter().find(|d| d.name == spec.name) else {
                    continue;
                };
                // Listings never claim a disk: a `status` run while the service starts
                // (before its control socket answers) would otherwise hold the disks with
                // O_EXCL at the moment the service claims them, and the service would refuse
                // them as busy until restarted.
                let checked = host.check(d).and_then(|mut t| {
                    if access == Access::ReadOnly {
                        return Ok(t);
                    }
                    match host.claim(&mut t) {
                        Ok(()) => Ok(t),
                        Err(e) => Err((t.path.display().to_string(), e)),
                    }
                });
                match checked {
                    Ok(t) => {
                        spec.path = t.node;
                        held.extend(t.claim);
                    }
                    Err((path, reason)) => bad.push(Refused {
                        name: d.name.clone(),
                        group: gname.clone(),
                        path,
                        reason,
                    }),
                }
            }
            for r in &bad {
                tracing::error!(disk = %r.name, group = %r.group, path = %r.path, "disk not served: {}", r.reason);
            }
            if bad.is_empty() {
                claims.extend(held);
                true
            } else {
                tracing::error!(group = %gname, "group not served: a disk of it was refused (its points stay in the journal)");
                refused.extend(bad);
                false
            }
        });
        let mut groups = BTreeMap::new();
        let mut disks = HashMap::new();
        let mut closed = Vec::new();
        let mut closed_disks = HashMap::new();
        for (name, specs) in plan {
            let gdir = dir.join(&name);
            let size = cfg.writer.journal_segment_size.0;
            let g = match Group::open_with(&name, &gdir, &specs, size, access) {
                Ok(g) => g,
                // One group's damage must not take the others down: it is closed.
                Err(e) => {
                    let e = anyhow::Error::new(e).context(format!("group {name}"));
                    let reason = format!("{e:#}");
                    tracing::error!(group = %name, "group closed: {reason}");
                    closed_disks.extend(specs.iter().map(|d| (d.name.clone(), name.clone())));
                    closed.push(ClosedGroup { name, reason });
                    continue;
                }
            };
            if access == Access::Write {
                g.journal().set_write_ahead(cfg.writer.journal_write_ahead);
                g.set_write_behind(cfg.writer.write_behind);
                g.set_direct_initial_sync(cfg.writer.initial_sync_direct_io);
            }
            for d in g.damage() {
                tracing::error!(group = %name, "journal damage: the points before it are lost: {}", d.reason);
            }
            for (i, d) in specs.iter().enumerate() {
                disks.insert(d.name.clone(), (name.clone(), i));
            }
            if g.is_recovering() {
                tracing::warn!(group = %name, "group is under recovery: its disks are not served until `mtkit commit`");
            }
            groups.insert(name, g);
        }
        let clients = cfg
            .writer
            .group
            .iter()
            .map(|g| (g.name.clone(), g.clients.clone()))
            .collect();
        Ok(Writer {
            groups,
            disks,
            clients,
            policy: cfg.policy.clone(),
            refused,
            closed,
            closed_disks,
            _claims: claims,
        })
    }

    pub fn group(&self, name: &str) -> anyhow::Result<&Arc<Group>> {
        let not_served: Vec<String> = self
            .refused
            .iter()
            .filter(|r| r.group == name)
            .map(|r| format!("disk {} ({}): {}", r.name, r.path, r.reason))
            .collect();
        if !not_served.is_empty() {
            return Err(bad_input(format!(
                "group {name:?} is not served: {}",
                not_served.join("; ")
            )));
        }
        if let Some(c) = self.closed.iter().find(|c| c.name == name) {
            anyhow::bail!("group {name:?} is closed: {}", c.reason);
        }
        self.groups.get(name).ok_or_else(|| {
            bad_input(format!(
                "no group {name:?} in [[writer.disk]] (groups: {})",
                self.groups.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })
    }

    pub fn status(&self) -> Status {
        let now = super::group::now_us();
        let groups = self
            .groups
            .values()
            .map(|g| {
                let points = g.points();
                let health = policy::health(g, &self.policy, now);
                let (journal_bytes, journal_segments) = {
                    // Poisoned only by a panic mid-update of the journal: not to go on from.
                    let j = g.journal();
                    (j.total_bytes(), j.segments().len())
                };
                let mut warnings = health.warnings;
                let lost_points = points.iter().filter(|p| p.lost.is_some()).count();
                warnings.extend(g.damage().into_iter().map(|d| {
                    format!(
                        "journal damaged, points before {} lost: {}",
                        d.before_seq, d.reason
                    )
                }));
                // Status must still answer for a group whose session is unreadable: it is
                // shown as recovering (it is closed) with the reason among its warnings.
                let recovered_to = match g.session() {
                    Ok(s) => s.and_then(|s| s.at),
                    Err(e) => {
                        warnings.push(e.to_string());
                        None
                    }
                };
                GroupStatus {
                    name: g.name.clone(),
                    state: if g.is_recovering() {
                        GroupState::Recovering
                    } else if g.in_initial_sync() {
                        GroupState::InitialSync
                    } else {
                        GroupState::Replicating
                    },
                    recovered_to,
                    points: points.len(),
                    lost_points,
                    oldest_point: points.first().cloned(),
                    newest_point: points.last().cloned(),
                    newest_app_point: points
                        .iter()
                        .rev()
                        .find(|p| p.kind == crate::writer::group::PointKind::App)
                        .cloned(),
                    history_secs: points.first().map_or(0, |p| {
                        (chrono::Utc::now() - p.time).num_seconds().max(0) as u64
                    }),
                    journal_bytes,
                    journal_segments,
                    rpo_lag_secs: health.rpo_lag_secs,
                    warnings,
                    disks: g
                        .disks
                        .iter()
                        .map(|t| DiskStatus {
                            name: t.name.clone(),
                            path: t.path().display().to_string(),
                            size: t.size(),
                            clients: t.clients.load(std::sync::atomic::Ordering::Relaxed),
                            bytes_written: t
                                .bytes_written
                                .load(std::sync::atomic::Ordering::Relaxed),
                        })
                        .collect(),
                }
            })
            .collect();
        Status {
            groups,
            refused: self.refused.clone(),
            closed: self.closed.clone(),
        }
    }

    pub fn points(&self, group: Option<&str>) -> anyhow::Result<Vec<GroupPoints>> {
        let groups: Vec<&Arc<Group>> = match group {
            Some(g) => vec![self.group(g)?],
            None => self.groups.values().collect(),
        };
        Ok(groups
            .into_iter()
            .map(|g| GroupPoints {
                group: g.name.clone(),
                points: g.points(),
            })
            .collect())
    }

    pub fn bookmark(&self, group: &str, label: &str) -> anyhow::Result<Point> {
        check_label(label)?;
        let g = self.group(group)?;
        let p = g
            .point(true, label)
            .with_context(|| format!("bookmarking group {group}"))?;
        p.ok_or_else(|| anyhow::anyhow!("no point made"))
    }

    pub fn recover(
        &self,
        group: &str,
        to: &PointSpec,
        dry_run: bool,
        progress: &mut dyn FnMut(u64, u64),
    ) -> anyhow::Result<RecoverReport> {
        self.group(group)?.recover(to, dry_run, progress)
    }

    pub fn commit(&self, group: &str) -> anyhow::Result<Point> {
        self.group(group)?.commit()
    }

    /// Makes every group's acknowledged writes durable (at shutdown).
    pub fn sync_all(&self) {
        for g in self.groups.values() {
            for t in &g.disks {
                if let Err(e) = t.sync() {
                    tracing::error!(disk = %t.name, error = %e, "syncing at shutdown");
                }
            }
        }
    }
}

/// Longest point label, in bytes: a label is a note to find a point by, not a document.
pub const MAX_LABEL: usize = 512;

/// A bookmark label is printed by `points` and `status` on an operator's terminal: control
/// characters (escape sequences, newlines that fake a row) are refused, as bad input.
pub fn check_label(label: &str) -> anyhow::Result<()> {
    if let Some(c) = label.chars().find(|c| c.is_control()) {
        return Err(bad_input(format!(
            "label {label:?} holds the control character {c:?}: a label is one line of \
             printable text, e.g. \"before-upgrade\""
        )));
    }
    if label.len() > MAX_LABEL {
        return Err(bad_input(format!(
            "label of {} bytes: a label is at most {MAX_LABEL} bytes",
            label.len()
        )));
    }
    Ok(())
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Status {
    pub groups: Vec<GroupStatus>,
    /// Disks not served: their ID, device or use did not pass the start checks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<Refused>,
    /// Groups not served because their journal or session could not be opened.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub closed: Vec<ClosedGroup>,
}

/// A group that could not be opened, and why.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ClosedGroup {
    pub name: String,
    pub reason: String,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GroupStatus {
    pub name: String,
    pub state: GroupState,
    pub recovered_to: Option<u64>,
    pub points: usize,
    /// Points that cannot be recovered: journal records they need are damaged.
    pub lost_points: usize,
    pub oldest_point: Option<Point>,
    pub newest_point: Option<Point>,
    pub newest_app_point: Option<Point>,
    /// How far back the kept points reach.
    pub history_secs: u64,
    pub journal_bytes: u64,
    pub journal_segments: usize,
    pub rpo_lag_secs: u64,
    pub warnings: Vec<String>,
    pub disks: Vec<DiskStatus>,
}

/// What a group is doing; `--json` shows it kebab-case, as docs/writer.md documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GroupState {
    /// No baseline yet: writes go straight through and make no points.
    InitialSync,
    /// Journaling: every flush after writes is a point.
    Replicating,
    /// Rolled back (or being rolled) to a point: writes refused until commit.
    Recovering,
}

impl std::fmt::Display for GroupState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GroupState::InitialSync => "initial-sync",
            GroupState::Replicating => "replicating",
            GroupState::Recovering => "recovering",
        })
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DiskStatus {
    pub name: String,
    pub path: String,
    pub size: u64,
    pub clients: usize,
    pub bytes_written: u64,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GroupPoints {
    pub group: String,
    pub points: Vec<Point>,
}

impl ExportResolver for Writer {
    fn list(&self, client: &ClientInfo) -> Vec<ExportInfo> {
        let mut out: Vec<ExportInfo> = self
            .disks
            .iter()
            .filter(|(_, (g, _))| self.may_open(g, client))
            // The export name and its group only: where a target lives on the appliance is
            // nothing a client needs (docs/nbd-server.md).
            .map(|(name, (g, _))| ExportInfo {
                name: name.clone(),
                description: format!("group {g}"),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    fn open(&self, name: &str, client: &ClientInfo) -> Result<Arc<dyn Export>, OpenError> {
        let (disk, point) = match name.split_once('@') {
            Some((d, p)) => (d, Some(p)),
            None => (name, None),
        };
        let refuse = |reason: String| {
            tracing::warn!(export = name, peer = ?client.peer, identity = ?client.identity, "{reason}");
            OpenError::Refused {
                name: name.to_string(),
                reason,
            }
        };
        if let Some(g) = self.closed_disks.get(disk)
            && self.may_open(g, client)
        {
            return Err(refuse(format!(
                "group {g} is closed: its journal or recovery session could not be opened (see `mtkit writer status`)"
            )));
        }
        let (gname, idx) = self
            .disks
            .get(disk)
            .ok_or_else(|| OpenError::Unknown(name.to_string()))?;
        if !self.may_open(gname, client) {
            // The log names the group; the client's answer does not name what it cannot see.
            tracing::warn!(export = name, peer = ?client.peer, identity = ?client.identity,
                "client not allowed for group {gname}");
            return Err(OpenError::Refused {
                name: name.to_string(),
                reason: match client.identity {
                    Some(_) => "this client's certificate is not allowed to open it".into(),
                    None => "this client's certificate names no identity (CN or DNS SAN)".into(),
                },
            });
        }
        let g = &self.groups[gname];
        if g.is_recovering() {
            return Err(refuse(format!("group {gname} is being recovered")));
        }
        match point {
            None => Ok(Arc::new(JournaledDisk::new(g.clone(), *idx))),
            Some(p) => {
                let id: u64 = p
                    .parse()
                    .map_err(|_| OpenError::Unknown(name.to_string()))?;
                g.view(*idx, id)
                    .map(|v| Arc::new(v) as Arc<dyn Export>)
                    .map_err(|e| refuse(format!("{e:#}")))
            }
        }
    }
}

impl Writer {
    /// `[[writer.group]] clients` restricts TLS clients by certificate identity; a TLS client
    /// without a usable identity opens only groups that list nobody ([`super::access::allowed`]).
    fn may_open(&self, group: &str, client: &ClientInfo) -> bool {
        let list = self.clients.get(group).map_or(&[][..], |v| v.as_slice());
        super::access::allowed(list, client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &std::path::Path, disks: &[(&str, &str)]) -> Config {
        let mut text = format!(
            "[writer]\njournal-dir = \"{}\"\n[[writer.group]]\nname = \"vm1\"\nclients = [\"src-vm1\"]\n",
            dir.join("j").display()
        );
        for (name, group) in disks {
            text += &format!(
                "[[writer.disk]]\nname = \"{name}\"\ngroup = \"{group}\"\npath = \"{}\"\nsize = \"1M\"\n",
                dir.join(format!("{name}.img")).display()
            );
        }
        toml::from_str(&text).unwrap()
    }

    fn who(id: Option<&str>) -> ClientInfo {
        ClientInfo {
            peer: None,
            tls: id.is_some(),
            identity: id.map(String::from),
        }
    }

    #[test]
    fn bad_disk_lists_are_refused_as_bad_input() {
        let t = tempfile::tempdir().unwrap();
        for disks in [
            &[("a@1", "g")][..],
            &[("a", "g"), ("a", "h")][..],
            &[("a", "")][..],
            &[("a", "../x")][..],
        ] {
            let err = plan_groups(&config(t.path(), disks)).unwrap_err();
            assert_eq!(crate::error::exit_code(&err), 2, "{err:#}");
        }
    }

    #[test]
    fn resolver_serves_disks_and_views_and_applies_group_access() {
        let t = tempfile::tempdir().unwrap();
        let w = Writer::open(&config(t.path(), &[("d0", "vm1"), ("d1", "vm2")])).unwrap();
        // vm1 names its clients: with TLS identities, only those see and open its disks.
        let names = |c| w.list(&c).into_iter().map(|e| e.name).collect::<Vec<_>>();
        assert_eq!(names(who(Some("src-vm1"))), ["d0", "d1"]);
        assert_eq!(names(who(Some("other"))), ["d1"]);
        // A TLS client whose certificate names nobody sees and opens only unlisted groups.
        let nameless = ClientInfo {
            tls: true,
            ..ClientInfo::default()
        };
        assert_eq!(names(nameless.clone()), ["d1"]);
        let err = w.open("d0", &nameless).err().unwrap();
        assert!(matches!(err, OpenError::Refused { .. }));
        assert!(!err.to_string().contains("vm1"), "{err}");
        assert!(
            w.list(&nameless)
                .iter()
                .all(|e| !e.description.contains('/'))
        );
        assert!(matches!(
            w.open("d0", &who(Some("other"))),
            Err(OpenError::Refused { .. })
        ));
        assert!(matches!(
            w.open("nope", &who(None)),
            Err(OpenError::Unknown(_))
        ));
        let d0 = w.open("d0", &who(Some("src-vm1"))).unwrap();
        d0.write_at(&[1; 4096], 0, false).unwrap();
        let p = w.bookmark("vm1", "base").unwrap();
        d0.write_at(&[2; 4096], 0, false).unwrap();
        let view = w
            .open(&format!("d0@{}", p.id), &who(Some("src-vm1")))
            .unwrap();
        assert!(view.read_only());
        let mut b = [0u8; 4096];
        view.read_at(&mut b, 0).unwrap();
        assert_eq!(b, [1; 4096]);
        assert!(matches!(
            w.open("d0@999", &who(None)),
            Err(OpenError::Refused { .. })
        ));
        assert!(matches!(
            w.open("d0@x", &who(None)),
            Err(OpenError::Unknown(_))
        ));
        d0.flush().unwrap();
        w.recover("vm1", &PointSpec::LatestApp, false, &mut |_, _| {})
            .unwrap();
        let err = w.open("d0", &who(None)).err().unwrap();
        assert!(err.to_string().contains("recovered"), "{err}");
        assert!(
            d0.write_at(&[3; 4096], 0, false).is_err(),
            "open connections get errors"
        );
        // The other group is untouched by vm1's recovery.
        assert!(w.open("d1", &who(None)).is_ok());
        w.commit("vm1").unwrap();
        assert!(w.open("d0", &who(None)).is_ok());
    }

    /// Every key of `v`, recursively, as "a.b.c" paths (array items as "[]").
    fn keys(v: &serde_json::Value, at: &str, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    let p = format!("{at}.{k}");
                    out.push(p.clone());
                    keys(x, &p, out);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| keys(x, &format!("{at}[]"), out)),
            _ => {}
        }
    }

    #[test]
    fn json_shapes_are_kebab_case_and_stable() {
        let t = tempfile::tempdir().unwrap();
        let w = Writer::open(&config(t.path(), &[("d0", "vm1")])).unwrap();
        w.bookmark("vm1", "base").unwrap();
        let d0 = w.open("d0", &who(None)).unwrap();
        d0.write_at(&[1; 4096], 0, false).unwrap();
        d0.flush().unwrap();
        let mut all = Vec::new();
        let status = serde_json::to_value(w.status()).unwrap();
        keys(&status, "", &mut all);
        let points = serde_json::to_value(w.points(None).unwrap()).unwrap();
        keys(&points, "", &mut all);
        let report = w
            .recover("vm1", &PointSpec::LatestApp, true, &mut |_, _| {})
            .unwrap();
        keys(&serde_json::to_value(report).unwrap(), "", &mut all);
        for k in &all {
            assert!(
                !k.contains('_'),
                "snake_case key {k}: --json keys are kebab-case"
            );
        }
        // The documented shape (docs/writer.md): renaming a key breaks scripts.
        let mut group: Vec<_> = status["groups"][0]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        group.sort();
        assert_eq!(
            group,
            [
                "disks",
                "history-secs",
                "journal-bytes",
                "journal-segments",
                "lost-points",
                "name",
                "newest-app-point",
                "newest-point",
                "oldest-point",
                "points",
                "recovered-to",
                "rpo-lag-secs",
                "state",
                "warnings"
            ]
        );
        let mut disk: Vec<_> = status["groups"][0]["disks"][0]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        disk.sort();
        assert_eq!(disk, ["bytes-written", "clients", "name", "path", "size"]);
        assert_eq!(points[0]["group"], "vm1");
        let p = points[0]["points"][0].as_object().unwrap();
        assert!(p.contains_key("id") && p.contains_key("time") && p["kind"] == "app");
        assert_eq!(p["label"], "base");
    }

    #[test]
    fn a_view_never_serves_a_disk_rolled_back_under_it() {
        let t = tempfile::tempdir().unwrap();
        let w = Writer::open(&config(t.path(), &[("d0", "vm1")])).unwrap();
        let d0 = w.open("d0", &who(None)).unwrap();
        d0.write_at(&[1; 4096], 0, false).unwrap();
        let p1 = w.bookmark("vm1", "one").unwrap();
        d0.write_at(&[2; 4096], 0, false).unwrap();
        d0.write_at(&[2; 4096], 8192, false).unwrap();
        let p2 = w.bookmark("vm1", "two").unwrap();
        d0.write_at(&[3; 4096], 0, false).unwrap();
        d0.flush().unwrap();
        let view = w.open(&format!("d0@{}", p2.id), &who(None)).unwrap();
        let mut b = [0u8; 4096];
        view.read_at(&mut b, 8192).unwrap();
        assert_eq!(b, [2; 4096]);
        // Rolled back in place to p1: block 2 is zero now, not what the view's point held.
        w.recover("vm1", &PointSpec::Id(p1.id), false, &mut |_, _| {})
            .unwrap();
        let r = view.read_at(&mut b, 8192);
        assert!(r.is_err(), "the view served {:?}", &b[..4]);
        w.commit("vm1").unwrap();
        let r = view.read_at(&mut b, 8192);
        assert!(r.is_err(), "the view served {:?} after commit", &b[..4]);
        // A view of the committed point stays exact.
        let base = w.open(&format!("d0@{}", p1.id), &who(None)).unwrap();
        d0.write_at(&[4; 4096], 0, false).unwrap();
        base.read_at(&mut b, 0).unwrap();
        assert_eq!(b, [1; 4096]);
    }

    #[test]
    fn a_commit_sent_during_a_recover_commits_where_the_disks_end_up() {
        let t = tempfile::tempdir().unwrap();
        let w = Writer::open(&config(t.path(), &[("d0", "vm1")])).unwrap();
        let d0 = w.open("d0", &who(None)).unwrap();
        d0.write_at(&[1; 4096], 0, false).unwrap();
        let p1 = w.bookmark("vm1", "one").unwrap();
        d0.write_at(&[2; 4096], 0, false).unwrap();
        let p2 = w.bookmark("vm1", "two").unwrap();
        d0.write_at(&[3; 4096], 0, false).unwrap();
        d0.flush().unwrap();
        w.recover("vm1", &PointSpec::Id(p1.id), false, &mut |_, _| {})
            .unwrap();
        // A second recover (to p2) is held half-way while a commit comes in.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (in_tx, in_rx) = std::sync::mpsc::channel::<()>();
        let committed = std::thread::scope(|s| {
            let rec = s.spawn(|| {
                let mut held = Some(rx);
                w.recover("vm1", &PointSpec::Id(p2.id), false, &mut |_, _| {
                    if let Some(rx) = held.take() {
                        in_tx.send(()).unwrap();
                        rx.recv().unwrap();
                    }
                })
                .unwrap()
            });
            in_rx.recv().unwrap();
            let commit = s.spawn(|| w.commit("vm1"));
            std::thread::sleep(std::time::Duration::from_millis(200));
            tx.send(()).unwrap();
            rec.join().unwrap();
            commit.join().unwrap().unwrap()
        });
        // The baseline is the point the disks are at, not the one before the last recover.
        assert_eq!(committed.id, p2.id);
        let mut b = [0u8; 4096];
        d0.read_at(&mut b, 0).unwrap();
        assert_eq!(b, [2; 4096]);
        assert_eq!(w.points(Some("vm1")).unwrap()[0].points, [p2]);
    }
}
