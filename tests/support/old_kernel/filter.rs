//! A seccomp filter that makes this kernel look like CentOS 6's 2.6.32 to a program: every
//! system call added after 2.6.32 fails with ENOSYS, and fallocate modes 2.6.32 lacks fail
//! (or, as on a vanilla 2.6.32 ext4/xfs, "succeed" without doing anything).
//!
//! Which calls are newer: the x86_64 table is append-only, and v2.6.32's
//! arch/x86/include/asm/unistd_64.h ends with `__NR_perf_event_open 298`
//! (`__NR_rt_tgsigqueueinfo 297`); `recvmmsg` = 299 came in v2.6.33. So every number from
//! 299 up is newer: prlimit64 302 (2.6.36), sendmmsg 307, renameat2 316, seccomp 317,
//! getrandom 318, memfd_create 319, execveat 322, userfaultfd 323, membarrier 324, mlock2 325,
//! copy_file_range 326, preadv2/pwritev2 327/328, pkey_* 329-331, statx 332, rseq 334,
//! pidfd_send_signal 424, io_uring_* 425-427, pidfd_open 434, clone3 435, close_range 436,
//! openat2 437, pidfd_getfd 438, faccessat2 439, ... up to listns 470 in 6.18
//! (arch/x86/entry/syscalls/syscall_64.tbl). Old ones stay allowed: getdents64 217 (2.4),
//! fallocate 285 (2.6.23), accept4 288 (2.6.28), signalfd4/eventfd2/epoll_create1/dup3/
//! pipe2/inotify_init1 289-294 (2.6.27), preadv/pwritev 295/296 (2.6.30).
//! CentOS 6's own kernel (2.6.32-504) backported a few (recvmmsg, sendmmsg, setns, syncfs,
//! process_vm_*) and wires prlimit64, fanotify_* and name_to_handle_at to sys_ni_syscall:
//! denying all of 299 and up is the stricter, vanilla view.
//!
//! fallocate: v2.6.32's sys_fallocate (fs/open.c) only rejects a mode without
//! FALLOC_FL_KEEP_SIZE (`if (mode && !(mode & FALLOC_FL_KEEP_SIZE)) return -EOPNOTSUPP`);
//! ext4/xfs then ignore the other bits, so PUNCH_HOLE|KEEP_SIZE or ZERO_RANGE|KEEP_SIZE
//! returns 0 and leaves the data (v2.6.38's "fs: add hole punching to fallocate" added the
//! mode checks). RHEL 6 backported those checks with PUNCH_HOLE, so there ZERO_RANGE fails
//! with EOPNOTSUPP. [`Fallocate::Unsupported`] models that; [`Fallocate::SilentNoop`] the
//! vanilla kernel.
//!
//! sendfile: before 2.6.33 its out_fd had to be a socket (sendfile(2)), so copying a file
//! to a file with it failed with EINVAL. A filter cannot tell a socket from a file, so
//! every sendfile fails that way here: stricter, and what std::fs::copy meets on 2.6.32
//! after copy_file_range's ENOSYS (it then copies with read/write).
//!
//! Flags 2.6.32 lacks, where its answer is an error a filter can give: O_TMPFILE (3.11) is
//! bits 2.6.32 ignores beside O_DIRECTORY, so open/openat of a folder for writing fails
//! with EISDIR (tempfile then makes a named file); AT_EMPTY_PATH (2.6.39) in newfstatat,
//! fchownat and linkat fails with EINVAL (their 2.6.32 code accepts only AT_SYMLINK_*).
//!
//! Built with seccompiler (rust-vmm's, used by Firecracker and cloud-hypervisor) rather
//! than hand-written BPF: it keys rules by exact syscall number, so the "299 and up" rule is
//! the numbers 299..=599 listed one by one (the table is at 470 in 6.18; x32-only numbers
//! 512..=547 do not exist for x86_64 callers and fail with ENOSYS anyway).

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

/// The last x86_64 system call of Linux 2.6.32: perf_event_open.
pub const LAST_2_6_32: i64 = 298;
/// The highest number the filter lists (see the module comment).
pub const HIGHEST_LISTED: i64 = 599;

const FALLOC_FL_KEEP_SIZE: u64 = 0x01;
/// O_TMPFILE without its O_DIRECTORY part (`__O_TMPFILE`, 020000000).
const O_TMPFILE_BIT: u64 = 0o20000000;
const AT_EMPTY_PATH: u64 = 0x1000;

