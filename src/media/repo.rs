//! The offline repository on the media (`/mtkit/repo`): which files of the user's folder
//! are carried, the yum metadata made for them, and what that metadata says is really
//! there, so that a build whose install would stop at a missing package is refused.
//!
//! Only regular `*.rpm` files are carried, found without following any symlink: a link to
//! a folder would bring files from outside it (or the same files twice, for `loop -> .`).
//! They are staged as links in a scratch folder (the user's folder is only read), and
//! createrepo_c indexes that. createrepo_c skips a file it cannot read as an RPM without
//! failing; such a file is neither counted nor carried. The metadata format is the
//! rpm-metadata one yum reads: `repodata/repomd.xml` names `primary.xml(.gz)`, whose
//! `<package>` entries give name, arch and location.

use crate::error::bad_input;
use crate::external::CREATEREPO;
use anyhow::{Context, Result};
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};

/// One package the metadata lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    pub arch: String,
    /// Its path relative to the repository root.
    pub location: String,
}

/// What a folder holds for the offline repo.
#[derive(Debug, Default)]
pub struct Scan {
    /// `*.rpm` regular files, relative to the folder, sorted.
    pub rpms: Vec<PathBuf>,
    /// Entries left out, relative, with why.
    pub skipped: Vec<(PathBuf, &'static str)>,
}

/// Lists `dir` without following symlinks; its own `repodata/` is left out (replaced).
pub fn scan(dir: &Path) -> Result<Scan> {
    let mut out = Scan::default();
    walk(dir, Path::new(""), &mut out)?;
    out.rpms.sort();
    out.skipped.sort();
    Ok(out)
}

fn walk(top: &Path, rel: &Path, out: &mut Scan) -> Result<()> {
    let dir = top.join(rel);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("reading {}", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let r = rel.join(e.file_name());
        let t = e
            .file_type()
            .with_context(|| format!("reading {}", top.join(&r).display()))?;
        if t.is_symlink() {
            out.skipped
                .push((r, "a symlink (links are not followed: copy the file in)"));
        } else if t.is_dir() {
            if rel.as_os_str().is_empty() && e.file_name() == "repodata" {
                continue;
            }
            walk(top, &r, out)?;
        } else if t.is_file() && r.extension().is_some_and(|x| x == "rpm") {
            out.rpms.push(r);
        } else {
            out.skipped.push((r, "not an RPM"));
        }
    }
    Ok(())
}

/// The `href` of the primary metadata in a `repomd.xml`.
pub fn primary_href(repomd: &str) -> Result<Option<String>, String> {
    let doc = roxmltree::Document::parse(repomd).map_err(|e| format!("repomd.xml: {e}"))?;
    Ok(doc
        .descendants()
        .find(|n| n.has_tag_name("data") && n.attribute("type") == Some("primary"))
        .and_then(|d| d.children().find(|c| c.has_tag_name("location")))
        .and_then(|l| l.attribute("href"))
        .map(str::to_string))
}

/// The packages of a `primary.xml`.
pub fn parse_primary(xml: &str) -> Result<Vec<Package>, String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| format!("primary.xml: {e}"))?;
    let text = |n: roxmltree::Node, tag: &str| {
        n.children()
            .find(|c| c.has_tag_name(tag))
            .and_then(|c| c.text())
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    Ok(doc
        .descendants()
        .filter(|n| n.has_tag_name("package"))
        .map(|p| Package {
            name: text(p, "name"),
            arch: text(p, "arch"),
            location: p
                .children()
                .find(|c| c.has_tag_name("location"))
                .and_then(|l| l.attribute("href"))
                .unwrap_or_default()
                .to_string(),
        })
        .collect())
}

/// Reads the primary metadata a `repomd.xml` names (plain or gzip), through `fetch`, which
/// returns the bytes of a path relative to the repository root.
pub fn packages_via(
    repomd: &str,
    fetch: impl FnOnce(&str) -> Result<Vec<u8>>,
) -> Result<Option<Vec<Package>>> {
    let Some(href) = primary_href(repomd).map_err(|e| anyhow::anyhow!(e))? else {
        return Ok(None);
    };
    let raw = fetch(&href)?;
    let xml = if href.ends_with(".gz") {
        let mut s = String::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_string(&mut s)
            .with_context(|| format!("decompressing {href}"))?;
        s
    } else {
        String::from_utf8(raw).with_context(|| format!("{href} is not UTF-8"))?
    };
    parse_primary(&xml)
        .map(Some)
        .map_err(|e| anyhow::anyhow!(e))
}

/// The offline repo staged for the media.
#[derive(Debug)]
pub struct Staged {
    /// The folder to put on the medium: links to the RPMs, and `repodata/`.
    pub dir: PathBuf,
    pub packages: Vec<Package>,
}

