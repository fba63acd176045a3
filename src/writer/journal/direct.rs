//! Opening a journal file for direct I/O: the segments and the spares written ahead.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Opens a segment (or a spare) for appending: with O_DIRECT when the filesystem takes it
/// (tmpfs may not), else buffered. Returns whether it is direct.
pub(super) fn open_append(path: &Path, create: bool) -> io::Result<(File, bool)> {
    let open = |flags| {
        let mut o = OpenOptions::new();
        o.read(true).write(true).custom_flags(flags);
        if create {
            // Old disk contents: the service's alone, whatever the umask.
            o.create_new(true).mode(0o600);
        }
        o.open(path)
    };
    match open(libc::O_DIRECT) {
        Ok(f) => Ok((f, true)),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => open(0).map(|f| (f, false)),
        Err(e) => Err(e),
    }
}