/// What fallocate does with a mode other than 0 or KEEP_SIZE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallocate {
    /// EOPNOTSUPP: RHEL 6's kernel for ZERO_RANGE, and any filesystem without the mode.
    Unsupported,
    /// Vanilla 2.6.32 on ext4/xfs: 0 when KEEP_SIZE is set, nothing done; EOPNOTSUPP without.
    SilentNoop,
}

/// The compiled filters, ready to install (also between fork and exec: installing
/// allocates nothing).
pub struct OldKernelFilter {
    /// Installed in this order: the last one installed denies `seccomp` itself.
    programs: Vec<BpfProgram>,
}

fn arch() -> TargetArch {
    TargetArch::x86_64
}

fn compile(rules: BTreeMap<i64, Vec<SeccompRule>>, action: SeccompAction) -> BpfProgram {
    SeccompFilter::new(rules, SeccompAction::Allow, action, arch())
        .and_then(BpfProgram::try_from)
        .expect("compiling the old-kernel seccomp filter")
}

/// fallocate(fd, mode, ...) rules: mode (a 32-bit int) above KEEP_SIZE, and optionally with
/// the KEEP_SIZE bit set.
fn fallocate_rule(with_keep_size: bool) -> BTreeMap<i64, Vec<SeccompRule>> {
    let mut conds =
        vec![SeccompCondition::new(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Gt, 1).unwrap()];
    if with_keep_size {
        conds.push(
            SeccompCondition::new(
                1,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::MaskedEq(FALLOC_FL_KEEP_SIZE),
                FALLOC_FL_KEEP_SIZE,
            )
            .unwrap(),
        );
    }
    BTreeMap::from([(libc::SYS_fallocate, vec![SeccompRule::new(conds).unwrap()])])
}

impl OldKernelFilter {
    /// The whole filter: new calls, fallocate modes, sendfile and the flags.
    pub fn new(fallocate: Fallocate) -> OldKernelFilter {
        Self::build(fallocate, true)
    }

    /// Without the flag checks: for a probe linked against a glibc that itself needs a
    /// newer kernel (glibc 2.33+ implements fstat as newfstatat(fd, "", AT_EMPTY_PATH)).
    pub fn without_flag_checks(fallocate: Fallocate) -> OldKernelFilter {
        Self::build(fallocate, false)
    }

    fn build(fallocate: Fallocate, flags: bool) -> OldKernelFilter {
        let mut programs = vec![compile(
            fallocate_rule(false),
            SeccompAction::Errno(libc::EOPNOTSUPP as u32),
        )];
        let flag = |arg: u8, bit: u64| {
            let c = SeccompCondition::new(
                arg,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::MaskedEq(bit),
                bit,
            );
            vec![SeccompRule::new(vec![c.unwrap()]).unwrap()]
        };
        let mut einval = BTreeMap::from([(libc::SYS_sendfile, vec![])]);
        if flags {
            einval.insert(libc::SYS_newfstatat, flag(3, AT_EMPTY_PATH));
            einval.insert(libc::SYS_fchownat, flag(4, AT_EMPTY_PATH));
            einval.insert(libc::SYS_linkat, flag(4, AT_EMPTY_PATH));
            programs.push(compile(
                BTreeMap::from([
                    (libc::SYS_open, flag(1, O_TMPFILE_BIT)),
                    (libc::SYS_openat, flag(2, O_TMPFILE_BIT)),
                ]),
                SeccompAction::Errno(libc::EISDIR as u32),
            ));
        }
        programs.push(compile(einval, SeccompAction::Errno(libc::EINVAL as u32)));
        if fallocate == Fallocate::SilentNoop {
            // Of two filters answering ERRNO, the kernel takes the one installed last: this
            // one wins where KEEP_SIZE is set, the EOPNOTSUPP one everywhere else.
            programs.push(compile(fallocate_rule(true), SeccompAction::Errno(0)));
        }
        let newer: BTreeMap<i64, Vec<SeccompRule>> = (LAST_2_6_32 + 1..=HIGHEST_LISTED)
            .map(|nr| (nr, vec![]))
            .collect();
        programs.push(compile(newer, SeccompAction::Errno(libc::ENOSYS as u32)));
        OldKernelFilter { programs }
    }

    /// Installs the filters on the calling thread; they stay across exec and are inherited
    /// by children. Sets no_new_privs (seccompiler does), which a root caller needs not.
    pub fn install(&self) -> std::io::Result<()> {
        for p in &self.programs {
            seccompiler::apply_filter(p).map_err(std::io::Error::other)?;
        }
        Ok(())
    }

    /// Whether the filter answers ENOSYS for syscall `nr` (by its construction).
    pub fn denies(nr: i64) -> bool {
        (LAST_2_6_32 + 1..=HIGHEST_LISTED).contains(&nr)
    }
}
