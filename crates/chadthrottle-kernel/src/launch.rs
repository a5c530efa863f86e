//! A command started held (`run`): forked, it waits before its first instruction until
//! it is released, so a rule can be set on its PID first; it drops root for the user who
//! invoked sudo; its parent forwards signals to it and reports how it ended.

use signal_hook::iterator::SignalsInfo;
use signal_hook::iterator::exfiltrator::WithOrigin;
use signal_hook::low_level::siginfo::Cause;
use std::ffi::{CStr, CString, OsString};
use std::io::{self, Read as _, Write as _};
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::thread::JoinHandle;
use std::time::Duration;

/// The signals `run` passes on to its command (Ctrl+C, kill, hang-up, the user signals).
pub const FORWARDED: [i32; 6] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// The user a command runs as: ids, supplementary groups and the login environment
/// `sudo -u` gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub name: String,
    pub home: PathBuf,
}

impl RunAs {
    /// The user who invoked sudo (`SUDO_UID`, `SUDO_GID`), when this process is root and
    /// they are set; `None` runs the command as this process runs.
    pub fn invoking_user() -> io::Result<Option<RunAs>> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Ok(None);
        }
        let id = |name: &str| -> io::Result<Option<u32>> {
            std::env::var_os(name)
                .map(|value| {
                    value.to_str().and_then(|v| v.parse().ok()).ok_or_else(|| {
                        io::Error::other(format!("{name}={value:?} is not a user or group id"))
                    })
                })
                .transpose()
        };
        let Some(uid) = id("SUDO_UID")? else {
            return Ok(None);
        };
        let (name, home, passwd_gid) = passwd(uid)?;
        let gid = id("SUDO_GID")?.unwrap_or(passwd_gid);
        let groups = group_list(&name, gid)?;
        Ok(Some(RunAs {
            uid,
            gid,
            groups,
            name,
            home,
        }))
    }
}

/// Name, home and primary group of `uid` in the user database.
fn passwd(uid: u32) -> io::Result<(String, PathBuf, u32)> {
    let mut buffer = vec![0_u8; 16 * 1024];
    // SAFETY: all-zero is a valid passwd (null pointers, zero ids); getpwuid_r fills it.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; the strings it sets point into buffer,
    // which outlives their use below.
    let status = unsafe {
        libc::getpwuid_r(
            uid,
            &raw mut entry,
            buffer.as_mut_ptr().cast(),
            buffer.len(),
            &raw mut found,
        )
    };
    if status != 0 {
        return Err(io::Error::from_raw_os_error(status));
    }
    if found.is_null() || entry.pw_name.is_null() || entry.pw_dir.is_null() {
        return Err(io::Error::other(format!(
            "SUDO_UID {uid} is not in the user database"
        )));
    }
    // SAFETY: getpwuid_r found the entry: both are NUL-terminated strings in buffer.
    let (name, home) = unsafe { (CStr::from_ptr(entry.pw_name), CStr::from_ptr(entry.pw_dir)) };
    Ok((
        name.to_string_lossy().into_owned(),
        PathBuf::from(std::ffi::OsStr::from_bytes(home.to_bytes())),
        entry.pw_gid,
    ))
}

/// The groups `name` belongs to, `gid` first, as initgroups(3) would set them.
fn group_list(name: &str, gid: u32) -> io::Result<Vec<u32>> {
    let user = CString::new(name).map_err(io::Error::other)?;
    let mut groups = vec![0_u32; 64];
    loop {
        let mut count = i32::try_from(groups.len()).unwrap_or(i32::MAX);
        // SAFETY: user is NUL-terminated; groups holds count entries for the call.
        let found =
            unsafe { libc::getgrouplist(user.as_ptr(), gid, groups.as_mut_ptr(), &raw mut count) };
        let count = usize::try_from(count).unwrap_or(0);
        if found >= 0 {
            groups.truncate(count);
            return Ok(groups);
        }
        if count <= groups.len() || groups.len() >= 1 << 16 {
            return Err(io::Error::other(format!(
                "cannot list the groups of user \"{name}\""
            )));
        }
        groups.resize(count, 0);
    }
}

