//! Whether a file a root command reads can be believed: one that only root (or the user
//! running the command) can have written — the file and every directory above it owned
//! by them and writable by no one else (a sticky directory such as /tmp excepted: others
//! may add to it, but not replace what is there).
//!
//! The runtimes' records name containers and where their cgroups are; a record another
//! user could write could point a root command's rule at a cgroup of that user's.

/// What is asked of one path on the way to the file: its owner and mode bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub uid: u32,
    /// `st_mode`'s permission bits (the sticky bit included).
    pub mode: u32,
    pub directory: bool,
}

const GROUP_OR_OTHER_WRITE: u32 = 0o022;
const STICKY: u32 = 0o1000;

/// Whether `entries` (the file and each directory above it, in any order) were written
/// only by root or by `reader`, the user reading them.
pub fn written_only_by(entries: &[Entry], reader: u32) -> bool {
    !entries.is_empty()
        && entries.iter().all(|entry| {
            let owner = entry.uid == 0 || entry.uid == reader;
            let shared = entry.mode & GROUP_OR_OTHER_WRITE != 0;
            owner && (!shared || (entry.directory && entry.mode & STICKY != 0))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(uid: u32, mode: u32) -> Entry {
        Entry {
            uid,
            mode,
            directory: true,
        }
    }

    fn file(uid: u32, mode: u32) -> Entry {
        Entry {
            uid,
            mode,
            directory: false,
        }
    }

    #[test]
    fn roots_files_under_roots_directories_are_believed() {
        // /var/lib/docker/containers/ID/hostconfig.json: the container's directory and
        // the file as docker 20.10.24 made them (tests/docker.rs; its config.v2.json 0600)
        let docker = [
            dir(0, 0o755),
            dir(0, 0o755),
            dir(0, 0o755),
            dir(0, 0o710),
            dir(0, 0o710),
            dir(0, 0o710),
            file(0, 0o644),
        ];
        assert!(written_only_by(&docker, 0));
        // a data root in /tmp: sticky and writable by all, but no one may replace root's
        assert!(written_only_by(
            &[dir(0, 0o1777), dir(0, 0o755), file(0, 0o600)],
            0
        ));
    }

    #[test]
    fn what_another_user_can_write_is_not() {
        for entries in [
            vec![dir(0, 0o755), file(1000, 0o644)],
            vec![dir(1000, 0o755), file(0, 0o644)],
            vec![dir(0, 0o775), file(0, 0o644)],
            vec![dir(0, 0o757), file(0, 0o644)],
            vec![dir(0, 0o755), file(0, 0o664)],
            vec![dir(0, 0o755), file(0, 0o1646)],
            vec![dir(1000, 0o1777), file(0, 0o644)],
        ] {
            assert!(!written_only_by(&entries, 0), "{entries:?}");
        }
        assert!(!written_only_by(&[], 0), "nothing read is nothing believed");
    }

    #[test]
    fn the_readers_own_files_are_as_good_as_roots() {
        let own = [dir(0, 0o1777), dir(1000, 0o700), file(1000, 0o600)];
        assert!(written_only_by(&own, 1000));
        assert!(!written_only_by(&own, 1001));
        assert!(!written_only_by(&own, 0), "root believes no user's file");
    }
}
