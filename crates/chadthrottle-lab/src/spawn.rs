//! Starting lab processes where they belong: in a network namespace, in the test cgroup
//! from their first instruction (`CLONE_INTO_CGROUP`), and, for the PID-reuse test, with
//! a chosen PID (`clone3` `set_tid`). The program is this executable (or a copy of it), which
//! becomes a lab endpoint (see `generator::run_if_endpoint`), possibly run by a wrapper
//! command (trickle, for the benchmark's comparison).

use crate::netns::NetNs;
use std::ffi::{CString, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

/// `CLONE_INTO_CGROUP` from linux/sched.h (libc's constant is an overflowing c_int).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Where and how to start a process.
#[derive(Default)]
pub struct Placement<'a> {
    pub netns: Option<&'a NetNs>,
    pub cgroup: Option<&'a Path>,
    /// Ask the kernel for exactly this PID (it must be free).
    pub pid: Option<u32>,
    /// A command that runs the process (`/usr/bin/trickle -s …`; its first word an
    /// absolute path): the process is then that command, which executes this one.
    pub wrapper: &'a [String],
    /// The executable to run instead of this one: a copy of it, for a test that needs
    /// an executable (path, name) of its own.
    pub program: Option<&'a Path>,
}

/// A started process with its stdin and stdout; killed (by its PID) and reaped on drop.
#[derive(Debug)]
pub struct Child {
    pub pid: u32,
    pub stdin: File,
    pub stdout: File,
    reaped: bool,
}

fn cstring(bytes: Vec<u8>) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in argument"))
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Starts this executable with `args` at `placement`.
pub fn spawn(args: &[String], placement: &Placement<'_>) -> io::Result<Child> {
    let mut argv = placement
        .wrapper
        .iter()
        .map(|word| cstring(word.clone().into_bytes()))
        .collect::<io::Result<Vec<_>>>()?;
    let program = match placement.program {
        Some(program) => program.to_owned(),
        None => std::env::current_exe()?,
    };
    argv.push(cstring(program.into_os_string().into_vec())?);
    for arg in args {
        argv.push(cstring(arg.clone().into_bytes())?);
    }
    let env: Vec<CString> = std::env::vars_os()
        .map(|(key, value)| {
            let mut pair: OsString = key;
            pair.push("=");
            pair.push(value);
            cstring(pair.into_vec())
        })
        .collect::<io::Result<_>>()?;
    let argv_ptrs: Vec<*const libc::c_char> = argv
        .iter()
        .map(|arg| arg.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    let env_ptrs: Vec<*const libc::c_char> = env
        .iter()
        .map(|var| var.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    let (stdin_read, stdin_write) = pipe()?;
    let (stdout_read, stdout_write) = pipe()?;
    let cgroup = placement
        .cgroup
        .map(|path| File::open(path).map(OwnedFd::from))
        .transpose()?;
    let set_tid = [placement.pid.unwrap_or(0) as libc::pid_t];

    // SAFETY: clone_args is plain data; zero is valid for every field.
    let mut clone_args: libc::clone_args = unsafe { std::mem::zeroed() };
    clone_args.exit_signal = libc::SIGCHLD as u64;
    if let Some(cgroup) = &cgroup {
        clone_args.flags |= CLONE_INTO_CGROUP;
        clone_args.cgroup = cgroup.as_raw_fd() as u64;
    }
    if placement.pid.is_some() {
        clone_args.set_tid = set_tid.as_ptr() as u64;
        clone_args.set_tid_size = 1;
    }
    let netns_fd = placement.netns.map(|netns| {
        use std::os::fd::AsFd;
        netns.as_fd().as_raw_fd()
    });
    let (stdin_fd, stdout_fd) = (stdin_read.as_raw_fd(), stdout_write.as_raw_fd());

    // SAFETY: clone3 without CLONE_VM forks this process. The child runs only
    // async-signal-safe calls (dup2, setns, execve, _exit) on data prepared above.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &raw mut clone_args,
            std::mem::size_of::<libc::clone_args>(),
        )
    };
    if pid == 0 {
        // SAFETY: see above; nothing here allocates or takes locks.
        unsafe {
            if libc::dup2(stdin_fd, 0) < 0 || libc::dup2(stdout_fd, 1) < 0 {
                libc::_exit(126);
            }
            if let Some(fd) = netns_fd
                && libc::setns(fd, libc::CLONE_NEWNET) != 0
            {
                libc::_exit(125);
            }
            libc::execve(argv[0].as_ptr(), argv_ptrs.as_ptr(), env_ptrs.as_ptr());
            libc::_exit(127);
        }
    }
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    drop((stdin_read, stdout_write));
    Ok(Child {
        pid: u32::try_from(pid).map_err(io::Error::other)?,
        stdin: File::from(stdin_write),
        stdout: File::from(stdout_read),
        reaped: false,
    })
}

impl Child {
    /// Waits for the process to exit; returns its wait status.
    pub fn wait(&mut self) -> io::Result<i32> {
        let mut status = 0;
        // SAFETY: status is a valid out-pointer; pid is our child.
        let result = unsafe { libc::waitpid(self.pid as libc::pid_t, &mut status, 0) };
        if result < 0 {
            return Err(io::Error::last_os_error());
        }
        self.reaped = true;
        Ok(status)
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: i32) {
        if !self.reaped {
            // SAFETY: kill has no memory-safety preconditions; the PID is our unreaped
            // child, so it cannot name another process.
            unsafe { libc::kill(self.pid as libc::pid_t, signal) };
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
            self.signal(libc::SIGKILL);
            let _status = self.wait();
        }
    }
}
