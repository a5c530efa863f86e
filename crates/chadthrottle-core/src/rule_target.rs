//! What a rule limits — a process tree, an executable, a process name, a cgroup (unit,
//! container or path) or a user — as validated from the command line or the rules file,
//! the rule itself as set ([`RuleSpec`]), and which of several matching rules governs.
//!
//! Precedence is a number the kernel shares ([`Rank`]): the most specific target wins,
//! then the rule set or listed first.

use crate::bucket::default_burst;
use crate::direction::{Direction, PerDirection};
use crate::rate::{Rate, Size};
use crate::status::Enforcement;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

/// The kernel keeps this many bytes of a process name (`TASK_COMM_LEN` less its NUL).
pub const COMM_MAX: usize = 15;

/// systemd's `UNIT_NAME_MAX` less the NUL.
pub const UNIT_NAME_MAX: usize = 255;

/// A rule's name is at most this many bytes (63 and a NUL fit a 64-byte field).
pub const RULE_NAME_MAX: usize = 63;

/// The unit types that own a cgroup, so that their processes can be limited.
pub const UNIT_SUFFIXES: [&str; 6] = [".service", ".scope", ".slice", ".socket", ".mount", ".swap"];

/// Unit types systemd knows that hold no processes of their own.
const UNITS_WITHOUT_PROCESSES: [&str; 5] = [".target", ".timer", ".path", ".device", ".automount"];

/// Precedence among the rules that match one process: lower governs. The numbers are
/// shared with the kernel's match keys, so they never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Rank {
    /// A limit set on one PID: not a rule, but it outranks every rule.
    Pid = 0,
    Tree = 1,
    Exe = 2,
    Name = 3,
    /// A container, a systemd unit or a cgroup path: all three are a cgroup.
    Cgroup = 4,
    User = 5,
}

/// How a rule's rate is spent by the processes it matches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One budget for all the matching processes together.
    #[default]
    Shared,
    /// The full rate for each matching process.
    Each,
}

impl Mode {
    pub const fn name(self) -> &'static str {
        match self {
            Mode::Shared => "shared",
            Mode::Each => "each",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Mode {
    type Err = TargetError;

    fn from_str(text: &str) -> Result<Mode, TargetError> {
        match text {
            "shared" => Ok(Mode::Shared),
            "each" => Ok(Mode::Each),
            _ => Err(TargetError::Mode(text.to_owned())),
        }
    }
}

/// A user as given: resolving a name to its uid needs the machine's user database.
/// Serialised as the name (a string) or the uid (a number).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum UserSpec {
    Name(String),
    Uid(u32),
}

impl fmt::Display for UserSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserSpec::Name(name) => f.write_str(name),
            UserSpec::Uid(uid) => write!(f, "{uid}"),
        }
    }
}

impl FromStr for UserSpec {
    type Err = TargetError;

    /// All digits: a uid; otherwise a login name as useradd accepts it (`[A-Za-z0-9_.-]`,
    /// a trailing `$`, not starting with `-`, at most 32 bytes).
    fn from_str(text: &str) -> Result<UserSpec, TargetError> {
        let refuse = || TargetError::User(text.to_owned());
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            // (uid_t)-1 means "no user" to the kernel.
            return match text.parse::<u32>() {
                Ok(uid) if uid != u32::MAX => Ok(UserSpec::Uid(uid)),
                _ => Err(refuse()),
            };
        }
        let body = text.strip_suffix('$').unwrap_or(text);
        let valid = !body.is_empty()
            && text.len() <= 32
            && !body.starts_with('-')
            && body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if valid {
            Ok(UserSpec::Name(text.to_owned()))
        } else {
            Err(refuse())
        }
    }
}

/// What a rule limits. Validated on construction: use the `parse_*` functions.
/// Serialised as one key, the flag's word, and its value: `{"exe": "/usr/bin/steam"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleTarget {
    /// A process and every process it starts, later ones included.
    Tree(u32),
    /// Processes running this executable (an absolute path, as /proc/PID/exe reads).
    Exe(PathBuf),
    /// Processes with this name (the kernel's comm), matched exactly.
    Name(String),
    /// A cgroup2 directory, relative to the cgroup2 mount, and everything below it.
    CgroupPath(String),
    /// A systemd unit's cgroup.
    Unit(String),
    /// A container, by name or id prefix.
    Container(String),
    /// Every process of a user.
    User(UserSpec),
}

