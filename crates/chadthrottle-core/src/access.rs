//! Who may do what with a ChadThrottle that runs with capabilities but not as root (the
//! binary granted them with `setcap`), decided without touching anything.
//!
//! Root (real uid 0) may do everything. Anyone else acts only on processes they could
//! signal under kill(2)'s rule — their real or effective uid is the target's real or saved
//! uid — and may not do what reaches beyond their own processes: `reset`, the qdisc
//! backends (they change network interfaces), `--force`, or a datapath other than the
//! installed one. What they see of other users' processes follows /proc's `hidepid`, as
//! `ps` does.

use crate::options::DatapathOptions;
use crate::process::{ProcessInfo, Uids};
use crate::rule_target::RuleTarget;
use std::path::{Path, PathBuf};

/// /proc's `hidepid` mount option: what users see of other users' processes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HidePid {
    /// Everything (`hidepid=0`, the default): `ps` shows every command line.
    #[default]
    Off,
    /// The processes, but not what is inside /proc/PID (`hidepid=1`, `noaccess`).
    NoAccess,
    /// Not even that they exist (`hidepid=2`, `invisible`).
    Invisible,
}

impl HidePid {
    /// From the options of a /proc mount (`rw,nosuid,hidepid=invisible`); `ptraceable`
    /// (`hidepid=4`) hides like `Invisible` for a caller that may not trace.
    pub fn from_mount_options(options: &str) -> HidePid {
        let value = options
            .split(',')
            .find_map(|option| option.strip_prefix("hidepid="));
        match value {
            Some("1" | "noaccess") => HidePid::NoAccess,
            Some("2" | "invisible" | "4" | "ptraceable") => HidePid::Invisible,
            _ => HidePid::Off,
        }
    }
}

/// What a caller sees of a process in `top` and the TUI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sight {
    /// Everything, the command line included.
    Full,
    /// PID, name and traffic, not the command line or the System tab.
    WithoutDetails,
    /// Nothing.
    Hidden,
}

/// What `caller` sees of a process owned by `owner` (`None`: unknown, say it exited)
/// when /proc is mounted with `hidepid`.
pub const fn sight(caller: Uids, owner: Option<Uids>, hidepid: HidePid) -> Sight {
    let own = match owner {
        Some(owner) => caller.may_signal(owner),
        None => caller.is_root(),
    };
    match (own, hidepid) {
        (true, _) | (false, HidePid::Off) => Sight::Full,
        (false, HidePid::NoAccess) => Sight::WithoutDetails,
        (false, HidePid::Invisible) => Sight::Hidden,
    }
}

/// Why a caller who is not root may not do something. Each message names what was
/// refused and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "PID {pid} ({name}) belongs to {owner}: without root, ChadThrottle acts only on \
         processes you could signal with kill (your uid {caller} is not its real or saved \
         uid); run it with sudo to limit other users' processes"
    )]
    NotYours {
        pid: u32,
        name: String,
        owner: String,
        caller: u32,
    },
    #[error("{what} affects every user of this machine: only root may do it (run it with sudo)")]
    RootOnly { what: String },
    #[error(
        "rule \"{target}\": rules match processes of every user, present and future: only root may set or remove them (run it with sudo){hint}"
    )]
    Rule { target: String, hint: &'static str },
}

/// Refuses `target` unless `caller` may signal it.
pub fn check_target(
    caller: Uids,
    target: &ProcessInfo,
    owner_name: impl FnOnce(u32) -> String,
) -> Result<(), Refusal> {
    if caller.may_signal(target.uids) {
        return Ok(());
    }
    Err(Refusal::NotYours {
        pid: target.pid,
        name: target.name.clone(),
        owner: owner_name(target.uids.real),
        caller: caller.real,
    })
}

