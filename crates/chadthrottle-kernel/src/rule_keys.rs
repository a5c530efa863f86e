//! What a rule's target is to the datapath: the `ct_match` key of an executable path, a
//! process name, a user or a cgroup, computed the way the resolver in
//! `bpf/process.bpf.c` computes it from a running process.
//!
//! An executable is named by its directory (the kernel's device number of the directory's
//! filesystem and the directory's inode) and a hash of its file name, not by its own
//! inode: a package upgrade that renames a new file over the old one keeps the key, and a
//! file that does not exist yet has one as soon as its directory does.

use crate::error::Error;
use crate::layout::{COMM_LEN, MATCH_CGROUP, MATCH_EXE, MATCH_NAME, MATCH_UID, MatchKey};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// FNV-1a 64 of `bytes`, as `bpf/include/match.h` (`ct_fnv1a`) hashes a file name.
pub fn name_hash(bytes: &[u8]) -> u64 {
    chadthrottle_core::fnv::fnv1a(bytes)
}

/// The key of a process name rule: the 16 bytes of `comm` (at most 15 and a NUL, as the
/// kernel keeps it), as two native-order words.
pub fn name_key(name: &str) -> MatchKey {
    let comm: [u8; COMM_LEN] = crate::layout::comm_bytes(name);
    let word = |from: usize| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&comm[from..from + 8]);
        u64::from_ne_bytes(bytes)
    };
    MatchKey {
        kind: MATCH_NAME,
        dev: 0,
        a: word(0),
        b: word(8),
    }
}

/// The key of a user rule: the process's real uid.
pub const fn uid_key(uid: u32) -> MatchKey {
    MatchKey {
        kind: MATCH_UID,
        dev: 0,
        a: uid as u64,
        b: 0,
    }
}

/// The key of a cgroup rule: the cgroup2 id of `path` (its inode), which must be the
/// datapath's cgroup `scope` or below it (the datapath sees no other process).
pub fn cgroup_key(path: &Path, scope: &Path) -> Result<MatchKey, Error> {
    crate::mounts::cgroup_scope(path)?;
    let canonical = canonical(path)?;
    let scope = canonical_or_same(scope);
    if !canonical.starts_with(&scope) {
        return Err(Error::RuleTarget(format!(
            "cgroup \"{}\" is outside the datapath's --cgroup \"{}\": a rule can only govern \
             processes the datapath sees; pick a cgroup inside it",
            path.display(),
            scope.display()
        )));
    }
    Ok(MatchKey {
        kind: MATCH_CGROUP,
        dev: 0,
        a: crate::mounts::cgroup_id(&canonical)?,
        b: 0,
    })
}

/// The key of an exe rule for `path`: the file need not exist, its directory must. An
/// existing file is followed through symbolic links (the kernel's executable is the file
/// they lead to); the directory always is.
pub fn exe_key(path: &Path) -> Result<MatchKey, Error> {
    let absent = |why: &str| {
        Error::RuleTarget(format!(
            "executable \"{}\": {why}; give the absolute path of a file in an existing \
             directory",
            path.display()
        ))
    };
    if !path.is_absolute() {
        return Err(absent("the path is not absolute"));
    }
    let resolved = match std::fs::canonicalize(path) {
        Ok(file) => file,
        Err(_) => {
            let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
                return Err(absent("the path names no file"));
            };
            let dir =
                std::fs::canonicalize(dir).map_err(|_| absent("its directory does not exist"))?;
            dir.join(name)
        }
    };
    let (Some(dir), Some(name)) = (resolved.parent(), resolved.file_name()) else {
        return Err(absent("the path names no file"));
    };
    let meta = std::fs::metadata(dir).map_err(Error::io("inspect", dir))?;
    if !meta.is_dir() {
        return Err(absent("its directory is not a directory"));
    }
    Ok(MatchKey {
        kind: MATCH_EXE,
        dev: kernel_dev(dir)?,
        a: meta.ino(),
        b: name_hash(name.as_bytes()),
    })
}

/// The device number the kernel gives the filesystem holding `dir` (`s_dev` of its
/// superblock, `major << 20 | minor`). `st_dev` is not always it (a btrfs subvolume
/// reports an anonymous device of its own), so it is read from the mount that holds the
/// directory: statx's mount id, then that mount's line in /proc/self/mountinfo.
fn kernel_dev(dir: &Path) -> Result<u32, Error> {
    let mount_id = mount_id(dir)?;
    let infos = procfs::process::Process::myself()
        .and_then(|me| me.mountinfo())
        .map_err(|error| Error::io("read", "/proc/self/mountinfo")(std::io::Error::other(error)))?;
    let info = infos
        .into_iter()
        .find(|info| u64::try_from(info.mnt_id).ok() == Some(mount_id))
        .ok_or_else(|| Error::io("find the mount of", dir)(std::io::ErrorKind::NotFound.into()))?;
    parse_majmin(&info.majmin)
        .ok_or_else(|| Error::io("read the device of", dir)(std::io::ErrorKind::InvalidData.into()))
}