impl RuleTarget {
    pub const fn rank(&self) -> Rank {
        match self {
            RuleTarget::Tree(_) => Rank::Tree,
            RuleTarget::Exe(_) => Rank::Exe,
            RuleTarget::Name(_) => Rank::Name,
            RuleTarget::CgroupPath(_) | RuleTarget::Unit(_) | RuleTarget::Container(_) => {
                Rank::Cgroup
            }
            RuleTarget::User(_) => Rank::User,
        }
    }

    /// The word the command line's flag and `Display` use (`--cgroup-path`, `cgroup-path …`).
    pub const fn kind(&self) -> &'static str {
        match self {
            RuleTarget::Tree(_) => "tree",
            RuleTarget::Exe(_) => "exe",
            RuleTarget::Name(_) => "name",
            RuleTarget::CgroupPath(_) => "cgroup-path",
            RuleTarget::Unit(_) => "unit",
            RuleTarget::Container(_) => "container",
            RuleTarget::User(_) => "user",
        }
    }
}

impl fmt::Display for RuleTarget {
    /// As the command line reads: `exe /usr/bin/steam`, `unit syncthing.service`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = self.kind();
        match self {
            RuleTarget::Tree(pid) => write!(f, "{kind} {pid}"),
            RuleTarget::Exe(path) => write!(f, "{kind} {}", path.display()),
            RuleTarget::Name(value)
            | RuleTarget::CgroupPath(value)
            | RuleTarget::Unit(value)
            | RuleTarget::Container(value) => write!(f, "{kind} {value}"),
            RuleTarget::User(user) => write!(f, "{kind} {user}"),
        }
    }
}

/// A refused target or mode: one line naming the value in quotes and what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error(
        "tree PID \"0\" is not a process: give the PID of the tree's first process, as ps shows it"
    )]
    TreePid,
    #[error(
        "executable \"{0}\" is not an absolute path: give it as /proc/PID/exe shows it, e.g. /usr/bin/steam"
    )]
    ExeNotAbsolute(String),
    #[error("executable \"{0}\" has a \"..\" component: give the path as /proc/PID/exe shows it")]
    ExeParent(String),
    #[error("process name \"\" is empty: give the name ps and top show, 1 to {COMM_MAX} bytes")]
    NameEmpty,
    #[error(
        "process name \"{0}\" is {len} bytes: the kernel keeps {COMM_MAX} (what ps and top show)",
        len = .0.len()
    )]
    NameTooLong(String),
    #[error(
        "process name \"{0}\" contains '/' or NUL: a name is what ps and top show; for a path use exe"
    )]
    NameCharacter(String),
    #[error(
        "cgroup path \"{0}\" does not start with '/': give it relative to the cgroup2 mount, e.g. /system.slice/foo.service"
    )]
    CgroupNotAbsolute(String),
    #[error(
        "cgroup path \"{0}\" includes the cgroup2 mount: give the part after it, e.g. /system.slice/foo.service"
    )]
    CgroupMount(String),
    #[error(
        "cgroup path \"{0}\" has a \".\" or \"..\" component: give the directory's own path, e.g. /system.slice/foo.service"
    )]
    CgroupDots(String),
    #[error(
        "cgroup path \"{0}\" is the root, the whole machine: limit a user (--user) or a process (--pid) instead"
    )]
    CgroupRoot(String),
    #[error(
        "unit \"{0}\" is not a unit name: 1 to {UNIT_NAME_MAX} of A-Z a-z 0-9 : _ . \\ - @ ending in .service, .scope, .slice, .socket, .mount or .swap"
    )]
    UnitName(String),
    #[error("unit \"{0}\" has no processes of its own: limit the .service or .slice it starts")]
    UnitWithoutProcesses(String),
    #[error("unit \"{0}\" is a template: give an instance, e.g. {example}", example = .0.replacen("@.", "@1.", 1))]
    UnitTemplate(String),
    #[error(
        "container \"{0}\" is not a container name or id: 1 to 253 of A-Z a-z 0-9 _ . -, starting with a letter or digit"
    )]
    Container(String),
    #[error(
        "user \"{0}\" is not a user name or uid: a login name (A-Z a-z 0-9 _ . -, at most 32 bytes) or a number below 4294967295"
    )]
    User(String),
    #[error(
        "rule name \"{0}\" is not a rule name: 1 to {RULE_NAME_MAX} of A-Z a-z 0-9 _ . -, starting with a letter or digit"
    )]
    RuleName(String),
    #[error(
        "mode \"{0}\" is not a mode: shared (one budget for all) or each (the rate per process)"
    )]
    Mode(String),
}

