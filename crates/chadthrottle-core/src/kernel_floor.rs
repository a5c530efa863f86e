//! The helpers the datapath calls that some program types got only after Linux 5.10, and
//! the reason a backend gives when this kernel's verifier refuses one: the helper, the hook
//! and the release, never the verifier's log; and the helpers the datapath does without
//! where they are missing, named for `backends`.

/// A helper a program type may call only from a later release on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LateHelper {
    /// The program's hook, as its ELF section names it (`iter/tcp`).
    pub hook: &'static str,
    pub helper: &'static str,
    /// The first release that lets `hook` call `helper`.
    pub since: (u32, u32),
}

/// What the datapath's programs call that 5.10 refuses them, oldest first. The task-BTF
/// helper and the coarse clock are not here: the datapath does without them on 5.10
/// (the kernel crate's `helper_probe`).
pub const LATE_HELPERS: [LateHelper; 2] = [
    // socket storage from tracing programs (the TCP iterator reads a socket's owner)
    LateHelper {
        hook: "iter/tcp",
        helper: "bpf_sk_storage_get",
        since: (5, 11),
    },
    // setting socket options from the TCP iterator (shaping open connections)
    LateHelper {
        hook: "iter/tcp",
        helper: "bpf_setsockopt",
        since: (5, 15),
    },
];

/// The helper a verifier log says the program may not call, from the kernel's two ways
/// of saying it ("unknown func NAME#ID", "program of this type cannot use helper NAME#ID").
pub fn refused_helper(log: &str) -> Option<&str> {
    ["unknown func ", "program of this type cannot use helper "]
        .iter()
        .find_map(|mark| {
            let rest = &log[log.find(mark)? + mark.len()..];
            let name = &rest[..rest.find('#')?];
            (!name.is_empty() && !name.contains(char::is_whitespace)).then_some(name)
        })
}

/// The release line of a kernel release string: "5.10" of "5.10.0-32-amd64"; the whole
/// string if it does not start with two numbers.
pub fn release_line(osrelease: &str) -> &str {
    let mut dots = osrelease.match_indices('.').map(|(at, _)| at);
    let Some(first) = dots.next() else {
        return osrelease;
    };
    let end = osrelease[first + 1..]
        .find(|c: char| !c.is_ascii_digit())
        .map_or(osrelease.len(), |at| first + 1 + at);
    let numeric = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if numeric(&osrelease[..first]) && numeric(&osrelease[first + 1..end]) {
        &osrelease[..end]
    } else {
        osrelease
    }
}

/// Why a program for `hook` cannot run here, named from its verifier `log`, or `None` if
/// the log names no refused helper. A helper of [`LATE_HELPERS`] is named with its release
/// and so is every later one the same hook needs (the verifier stops at the first):
/// "bpf_sk_storage_get from iter/tcp needs Linux 5.11, bpf_setsockopt from iter/tcp Linux
/// 5.15 (this is 5.10)".
pub fn named_refusal(hook: &str, log: &str, osrelease: &str) -> Option<String> {
    let helper = refused_helper(log)?;
    let this = release_line(osrelease);
    let Some(first) = LATE_HELPERS
        .iter()
        .find(|late| late.hook == hook && late.helper == helper)
    else {
        return Some(format!(
            "this kernel ({this}) does not let {hook} programs call {helper}"
        ));
    };
    let later = LATE_HELPERS
        .iter()
        .filter(|late| late.hook == hook && late.since > first.since)
        .map(|late| {
            format!(
                ", {} from {hook} Linux {}",
                late.helper,
                version(late.since)
            )
        });
    Some(format!(
        "{helper} from {hook} needs Linux {}{} (this is {this})",
        version(first.since),
        later.collect::<String>()
    ))
}

/// Why the nftables backend cannot run here, when the kernel refused its probe table with
/// `Operation not supported` (the probe's only expression a kernel may not know is the
/// socket expression's cgroupv2 key, which arrived in 5.13), else `None`.
pub fn nft_socket_cgroup_refusal(os_error: Option<i32>, osrelease: &str) -> Option<String> {
    const EOPNOTSUPP: i32 = 95;
    (os_error == Some(EOPNOTSUPP)).then(|| {
        format!(
            "nftables matches a socket's cgroup (socket cgroupv2) from Linux 5.13 (this is {})",
            release_line(osrelease)
        )
    })
}

/// A helper the datapath does without where the kernel lacks it (5.10), and what a user
/// notices then: `backends` lists these, so a missing feature is named even where no
/// backend is refused for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DoneWithout {
    pub helper: &'static str,
    /// The first release that has it.
    pub since: (u32, u32),
    /// What changes without it.
    pub effect: &'static str,
}

/// `bpf_get_current_task_btf`, which the socket hook walks the task with.
pub const WITHOUT_TASK_BTF: DoneWithout = DoneWithout {
    helper: "bpf_get_current_task_btf",
    since: (5, 11),
    effect: "a new socket records its owner only (ct_sock_owner): a process that changes \
             its name or uid follows its rule from its next exec or the next rule change, \
             not from its next socket",
};

/// `bpf_ktime_get_coarse_ns`, the accounting's clock.
pub const WITHOUT_COARSE_CLOCK: DoneWithout = DoneWithout {
    helper: "bpf_ktime_get_coarse_ns",
    since: (5, 11),
    effect: "the accounting reads the precise clock (bpf_ktime_get_ns) on every packet",
};

