//! A process of an ordinary user's in the lab, for the tests of what a caller who is not
//! root may do.

use anyhow::Context as _;
use chadthrottle_lab::Lab;
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command};

/// The uid of user `nobody`, for processes and callers that are not root.
pub const NOBODY: u32 = 65_534;

/// A process of `nobody`'s in the lab's cgroup, killed on drop.
pub struct UsersProcess(pub Child);

impl UsersProcess {
    pub fn start(lab: &Lab) -> anyhow::Result<UsersProcess> {
        let child = Command::new("sleep")
            .arg("120")
            .uid(NOBODY)
            .gid(NOBODY)
            .spawn()?;
        let process = UsersProcess(child);
        std::fs::write(
            lab.cgroup().join("cgroup.procs"),
            process.0.id().to_string(),
        )
        .context("move the user's process into the lab's cgroup")?;
        Ok(process)
    }

    pub fn pid(&self) -> String {
        self.0.id().to_string()
    }
}

impl Drop for UsersProcess {
    fn drop(&mut self) {
        let _gone = self.0.kill();
        let _reaped = self.0.wait();
    }
}
