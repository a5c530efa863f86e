//! Everything that can go wrong in the kernel crate, with the operation and the object.

use crate::privileges::MissingPrivileges;
use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Privileges(#[from] MissingPrivileges),

    #[error("cannot {op} {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The verifier refused a helper this kernel does not give the program's hook: named,
    /// not shown as the verifier's log.
    #[error("cannot load {program}: {reason}")]
    NeedsNewerKernel {
        program: &'static str,
        reason: String,
    },

    #[error("cannot load the datapath into the kernel")]
    Load {
        #[source]
        source: aya::EbpfError,
    },

    #[error("cannot {op} program {program}")]
    Program {
        op: &'static str,
        program: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },

    #[error("cannot keep the link of program {program}")]
    Link {
        program: &'static str,
        #[source]
        source: aya::programs::links::LinkError,
    },

    #[error("cannot {op} map {map}")]
    Map {
        op: &'static str,
        map: &'static str,
        #[source]
        source: aya::maps::MapError,
    },

    #[error("cannot pin {}", path.display())]
    Pin {
        path: PathBuf,
        #[source]
        source: aya::pin::PinError,
    },

    #[error(
        "map {map} has key/value sizes {found:?} where this build expects {expected:?}: \
         it was pinned by another chadthrottle version; run `chadthrottle reset`"
    )]
    LayoutMismatch {
        map: &'static str,
        expected: (usize, usize),
        found: (usize, usize),
    },

    #[error(
        "the datapath pinned at {} comes from another chadthrottle build (layout {layout}, \
         object {object:016x}); run `chadthrottle reset` first",
        pin_dir.display()
    )]
    ForeignInstall {
        pin_dir: PathBuf,
        layout: u32,
        object: u64,
    },

    #[error(
        "the datapath pinned at {} is attached to another cgroup (id {installed}) than \
         \"{}\" (id {requested}): use the same --cgroup, or `chadthrottle reset` first",
        pin_dir.display(), cgroup.display()
    )]
    OtherCgroup {
        pin_dir: PathBuf,
        cgroup: PathBuf,
        installed: u64,
        requested: u64,
    },

    #[error(
        "no cgroup2 filesystem is mounted: ChadThrottle attaches to cgroup v2 (mount one with `mount -t cgroup2 none /sys/fs/cgroup`)"
    )]
    NoCgroup2,

    #[error(
        "--cgroup \"{}\" is not a directory of the cgroup2 tree mounted at {}",
        path.display(), mount.display()
    )]
    NotCgroup2 { path: PathBuf, mount: PathBuf },

    #[error(
        "--pin-dir \"{}\" is not on a bpffs, and its parent {} is a {fs_type} mount point; \
         mount bpffs there yourself (`mount -t bpf bpf DIR`) or pick a --pin-dir under /sys/fs/bpf",
        pin_dir.display(), parent.display()
    )]
    NoBpffs {
        pin_dir: PathBuf,
        parent: PathBuf,
        fs_type: String,
    },

    #[error(
        "--pin-dir \"{}\" is not on a bpffs, and its parent \"{}\" holds files ({entry:?} among \
         them) that a bpffs mounted there would hide; pick a --pin-dir inside a bpffs (e.g. \
         under /sys/fs/bpf) or one whose parent is empty or missing (e.g. /run/NAME/bpf/pins)",
        pin_dir.display(), parent.display()
    )]
    BpffsWouldHide {
        pin_dir: PathBuf,
        parent: PathBuf,
        entry: String,
    },

    #[error(
        "the limit table is full: {capacity} processes are limited already; unlimit some, \
         or `chadthrottle reset` and set a larger --max-limits"
    )]
    TableFull { capacity: u32 },

    #[error("PID {pid} exited while its limit was being set")]
    ProcessExited { pid: u32 },

    #[error("cannot {op}")]
    TrafficControl {
        op: String,
        #[source]
        source: io::Error,
    },

    #[error("the {what} table is full ({capacity}): remove some rules, or narrow their targets")]
    RulesFull { what: &'static str, capacity: u32 },

    /// A rule's target cannot be matched as given (the message says why and what to do);
    /// nothing was changed.
    #[error("{0}")]
    RuleTarget(String),

    /// A qdisc backend cannot be installed as asked; nothing was changed.
    #[error("{0}")]
    QdiscRefused(String),

    /// The nftables backend cannot take the process (the message says why and what to
    /// do); nothing was changed.
    #[error("{0}")]
    NftablesRefused(String),

    #[error("cannot {op}")]
    Nftables {
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }

    pub(crate) fn tc(op: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
        let op = op.into();
        move |source| Error::TrafficControl { op, source }
    }

    pub(crate) fn map(
        op: &'static str,
        map: &'static str,
    ) -> impl FnOnce(aya::maps::MapError) -> Error {
        move |source| Error::Map { op, map, source }
    }

    pub(crate) fn program(
        op: &'static str,
        program: &'static str,
    ) -> impl FnOnce(aya::programs::ProgramError) -> Error {
        move |source| Error::Program {
            op,
            program,
            source,
        }
    }
}

/// `error` and its causes on one line, joined by ": ".
pub fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
