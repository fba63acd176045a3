//! CPU cores and memory of a root, from its `proc/cpuinfo` and `proc/meminfo` (parsed by
//! procfs-core, which reads any text, so `--root` works).
//!
//! One source for both numbers, live or under a root: the same files sysinfo would read on
//! the live system, so a fixture tree exercises the very path the appliance takes. A VM's
//! size is what its kernel sees (every logical CPU, MemTotal), not a cgroup's share.

use procfs_core::{CpuInfo, FromBufRead, Meminfo};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resources {
    /// Logical CPUs
    pub cpus: usize,
    /// MemTotal in bytes (what the kernel manages: a little less than the VM's memory)
    pub mem_bytes: u64,
}

/// The logical CPUs of /proc/cpuinfo text (its `processor` entries).
pub fn cpus_from_cpuinfo(text: &str) -> usize {
    // One entry per block that starts with `processor` (x86's layout).
    CpuInfo::from_buf_read(text.as_bytes()).map_or(0, |c| c.num_cores())
}

/// MemTotal of /proc/meminfo text, in bytes.
pub fn mem_from_meminfo(text: &str) -> Option<u64> {
    // procfs-core gives bytes (it scales the "kB" unit).
    Meminfo::from_buf_read(text.as_bytes())
        .ok()
        .map(|m| m.mem_total)
}

pub fn read(root: &Path) -> Option<Resources> {
    let cpuinfo = crate::files::read_text(root.join("proc/cpuinfo")).ok()?;
    let meminfo = crate::files::read_text(root.join("proc/meminfo")).ok()?;
    Some(Resources {
        cpus: cpus_from_cpuinfo(&cpuinfo),
        mem_bytes: mem_from_meminfo(&meminfo)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_snippets() {
        let ci = "processor\t: 0\nvendor_id\t: GenuineIntel\n\nprocessor\t: 1\nmodel name\t: x\n";
        assert_eq!(cpus_from_cpuinfo(ci), 2);
        assert_eq!(cpus_from_cpuinfo("processor\t: 0\nflags\t: fpu\n\n"), 1);
        let fixture = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/roots/no-multipath/proc/meminfo"
        );
        let text = std::fs::read_to_string(fixture).unwrap();
        assert_eq!(mem_from_meminfo(&text), Some(8061404 * 1024));
        // The live system, through the same files.
        let live = read(Path::new("/")).unwrap();
        assert!(live.cpus >= 1 && live.mem_bytes > 0, "{live:?}");
    }
}