pub fn parse_tree(pid: u32) -> Result<RuleTarget, TargetError> {
    if pid == 0 {
        return Err(TargetError::TreePid);
    }
    Ok(RuleTarget::Tree(pid))
}

/// An absolute path; `//`, `/./` and a trailing `/` are dropped, `..` is refused (the
/// kernel shows the resolved path, so one with `..` would never match).
pub fn parse_exe(path: &Path) -> Result<RuleTarget, TargetError> {
    let shown = || path.display().to_string();
    if !path.is_absolute() {
        return Err(TargetError::ExeNotAbsolute(shown()));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(TargetError::ExeParent(shown()));
    }
    Ok(RuleTarget::Exe(path.components().collect()))
}

pub fn parse_name(name: &str) -> Result<RuleTarget, TargetError> {
    if name.is_empty() {
        return Err(TargetError::NameEmpty);
    }
    if name.contains(['/', '\0']) {
        return Err(TargetError::NameCharacter(name.to_owned()));
    }
    if name.len() > COMM_MAX {
        return Err(TargetError::NameTooLong(name.to_owned()));
    }
    Ok(RuleTarget::Name(name.to_owned()))
}

/// Normalised: empty components (`//`) and a trailing `/` dropped; `.`, `..` and the root
/// itself refused.
pub fn parse_cgroup_path(path: &str) -> Result<RuleTarget, TargetError> {
    if !path.starts_with('/') {
        return Err(TargetError::CgroupNotAbsolute(path.to_owned()));
    }
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    if components.iter().any(|c| matches!(*c, "." | "..")) {
        return Err(TargetError::CgroupDots(path.to_owned()));
    }
    if components.starts_with(&["sys", "fs", "cgroup"]) {
        return Err(TargetError::CgroupMount(path.to_owned()));
    }
    if components.is_empty() {
        return Err(TargetError::CgroupRoot(path.to_owned()));
    }
    Ok(RuleTarget::CgroupPath(format!("/{}", components.join("/"))))
}

/// systemd's unit-name rules: `PREFIX[@INSTANCE].TYPE`, characters `[A-Za-z0-9:_.\-@]`
/// (`\` for its escapes), at most 255 bytes, one `@` at most; only types with processes.
pub fn parse_unit(unit: &str) -> Result<RuleTarget, TargetError> {
    let refuse = || TargetError::UnitName(unit.to_owned());
    let charset = unit
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b":_.\\-@".contains(&b));
    if !charset || unit.len() > UNIT_NAME_MAX {
        return Err(refuse());
    }
    if UNITS_WITHOUT_PROCESSES.iter().any(|s| unit.ends_with(s)) {
        return Err(TargetError::UnitWithoutProcesses(unit.to_owned()));
    }
    let Some(stem) = UNIT_SUFFIXES.iter().find_map(|s| unit.strip_suffix(s)) else {
        return Err(refuse());
    };
    match stem.split_once('@') {
        None if !stem.is_empty() => Ok(RuleTarget::Unit(unit.to_owned())),
        Some((prefix, "")) if !prefix.is_empty() => Err(TargetError::UnitTemplate(unit.to_owned())),
        Some((prefix, instance)) if !prefix.is_empty() && !instance.contains('@') => {
            Ok(RuleTarget::Unit(unit.to_owned()))
        }
        _ => Err(refuse()),
    }
}

/// A rule's name: shown in `status`, keyed on by `apply` and `limit --save`.
pub fn parse_rule_name(name: &str) -> Result<String, TargetError> {
    if is_plain_name(name, RULE_NAME_MAX) {
        Ok(name.to_owned())
    } else {
        Err(TargetError::RuleName(name.to_owned()))
    }
}

