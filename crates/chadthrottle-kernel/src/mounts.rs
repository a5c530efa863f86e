//! Where cgroup2 and bpffs are mounted, and mounting bpffs for the pins when it is not.

use crate::error::Error;
use crate::names::BPFFS_SOURCE;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// One line of /proc/self/mountinfo, the parts used here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub point: PathBuf,
    pub fs_type: String,
    pub source: Option<String>,
}

fn mounts() -> Vec<Mount> {
    procfs::process::Process::myself()
        .and_then(|me| me.mountinfo())
        .map(|infos| {
            infos
                .into_iter()
                .map(|info| Mount {
                    point: info.mount_point,
                    fs_type: info.fs_type,
                    source: info.mount_source,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What /proc is mounted to let users see of each other's processes (`hidepid`).
pub fn proc_hidepid() -> chadthrottle_core::access::HidePid {
    use chadthrottle_core::access::HidePid;
    let Ok(infos) = procfs::process::Process::myself().and_then(|me| me.mountinfo()) else {
        return HidePid::Off;
    };
    infos
        .into_iter()
        .find(|info| info.fs_type == "proc" && info.mount_point == Path::new("/proc"))
        .and_then(|info| {
            let value = info
                .super_options
                .get("hidepid")
                .or_else(|| info.mount_options.get("hidepid"))?
                .clone()?;
            Some(HidePid::from_mount_options(&format!("hidepid={value}")))
        })
        .unwrap_or_default()
}

/// Where cgroup v1 hierarchies are mounted (none on a cgroup2-only machine; a hybrid one
/// mounts them beside cgroup2).
pub fn cgroup_v1_mounts() -> Vec<PathBuf> {
    mounts()
        .into_iter()
        .filter(|mount| mount.fs_type == "cgroup")
        .map(|mount| mount.point)
        .collect()
}

/// The root of the cgroup2 tree (the first cgroup2 mount in /proc/self/mountinfo).
pub fn cgroup2_root() -> Result<PathBuf, Error> {
    mounts()
        .into_iter()
        .find(|mount| mount.fs_type == "cgroup2")
        .map(|mount| mount.point)
        .ok_or(Error::NoCgroup2)
}

/// The cgroup2 directory `path` as a path inside the tree (`/` for the root), after
/// checking it is one.
pub fn cgroup_scope(path: &Path) -> Result<String, Error> {
    let root = cgroup2_root()?;
    let not_cgroup = || Error::NotCgroup2 {
        path: path.to_owned(),
        mount: root.clone(),
    };
    let canonical = path.canonicalize().map_err(|_| not_cgroup())?;
    let inside = canonical.strip_prefix(&root).map_err(|_| not_cgroup())?;
    if !canonical.join("cgroup.procs").exists() {
        return Err(not_cgroup());
    }
    Ok(format!("/{}", inside.display()))
}

/// The mount that holds `path` (the longest mount point that is a prefix of it).
pub fn mount_of(path: &Path) -> Option<Mount> {
    mounts()
        .into_iter()
        .filter(|mount| path.starts_with(&mount.point))
        .max_by_key(|mount| mount.point.as_os_str().len())
}

/// What has to happen before `pin_dir` can hold pins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinDirPlan {
    /// Its parent is on a bpffs already.
    Ready,
    /// A bpffs must be mounted on its parent first.
    Mount { at: PathBuf },
}

/// Decides whether pinning under `pin_dir` needs a bpffs mounted, without changing
/// anything: the caller checks privileges in between.
pub fn plan_pin_dir(pin_dir: &Path) -> Result<PinDirPlan, Error> {
    let parent = pin_dir.parent().unwrap_or(Path::new("/")).to_path_buf();
    plan_settled(pin_dir, &parent, first_entry, mount_of)
}

/// How many times [`plan_settled`] reads the parent again when it changed under it.
const PLAN_READS: usize = 4;

/// [`plan_for`] on reads of `parent` that another command did not change in between:
/// `entry` reads one entry of a directory, `holder` the mount that holds a path. The
/// entries are read before the mounts: another command may mount a bpffs on the parent and
/// pin into it meanwhile, and entries read after its mount with the mounts read before it
/// would look like files the mount hides (32 first `limit`s at once failed so once). A
/// refusal for hidden files reads the entries once more: a `reset` that unmounted the
/// bpffs between the reads took the entries with it, and the parent is planned again.
fn plan_settled(
    pin_dir: &Path,
    parent: &Path,
    entry: impl Fn(&Path) -> Option<String>,
    holder: impl Fn(&Path) -> Option<Mount>,
) -> Result<PinDirPlan, Error> {
    let mut reads = 1;
    loop {
        let held = entry(parent);
        let plan = plan_for(pin_dir, parent, holder(parent), held.clone());
        if !matches!(plan, Err(Error::BpffsWouldHide { .. }))
            || reads == PLAN_READS
            || entry(parent) == held
        {
            return plan;
        }
        reads += 1;
    }
}

/// One entry of `dir`, if it holds any (a directory that is missing or unreadable holds
/// none that a mount would hide from anyone).
fn first_entry(dir: &Path) -> Option<String> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .next()
}

/// [`plan_pin_dir`]'s decision: `holder` is the mount that holds `parent`, `held` one
/// entry `parent` holds. A bpffs is mounted on the parent only where it hides nothing:
/// over `/run` or `/tmp` it would hide every file and socket under them from the whole
/// machine until it was unmounted.
fn plan_for(
    pin_dir: &Path,
    parent: &Path,
    holder: Option<Mount>,
    held: Option<String>,
) -> Result<PinDirPlan, Error> {
    match holder {
        Some(mount) if mount.fs_type == "bpf" => Ok(PinDirPlan::Ready),
        Some(mount) if mount.point == parent => Err(Error::NoBpffs {
            pin_dir: pin_dir.to_owned(),
            parent: parent.to_owned(),
            fs_type: mount.fs_type,
        }),
        _ => match held {
            Some(entry) => Err(Error::BpffsWouldHide {
                pin_dir: pin_dir.to_owned(),
                parent: parent.to_owned(),
                entry,
            }),
            None => Ok(PinDirPlan::Mount {
                at: parent.to_owned(),
            }),
        },
    }
}

/// Carries out `plan` and creates `pin_dir`.
pub fn prepare_pin_dir(pin_dir: &Path, plan: &PinDirPlan) -> Result<(), Error> {
    if let PinDirPlan::Mount { at } = plan {
        std::fs::create_dir_all(at).map_err(Error::io("create", at))?;
        mount_bpffs(at)?;
        if let Err(error) = remember_bpffs(pin_dir, at) {
            // unrecorded, no later reset would know the mount for its own: undone now
            unmount(at)?;
            return Err(error);
        }
    }
    // root's alone, like the pins in it
    let created = std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
        .create(pin_dir);
    match created {
        Err(error) if error.kind() != std::io::ErrorKind::AlreadyExists => {
            Err(Error::io("create", pin_dir)(error))
        }
        _ => Ok(()),
    }
}

fn c_path(path: &Path) -> Result<CString, Error> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::io("use", path)(std::io::Error::from(std::io::ErrorKind::InvalidInput)))
}

fn mount_bpffs(at: &Path) -> Result<(), Error> {
    let target = c_path(at)?;
    let source = c_path(Path::new(BPFFS_SOURCE))?;
    let (fs_type, options) = (c"bpf", c"mode=0700");
    // SAFETY: all pointers are valid NUL-terminated strings for the duration of the call.
    let status = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fs_type.as_ptr(),
            0,
            options.as_ptr().cast(),
        )
    };
    if status != 0 {
        return Err(Error::io("mount bpffs on", at)(
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Unmounts the bpffs above `pin_dir` if ChadThrottle mounted it and nothing else is in
/// it. Returns whether it did.
pub fn release_bpffs(pin_dir: &Path) -> Result<bool, Error> {
    let Some(parent) = pin_dir.parent() else {
        return Ok(false);
    };
    let record_path = crate::record::path(BPFFS_RECORD, pin_dir);
    let mounted: MountedBpffs = crate::record::read(&record_path)?;
    let ours = mount_of(parent).is_some_and(|mount| {
        mount.fs_type == "bpf"
            && mount.point == parent
            && mount.source.as_deref() == Some(BPFFS_SOURCE)
    }) || mounted.stands_at(parent);
    if !ours {
        // gone, or no longer the one ChadThrottle mounted: nothing of ours to remember
        crate::record::remove(&record_path)?;
    }
    // a fresh bpffs is not quite empty: with CONFIG_BPF_PRELOAD the kernel puts its own
    // iterator files in it
    let empty = std::fs::read_dir(parent).is_ok_and(|entries| {
        entries.filter_map(Result::ok).all(|entry| {
            matches!(
                entry.file_name().to_str(),
                Some("maps.debug" | "progs.debug")
            )
        })
    });
    if !(ours && empty) {
        return Ok(false);
    }
    unmount(parent)?;
    crate::record::remove(&record_path)?;
    Ok(true)
}

fn unmount(point: &Path) -> Result<(), Error> {
    let target = c_path(point)?;
    // SAFETY: target is a valid NUL-terminated path.
    if unsafe { libc::umount2(target.as_ptr(), 0) } != 0 {
        return Err(Error::io("unmount", point)(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// The record kind of the bpffs ChadThrottle mounted above a pin directory.
const BPFFS_RECORD: &str = "bpffs";

/// The bpffs ChadThrottle mounted, as recorded when it did: Linux 5.10's bpffs does not
/// keep a mount's source name ("none" in mountinfo, where later kernels show
/// `BPFFS_SOURCE`), so the mount point and its device number are what tell it from
/// anyone else's later.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct MountedBpffs {
    point: Option<PathBuf>,
    device: u64,
}

/// Removes the records of bpffs mounts ChadThrottle made that are no longer there (one
/// unmounted by someone else, a lab's own teardown): a record stands for a mount only
/// while a bpffs with its device number is mounted at its point. Best effort: a record
/// that cannot be read is left.
pub fn forget_stale_bpffs() {
    let prefix = format!("{BPFFS_RECORD}-");
    let entries = std::fs::read_dir(crate::names::RUN_DIR)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|name| name.starts_with(&prefix) && name.ends_with(".json"))
        });
    for entry in entries {
        let Ok(mounted) = crate::record::read::<MountedBpffs>(&entry.path()) else {
            continue;
        };
        let standing = mounted
            .point
            .as_deref()
            .is_some_and(|point| mounted.stands_at(point));
        if !standing {
            let _gone_already = crate::record::remove(&entry.path());
        }
    }
}

impl MountedBpffs {
    /// Whether this record is of the bpffs mounted at `point` now: the point it names,
    /// with a bpffs on it of the device number it names.
    fn stands_at(&self, point: &Path) -> bool {
        self.point.as_deref() == Some(point)
            && mount_of(point).is_some_and(|mount| mount.fs_type == "bpf" && mount.point == point)
            && device_of(point) == Some(self.device)
    }
}

fn remember_bpffs(pin_dir: &Path, at: &Path) -> Result<(), Error> {
    forget_stale_bpffs();
    let device = device_of(at).ok_or_else(|| {
        Error::io("inspect", at)(std::io::Error::from(std::io::ErrorKind::NotFound))
    })?;
    let record = MountedBpffs {
        point: Some(at.to_owned()),
        device,
    };
    crate::record::write(&crate::record::path(BPFFS_RECORD, pin_dir), &record, false)
}

fn device_of(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|meta| meta.dev())
}

/// The cgroup2 id of a cgroup directory: its inode number on the cgroup2 filesystem.
pub fn cgroup_id(path: &Path) -> Result<u64, Error> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .map(|meta| meta.ino())
        .map_err(Error::io("inspect", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(point: &str, fs_type: &str) -> Option<Mount> {
        Some(Mount {
            point: PathBuf::from(point),
            fs_type: fs_type.to_owned(),
            source: None,
        })
    }

    fn plan(pin_dir: &str, holder: Option<Mount>, held: Option<&str>) -> Result<PinDirPlan, Error> {
        let pin_dir = Path::new(pin_dir);
        let parent = pin_dir.parent().unwrap_or(Path::new("/"));
        plan_for(pin_dir, parent, holder, held.map(str::to_owned))
    }

    #[test]
    fn a_parent_on_a_bpffs_is_ready_whatever_it_holds() {
        let ready = plan(
            "/sys/fs/bpf/chadthrottle",
            mount("/sys/fs/bpf", "bpf"),
            Some("x"),
        );
        assert_eq!(ready.ok(), Some(PinDirPlan::Ready));
    }

    #[test]
    fn an_empty_or_missing_parent_gets_a_bpffs() {
        let at = PathBuf::from("/sys/fs/bpf");
        let empty = plan("/sys/fs/bpf/chadthrottle", mount("/sys", "sysfs"), None);
        assert_eq!(empty.ok(), Some(PinDirPlan::Mount { at }));
        let missing = plan("/tmp/ct-lab/bpf/pins", mount("/", "ext4"), None);
        let at = PathBuf::from("/tmp/ct-lab/bpf");
        assert_eq!(missing.ok(), Some(PinDirPlan::Mount { at }));
    }

    #[test]
    fn a_parent_that_holds_files_is_never_mounted_over() {
        for pin_dir in ["/run/pins", "/tmp/pins", "/home/alice/pins"] {
            let refused = plan(pin_dir, mount("/", "ext4"), Some("systemd"));
            let message = refused.expect_err(pin_dir).to_string();
            let parent = Path::new(pin_dir).parent().unwrap().display().to_string();
            assert!(
                message.contains(&format!("\"{parent}\""))
                    && message.contains("\"systemd\"")
                    && message.contains("/sys/fs/bpf")
                    && !message.contains('\n'),
                "{message}"
            );
        }
    }

    /// Answers with `answers` in turn, the last one for good.
    fn in_turn<T: Clone>(answers: Vec<T>) -> impl Fn(&Path) -> T {
        let next = std::cell::Cell::new(0);
        move |_| {
            let at = next.get();
            next.set(at + 1);
            answers[at.min(answers.len() - 1)].clone()
        }
    }

    /// A reader of entries that answers `entry(n)` at its n-th read and counts in `reads`.
    fn counted<'a>(
        reads: &'a std::cell::Cell<usize>,
        entry: impl Fn(usize) -> Option<String> + 'a,
    ) -> impl Fn(&Path) -> Option<String> + 'a {
        move |_| {
            reads.set(reads.get() + 1);
            entry(reads.get())
        }
    }

    #[test]
    fn a_bpffs_unmounted_between_the_reads_is_planned_again() {
        // a reset's unmount after the entries (its pins) were read and before the mounts
        let pin_dir = Path::new("/run/ct-lab/bpf/pins");
        let parent = pin_dir.parent().unwrap();
        let entries = in_turn(vec![Some("pins".to_owned()), None]);
        let holders = in_turn(vec![mount("/run", "tmpfs")]);
        let plan = plan_settled(pin_dir, parent, entries, holders);
        let at = parent.to_owned();
        assert_eq!(plan.ok(), Some(PinDirPlan::Mount { at }));
    }

    #[test]
    fn files_that_stay_are_refused_after_one_more_read() {
        let pin_dir = Path::new("/run/pins");
        let reads = std::cell::Cell::new(0);
        let entries = counted(&reads, |_| Some("systemd".to_owned()));
        let plan = plan_settled(pin_dir, Path::new("/run"), entries, |_| mount("/", "ext4"));
        assert!(
            matches!(plan, Err(Error::BpffsWouldHide { .. })),
            "{plan:?}"
        );
        assert_eq!(reads.get(), 2);
    }

    #[test]
    fn a_parent_that_keeps_changing_is_read_a_bounded_number_of_times() {
        let pin_dir = Path::new("/run/ct-lab/bpf/pins");
        let reads = std::cell::Cell::new(0);
        let entries = counted(&reads, |n| Some(format!("pin{n}")));
        let plan = plan_settled(pin_dir, pin_dir.parent().unwrap(), entries, |_| {
            mount("/run", "tmpfs")
        });
        assert!(
            matches!(plan, Err(Error::BpffsWouldHide { .. })),
            "{plan:?}"
        );
        assert_eq!(reads.get(), 2 * PLAN_READS - 1);
    }

    #[test]
    fn a_parent_that_is_another_mount_point_is_refused_by_its_kind() {
        let refused = plan("/run/pins", mount("/run", "tmpfs"), None);
        assert!(matches!(refused, Err(Error::NoBpffs { fs_type, .. }) if fs_type == "tmpfs"));
    }
}
