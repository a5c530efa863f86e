//! The files ChadThrottle keeps beside its pinned maps in /run/chadthrottle, one per
//! install (named by a hash of its pin directory): what the qdisc backends installed
//! (`qdisc_sync`), the rules as their users named them (`rule_book`), the bpffs it mounted
//! (`mounts`). Root's alone
//! (0600 in a 0700 directory), written whole by rename, gone with a reboot like the maps.

use crate::error::Error;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// `/run/chadthrottle/<kind>-<hash of pin_dir>.json`.
pub fn path(kind: &str, pin_dir: &Path) -> PathBuf {
    let hash = chadthrottle_core::fnv::fnv1a(pin_dir.as_os_str().as_encoded_bytes());
    Path::new(crate::names::RUN_DIR).join(format!("{kind}-{hash:016x}.json"))
}

/// The record at `path`; the default (empty) one if there is none.
pub fn read<T: DeserializeOwned + Default>(path: &Path) -> Result<T, Error> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|error| Error::io("parse", path)(std::io::Error::other(error))),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(error) => Err(Error::io("read", path)(error)),
    }
}

/// Writes `record` to `path` whole (a reader sees the old or the new one), or removes the
/// file when the record is `empty`.
pub fn write<T: Serialize>(path: &Path, record: &T, empty: bool) -> Result<(), Error> {
    if empty {
        return remove(path);
    }
    crate::lock::run_dir()?;
    let text = serde_json::to_vec_pretty(record)
        .map_err(|error| Error::io("write", path)(std::io::Error::other(error)))?;
    let partial = path.with_extension("json.new");
    crate::lock::open_private(&partial, true)
        .and_then(|mut file| std::io::Write::write_all(&mut file, &text))
        .map_err(Error::io("write", &partial))?;
    std::fs::rename(&partial, path).map_err(Error::io("write", path))
}

/// Removes the record at `path`, if there is one.
pub fn remove(path: &Path) -> Result<(), Error> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(Error::io("remove", path)(error)),
    }
}