/// `major:minor` as the kernel encodes a `dev_t` inside (`MKDEV`).
fn parse_majmin(majmin: &str) -> Option<u32> {
    let (major, minor) = majmin.split_once(':')?;
    let (major, minor): (u32, u32) = (major.parse().ok()?, minor.parse().ok()?);
    (major < 1 << 12 && minor < 1 << 20).then_some(major << 20 | minor)
}

fn mount_id(path: &Path) -> Result<u64, Error> {
    let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        Error::io("inspect", path)(std::io::Error::from(std::io::ErrorKind::InvalidInput))
    })?;
    // SAFETY: statx is plain data; zero is a valid value of every field.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: c_path is a valid NUL-terminated path and stx a valid statx buffer.
    let status = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c_path.as_ptr(),
            0,
            libc::STATX_MNT_ID,
            &raw mut stx,
        )
    };
    if status != 0 {
        return Err(Error::io("inspect", path)(std::io::Error::last_os_error()));
    }
    if stx.stx_mask & libc::STATX_MNT_ID == 0 {
        return Err(Error::io("find the mount of", path)(
            std::io::ErrorKind::Unsupported.into(),
        ));
    }
    Ok(stx.stx_mnt_id)
}

fn canonical(path: &Path) -> Result<PathBuf, Error> {
    std::fs::canonicalize(path).map_err(Error::io("resolve", path))
}

fn canonical_or_same(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    unsafe extern "C" {
        fn ct_host_name_hash(name: *const u8, len: u32) -> u64;
    }

    fn c_hash(name: &[u8]) -> u64 {
        let len = u32::try_from(name.len()).expect("short name");
        // SAFETY: name is valid for len bytes; the C reads no further.
        unsafe { ct_host_name_hash(name.as_ptr(), len) }
    }

    /// The C, in chunks as the resolver reads a name, against the Rust, at every length
    /// a file name can have (and across each chunk boundary).
    #[test]
    fn the_name_hash_of_c_and_rust_agree_at_every_length() {
        let name: Vec<u8> = (0..255u32).map(|i| b'a' + (i * 7 % 26) as u8).collect();
        for len in 0..=name.len() {
            assert_eq!(
                c_hash(&name[..len]),
                name_hash(&name[..len]),
                "length {len}"
            );
        }
        // the published FNV-1a 64 test vectors
        assert_eq!(name_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(name_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(name_hash(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn a_name_key_is_the_padded_comm_in_two_words() {
        let key = name_key("curl");
        assert_eq!(key.kind, MATCH_NAME);
        assert_eq!(key.a.to_ne_bytes(), *b"curl\0\0\0\0");
        assert_eq!(key.b, 0);
        let long = name_key("a-very-long-process-name");
        assert_eq!(long.a.to_ne_bytes(), *b"a-very-l");
        assert_eq!(long.b.to_ne_bytes(), *b"ong-pro\0");
    }

    #[test]
    fn devices_are_encoded_as_the_kernel_does() {
        assert_eq!(parse_majmin("8:1"), Some(8 << 20 | 1));
        assert_eq!(parse_majmin("0:53"), Some(53));
        assert_eq!(parse_majmin("8"), None);
        assert_eq!(parse_majmin("4096:0"), None);
    }

    #[test]
    fn an_exe_key_needs_an_absolute_path_and_its_directory_only() {
        let dir = std::env::temp_dir().join(format!("ct-rule-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let missing = dir.join("not-yet-there");
        let before = exe_key(&missing).expect("a file to come, in a directory that exists");
        std::fs::write(&missing, b"").expect("create it");
        let after = exe_key(&missing).expect("the file now");
        // replaced by a rename (a package upgrade): a new inode, the same key
        let new = dir.join("new");
        std::fs::write(&new, b"x").expect("write the new one");
        std::fs::rename(&new, &missing).expect("rename over");
        let replaced = exe_key(&missing).expect("the new file");
        std::fs::remove_dir_all(&dir).expect("clean up");
        assert_eq!(before, after);
        assert_eq!(after, replaced);
        assert_eq!(before.b, name_hash(b"not-yet-there"));
        let error = exe_key(Path::new("/nonexistent-dir-ct/app")).expect_err("no directory");
        assert!(
            error.to_string().contains("its directory does not exist"),
            "{error}"
        );
        let error = exe_key(Path::new("relative/app")).expect_err("relative");
        assert!(error.to_string().contains("not absolute"), "{error}");
    }
}