/// Stages `src` under `scratch` and indexes it: see the module doc. `epoch` (from
/// SOURCE_DATE_EPOCH) pins the metadata's timestamps.
pub fn stage(src: &Path, scratch: &Path, epoch: Option<u64>) -> Result<Staged> {
    if !src.is_dir() {
        return Err(bad_input(format!(
            "offline repo {} is not a folder ([packages] offline-repo should name a folder of RPMs)",
            src.display()
        )));
    }
    let found = scan(src)?;
    if !found.skipped.is_empty() {
        let list: Vec<String> = found
            .skipped
            .iter()
            .map(|(p, why)| format!("{} ({why})", p.display()))
            .collect();
        tracing::warn!(repo = %src.display(), "not carried on the media: {}", list.join(", "));
    }
    let dir = scratch.join("repo");
    std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for rel in &found.rpms {
        let link = dir.join(rel);
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let target = src.join(rel);
        let target = target
            .canonicalize()
            .with_context(|| format!("resolving {}", target.display()))?;
        std::os::unix::fs::symlink(&target, &link)
            .with_context(|| format!("linking {}", link.display()))?;
    }
    // --simple-md-filenames: names the %pre and humans can predict; no database files,
    // CentOS 6 yum builds its own cache; gzip, the compression CentOS 6 yum reads.
    let mut args: Vec<OsString> = [
        "--quiet",
        "--simple-md-filenames",
        "--no-database",
        "--general-compress-type=gz",
    ]
    .map(OsString::from)
    .to_vec();
    if let Some(e) = epoch {
        args.extend([
            "--revision".into(),
            e.to_string().into(),
            "--set-timestamp-to-revision".into(),
        ]);
    }
    args.push(dir.clone().into());
    CREATEREPO.run(args)?;
    let repomd = std::fs::read_to_string(dir.join("repodata/repomd.xml"))
        .context("reading the new repomd.xml")?;
    let packages = packages_via(&repomd, |href| {
        std::fs::read(dir.join(href)).with_context(|| format!("reading {href}"))
    })?
    .context("createrepo_c wrote no primary metadata")?;
    // createrepo_c skips what it cannot read as an RPM: it is not carried either.
    let unreadable: Vec<&PathBuf> = found
        .rpms
        .iter()
        .filter(|r| {
            !packages
                .iter()
                .any(|p| Path::new(&p.location) == r.as_path())
        })
        .collect();
    for r in &unreadable {
        std::fs::remove_file(dir.join(r)).with_context(|| format!("unstaging {}", r.display()))?;
    }
    if !unreadable.is_empty() {
        let names: Vec<String> = unreadable.iter().map(|r| r.display().to_string()).collect();
        tracing::warn!(
            repo = %src.display(),
            "not readable as RPMs (createrepo_c skipped them; not carried): {}",
            names.join(", ")
        );
    }
    if packages.is_empty() {
        tracing::warn!(repo = %src.display(), "the offline repo holds no RPM: the media carry an empty repository");
    }
    tracing::info!(repo = %src.display(), packages = packages.len(), "offline repo metadata made");
    Ok(Staged { dir, packages })
}

/// Architectures a CentOS 6 x86_64 install takes.
fn installable(p: &Package) -> bool {
    matches!(p.arch.as_str(), "x86_64" | "noarch")
}

