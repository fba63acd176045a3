//! The tests of [`Root`]: reads, writes and walks that must stay inside the root.

use super::*;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::symlink;

fn tree() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("r");
    let outside = d.path().join("outside");
    fs::create_dir_all(root.join("etc/real")).unwrap();
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("secret"), "host secret\n").unwrap();
    fs::write(root.join("etc/real/f"), "inside\n").unwrap();
    (d, root, outside)
}

#[test]
fn links_resolve_inside_the_root() {
    let (_d, root, outside) = tree();
    // absolute, relative with too many `..`, and to the host's own folder
    symlink("/etc/real", root.join("etc/abs")).unwrap();
    symlink("../../../../etc/real", root.join("etc/rel")).unwrap();
    symlink(&outside, root.join("etc/out")).unwrap();
    symlink(outside.join("secret"), root.join("etc/file")).unwrap();
    let r = Root::open(&root).unwrap();
    let text = |p: &str| r.read_text(Path::new(p), Links::InRoot).unwrap();
    assert_eq!(text("etc/abs/f").as_deref(), Some("inside\n"));
    assert_eq!(text("etc/rel/f").as_deref(), Some("inside\n"));
    assert_eq!(
        text("etc/out/secret"),
        None,
        "the host folder is not reached"
    );
    assert_eq!(text("etc/file"), None);
    // a write through the folder link lands inside the root
    r.write_atomic(Path::new("etc/abs/new"), b"x", 0o644)
        .unwrap();
    assert_eq!(fs::read(root.join("etc/real/new")).unwrap(), b"x");
    let e = r.read(Path::new("etc/abs/f"), Links::Refuse).unwrap_err();
    assert_eq!(crate::error::exit_code(&e), 2);
    assert!(e.to_string().contains("is a symbolic link"), "{e}");
}

#[test]
fn writes_replace_a_final_link_and_never_follow_it() {
    let (_d, root, outside) = tree();
    symlink(outside.join("secret"), root.join("etc/hosts")).unwrap();
    // a planted temp name of the old scheme changes nothing either
    symlink(outside.join("secret"), root.join("etc/.hosts.mtkit-tmp")).unwrap();
    let r = Root::open(&root).unwrap();
    r.write_atomic(Path::new("etc/hosts"), b"mine\n", 0o644)
        .unwrap();
    assert_eq!(fs::read(outside.join("secret")).unwrap(), b"host secret\n");
    assert_eq!(fs::read(root.join("etc/hosts")).unwrap(), b"mine\n");
    assert!(
        !fs::symlink_metadata(root.join("etc/hosts"))
            .unwrap()
            .is_symlink()
    );
    symlink(outside.join("secret"), root.join("etc/log")).unwrap();
    let e = r.append(Path::new("etc/log"), b"x", 0o644).unwrap_err();
    assert_eq!(crate::error::exit_code(&e), 2, "{e}");
    assert_eq!(fs::read(outside.join("secret")).unwrap(), b"host secret\n");
    assert!(r.remove(Path::new("etc/log")).unwrap());
    assert!(outside.join("secret").exists());
}

#[test]
fn fifos_and_bad_paths_are_refused_without_blocking() {
    let (_d, root, _) = tree();
    nix::unistd::mkfifo(&root.join("etc/fifo"), Mode::from_bits_truncate(0o600)).unwrap();
    let r = Root::open(&root).unwrap();
    let e = r.read(Path::new("etc/fifo"), Links::InRoot).unwrap_err();
    assert_eq!(crate::error::exit_code(&e), 2);
    assert!(e.to_string().contains("is a FIFO"), "{e}");
    assert_eq!(
        r.node(Path::new("etc/fifo"), Links::InRoot).unwrap(),
        Node::Other("a FIFO")
    );
    for bad in ["/etc/x", "../x", "etc/../../x", "./x", ""] {
        let e = r.read(Path::new(bad), Links::InRoot).unwrap_err();
        assert_eq!(crate::error::exit_code(&e), 2, "{bad}");
    }
    assert!(rel_of(Path::new("/../x")).is_err());
    assert_eq!(
        rel_of(Path::new("/mnt/retention")).unwrap(),
        Path::new("mnt/retention")
    );
}

#[test]
fn paths_resolve_as_the_system_under_the_root_sees_them() {
    let (_d, root, outside) = tree();
    fs::create_dir_all(root.join("etc/rc.d/init.d")).unwrap();
    symlink("rc.d/init.d", root.join("etc/init.d")).unwrap();
    // An absolute link and a climbing one both stay under the root.
    symlink("/etc", root.join("abs")).unwrap();
    symlink("../../../../..", root.join("etc/rc.d/up")).unwrap();
    symlink(&outside, root.join("etc/out")).unwrap();
    let r = Root::open(&root).unwrap();
    let res = |p: &str| r.resolve(p).unwrap();
    assert_eq!(res("/etc/init.d/sshd"), Path::new("etc/rc.d/init.d/sshd"));
    assert_eq!(res("abs/init.d/x"), Path::new("etc/rc.d/init.d/x"));
    assert_eq!(res("etc/rc.d/up/etc/hosts"), Path::new("etc/hosts"));
    // The host folder a link names is a folder of the root, here missing.
    let out = outside.strip_prefix("/").unwrap();
    assert_eq!(res("etc/out/secret"), out.join("secret"));
    // The final link is the object itself, not followed; a missing folder ends it.
    assert_eq!(res("etc/init.d"), Path::new("etc/init.d"));
    assert_eq!(res("no/such/x"), Path::new("no/such/x"));
    // `..` in a path given (not in a link) is refused, not resolved.
    assert!(r.resolve("../../x").is_err());
    symlink("b", root.join("a")).unwrap();
    symlink("a", root.join("b")).unwrap();
    let e = r.resolve("a/x").unwrap_err();
    assert!(e.to_string().contains("too many levels"), "{e}");
    assert!(r.is_file(Path::new("etc/real/f")).unwrap());
    assert!(!r.is_file(Path::new("etc/init.d")).unwrap());
    assert!(r.exists(Path::new("etc/init.d")).unwrap());
    assert!(!r.exists(Path::new("etc/nope")).unwrap());
    assert_eq!(r.file_text(Path::new("etc/init.d")).unwrap(), None);
    assert_eq!(
        r.file_text(Path::new("abs/real/f")).unwrap().as_deref(),
        Some("inside\n")
    );
}

