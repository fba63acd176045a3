//! The rules on `[[writer.disk]]` that the writer's naming rests on: a disk's name is its
//! NBD export name (a view of it at a point is served as `NAME@POINT`) and the key of its
//! journal id, and a group's name is a folder of the journal.
//!
//! One function checks them all. Config validation reports what it finds at
//! file:line:column (so `kickstart` and `build` refuse such a config), and the service calls
//! it again before it opens a journal: a config built in code cannot put two disks under
//! one journal id, nor a group's folder outside the journal folder.

use super::WriterDisk;
use crate::writer::journal::format::disk_id;

/// The longest disk or group name, in bytes: an export name a client types, and a group's
/// journal folder, whose name must stay under NAME_MAX (255) with room to spare.
pub const MAX_NAME: usize = 200;

/// One rule a `[[writer.disk]]` entry breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskProblem {
    /// The entry, 0-based, in config order.
    pub index: usize,
    /// The key at fault: `name`, `group` or `path`.
    pub key: &'static str,
    /// What is wrong and what would be right.
    pub message: String,
}

/// Every rule the disks of `[[writer.disk]]` break, in config order.
pub fn disk_problems(disks: &[WriterDisk]) -> Vec<DiskProblem> {
    let mut out = Vec::new();
    for (i, d) in disks.iter().enumerate() {
        let mut bad = |key, message: String| {
            out.push(DiskProblem {
                index: i,
                key,
                message,
            })
        };
        let name_ok = match name_problem(&d.name) {
            Some(m) => {
                bad("name", m);
                false
            }
            None => match disks[..i].iter().position(|o| o.name == d.name) {
                Some(first) => {
                    bad(
                        "name",
                        format!(
                            "disk #{} has the same name: export names must be unique",
                            first + 1
                        ),
                    );
                    false
                }
                None => true,
            },
        };
        let group_ok = match group_problem(&d.group) {
            Some(m) => {
                bad("group", m);
                false
            }
            None => true,
        };
        if d.path.as_os_str().is_empty() && d.scsi_id.is_empty() {
            bad(
                "path",
                "a disk needs a path or a scsi-id (as `mtkit scsi-ids` prints it), e.g. \
                 scsi-id = \"36000c29a1b2c3d4e5f60718293a4b5c6\""
                    .into(),
            );
        }
        // The journal keeps no table of disks: a record names its disk by this id alone,
        // so two disks of one group with the same id would undo each other's blocks.
        if name_ok && group_ok {
            let id = disk_id(&d.name);
            let clash = disks[..i]
                .iter()
                .position(|o| o.group == d.group && o.name != d.name && disk_id(&o.name) == id);
            if let Some(first) = clash {
                bad(
                    "name",
                    format!(
                        "its journal id (crc32c of the name, {id:#010x}) is the one of disk #{} \
                         {:?} in group {:?}: rename one of them",
                        first + 1,
                        disks[first].name,
                        d.group
                    ),
                );
            }
        }
    }
    out
}

/// What one kind of name must be.
struct NameRule {
    /// "disk" or "group", for the length message.
    what: &'static str,
    /// One word (a disk's export name), or any text but blank (a group's folder).
    one_word: bool,
    /// The message for a missing (or blank) name.
    missing: &'static str,
    forbidden: [char; 2],
    /// The message for a forbidden character.
    why: &'static str,
}

const DISK_NAME: NameRule = NameRule {
    what: "disk",
    one_word: true,
    missing: "a disk needs a name (its NBD export name): one word, e.g. \"vm1-disk0\"",
    forbidden: ['@', '/'],
    why: "no '@' or '/' in a disk name: it is the NBD export name, and NAME@POINT names a \
          view of the disk at a point; e.g. \"vm1-disk0\"",
};

const GROUP_NAME: NameRule = NameRule {
    what: "group",
    one_word: false,
    missing: "every disk belongs to a consistency group: name it, e.g. the protected machine \
              \"vm1\"",
    forbidden: ['/', '.'],
    why: "no '/' or '.' in a group name: it names the group's folder in the journal; e.g. \
          \"vm1\"",
};

fn name_problem(name: &str) -> Option<String> {
    DISK_NAME.problem(name)
}

fn group_problem(group: &str) -> Option<String> {
    GROUP_NAME.problem(group)
}

impl NameRule {
    fn problem(&self, s: &str) -> Option<String> {
        if s.trim().is_empty() || (self.one_word && s.contains(char::is_whitespace)) {
            Some(self.missing.into())
        } else if s.contains(self.forbidden) {
            Some(self.why.into())
        } else if let Some(c) = s.chars().find(|c| c.is_control()) {
            // Names reach terminals (points, status), logs and NBD clients' lists.
            Some(format!(
                "the control character {c:?} in a {} name: use printable text",
                self.what
            ))
        } else if s.len() > MAX_NAME {
            Some(format!(
                "{} bytes: a {} name is at most {MAX_NAME} bytes",
                s.len(),
                self.what
            ))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(name: &str, group: &str) -> WriterDisk {
        WriterDisk {
            name: name.into(),
            path: format!("/dev/mapper/{name}").into(),
            scsi_id: String::new(),
            group: group.into(),
            size: None,
        }
    }

    #[test]
    fn every_rule_names_its_disk_and_key() {
        let long = "x".repeat(MAX_NAME + 1);
        let found = disk_problems(&[
            disk("ok", "g"),
            disk("a@1", "g"),
            disk("a/b", "g"),
            disk(&long, "g"),
            disk("b", "a.b"),
            disk("c", "../x"),
            disk("ok", "h"),
            disk("e\u{1b}[2J", "g"),
            disk("f", "g\n"),
            WriterDisk {
                path: "".into(),
                ..disk("d", "g")
            },
        ]);
        let got: Vec<(usize, &str)> = found.iter().map(|p| (p.index, p.key)).collect();
        assert_eq!(
            got,
            [
                (1, "name"),
                (2, "name"),
                (3, "name"),
                (4, "group"),
                (5, "group"),
                (6, "name"),
                (7, "name"),
                (8, "group"),
                (9, "path")
            ],
            "{found:#?}"
        );
        assert!(found[0].message.contains("'@'"), "{}", found[0].message);
        assert!(
            found[2].message.contains("at most 200"),
            "{}",
            found[2].message
        );
        assert!(found[5].message.contains("disk #1"), "{}", found[5].message);
        assert!(disk_problems(&[disk(&"x".repeat(MAX_NAME), "g")]).is_empty());
    }

    #[test]
    fn journal_ids_must_differ_within_a_group() {
        // Two names with one crc32c (found by a search over random names).
        let (a, b) = ("disk-aiyifwg", "disk-dlpjrry");
        assert_eq!(disk_id(a), disk_id(b));
        let found = disk_problems(&[disk(a, "g"), disk(b, "g")]);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!((found[0].index, found[0].key), (1, "name"));
        assert!(
            found[0].message.contains("journal id"),
            "{}",
            found[0].message
        );
        // Each group has its own journal: no clash across groups.
        assert!(disk_problems(&[disk(a, "g"), disk(b, "h")]).is_empty());
    }
}
