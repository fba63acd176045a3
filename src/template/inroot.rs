//! Paths of the system under `--root`, resolved the way that system would see them: links
//! in the folders of a path are followed with the root as `/`, so no path escapes the root.
//!
//! A stopgap until the shared "path inside root" helper lands in `files`; it resolves in
//! user space (the guest may be CentOS 6's 2.6.32, which has no openat2 RESOLVE_IN_ROOT),
//! so a link swapped between the check and the use is not caught. Planned changes go
//! through the provision executor, which never follows a final link.

use anyhow::{Context, Result, bail};
use std::fs;
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};

/// Links followed in one path before it is taken for a loop (Linux's MAXSYMLINKS).
const MAX_LINKS: usize = 40;

/// `rel` (a path of the system under `root`, `/` or not in front) with every link in its
/// folders resolved inside the root; the last component is left as it is (a link there is
/// the thing to change, not a way elsewhere). The result is relative to the root.
pub fn resolve(root: &Path, rel: impl AsRef<Path>) -> Result<PathBuf> {
    let rel = rel.as_ref();
    let mut pending: Vec<PathBuf> = components(rel);
    pending.reverse();
    let mut done = PathBuf::new();
    let mut links = 0;
    while let Some(name) = pending.pop() {
        if name == Path::new("..") {
            done.pop();
            continue;
        }
        let last = pending.is_empty();
        let candidate = done.join(&name);
        if last {
            done = candidate;
            break;
        }
        let full = root.join(&candidate);
        let meta = match fs::symlink_metadata(&full) {
            Ok(m) => m,
            // The rest does not exist: nothing more to resolve.
            Err(e) if e.kind() == ErrorKind::NotFound => {
                done = candidate;
                continue;
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", full.display())),
        };
        if !meta.file_type().is_symlink() {
            done = candidate;
            continue;
        }
        links += 1;
        if links > MAX_LINKS {
            bail!(
                "{}: too many levels of links under {}",
                rel.display(),
                root.display()
            );
        }
        let target = fs::read_link(&full).with_context(|| format!("reading {}", full.display()))?;
        if target.is_absolute() {
            // An absolute link means the root of the system under root, as in a chroot.
            done = PathBuf::new();
        }
        let mut more = components(&target);
        more.reverse();
        pending.extend(more);
    }
    Ok(done)
}

/// The components of `p` without `/` and `.`, `..` kept (resolved against links later).
fn components(p: &Path) -> Vec<PathBuf> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(PathBuf::from(n)),
            Component::ParentDir => Some(PathBuf::from("..")),
            _ => None,
        })
        .collect()
}

/// Regular files under the folder `rel` (resolved in root), relative to the root, sorted.
/// Links are neither followed nor listed (a link in /var/log is not a log of this system);
/// with `recursive`, sub-folders are walked too.
pub fn files(root: &Path, rel: &str, recursive: bool) -> Result<Vec<PathBuf>> {
    let dir = resolve(root, rel)?;
    let mut out = Vec::new();
    walk(root, &dir, recursive, &mut out)?;
    out.sort();
    Ok(out)
}

fn walk(root: &Path, dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> Result<()> {
    let full = root.join(dir);
    match fs::symlink_metadata(&full) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", full.display())),
    }
    for e in fs::read_dir(&full).with_context(|| format!("reading {}", full.display()))? {
        let e = e.with_context(|| format!("reading {}", full.display()))?;
        let ty = e
            .file_type()
            .with_context(|| format!("reading {}", e.path().display()))?;
        let rel = dir.join(e.file_name());
        if ty.is_file() {
            out.push(rel);
        } else if ty.is_dir() && recursive {
            walk(root, &rel, recursive, out)?;
        }
    }
    Ok(())
}

/// True when `rel` (resolved in root) is a regular file; links are not.
pub fn is_file(root: &Path, rel: &Path) -> bool {
    fs::symlink_metadata(root.join(rel)).is_ok_and(|m| m.is_file())
}

/// The text of the regular file `rel` (already resolved); `None` when it is missing or
/// not a regular file.
pub fn read_text(root: &Path, rel: &Path) -> Result<Option<String>> {
    let p = root.join(rel);
    match fs::symlink_metadata(&p) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Ok(None),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", p.display())),
    }
    fs::read_to_string(&p)
        .map(Some)
        .with_context(|| format!("reading {}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_resolve_inside_the_root() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("r");
        fs::create_dir_all(root.join("etc/rc.d/init.d")).unwrap();
        symlink("rc.d/init.d", root.join("etc/init.d")).unwrap();
        // An absolute link and a climbing one both stay under the root.
        symlink("/etc", root.join("abs")).unwrap();
        symlink("../../../../..", root.join("etc/rc.d/up")).unwrap();
        assert_eq!(
            resolve(&root, "/etc/init.d/sshd").unwrap(),
            Path::new("etc/rc.d/init.d/sshd")
        );
        assert_eq!(
            resolve(&root, "abs/init.d/x").unwrap(),
            Path::new("etc/rc.d/init.d/x")
        );
        assert_eq!(
            resolve(&root, "etc/rc.d/up/etc/hosts").unwrap(),
            Path::new("etc/hosts")
        );
        assert_eq!(resolve(&root, "../../x").unwrap(), Path::new("x"));
        // The final link is the object itself, not followed.
        assert_eq!(
            resolve(&root, "etc/init.d").unwrap(),
            Path::new("etc/init.d")
        );
    }

    #[test]
    fn loops_are_an_error_and_listing_skips_links() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        symlink("b", root.join("a")).unwrap();
        symlink("a", root.join("b")).unwrap();
        assert!(resolve(root, "a/x").is_err());
        fs::create_dir_all(root.join("var/log/audit")).unwrap();
        fs::write(root.join("var/log/messages"), "x").unwrap();
        fs::write(root.join("var/log/audit/audit.log"), "x").unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), "x").unwrap();
        symlink(outside.path(), root.join("var/log/out")).unwrap();
        symlink(outside.path().join("secret"), root.join("var/log/s")).unwrap();
        assert_eq!(
            files(root, "var/log", true).unwrap(),
            [
                PathBuf::from("var/log/audit/audit.log"),
                PathBuf::from("var/log/messages")
            ]
        );
        assert_eq!(files(root, "var/log", false).unwrap().len(), 1);
    }
}
