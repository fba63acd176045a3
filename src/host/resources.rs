//! CPU cores and memory of a root: sysinfo on the live system, `proc/cpuinfo` and
//! `proc/meminfo` under a fixture root.

use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resources {
    /// Logical CPUs
    pub cpus: usize,
    /// MemTotal in bytes (what the kernel manages: a little less than the VM's memory)
    pub mem_bytes: u64,
}

/// Counts `processor` lines of /proc/cpuinfo text.
pub fn cpus_from_cpuinfo(text: &str) -> usize {
    text.lines()
        .filter(|l| l.split(':').next().is_some_and(|k| k.trim() == "processor"))
        .count()
}

/// MemTotal of /proc/meminfo text, in bytes.
pub fn mem_from_meminfo(text: &str) -> Option<u64> {
    let l = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = l.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

pub fn read(root: &Path) -> Option<Resources> {
    if root == Path::new("/") {
        let mut s = sysinfo::System::new().ok()?;
        s.refresh_memory();
        s.refresh_cpu_list(sysinfo::CpuRefreshKind::nothing());
        return Some(Resources {
            cpus: s.cpus().len(),
            mem_bytes: s.total_memory(),
        });
    }
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
        assert_eq!(
            mem_from_meminfo("MemTotal:        8061404 kB\nMemFree: 1 kB\n"),
            Some(8061404 * 1024)
        );
        assert!(read(Path::new("/")).unwrap().cpus >= 1);
    }
}