#[test]
fn files_lists_regular_files_and_never_follows_links() {
    let (_d, root, outside) = tree();
    fs::create_dir_all(root.join("var/log/audit")).unwrap();
    fs::write(root.join("var/log/messages"), "x").unwrap();
    fs::write(root.join("var/log/audit/audit.log"), "x").unwrap();
    symlink(&outside, root.join("var/log/out")).unwrap();
    symlink(outside.join("secret"), root.join("var/log/s")).unwrap();
    nix::unistd::mkfifo(&root.join("var/log/fifo"), Mode::from_bits_truncate(0o600)).unwrap();
    symlink("/var/log", root.join("logs")).unwrap();
    let r = Root::open(&root).unwrap();
    assert_eq!(
        r.files("/var/log", true).unwrap(),
        [
            PathBuf::from("var/log/audit/audit.log"),
            PathBuf::from("var/log/messages")
        ]
    );
    assert_eq!(r.files("var/log", false).unwrap().len(), 1);
    assert!(
        r.files("logs", true).unwrap().is_empty(),
        "a link lists nothing"
    );
    assert!(r.files("var/nothing", true).unwrap().is_empty());
}

#[test]
fn create_new_never_replaces_and_replace_sets_the_mode() {
    use std::os::unix::fs::PermissionsExt;
    let (_d, root, outside) = tree();
    let r = Root::open(&root).unwrap();
    let mode = |p: &str| fs::metadata(root.join(p)).unwrap().permissions().mode() & 0o777;
    assert!(r.create_new(Path::new("etc/key"), b"one", 0o600).unwrap());
    assert_eq!(mode("etc/key"), 0o600);
    assert!(!r.create_new(Path::new("etc/key"), b"two", 0o600).unwrap());
    assert_eq!(fs::read(root.join("etc/key")).unwrap(), b"one");
    // A planted link is not written through either.
    symlink(outside.join("k"), root.join("etc/planted")).unwrap();
    assert!(!r.create_new(Path::new("etc/planted"), b"x", 0o600).unwrap());
    assert!(!outside.join("k").exists());
    fs::set_permissions(root.join("etc/key"), fs::Permissions::from_mode(0o644)).unwrap();
    r.replace(Path::new("etc/key"), b"three", 0o600).unwrap();
    assert_eq!(mode("etc/key"), 0o600);
    r.write_atomic(Path::new("etc/real/f"), b"kept", 0o600)
        .unwrap();
    assert_eq!(mode("etc/real/f"), 0o644, "write_atomic keeps the mode");
    let names = fs::read_dir(root.join("etc")).unwrap().count();
    assert_eq!(names, 3, "no temp files left");
}

#[test]
fn dirs_lists_trees_and_backups() {
    let (_d, root, outside) = tree();
    let r = Root::open(&root).unwrap();
    let made = r.create_dirs(Path::new("var/lib/mtkit"), 0o700).unwrap();
    assert_eq!(
        made,
        [
            PathBuf::from("var"),
            PathBuf::from("var/lib"),
            PathBuf::from("var/lib/mtkit")
        ]
    );
    assert!(
        r.create_dirs(Path::new("var/lib/mtkit"), 0o700)
            .unwrap()
            .is_empty()
    );
    r.write_atomic(Path::new("var/lib/mtkit/a"), b"1", 0o600)
        .unwrap();
    symlink(&outside, root.join("var/lib/mtkit/link")).unwrap();
    assert_eq!(
        r.list(Path::new("var/lib/mtkit"), Links::InRoot)
            .unwrap()
            .unwrap(),
        [OsString::from("a"), OsString::from("link")]
    );
    r.remove_tree(Path::new("var/lib/mtkit")).unwrap();
    assert!(!root.join("var/lib/mtkit").exists());
    assert!(outside.join("secret").exists(), "a link is not followed");
    fs::write(root.join("etc/fstab"), "a\n").unwrap();
    assert_eq!(
        r.backup(Path::new("etc/fstab")).unwrap(),
        Path::new("etc/fstab.mtkit-bak")
    );
    assert_eq!(
        r.backup(Path::new("etc/fstab")).unwrap(),
        Path::new("etc/fstab.mtkit-bak.1")
    );
}