/// Refuses a rule unless `caller` is root: a rule matches processes that do not exist yet,
/// whoever starts them, so kill(2)'s rule cannot be checked for them. A tree says what a
/// user may do instead: limit the one process (`--pid` without `--tree`).
pub fn check_rule(caller: Uids, target: &RuleTarget) -> Result<(), Refusal> {
    if caller.is_root() {
        return Ok(());
    }
    Err(Refusal::Rule {
        target: target.to_string(),
        hint: match target {
            RuleTarget::Tree(_) => "; without root, --pid alone limits one process of yours",
            _ => "",
        },
    })
}

/// Refuses what only root may do, unless `caller` is root.
pub fn root_only(caller: Uids, what: impl FnOnce() -> String) -> Result<(), Refusal> {
    if caller.is_root() {
        Ok(())
    } else {
        Err(Refusal::RootOnly { what: what() })
    }
}

/// The datapath installed at a pin directory, as far as a caller's options must match it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The cgroup2 directory it is attached to, by inode (cgroup id).
    pub cgroup_id: u64,
    pub max_limits: u32,
    pub max_connections: u32,
}

/// The datapath a caller's options name, resolved against the machine: the cgroup it
/// would attach to (by id) and what is installed at its pin directory, if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requested {
    pub cgroup_id: u64,
    pub installed: Option<Installed>,
}

/// Whether `caller` may use the datapath its `options` name: root may install one anywhere
/// with any sizes; anyone else may use the installed one as it is, or install one with
/// every option at its default (what `setcap` is granted for).
pub fn check_datapath(
    caller: Uids,
    options: &DatapathOptions,
    requested: &Requested,
) -> Result<(), Refusal> {
    if caller.is_root() {
        return Ok(());
    }
    let refuse = |what: String| Err(Refusal::RootOnly { what });
    if options.force {
        return refuse("--force (replacing a network interface's root qdisc)".to_owned());
    }
    let Some(installed) = &requested.installed else {
        let given = [
            options.pin_dir.as_ref().map(|_| "--pin-dir"),
            options.cgroup.as_ref().map(|_| "--cgroup"),
            options.max_limits.map(|_| "--max-limits"),
            options.max_connections.map(|_| "--max-connections"),
        ];
        return match given.into_iter().flatten().next() {
            Some(option) => refuse(format!(
                "installing the datapath with {option} (nothing is installed there)"
            )),
            None => Ok(()),
        };
    };
    if options.cgroup.is_some() && requested.cgroup_id != installed.cgroup_id {
        return refuse(format!(
            "--cgroup {} (the installed datapath is attached elsewhere; moving it)",
            display(options.cgroup.as_deref())
        ));
    }
    let sizes = [
        ("--max-limits", options.max_limits, installed.max_limits),
        (
            "--max-connections",
            options.max_connections,
            installed.max_connections,
        ),
    ];
    for (option, asked, holds) in sizes {
        if let Some(asked) = asked.filter(|&asked| asked != holds) {
            return refuse(format!(
                "{option} {asked} (the installed datapath holds {holds}; resizing it)"
            ));
        }
    }
    Ok(())
}

fn display(path: Option<&Path>) -> String {
    path.map_or_else(String::new, |path| path.display().to_string())
}

/// Where the TUI keeps the limits it sets: root's in `/var/lib/chadthrottle`, anyone
/// else's under their own `$XDG_STATE_HOME` (default `~/.local/state`); `None` when
/// neither that nor `$HOME` is set.
pub fn saved_limits_path(
    caller: Uids,
    xdg_state_home: Option<PathBuf>,
    home: Option<PathBuf>,
) -> Option<PathBuf> {
    if caller.is_root() {
        return Some(PathBuf::from(ROOT_SAVED_LIMITS));
    }
    // an empty or relative XDG_STATE_HOME is to be ignored, as the XDG spec says
    let state = xdg_state_home
        .filter(|dir| dir.is_absolute())
        .or_else(|| home.map(|home| home.join(".local/state")))?;
    Some(state.join("chadthrottle/saved-limits.json"))
}

