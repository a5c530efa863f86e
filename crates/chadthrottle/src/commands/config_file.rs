//! The daemon's configuration file as `daemon` and `usage` read it: the default file may
//! be missing (every default holds), a file named with `--config` may not.

use anyhow::Context as _;
use chadthrottle_core::daemon_config::{CONFIG_FILE, DaemonConfig, parse_config};
use std::path::Path;

/// The configuration in `named` (`--config`), else in the default file if there is one.
pub fn load(named: Option<&Path>) -> anyhow::Result<DaemonConfig> {
    let path = named.unwrap_or(Path::new(CONFIG_FILE));
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && named.is_none() => {
            return Ok(DaemonConfig::default());
        }
        Err(error) => {
            return Err(error)
                .with_context(|| format!("cannot read the configuration file {}", path.display()));
        }
    };
    Ok(parse_config(path, &text)?)
}
