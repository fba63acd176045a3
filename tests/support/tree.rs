//! A folder tree as data, to assert that a run changed nothing (or exactly what it should).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Every entry under `root`: kind + content (file bytes and mode, or link target).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir(u32),
    File(Vec<u8>, u32),
    Link(PathBuf),
    /// A FIFO or device: never opened.
    Other(u32),
}

pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, Node> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Node>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let mode = m.permissions().mode() & 0o7777;
            if m.file_type().is_symlink() {
                out.insert(rel, Node::Link(fs::read_link(&p).unwrap()));
            } else if m.is_dir() {
                out.insert(rel, Node::Dir(mode));
                walk(root, &p, out);
            } else if m.is_file() {
                out.insert(rel, Node::File(fs::read(&p).unwrap(), mode));
            } else {
                out.insert(rel, Node::Other(m.mode()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

pub fn mtimes(root: &Path) -> BTreeMap<PathBuf, (i64, i64)> {
    snapshot(root)
        .keys()
        .map(|k| {
            let m = fs::symlink_metadata(root.join(k)).unwrap();
            (k.clone(), (m.mtime(), m.mtime_nsec()))
        })
        .collect()
}
