//! Executables of a test's or benchmark's own: copies of the running binary in a
//! temporary directory, so that a rule by executable names a file no other process runs,
//! and a test can replace one by rename as a package upgrade does.

use anyhow::Context as _;
use std::path::PathBuf;

/// A directory of executables of the caller's own (copies of the running binary),
/// removed on drop.
pub struct Programs(PathBuf);

impl Programs {
    /// A new directory, named for `label` and this process.
    pub fn new(label: &str) -> anyhow::Result<Programs> {
        let dir = std::env::temp_dir().join(format!("ct-programs-{}-{label}", std::process::id()));
        std::fs::create_dir_all(&dir).context("create the programs' directory")?;
        Ok(Programs(dir))
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Copies the running binary to `name` (written beside it first, then renamed over
    /// it, as a package upgrade does).
    pub fn install(&self, name: &str) -> anyhow::Result<PathBuf> {
        let path = self.path(name);
        let staged = self.path(&format!(".{name}.new"));
        std::fs::copy(std::env::current_exe()?, &staged).context("copy the running binary")?;
        std::fs::rename(&staged, &path).context("rename it into place")?;
        Ok(path)
    }
}

impl Drop for Programs {
    fn drop(&mut self) {
        let _gone = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_installed_program_is_a_copy_and_the_directory_goes_with_the_guard() {
        let programs = Programs::new("unit").expect("a temp directory");
        let first = programs.install("one").expect("installed");
        let bytes = std::fs::read(&first).expect("readable");
        let own = std::fs::read(std::env::current_exe().expect("own path")).expect("readable");
        assert_eq!(bytes, own);
        // installed again: a new file (new inode) at the same path, nothing staged left
        let inode = |path: &PathBuf| {
            std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(path).expect("metadata"))
        };
        let before = inode(&first);
        let again = programs.install("one").expect("installed again");
        assert_ne!(inode(&again), before);
        assert!(!programs.path(".one.new").exists());
        let dir = programs.path("");
        drop(programs);
        assert!(!dir.exists());
    }
}