/// `[A-Za-z0-9][A-Za-z0-9_.-]*`, at most `max` bytes.
fn is_plain_name(name: &str, max: usize) -> bool {
    name.len() <= max
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// A container name (docker's and podman's `[a-zA-Z0-9][a-zA-Z0-9_.-]*`) or an id prefix,
/// which that form includes; which one it is is decided against the running containers.
pub fn parse_container(container: &str) -> Result<RuleTarget, TargetError> {
    if is_plain_name(container, 253) {
        Ok(RuleTarget::Container(container.to_owned()))
    } else {
        Err(TargetError::Container(container.to_owned()))
    }
}

pub fn parse_user(user: &str) -> Result<RuleTarget, TargetError> {
    user.parse().map(RuleTarget::User)
}

/// One rule that matches a process, as the kernel ranks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate<T> {
    pub rank: Rank,
    /// The rule's position as set or listed: the earlier governs among equal ranks.
    pub order: u32,
    pub rule: T,
}

/// The rule that governs a process among those it matches: the lowest rank, then the
/// lowest order. `None` when nothing matches.
pub fn governing<T>(candidates: impl IntoIterator<Item = Candidate<T>>) -> Option<Candidate<T>> {
    candidates.into_iter().min_by_key(|c| (c.rank, c.order))
}

/// One direction of a rule as set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleLimit {
    /// 0 blocks.
    pub rate: Rate,
    /// `None`: [`default_burst`] of the rate, so a rate changed later keeps a fitting burst.
    pub burst: Option<Size>,
    /// `None`: the best available when the rule is applied.
    pub backend: Option<Enforcement>,
}

impl RuleLimit {
    /// The burst the kernel holds for this limit.
    pub fn effective_burst(&self) -> Size {
        self.burst.unwrap_or_else(|| default_burst(self.rate))
    }

    /// Whether the kernel holding `held` already enforces `self`: bursts compared as held,
    /// and a backend left to the machine's choice accepts whichever was chosen.
    pub fn held_as(&self, held: &RuleLimit) -> bool {
        self.rate == held.rate
            && self.effective_burst() == held.effective_burst()
            && (self.backend.is_none() || self.backend == held.backend)
    }

    /// `↑1MB/s`, with the burst when it is not the default and the backend when chosen:
    /// `↓5MB/s burst 1MB policer`.
    pub fn show(limit: Option<&RuleLimit>, direction: Direction) -> String {
        let arrow = match direction {
            Direction::Up => '↑',
            Direction::Down => '↓',
        };
        let Some(limit) = limit else {
            return format!("{arrow}unlimited");
        };
        let mut text = format!("{arrow}{}", limit.rate);
        if let Some(burst) = limit.burst.filter(|b| *b != default_burst(limit.rate)) {
            text.push_str(&format!(" burst {burst}"));
        }
        if let Some(backend) = limit.backend {
            text.push_str(&format!(" {}", backend.name()));
        }
        text
    }
}

/// A rule as set from the command line, read from the rules file or listed by the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSpec {
    /// Unique among the rules.
    pub name: String,
    pub target: RuleTarget,
    /// At least one direction is set.
    pub limits: PerDirection<Option<RuleLimit>>,
    pub mode: Mode,
    /// Position in the file or when set; breaks ties between rules of equal rank.
    pub order: u32,
    pub enabled: bool,
}