/// Checks that the offline repo lists every package of `required` (the kickstart installs
/// them from it) and that each of `wanted` is in it or in `source` (the install disc's
/// packages, when known); refuses (bad input) what the install would stop at.
pub fn check_packages(
    repo: &Path,
    packages: &[Package],
    required: &[String],
    wanted: &[String],
    source: Option<&[Package]>,
) -> Result<()> {
    let has = |list: &[Package], name: &str| list.iter().any(|p| p.name == name && installable(p));
    let listed = || {
        let mut names: Vec<String> = packages
            .iter()
            .map(|p| format!("{}.{}", p.name, p.arch))
            .collect();
        names.dedup();
        if names.is_empty() {
            "no package".to_string()
        } else {
            names.join(", ")
        }
    };
    let missing: Vec<&String> = required.iter().filter(|n| !has(packages, n)).collect();
    if !missing.is_empty() {
        return Err(bad_input(format!(
            "the offline repo {} does not carry {} (x86_64 or noarch), which the kickstart \
             installs from it ([packages] reiserfs-repo = \"offline\"); its metadata lists {}. \
             Put the RPMs in the folder (ELRepo el6: kmod-reiserfs, reiserfs-utils), or set \
             reiserfs-repo to a repository URL",
            repo.display(),
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            listed()
        )));
    }
    let elsewhere: Vec<&String> = wanted.iter().filter(|n| !has(packages, n)).collect();
    match source {
        Some(src) => {
            let nowhere: Vec<&str> = elsewhere
                .iter()
                .filter(|n| !has(src, n))
                .map(|s| s.as_str())
                .collect();
            if !nowhere.is_empty() {
                return Err(bad_input(format!(
                    "[packages] extra {} is in neither the offline repo {} nor the install \
                     disc: the install would stop there. Put the RPMs in the offline repo, or \
                     remove them from extra",
                    nowhere.join(", "),
                    repo.display()
                )));
            }
        }
        None if !elsewhere.is_empty() => tracing::info!(
            "[packages] extra not in the offline repo, expected from the install source: {}",
            elsewhere
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIMARY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<metadata xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="2">
<package type="rpm">
  <name>kmod-reiserfs</name>
  <arch>x86_64</arch>
  <location href="sub/kmod-reiserfs-0.0-1.el6.elrepo.x86_64.rpm"/>
  <format><rpm:provides><rpm:entry name="kmod-reiserfs"/></rpm:provides></format>
</package>
<package type="rpm">
  <name>reiserfs-utils</name>
  <arch>i686</arch>
  <location href="reiserfs-utils-3.6.21-1.el6.elrepo.i686.rpm"/>
</package>
</metadata>"#;

    fn pkgs() -> Vec<Package> {
        parse_primary(PRIMARY).unwrap()
    }

    #[test]
    fn primary_metadata_is_read() {
        let p = pkgs();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].name, "kmod-reiserfs");
        assert_eq!(
            p[0].location,
            "sub/kmod-reiserfs-0.0-1.el6.elrepo.x86_64.rpm"
        );
        let repomd = r#"<repomd xmlns="http://linux.duke.edu/metadata/repo"><data type="other"><location href="repodata/other.xml.gz"/></data><data type="primary"><location href="repodata/abc-primary.xml.gz"/></data></repomd>"#;
        assert_eq!(
            primary_href(repomd).unwrap().as_deref(),
            Some("repodata/abc-primary.xml.gz")
        );
        assert_eq!(primary_href("<repomd/>").unwrap(), None);
        assert!(primary_href("<repomd>").is_err());
    }

    #[test]
    fn missing_and_wrong_arch_packages_are_refused_naming_them() {
        let req = vec!["kmod-reiserfs".to_string(), "reiserfs-utils".to_string()];
        let e = check_packages(Path::new("rpms"), &pkgs(), &req, &[], None).unwrap_err();
        assert_eq!(crate::error::exit_code(&e), 2);
        let e = e.to_string();
        assert!(
            e.contains("does not carry reiserfs-utils (x86_64 or noarch)"),
            "{e}"
        );
        assert!(
            e.contains("lists kmod-reiserfs.x86_64, reiserfs-utils.i686"),
            "{e}"
        );
        check_packages(Path::new("rpms"), &pkgs(), &req[..1], &[], None).unwrap();
        let wanted = vec!["sg3_utils".to_string()];
        check_packages(Path::new("rpms"), &pkgs(), &[], &wanted, None).unwrap();
        let disc = vec![Package {
            name: "sg3_utils".into(),
            arch: "x86_64".into(),
            location: "Packages/sg3_utils-1.28-6.el6.x86_64.rpm".into(),
        }];
        check_packages(Path::new("rpms"), &pkgs(), &[], &wanted, Some(&disc)).unwrap();
        let e = check_packages(Path::new("rpms"), &pkgs(), &[], &wanted, Some(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("[packages] extra sg3_utils is in neither"),
            "{e}"
        );
    }

    #[test]
    fn scan_follows_no_links_and_takes_only_rpms() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path().join("rpms");
        std::fs::create_dir_all(r.join("sub")).unwrap();
        std::fs::create_dir_all(r.join("repodata")).unwrap();
        std::fs::write(r.join("a.rpm"), "x").unwrap();
        std::fs::write(r.join("sub/b.rpm"), "x").unwrap();
        std::fs::write(r.join("README"), "x").unwrap();
        std::fs::write(r.join("repodata/repomd.xml"), "x").unwrap();
        std::fs::write(d.path().join("outside.rpm"), "x").unwrap();
        std::os::unix::fs::symlink(".", r.join("loop")).unwrap();
        std::os::unix::fs::symlink(d.path(), r.join("up")).unwrap();
        std::os::unix::fs::symlink(d.path().join("outside.rpm"), r.join("c.rpm")).unwrap();
        let s = scan(&r).unwrap();
        assert_eq!(s.rpms, [PathBuf::from("a.rpm"), PathBuf::from("sub/b.rpm")]);
        let skipped: Vec<_> = s.skipped.iter().map(|(p, _)| p.to_str().unwrap()).collect();
        assert_eq!(skipped, ["README", "c.rpm", "loop", "up"]);
    }
}
