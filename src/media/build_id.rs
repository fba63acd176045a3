//! Which sources an mtkit binary was built from: a marker string compiled into every build
//! (`MTKIT-BUILD-ID:<version>+<hash of the sources>;`, see build.rs), found again by
//! scanning another binary's bytes. Comparing it, not file dates, tells whether the static
//! build beside this one runs the same code.

use anyhow::{Context, Result};
use std::path::Path;

const PREFIX: &[u8] = b"MTKIT-BUILD-ID:";

/// This binary's marker; `#[used]` and read by [`own`] so the linker keeps its bytes.
#[used]
static MARK: &str = concat!(
    "MTKIT-BUILD-ID:",
    env!("CARGO_PKG_VERSION"),
    "+",
    env!("MTKIT_BUILD_ID"),
    ";"
);

/// `mtkit --version`'s long form: the version and the build id.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (build ",
    env!("MTKIT_BUILD_ID"),
    ")"
);

/// This binary's id, `<version>+<hash>`.
pub fn own() -> &'static str {
    let mark = std::hint::black_box(MARK);
    &mark[PREFIX.len()..mark.len() - 1]
}

/// The id marked in `data`, if any. The bare prefix also occurs on its own (it is what
/// this code searches for), so only a well-formed `version+16 hex digits;` counts.
pub fn find(data: &[u8]) -> Option<String> {
    let mut from = 0;
    while let Some(at) = data[from..]
        .windows(PREFIX.len())
        .position(|w| w == PREFIX)
        .map(|i| from + i)
    {
        let rest = &data[at + PREFIX.len()..];
        let end = rest.iter().take(64).position(|&b| b == b';');
        if let Some(id) = end.and_then(|e| std::str::from_utf8(&rest[..e]).ok())
            && let Some((version, hash)) = id.split_once('+')
            && !version.is_empty()
            && version
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            && hash.len() == 16
            && hash.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Some(id.to_string());
        }
        from = at + 1;
    }
    None
}

/// The id of the binary at `path` (`None`: not an mtkit build with an id).
pub fn of_file(path: &Path) -> Result<Option<String>> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(find(&data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_id_is_found_in_this_binary() {
        let id = own();
        assert!(id.starts_with(env!("CARGO_PKG_VERSION")), "{id}");
        let exe = std::env::current_exe().unwrap();
        assert_eq!(of_file(&exe).unwrap().as_deref(), Some(id));
    }

    #[test]
    fn only_well_formed_marks_count() {
        // Put together at run time: a literal mark would be found in this test binary.
        let mark = |rest: &str| [PREFIX, rest.as_bytes()].concat();
        assert_eq!(
            find(&[b"xx ", &mark(" ")[..], &mark("junk;")].concat()),
            None
        );
        let data = [mark(""), mark("0.2.0+0123456789abcdef;tail")].concat();
        assert_eq!(find(&data).as_deref(), Some("0.2.0+0123456789abcdef"));
        assert_eq!(find(&mark("0.2.0+0123;")), None);
    }
}