impl DoneWithout {
    /// "bpf_ktime_get_coarse_ns (Linux 5.11): the accounting reads …".
    pub fn describe(&self) -> String {
        format!(
            "{} (Linux {}): {}",
            self.helper,
            version(self.since),
            self.effect
        )
    }
}

/// What this kernel makes the datapath do without, and the kernel's release line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Degraded {
    /// "5.10" (see [`release_line`]).
    pub release: String,
    pub without: Vec<DoneWithout>,
}

impl Degraded {
    /// The lines `backends` prints; empty when nothing is missing.
    pub fn describe(&self) -> String {
        if self.without.is_empty() {
            return String::new();
        }
        let mut text = format!(
            "on this kernel ({}) the datapath does without:\n",
            self.release
        );
        for without in &self.without {
            text.push_str("  ");
            text.push_str(&without.describe());
            text.push('\n');
        }
        text
    }
}

fn version((major, minor): (u32, u32)) -> String {
    format!("{major}.{minor}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The end of what 5.10's verifier printed for the TCP iterator in a Debian 5.10 guest.
    const LOG_5_10: &str = "13: (b7) r4 = 0\n; sock = bpf_sk_storage_get(&ct_owner, tp, 0, 0);\n\
        14: (85) call bpf_sk_storage_get#107\nunknown func bpf_sk_storage_get#107\n\
        verification time 1136 usec\nstack depth 0\n";

    #[test]
    fn the_refused_helper_is_read_from_either_message() {
        assert_eq!(refused_helper(LOG_5_10), Some("bpf_sk_storage_get"));
        assert_eq!(
            refused_helper(
                "7: (85) call bpf_setsockopt#49\nprogram of this type cannot use helper bpf_setsockopt#49\n"
            ),
            Some("bpf_setsockopt")
        );
        assert_eq!(refused_helper("R1 invalid mem access 'inv'\n"), None);
    }

    #[test]
    fn the_release_line_is_major_and_minor() {
        assert_eq!(release_line("5.10.0-32-amd64"), "5.10");
        assert_eq!(release_line("6.12.95+deb12-amd64"), "6.12");
        assert_eq!(release_line("6.18"), "6.18");
        assert_eq!(release_line("custom"), "custom");
        assert_eq!(release_line("x.y.z"), "x.y.z");
    }

    #[test]
    fn a_late_helper_is_named_with_its_release_and_every_later_one_of_its_hook() {
        assert_eq!(
            named_refusal("iter/tcp", LOG_5_10, "5.10.0-32-amd64").as_deref(),
            Some(
                "bpf_sk_storage_get from iter/tcp needs Linux 5.11, bpf_setsockopt from \
                 iter/tcp Linux 5.15 (this is 5.10)"
            )
        );
        // a kernel with socket storage from tracing but before 5.15
        let log =
            "call bpf_setsockopt#49\nprogram of this type cannot use helper bpf_setsockopt#49";
        assert_eq!(
            named_refusal("iter/tcp", log, "5.14.0-1-amd64").as_deref(),
            Some("bpf_setsockopt from iter/tcp needs Linux 5.15 (this is 5.14)")
        );
    }

    #[test]
    fn a_helper_not_in_the_table_is_still_named_and_a_log_without_one_is_not() {
        assert_eq!(
            named_refusal("sockops", "unknown func bpf_foo#300\n", "5.10.0-32-amd64").as_deref(),
            Some("this kernel (5.10) does not let sockops programs call bpf_foo")
        );
        assert_eq!(
            named_refusal("iter/tcp", "back-edge from insn 3 to 1\n", "5.10"),
            None
        );
    }

    #[test]
    fn what_the_datapath_does_without_is_named_with_its_release() {
        let degraded = Degraded {
            release: release_line("5.10.0-32-amd64").to_owned(),
            without: vec![WITHOUT_TASK_BTF, WITHOUT_COARSE_CLOCK],
        };
        let text = degraded.describe();
        assert!(
            text.starts_with("on this kernel (5.10) the datapath does without:\n"),
            "{text}"
        );
        assert!(
            text.contains("\n  bpf_get_current_task_btf (Linux 5.11): a new socket records"),
            "{text}"
        );
        assert!(
            text.contains("\n  bpf_ktime_get_coarse_ns (Linux 5.11): the accounting reads"),
            "{text}"
        );
        assert_eq!(text.lines().count(), 3, "{text}");
        let complete = Degraded {
            release: "6.18".into(),
            without: Vec::new(),
        };
        assert_eq!(complete.describe(), "");
    }

    #[test]
    fn an_unsupported_socket_cgroup_match_is_named_with_its_release() {
        assert_eq!(
            nft_socket_cgroup_refusal(Some(95), "5.10.0-32-amd64").as_deref(),
            Some(
                "nftables matches a socket's cgroup (socket cgroupv2) from Linux 5.13 (this is 5.10)"
            )
        );
        assert_eq!(nft_socket_cgroup_refusal(Some(2), "5.10.0-32-amd64"), None);
        assert_eq!(nft_socket_cgroup_refusal(None, "6.1.0-50-amd64"), None);
    }
}