/// Where root's TUI keeps the limits it sets.
pub const ROOT_SAVED_LIMITS: &str = "/var/lib/chadthrottle/saved-limits.json";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_root_sets_rules() {
        let exe = RuleTarget::Exe("/usr/bin/steam".into());
        assert_eq!(check_rule(Uids::of(0), &exe), Ok(()));
        assert_eq!(
            check_rule(Uids::of(1000), &exe).map_err(|e| e.to_string()),
            Err(
                "rule \"exe /usr/bin/steam\": rules match processes of every user, present and \
                 future: only root may set or remove them (run it with sudo)"
                    .into()
            )
        );
        let tree = check_rule(Uids::of(1000), &RuleTarget::Tree(42)).map_err(|e| e.to_string());
        assert!(
            tree.as_ref()
                .is_err_and(|e| e.starts_with("rule \"tree 42\"")
                    && e.ends_with("without root, --pid alone limits one process of yours")),
            "{tree:?}"
        );
    }

    const ROOT: Uids = Uids::of(0);
    const ALICE: Uids = Uids::of(1000);
    const BOB: Uids = Uids::of(1001);

    #[test]
    fn the_kill_rule() {
        assert!(ROOT.may_signal(ALICE));
        assert!(ALICE.may_signal(ALICE));
        assert!(!ALICE.may_signal(BOB));
        assert!(
            !ALICE.may_signal(ROOT),
            "a user never acts on root's processes"
        );
        // a set-uid program bob started keeps bob as its real uid: bob may signal it
        let setuid_by_bob = Uids {
            real: 1001,
            effective: 0,
            saved: 0,
        };
        assert!(BOB.may_signal(setuid_by_bob));
        assert!(!ALICE.may_signal(setuid_by_bob));
        // a process that changed its uids to alice's but saved bob's: both may
        let switched = Uids {
            real: 1000,
            effective: 1000,
            saved: 1001,
        };
        assert!(ALICE.may_signal(switched) && BOB.may_signal(switched));
        // the caller's effective uid counts too
        let alice_running_as_bob = Uids {
            real: 1000,
            effective: 1001,
            saved: 1001,
        };
        assert!(alice_running_as_bob.may_signal(BOB));
        // the target's effective uid alone does not
        let effective_only = Uids {
            real: 1001,
            effective: 1000,
            saved: 1001,
        };
        assert!(!ALICE.may_signal(effective_only));
    }

    fn process(pid: u32, uids: Uids) -> ProcessInfo {
        ProcessInfo {
            pid,
            tgid: pid,
            start_time: 1,
            name: "sshd".into(),
            kernel_thread: false,
            cgroup: Some("/".into()),
            uids,
        }
    }

    #[test]
    fn a_refusal_names_the_process_its_owner_and_the_rule() {
        let error = check_target(ALICE, &process(1, ROOT), |uid| {
            assert_eq!(uid, 0);
            "root".into()
        })
        .expect_err("root's process");
        assert_eq!(
            error.to_string(),
            "PID 1 (sshd) belongs to root: without root, ChadThrottle acts only on processes \
             you could signal with kill (your uid 1000 is not its real or saved uid); run it \
             with sudo to limit other users' processes"
        );
        assert!(check_target(ALICE, &process(7, ALICE), |_| String::new()).is_ok());
        assert!(check_target(ROOT, &process(7, BOB), |_| String::new()).is_ok());
        let error = root_only(ALICE, || "`reset`".into()).expect_err("not root");
        assert_eq!(
            error.to_string(),
            "`reset` affects every user of this machine: only root may do it (run it with sudo)"
        );
        assert!(root_only(ROOT, || unreachable!()).is_ok());
    }

    fn installed(cgroup_id: u64) -> Requested {
        Requested {
            cgroup_id,
            installed: Some(Installed {
                cgroup_id,
                max_limits: 65_536,
                max_connections: 1024,
            }),
        }
    }

    #[test]
    fn a_user_uses_the_installed_datapath_as_it_is() {
        let defaults = DatapathOptions::default();
        assert!(check_datapath(ALICE, &defaults, &installed(5)).is_ok());
        let same = DatapathOptions {
            cgroup: Some("/sys/fs/cgroup/x".into()),
            pin_dir: Some("/tmp/pins".into()),
            max_limits: Some(65_536),
            max_connections: Some(1024),
            force: false,
        };
        assert!(check_datapath(ALICE, &same, &installed(5)).is_ok());
        let elsewhere = Requested {
            cgroup_id: 6,
            ..installed(5)
        };
        let error = check_datapath(ALICE, &same, &elsewhere).expect_err("moved");
        assert!(
            error.to_string().starts_with("--cgroup /sys/fs/cgroup/x"),
            "{error}"
        );
        let bigger = DatapathOptions {
            max_limits: Some(10),
            ..DatapathOptions::default()
        };
        let error = check_datapath(ALICE, &bigger, &installed(5)).expect_err("resized");
        assert!(error.to_string().starts_with("--max-limits 10"), "{error}");
        let forced = DatapathOptions {
            force: true,
            ..DatapathOptions::default()
        };
        assert!(check_datapath(ALICE, &forced, &installed(5)).is_err());
        for options in [&same, &bigger, &forced] {
            assert!(check_datapath(ROOT, options, &elsewhere).is_ok());
        }
    }

    #[test]
    fn a_user_installs_only_with_the_defaults() {
        let nothing = Requested {
            cgroup_id: 1,
            installed: None,
        };
        assert!(check_datapath(ALICE, &DatapathOptions::default(), &nothing).is_ok());
        let private = DatapathOptions {
            pin_dir: Some("/tmp/mine".into()),
            ..DatapathOptions::default()
        };
        let error = check_datapath(ALICE, &private, &nothing).expect_err("new place");
        assert_eq!(
            error.to_string(),
            "installing the datapath with --pin-dir (nothing is installed there) affects every \
             user of this machine: only root may do it (run it with sudo)"
        );
        assert!(check_datapath(ROOT, &private, &nothing).is_ok());
    }

    #[test]
    fn what_others_see_follows_hidepid() {
        assert_eq!(
            HidePid::from_mount_options("rw,nosuid,relatime"),
            HidePid::Off
        );
        assert_eq!(
            HidePid::from_mount_options("rw,hidepid=noaccess"),
            HidePid::NoAccess
        );
        assert_eq!(
            HidePid::from_mount_options("rw,hidepid=2"),
            HidePid::Invisible
        );
        assert_eq!(
            HidePid::from_mount_options("rw,hidepid=invisible,gid=4"),
            HidePid::Invisible
        );
        assert_eq!(sight(ALICE, Some(BOB), HidePid::Off), Sight::Full);
        assert_eq!(
            sight(ALICE, Some(BOB), HidePid::NoAccess),
            Sight::WithoutDetails
        );
        assert_eq!(sight(ALICE, Some(BOB), HidePid::Invisible), Sight::Hidden);
        assert_eq!(sight(ALICE, Some(ALICE), HidePid::Invisible), Sight::Full);
        assert_eq!(sight(ROOT, Some(BOB), HidePid::Invisible), Sight::Full);
        assert_eq!(sight(ALICE, None, HidePid::NoAccess), Sight::WithoutDetails);
    }

    #[test]
    fn saved_limits_live_with_their_owner() {
        assert_eq!(
            saved_limits_path(ROOT, Some("/x".into()), Some("/root".into())),
            Some(PathBuf::from(ROOT_SAVED_LIMITS))
        );
        assert_eq!(
            saved_limits_path(ALICE, Some("/home/alice/.state".into()), None),
            Some(PathBuf::from(
                "/home/alice/.state/chadthrottle/saved-limits.json"
            ))
        );
        assert_eq!(
            saved_limits_path(ALICE, Some("relative".into()), Some("/home/alice".into())),
            Some(PathBuf::from(
                "/home/alice/.local/state/chadthrottle/saved-limits.json"
            ))
        );
        assert_eq!(saved_limits_path(ALICE, None, None), None);
    }
}
