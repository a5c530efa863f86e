//! Executables of a test's own: copies of the test binary in a temporary directory, so
//! that a rule can name a file no other process runs, and a test can replace it by rename
//! as a package upgrade does.

use anyhow::Context as _;
use std::path::PathBuf;

/// A directory of executables of the test's own (copies of this test binary), removed on
/// drop.
pub struct Programs(PathBuf);

impl Programs {
    pub fn new(test: &str) -> anyhow::Result<Programs> {
        let dir = std::env::temp_dir().join(format!("ct-rules-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&dir).context("create the programs' directory")?;
        Ok(Programs(dir))
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Copies this test binary to `name` (written beside it first, then renamed over it,
    /// as a package upgrade does).
    pub fn install(&self, name: &str) -> anyhow::Result<PathBuf> {
        let path = self.path(name);
        let staged = self.path(&format!(".{name}.new"));
        std::fs::copy(std::env::current_exe()?, &staged).context("copy the test binary")?;
        std::fs::rename(&staged, &path).context("rename it into place")?;
        Ok(path)
    }
}

impl Drop for Programs {
    fn drop(&mut self) {
        let _gone = std::fs::remove_dir_all(&self.0);
    }
}
