//! Which capabilities an operation needs, and the message that says how to get them.

use std::fmt;

/// A capability ChadThrottle may need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Capability {
    NetAdmin,
    SysPtrace,
    SysAdmin,
    DacOverride,
    Perfmon,
    Bpf,
}

impl Capability {
    const fn bit(self) -> u32 {
        match self {
            Capability::DacOverride => 1,
            Capability::NetAdmin => 12,
            Capability::SysPtrace => 19,
            Capability::SysAdmin => 21,
            Capability::Perfmon => 38,
            Capability::Bpf => 39,
        }
    }

    const fn name(self) -> &'static str {
        match self {
            Capability::Bpf => "CAP_BPF",
            Capability::Perfmon => "CAP_PERFMON",
            Capability::NetAdmin => "CAP_NET_ADMIN",
            Capability::SysPtrace => "CAP_SYS_PTRACE",
            Capability::SysAdmin => "CAP_SYS_ADMIN",
            Capability::DacOverride => "CAP_DAC_OVERRIDE",
        }
    }
}

/// What an operation does, and so which capabilities it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Load, attach and pin the datapath, back-fill a process's sockets.
    Install { mount_bpffs: bool },
    /// Read or change pinned maps.
    UsePins,
    /// Remove pins and unmount ChadThrottle's bpffs.
    Reset,
}

/// Refusal to start an operation without the capabilities it needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct MissingPrivileges {
    pub missing: Vec<Capability>,
}

impl fmt::Display for MissingPrivileges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.missing.iter().map(|cap| cap.name()).collect();
        write!(
            f,
            "permission denied: missing {} (CAP_BPF and CAP_PERFMON exist from Linux 5.8; \
             before, CAP_SYS_ADMIN covers them): run with sudo, or grant them once with \
             `sudo setcap cap_bpf,cap_perfmon,cap_net_admin,cap_sys_ptrace,cap_sys_admin,cap_dac_override+ep \"$(command -v chadthrottle)\"`",
            names.join(", ")
        )
    }
}

/// The capabilities `operation` needs given the effective set `effective` (bit mask as in
/// `/proc/self/status` CapEff), the kernel's last capability `last_cap` and whether the
/// caller is uid 0. Pure, so it is tested without privileges.
pub fn missing(
    operation: Operation,
    effective: u64,
    last_cap: u32,
    uid_is_root: bool,
) -> Vec<Capability> {
    let mut needed = match operation {
        Operation::Install { mount_bpffs } => {
            let mut caps = vec![
                Capability::Bpf,
                Capability::Perfmon,
                Capability::NetAdmin,
                Capability::SysPtrace,
            ];
            if mount_bpffs {
                caps.push(Capability::SysAdmin);
            }
            caps
        }
        Operation::UsePins => vec![Capability::Bpf],
        Operation::Reset => vec![Capability::Bpf, Capability::SysAdmin],
    };
    if !uid_is_root {
        // pins and /proc/PID/fd belong to root: mode bits alone would refuse us
        needed.push(Capability::DacOverride);
    }
    if last_cap < Capability::Bpf.bit() {
        // before 5.8, CAP_SYS_ADMIN stands for CAP_BPF and CAP_PERFMON
        needed.retain(|cap| !matches!(cap, Capability::Bpf | Capability::Perfmon));
        needed.push(Capability::SysAdmin);
    }
    needed.sort();
    needed.dedup();
    needed.retain(|cap| effective & (1 << cap.bit()) == 0);
    needed
}

/// The user ids of this process: who is asking.
pub fn caller() -> chadthrottle_core::process::Uids {
    let (mut real, mut effective, mut saved) = (0, 0, 0);
    // SAFETY: the three pointers are valid for writes for the duration of the call.
    let status = unsafe { libc::getresuid(&raw mut real, &raw mut effective, &raw mut saved) };
    if status != 0 {
        // cannot fail with valid pointers; were it to, nobody is the safe answer
        return chadthrottle_core::process::Uids::of(u32::MAX);
    }
    chadthrottle_core::process::Uids {
        real,
        effective,
        saved,
    }
}

/// Runs `work` with the file permissions of the user who started ChadThrottle: a binary
/// granted capabilities with `setcap` bypasses file modes (CAP_DAC_OVERRIDE), so files a
/// user names (`--saved-limits`, `$XDG_STATE_HOME`) are read and written from a thread
/// whose effective capabilities are cleared. Capabilities are per thread: the rest of the
/// process keeps them. Root's work runs as it is.
pub fn as_caller<T: Send>(work: impl FnOnce() -> T + Send) -> std::io::Result<T> {
    if caller().is_root() {
        return Ok(work());
    }
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                caps::clear(None, caps::CapSet::Effective)
                    .map_err(|error| std::io::Error::other(error.to_string()))?;
                Ok(work())
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Checks the calling process's capabilities for `operation`.
pub fn check(operation: Operation) -> Result<(), MissingPrivileges> {
    let effective = procfs::process::Process::myself()
        .and_then(|me| me.status())
        .map(|status| status.capeff)
        .unwrap_or(0);
    let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(Capability::Bpf.bit());
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let missing = missing(operation, effective, last_cap, root);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(MissingPrivileges { missing })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: u64 = (1 << 40) - 1;

    #[test]
    fn root_with_every_capability_needs_nothing() {
        assert!(missing(Operation::Install { mount_bpffs: true }, ALL, 40, true).is_empty());
    }

    #[test]
    fn an_unprivileged_user_is_told_every_capability_and_the_fix() {
        let caps = missing(Operation::Install { mount_bpffs: true }, 0, 40, false);
        let message = MissingPrivileges { missing: caps }.to_string();
        for name in [
            "CAP_BPF",
            "CAP_PERFMON",
            "CAP_NET_ADMIN",
            "CAP_SYS_ADMIN",
            "CAP_SYS_PTRACE",
            "CAP_DAC_OVERRIDE",
        ] {
            assert!(message.contains(name), "{message}");
        }
        assert!(
            message.contains("sudo") && message.contains("setcap"),
            "{message}"
        );
        assert!(!message.contains('\n'));
    }

    #[test]
    fn mounting_needs_sys_admin_only_when_bpffs_is_missing() {
        let without_sys_admin = ALL & !(1 << 21);
        assert!(
            missing(
                Operation::Install { mount_bpffs: false },
                without_sys_admin,
                40,
                true
            )
            .is_empty()
        );
        assert_eq!(
            missing(
                Operation::Install { mount_bpffs: true },
                without_sys_admin,
                40,
                true
            ),
            vec![Capability::SysAdmin]
        );
    }

    #[test]
    fn old_kernels_need_sys_admin_instead_of_bpf() {
        let old_root = (1u64 << 38) - 1; // 5.4: capabilities up to 37
        assert!(missing(Operation::UsePins, old_root, 37, true).is_empty());
        assert_eq!(
            missing(Operation::UsePins, 0, 37, true),
            vec![Capability::SysAdmin]
        );
    }
}