impl RuleSpec {
    /// `exe /usr/bin/steam ↓5MB/s ↑1MB/s (shared)`: the set directions, download first.
    pub fn summary(&self) -> String {
        let mut text = self.target.to_string();
        for direction in [Direction::Down, Direction::Up] {
            if let Some(limit) = self.limits.get(direction) {
                text.push(' ');
                text.push_str(&RuleLimit::show(Some(limit), direction));
            }
        }
        text.push_str(&format!(" ({})", self.mode));
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(result: Result<RuleTarget, TargetError>) -> String {
        match result {
            Ok(target) => panic!("accepted as {target}"),
            Err(error) => {
                let message = error.to_string();
                assert!(!message.contains('\n'), "one line: {message}");
                message
            }
        }
    }

    #[test]
    fn ranks_are_the_numbers_the_kernel_shares() {
        let ranks = [
            (Rank::Pid, 0),
            (Rank::Tree, 1),
            (Rank::Exe, 2),
            (Rank::Name, 3),
            (Rank::Cgroup, 4),
            (Rank::User, 5),
        ];
        for (rank, number) in ranks {
            assert_eq!(rank as u8, number, "{rank:?}");
        }
        let targets = [
            (RuleTarget::Tree(1), Rank::Tree),
            (RuleTarget::Exe("/bin/a".into()), Rank::Exe),
            (RuleTarget::Name("a".into()), Rank::Name),
            (RuleTarget::CgroupPath("/a".into()), Rank::Cgroup),
            (RuleTarget::Unit("a.service".into()), Rank::Cgroup),
            (RuleTarget::Container("a".into()), Rank::Cgroup),
            (RuleTarget::User(UserSpec::Uid(1)), Rank::User),
        ];
        for (target, rank) in targets {
            assert_eq!(target.rank(), rank, "{target}");
        }
    }

    #[test]
    fn display_reads_like_the_flag() {
        let shown = [
            (parse_tree(42), "tree 42"),
            (parse_exe(Path::new("/usr/bin/steam")), "exe /usr/bin/steam"),
            (parse_name("steam"), "name steam"),
            (parse_cgroup_path("/a/b"), "cgroup-path /a/b"),
            (parse_unit("syncthing.service"), "unit syncthing.service"),
            (parse_container("web"), "container web"),
            (parse_user("alice"), "user alice"),
            (parse_user("1000"), "user 1000"),
        ];
        for (target, text) in shown {
            assert_eq!(target.map(|t| t.to_string()), Ok(text.to_owned()));
        }
    }

    #[test]
    fn a_rule_serialises_readably_and_reads_back() {
        let rule = RuleSpec {
            name: "steam".into(),
            target: RuleTarget::Exe("/usr/bin/steam".into()),
            limits: PerDirection {
                up: None,
                down: Some(RuleLimit {
                    rate: Rate::new(5 << 20).expect("valid"),
                    burst: None,
                    backend: Some(Enforcement::Policer),
                }),
            },
            mode: Mode::Each,
            order: 3,
            enabled: true,
        };
        let value = serde_json::to_value(&rule).expect("serialises");
        assert_eq!(
            value,
            serde_json::json!({
                "name": "steam",
                "target": {"exe": "/usr/bin/steam"},
                "limits": {"up": null, "down": {"rate": 5_242_880, "burst": null, "backend": "policer"}},
                "mode": "each",
                "order": 3,
                "enabled": true,
            })
        );
        let back: RuleSpec = serde_json::from_value(value).expect("reads back");
        assert_eq!(back, rule);
        for (target, json) in [
            (
                RuleTarget::User(UserSpec::Name("alice".into())),
                serde_json::json!({"user": "alice"}),
            ),
            (
                RuleTarget::User(UserSpec::Uid(1000)),
                serde_json::json!({"user": 1000}),
            ),
            (
                RuleTarget::CgroupPath("/a".into()),
                serde_json::json!({"cgroup-path": "/a"}),
            ),
            (RuleTarget::Tree(42), serde_json::json!({"tree": 42})),
        ] {
            assert_eq!(serde_json::to_value(&target).expect("serialises"), json);
            let back: RuleTarget = serde_json::from_value(json).expect("reads back");
            assert_eq!(back, target);
        }
        let too_fast = serde_json::json!({"rate": u64::MAX, "burst": null, "backend": null});
        assert!(serde_json::from_value::<RuleLimit>(too_fast).is_err());
    }

    #[test]
    fn mode_defaults_to_shared_and_parses_its_names() {
        assert_eq!(Mode::default(), Mode::Shared);
        assert_eq!("each".parse::<Mode>(), Ok(Mode::Each));
        assert_eq!("shared".parse::<Mode>(), Ok(Mode::Shared));
        let message = "both".parse::<Mode>().map(|_| ()).unwrap_err().to_string();
        assert!(message.starts_with("mode \"both\""), "{message}");
    }

    #[test]
    fn tree_refuses_pid_0() {
        assert_eq!(parse_tree(0), Err(TargetError::TreePid));
        assert!(refused(parse_tree(0)).starts_with("tree PID \"0\" is not a process"));
        assert_eq!(parse_tree(1), Ok(RuleTarget::Tree(1)));
    }

    #[test]
    fn exe_must_be_absolute_and_is_normalised() {
        assert_eq!(
            parse_exe(Path::new("/usr//bin/./steam/")),
            Ok(RuleTarget::Exe("/usr/bin/steam".into()))
        );
        let message = refused(parse_exe(Path::new("steam")));
        assert!(message.starts_with("executable \"steam\" is not an absolute path"));
        let message = refused(parse_exe(Path::new("/usr/bin/../bin/steam")));
        assert!(message.contains("\"/usr/bin/../bin/steam\""), "{message}");
    }

    #[test]
    fn name_is_the_kernels_15_bytes() {
        assert_eq!(parse_name("steam"), Ok(RuleTarget::Name("steam".into())));
        assert!(parse_name("fifteen_bytes_x").is_ok());
        assert_eq!(
            refused(parse_name("averyveryverylongname")),
            "process name \"averyveryverylongname\" is 21 bytes: the kernel keeps 15 (what ps and top show)"
        );
        assert!(refused(parse_name("")).contains("1 to 15 bytes"));
        assert!(refused(parse_name("bin/steam")).contains("\"bin/steam\""));
        // Bytes, not characters: 8 two-byte characters are 16 bytes.
        assert!(refused(parse_name("éééééééé")).contains("is 16 bytes"));
    }

    #[test]
    fn cgroup_paths_are_normalised_and_the_root_refused() {
        for (given, normal) in [
            ("/system.slice/foo.service", "/system.slice/foo.service"),
            ("/system.slice//foo.service/", "/system.slice/foo.service"),
            ("/a", "/a"),
        ] {
            assert_eq!(
                parse_cgroup_path(given),
                Ok(RuleTarget::CgroupPath(normal.into())),
                "{given}"
            );
        }
        for (given, words) in [
            ("/", "is the root"),
            ("//", "is the root"),
            ("system.slice", "does not start with '/'"),
            ("/a/../b", "\"..\" component"),
            ("/a/./b", "\"..\" component"),
            ("/sys/fs/cgroup/system.slice", "includes the cgroup2 mount"),
        ] {
            let message = refused(parse_cgroup_path(given));
            assert!(message.contains(&format!("\"{given}\"")), "{message}");
            assert!(message.contains(words), "{message}");
        }
    }

    #[test]
    fn units_follow_systemds_name_rules() {
        for unit in [
            "syncthing.service",
            "syncthing@alice.service",
            "user-1000.slice",
            "session-3.scope",
            "sshd.socket",
            "dev-disk-by\\x2duuid-1234.swap",
            "home.mount",
            "a:b_c.d-e.service",
        ] {
            assert_eq!(
                parse_unit(unit),
                Ok(RuleTarget::Unit(unit.into())),
                "{unit}"
            );
        }
        let long = format!("{}.service", "a".repeat(UNIT_NAME_MAX - 7));
        assert!(parse_unit(&long).is_err());
        assert!(parse_unit(&long[1..]).is_ok());
        for unit in [
            "syncthing",
            "syncthing.servic",
            ".service",
            "@x.service",
            "a@b@c.service",
            "a b.service",
            "a/b.service",
            "",
        ] {
            let message = refused(parse_unit(unit));
            assert!(message.contains(&format!("unit \"{unit}\" is not a unit name")));
            assert!(message.contains(".service, .scope"), "{message}");
        }
        assert_eq!(
            refused(parse_unit("getty@.service")),
            "unit \"getty@.service\" is a template: give an instance, e.g. getty@1.service"
        );
        assert!(refused(parse_unit("multi-user.target")).contains("no processes of its own"));
        assert!(refused(parse_unit("backup.timer")).contains("no processes of its own"));
    }

    #[test]
    fn containers_are_names_or_ids() {
        for name in ["web", "my_app.1-x", "3f4e", &"a".repeat(64)] {
            assert!(parse_container(name).is_ok(), "{name}");
        }
        for name in ["", "/web", "-web", "we b", "web:latest"] {
            let message = refused(parse_container(name));
            assert!(
                message.starts_with(&format!("container \"{name}\"")),
                "{message}"
            );
        }
    }

    #[test]
    fn rule_names_are_plain_and_short() {
        for name in [
            "steam",
            "backup-2",
            "a",
            "x.y_z",
            &"n".repeat(RULE_NAME_MAX),
        ] {
            assert_eq!(parse_rule_name(name).as_deref(), Ok(name));
        }
        for name in [
            "",
            "-x",
            "a b",
            "ünï",
            "a/b",
            &"n".repeat(RULE_NAME_MAX + 1),
        ] {
            let message = parse_rule_name(name).unwrap_err().to_string();
            assert!(
                message.starts_with(&format!("rule name \"{name}\"")),
                "{message}"
            );
        }
    }

    #[test]
    fn users_are_names_or_uids() {
        assert_eq!(parse_user("0"), Ok(RuleTarget::User(UserSpec::Uid(0))));
        assert_eq!(
            parse_user("4294967294"),
            Ok(RuleTarget::User(UserSpec::Uid(4_294_967_294)))
        );
        assert_eq!(
            parse_user("machine$"),
            Ok(RuleTarget::User(UserSpec::Name("machine$".into())))
        );
        assert_eq!(
            parse_user("alice.b-2"),
            Ok(RuleTarget::User(UserSpec::Name("alice.b-2".into())))
        );
        for user in [
            "",
            "4294967295",
            "99999999999",
            "-alice",
            "al ice",
            "$",
            &"a".repeat(33),
        ] {
            let message = refused(parse_user(user));
            assert!(
                message.starts_with(&format!("user \"{user}\"")),
                "{message}"
            );
        }
    }

    const RANKS: [Rank; 6] = [
        Rank::Pid,
        Rank::Tree,
        Rank::Exe,
        Rank::Name,
        Rank::Cgroup,
        Rank::User,
    ];

    /// Asserts that `winner` governs over `loser`, whichever is listed first.
    fn governs(winner: (Rank, u32), loser: (Rank, u32)) {
        let winner = Candidate {
            rank: winner.0,
            order: winner.1,
            rule: "winner",
        };
        let loser = Candidate {
            rank: loser.0,
            order: loser.1,
            rule: "loser",
        };
        for listed in [[winner, loser], [loser, winner]] {
            assert_eq!(governing(listed), Some(winner), "{listed:?}");
        }
    }

    #[test]
    fn the_lower_rank_governs_whatever_the_order() {
        for (i, &stronger) in RANKS.iter().enumerate() {
            for &weaker in &RANKS[i + 1..] {
                // The weaker rule was set first: rank still wins.
                governs((stronger, 7), (weaker, 0));
            }
        }
    }

    #[test]
    fn equal_ranks_go_to_the_earlier_rule() {
        for rank in RANKS {
            governs((rank, 2), (rank, 5));
        }
        assert_eq!(governing(Vec::<Candidate<()>>::new()), None);
    }

    #[test]
    fn a_limit_reads_with_its_arrow_and_only_what_is_not_default() {
        let rate = Rate::new(5 << 20).expect("valid");
        let plain = RuleLimit {
            rate,
            burst: None,
            backend: None,
        };
        assert_eq!(RuleLimit::show(Some(&plain), Direction::Down), "↓5MB/s");
        assert_eq!(RuleLimit::show(None, Direction::Up), "↑unlimited");
        let default = RuleLimit {
            burst: Some(default_burst(rate)),
            ..plain
        };
        assert_eq!(RuleLimit::show(Some(&default), Direction::Down), "↓5MB/s");
        let chosen = RuleLimit {
            burst: Size::new(1 << 20),
            backend: Some(Enforcement::Policer),
            ..plain
        };
        assert_eq!(
            RuleLimit::show(Some(&chosen), Direction::Up),
            "↑5MB/s burst 1MB policer"
        );
        assert!(
            plain.held_as(&default),
            "the default burst is the burst held"
        );
        assert!(plain.held_as(&RuleLimit {
            backend: Some(Enforcement::Shaping),
            ..default
        }));
        assert!(!chosen.held_as(&RuleLimit {
            backend: Some(Enforcement::Shaping),
            ..chosen
        }));
        assert!(!plain.held_as(&chosen), "another burst");
    }
}