/// A forked command waiting before exec; [`Held::release`] lets it run, dropping or
/// [`Held::kill`] ends it before it ran anything.
#[derive(Debug)]
pub struct Held {
    pid: u32,
    go: OwnedFd,
    spawner: JoinHandle<io::Result<Child>>,
}

impl Held {
    /// Forks `command` (program and arguments, looked up in PATH) as `run_as` (with its
    /// HOME, USER and LOGNAME), held until released.
    ///
    /// std's spawn returns only once the child has exec'd, so it runs on a thread of its
    /// own: the child tells its PID on one pipe and waits for a byte on another.
    pub fn start(command: &[OsString], run_as: Option<RunAs>) -> io::Result<Held> {
        let (program, args) = command
            .split_first()
            .ok_or_else(|| io::Error::other("no command given"))?;
        let (pid_read, pid_write) = std::io::pipe()?;
        let (go_read, go_write) = std::io::pipe()?;
        let fds = [
            pid_read.as_raw_fd(),
            pid_write.as_raw_fd(),
            go_read.as_raw_fd(),
            go_write.as_raw_fd(),
        ];
        let mut child = Command::new(program);
        child.args(args);
        if let Some(user) = &run_as {
            child
                .env("HOME", &user.home)
                .env("USER", &user.name)
                .env("LOGNAME", &user.name);
        }
        let ids = run_as.map(|user| (user.uid, user.gid, user.groups));
        // SAFETY: the closure runs in the forked child before exec and makes only
        // async-signal-safe calls (close, getpid, write, read, setgroups, setgid, setuid)
        // on memory it owns.
        unsafe {
            child.pre_exec(move || {
                let [pid_read, pid_write, go_read, go_write] = fds;
                // the parent's ends: with go_write closed here, the parent's exit is EOF
                libc::close(pid_read);
                libc::close(go_write);
                let pid = libc::getpid().to_ne_bytes();
                let written = libc::write(pid_write, pid.as_ptr().cast(), pid.len());
                libc::close(pid_write);
                if usize::try_from(written).ok() != Some(pid.len()) {
                    return Err(io::Error::last_os_error());
                }
                let mut byte = 0_u8;
                loop {
                    match libc::read(go_read, (&raw mut byte).cast(), 1) {
                        1 => break,
                        -1 if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
                        // the parent went away or refused: run nothing
                        _ => return Err(io::Error::from_raw_os_error(libc::ECANCELED)),
                    }
                }
                libc::close(go_read);
                if let Some((uid, gid, groups)) = &ids {
                    if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                        || libc::setgid(*gid) != 0
                        || libc::setuid(*uid) != 0
                    {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let spawner = std::thread::spawn(move || {
            let spawned = child.spawn();
            // the child holds its own copies; ours go, so a child that died early is EOF
            drop((pid_write, go_read));
            spawned
        });
        let mut pid = [0_u8; 4];
        let mut pid_read = pid_read;
        let told = pid_read.read_exact(&mut pid);
        drop(pid_read);
        match told {
            Ok(()) => Ok(Held {
                pid: u32::from_ne_bytes(pid),
                go: go_write.into(),
                spawner,
            }),
            Err(_) => {
                drop(go_write);
                let spawned = spawner
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                Err(spawned.err().unwrap_or_else(|| {
                    io::Error::other("the command did not report its PID before it ran")
                }))
            }
        }
    }

    /// The held command's PID.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Lets the command exec; the error is why it could not (not found, not
    /// executable, the user switch refused).
    pub fn release(self) -> io::Result<Child> {
        let written = std::fs::File::from(self.go).write_all(&[1]);
        let spawned = self
            .spawner
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        written?;
        spawned
    }

    /// Ends the command before it ran anything and reaps it.
    pub fn kill(self) {
        // SAFETY: kill has no memory preconditions; the child is ours and not yet
        // reaped (its spawn has not returned), so the PID is still its own.
        unsafe {
            libc::kill(i32::try_from(self.pid).unwrap_or(i32::MAX), libc::SIGKILL);
        }
        drop(self.go);
        if let Ok(Ok(mut child)) = self.spawner.join() {
            let _ = child.wait();
        }
    }
}

/// Waits for `child`, passing the signals `signals` receives on to it, except those the
/// kernel sent (a terminal's Ctrl+C, Ctrl+\, hang-up): those went to the whole foreground
/// process group, the command too, which must not get them twice. A signal that comes once
/// the child has ended is left pending in `signals` for the caller (`run` then stops
/// waiting for the rest of the tree): the child is looked at before the signals are, so a
/// signal is passed on only to a child still running when it was last seen, not to one that
/// ended in the poll interval before it.
pub fn wait_forwarding(
    child: &mut Child,
    signals: &mut SignalsInfo<WithOrigin>,
) -> io::Result<ExitStatus> {
    let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        for origin in signals.pending() {
            if origin.cause != Cause::Kernel {
                // SAFETY: kill has no memory preconditions; the child is not reaped
                // yet (try_wait above has not seen it end), so the PID is its own.
                unsafe {
                    libc::kill(pid, origin.signal);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The exit status a shell reports for `status`: the code, or 128 + the signal.
pub fn shell_status(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code & 0xff).unwrap_or(u8::MAX),
        (None, Some(signal)) => signal_status(signal),
        (None, None) => 1,
    }
}

/// The exit status a shell reports for a process `signal` ended: 128 + the signal.
pub fn signal_status(signal: i32) -> u8 {
    u8::try_from((128 + signal) & 0xff).unwrap_or(u8::MAX)
}

/// The signals `run` forwards, each with who sent it.
pub fn forwarded_signals() -> io::Result<SignalsInfo<WithOrigin>> {
    SignalsInfo::<WithOrigin>::new(FORWARDED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_command_runs_only_once_released() {
        let marker = std::env::temp_dir().join(format!("ct-held-{}", std::process::id()));
        let _ = std::fs::remove_file(&marker);
        let command: Vec<OsString> = vec!["touch".into(), marker.clone().into()];
        let held = Held::start(&command, None).expect("start");
        assert!(held.pid() > 1);
        std::thread::sleep(Duration::from_millis(200));
        assert!(!marker.exists(), "ran before it was released");
        let status = held.release().expect("release").wait().expect("wait");
        assert!(status.success());
        assert!(marker.exists(), "did not run once released");
        std::fs::remove_file(&marker).expect("remove marker");
    }

    #[test]
    fn a_signal_after_the_command_ended_is_left_for_the_caller() {
        let mut signals = forwarded_signals().expect("signals");
        let held = Held::start(&["true".into()], None).expect("start");
        let mut child = held.release().expect("release");
        // the command has ended (a zombie, not reaped) before the signal comes
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(format!("/proc/{}/stat", child.id()))
            .is_ok_and(|stat| !stat.contains(") Z "))
        {
            assert!(std::time::Instant::now() < deadline, "true did not end");
            std::thread::sleep(Duration::from_millis(5));
        }
        // SAFETY: kill has no memory preconditions; the signal is caught by `signals`.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGHUP);
        }
        std::thread::sleep(Duration::from_millis(50));
        let status = wait_forwarding(&mut child, &mut signals).expect("wait");
        assert!(status.success());
        let left: Vec<i32> = signals.pending().map(|origin| origin.signal).collect();
        assert_eq!(
            left,
            vec![libc::SIGHUP],
            "the signal was passed to the ended command"
        );
    }

    #[test]
    fn a_killed_held_command_never_runs() {
        let marker = std::env::temp_dir().join(format!("ct-killed-{}", std::process::id()));
        let _ = std::fs::remove_file(&marker);
        let command: Vec<OsString> = vec!["touch".into(), marker.clone().into()];
        let held = Held::start(&command, None).expect("start");
        let pid = held.pid();
        held.kill();
        assert!(!marker.exists());
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "reaped"
        );
    }

    #[test]
    fn a_missing_program_is_an_error_at_release() {
        let command: Vec<OsString> = vec!["/nonexistent/ct-no-such-program".into()];
        let held = Held::start(&command, None).expect("start");
        let error = held.release().expect_err("cannot exec");
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn statuses_read_as_a_shell_reports_them() {
        assert_eq!(shell_status(ExitStatus::from_raw(7 << 8)), 7);
        assert_eq!(shell_status(ExitStatus::from_raw(libc::SIGTERM)), 143);
        assert_eq!(shell_status(ExitStatus::from_raw(0)), 0);
    }
}
