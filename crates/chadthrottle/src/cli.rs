//! The command line's grammar (clap). Parsing only: `commands` does the work.

use chadthrottle_core::duration::parse_duration;
use chadthrottle_core::rule_target::{
    self, RuleTarget, TargetError, parse_cgroup_path, parse_container, parse_name, parse_unit,
    parse_user,
};
use chadthrottle_core::system::DatapathOptions;
use chadthrottle_core::{Rate, Size};
use clap::builder::{PossibleValue, TypedValueParser};
use clap::error::ErrorKind;
use clap::{Args, Parser, Subcommand};
use clap_complete::Shell;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::Duration;

const RATES: &str = "RATE is bytes per second as 500K, 1.5M, 1G, 500KiB/s (1024-based) or bits \
    per second as 800kbit, 8mbit, 1gbit (1000-based); 0 blocks.";

#[derive(Debug, Parser)]
#[command(
    name = "chadthrottle",
    version,
    about = "Cap any process's upload and download rate, on the connections it already has open. \
             Without a command: the terminal UI.",
    after_help = RATES,
    group = clap::ArgGroup::new("foreground_limit").multiple(true).args(["download_limit", "upload_limit"])
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,

    #[command(subcommand)]
    pub command: Option<Command>,

    /// Upstream form: limit this PID in the foreground until Ctrl+C or --duration.
    #[arg(long, value_name = "PID", requires = "foreground_limit")]
    pub pid: Option<u32>,

    /// Upstream form: download limit of --pid.
    #[arg(
        long,
        value_name = "RATE",
        group = "foreground_limit",
        requires = "pid"
    )]
    pub download_limit: Option<Rate>,

    /// Upstream form: upload limit of --pid.
    #[arg(
        long,
        value_name = "RATE",
        group = "foreground_limit",
        requires = "pid"
    )]
    pub upload_limit: Option<Rate>,

    /// Upstream form: remove the limit after this long (30, 30s, 5m, 1h30m).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "pid", allow_hyphen_values = true)]
    pub duration: Option<Duration>,

    /// Same as the `backends` command.
    #[arg(long)]
    pub list_backends: bool,

    /// TUI: set the limits saved by earlier TUI sessions again, for processes still
    /// running (matched by executable and start time, never by bare PID) [default]
    #[arg(long, overrides_with = "no_restore")]
    pub restore: bool,

    /// TUI: do not set saved limits again.
    #[arg(long)]
    pub no_restore: bool,

    /// TUI: where a limit set on a process's executable is saved as a rule, for `apply`
    /// to set again at boot (as `limit --exe PATH --save FILE` saves it) [default:
    /// /etc/chadthrottle/rules.toml]
    #[arg(long, value_name = "FILE")]
    pub rules_file: Option<PathBuf>,

    /// TUI: the daemon's configuration file, which names the usage database the History
    /// view (`u`) reads [default: /etc/chadthrottle/config.toml, whose absence means the
    /// default database]; a file named here must exist.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

impl Cli {
    /// Refuses options that clap's grammar lets through but that mean nothing together.
    pub fn check(&self) -> Result<(), String> {
        let tui_only = self.restore || self.no_restore || self.rules_file.is_some();
        if self.command.is_some() && tui_only {
            return Err(
                "--restore, --no-restore and --rules-file are for the TUI: give them without a \
                 command (`apply FILE` and `limit --save FILE` name their file)"
                    .into(),
            );
        }
        if self.command.is_some() && self.config.is_some() {
            return Err(
                "--config before a command is the TUI's: give it after `daemon` or `usage`".into(),
            );
        }
        if self.command.is_some() && (self.pid.is_some() || self.list_backends) {
            return Err(
                "--pid and --list-backends are the upstream form: give them without a command"
                    .into(),
            );
        }
        match &self.command {
            Some(Command::Limit(args)) => {
                let selected = args.target.selected()?;
                if args.each && matches!(selected, Selected::Pid(_)) {
                    return Err(
                        "--each gives each process a rule matches its own budget: give it with \
                         --exe, --name, --unit, --cgroup-path, --container, --user or --pid with \
                         --tree (one PID has one budget)"
                            .into(),
                    );
                }
                if args.save.is_some() {
                    check_save(&selected, args.rates.lasts.is_some())?;
                }
            }
            Some(Command::Unlimit(args)) => {
                let selected = args.target.selected()?;
                if (args.up || args.down) && matches!(selected, Selected::Rule(_)) {
                    return Err(
                        "--up and --down lift one direction of a PID's limit; a rule is removed \
                         whole: give its target alone, or set it again with `limit`"
                            .into(),
                    );
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Refuses `limit --save` where the rule could not be set again at boot.
fn check_save(selected: &Selected, lasts: bool) -> Result<(), String> {
    let reason = match selected {
        Selected::Pid(_) | Selected::Rule(RuleTarget::Tree(_)) => {
            "a PID does not survive a reboot: give --save with --exe, --name, --unit, \
             --cgroup-path, --container or --user"
        }
        Selected::Rule(_) if lasts => {
            "the rules file holds rules until they are removed: give --save or --for, not both"
        }
        Selected::Rule(_) => return Ok(()),
    };
    Err(format!("--save: {reason}"))
}

#[derive(Debug, Args)]
pub struct Global {
    /// cgroup2 directory the datapath attaches to [default: the root of the cgroup2 mount]
    #[arg(long, global = true, env = "CHADTHROTTLE_CGROUP", value_name = "PATH")]
    pub cgroup: Option<PathBuf>,

    /// bpffs directory that holds the pinned datapath (mounted if missing) [default:
    /// /sys/fs/bpf/chadthrottle]
    #[arg(long, global = true, env = "CHADTHROTTLE_PIN_DIR", value_name = "PATH")]
    pub pin_dir: Option<PathBuf>,

    /// How many processes can be limited at once (takes effect when the datapath is
    /// installed) [default: 65536]
    #[arg(
        long,
        global = true,
        env = "CHADTHROTTLE_MAX_LIMITS",
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..=(1 << 22))
    )]
    pub max_limits: Option<u32>,

    /// How many connections are accounted at once, least recently active evicted beyond
    /// (takes effect when the datapath is installed) [default: 65536]
    #[arg(
        long,
        global = true,
        env = "CHADTHROTTLE_MAX_CONNECTIONS",
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(64..=(1 << 22))
    )]
    pub max_connections: Option<u32>,

    /// Backend for upload limits set by this command or TUI: shaping, policer, htb (see
    /// `chadthrottle backends`) [default: the best available]
    #[arg(
        long,
        global = true,
        env = "CHADTHROTTLE_UPLOAD_BACKEND",
        value_name = "NAME"
    )]
    pub upload_backend: Option<String>,

    /// Backend for download limits set by this command or TUI: shaping, policer, ifb
    /// [default: the best available]
    #[arg(
        long,
        global = true,
        env = "CHADTHROTTLE_DOWNLOAD_BACKEND",
        value_name = "NAME"
    )]
    pub download_backend: Option<String>,

    /// Let the htb backend replace a root qdisc that ChadThrottle did not create (unlimit
    /// and reset put it back); without it such a limit is refused and nothing changes
    #[arg(long, global = true)]
    pub force: bool,

    /// Where the TUI saves the limits it sets, for --restore [default: root's in
    /// /var/lib/chadthrottle/saved-limits.json, anyone else's in
    /// $XDG_STATE_HOME/chadthrottle/saved-limits.json (~/.local/state/…)]
    #[arg(
        long,
        global = true,
        env = "CHADTHROTTLE_SAVED_LIMITS",
        value_name = "PATH"
    )]
    pub saved_limits: Option<PathBuf>,
}

impl Global {
    /// The datapath options as given (`None` where an option was not).
    pub fn datapath(&self) -> DatapathOptions {
        DatapathOptions {
            cgroup: self.cgroup.clone(),
            pin_dir: self.pin_dir.clone(),
            max_limits: self.max_limits,
            max_connections: self.max_connections,
            force: self.force,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Set or change a process's limit, or a rule that limits every process of an
    /// executable, name, unit, cgroup, container or user, now and later; returns at once,
    /// the limit stays in the kernel.
    #[command(after_help = RATES)]
    Limit(LimitArgs),
    /// Lift a process's limit (both directions unless --up or --down), or remove a rule.
    Unlimit(UnlimitArgs),
    /// Every active limit and rule with live counters.
    Status(StatusArgs),
    /// Every rule (limits by application): its target, mode, limits, the processes it
    /// governs now and its counters.
    Rules(RulesArgs),
    /// Make the rules in force what the rules file says (added, changed, removed; rules
    /// set with `limit` stay), reading the whole file first: an error in it changes nothing.
    Apply(ApplyArgs),
    /// Remove everything ChadThrottle put in the kernel: links, maps, pins, its bpffs mount.
    Reset,
    /// The backends that can enforce limits, their priority, and why one is unavailable.
    Backends(BackendsArgs),
    /// Which processes use the network: rates and totals per process, refreshed.
    Top(TopArgs),
    /// Start a command under a limit shared by it and every process it starts, set
    /// before its first instruction and lifted when the last of them has exited.
    #[command(after_help = RATES)]
    Run(RunArgs),
    /// Keep per-application usage history: sample the accounting every interval into the
    /// usage database, and apply the rules file at start and whenever it changes
    /// (foreground; the systemd unit runs it).
    Daemon(DaemonArgs),
    /// Usage history per application, process, user or day, busiest first, from the
    /// database the daemon writes.
    Usage(UsageArgs),
    /// A completion script for bash, zsh or fish, on stdout, generated from this command
    /// line's own definition (the package installs all three).
    Completions(CompletionsArgs),
    /// Write the man pages, chadthrottle.1 and one per command, into a directory (run when
    /// the package is built; `man chadthrottle` reads them once installed).
    #[command(hide = true)]
    Man(ManArgs),
}

/// Which processes `limit` and `unlimit` act on: one PID, or a rule's target. Every kind
/// but a bare `--pid` is a rule: it matches processes of every user, now and later.
#[derive(Debug, Default, Args)]
#[command(group = clap::ArgGroup::new("target").required(true).args(
    ["pid", "exe", "name", "unit", "cgroup_path", "container", "user"]
))]
pub struct TargetArgs {
    /// The process (with --tree: and every process it starts).
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,

    /// With --pid: the process and its descendants, present and future (a rule).
    #[arg(long)]
    pub tree: bool,

    /// Every process running this executable, now and later (an absolute path).
    #[arg(long, value_name = "PATH", value_parser = exe_target)]
    pub exe: Option<RuleTarget>,

    /// Every process with this name, as ps and top show it (at most 15 bytes).
    #[arg(long, value_name = "NAME", value_parser = name_target)]
    pub name: Option<RuleTarget>,

    /// The processes of a systemd unit (syncthing.service, user units too).
    #[arg(long, value_name = "UNIT", value_parser = unit_target)]
    pub unit: Option<RuleTarget>,

    /// The processes in a cgroup2 directory and below it, relative to the cgroup2 mount
    /// (/system.slice/foo.scope). Not --cgroup: that is where the datapath attaches.
    #[arg(long, value_name = "PATH", value_parser = cgroup_path_target)]
    pub cgroup_path: Option<RuleTarget>,

    /// The processes of a running container (docker, podman, containerd), by name or id.
    #[arg(long, value_name = "NAME_OR_ID", value_parser = container_target)]
    pub container: Option<RuleTarget>,

    /// Every process of a user (login name or uid).
    #[arg(long, value_name = "USER", value_parser = user_target)]
    pub user: Option<RuleTarget>,
}

/// What [`TargetArgs`] selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selected {
    /// One process's limit, as before rules.
    Pid(u32),
    Rule(RuleTarget),
}

impl TargetArgs {
    /// The one target given; refuses `--tree` without `--pid` and a tree of PID 0.
    pub fn selected(&self) -> Result<Selected, String> {
        let rule = [
            &self.exe,
            &self.name,
            &self.unit,
            &self.cgroup_path,
            &self.container,
            &self.user,
        ]
        .into_iter()
        .find_map(Clone::clone);
        match (self.pid, rule) {
            (Some(pid), None) if self.tree => rule_target::parse_tree(pid)
                .map(Selected::Rule)
                .map_err(|error| error.to_string()),
            (Some(pid), None) => Ok(Selected::Pid(pid)),
            (None, Some(_)) | (Some(_), Some(_)) if self.tree => Err(
                "--tree is for --pid: it takes the process and every process it starts".into(),
            ),
            (None, Some(rule)) => Ok(Selected::Rule(rule)),
            // clap's group lets exactly one through
            (Some(_), Some(_)) | (None, None) => {
                Err("give one target: --pid, --exe, --name, --unit, --cgroup-path, --container or --user".into())
            }
        }
    }
}

fn exe_target(text: &str) -> Result<RuleTarget, TargetError> {
    rule_target::parse_exe(Path::new(text))
}

fn name_target(text: &str) -> Result<RuleTarget, TargetError> {
    parse_name(text)
}

fn unit_target(text: &str) -> Result<RuleTarget, TargetError> {
    parse_unit(text)
}

fn cgroup_path_target(text: &str) -> Result<RuleTarget, TargetError> {
    parse_cgroup_path(text)
}

fn container_target(text: &str) -> Result<RuleTarget, TargetError> {
    parse_container(text)
}

fn user_target(text: &str) -> Result<RuleTarget, TargetError> {
    parse_user(text)
}

#[derive(Debug, Default, Args)]
#[command(group = clap::ArgGroup::new("direction").required(true).multiple(true).args(["up", "down"]))]
pub struct LimitArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// A rule's rate for each process it matches, not one budget they share [default:
    /// shared]
    #[arg(long)]
    pub each: bool,

    #[command(flatten)]
    pub rates: RateArgs,

    /// A rule: also write it into the rules file, which `apply` sets at boot [default
    /// FILE: /etc/chadthrottle/rules.toml]. Without it a rule lasts until unlimit, reset
    /// or reboot.
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = RULES_FILE)]
    pub save: Option<PathBuf>,
}

/// The rates, bursts and duration of a limit: what `limit` and `run` both take.
#[derive(Debug, Clone, Default, Args)]
pub struct RateArgs {
    /// Upload limit.
    #[arg(long, value_name = "RATE", allow_hyphen_values = true)]
    pub up: Option<Rate>,

    /// Download limit.
    #[arg(long, value_name = "RATE", allow_hyphen_values = true)]
    pub down: Option<Rate>,

    /// Bytes that may pass at once after a stall, both directions [default: 400 ms of the
    /// rate, at least 64K]
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    pub burst: Option<Size>,

    /// Upload burst (overrides --burst).
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    pub burst_up: Option<Size>,

    /// Download burst (overrides --burst).
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    pub burst_down: Option<Size>,

    /// Lift the whole limit after this long (500ms, 30s, 5m, 1h30m); enforced by the kernel.
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration, allow_hyphen_values = true)]
    pub lasts: Option<Duration>,
}

/// Where `apply` and `limit --save` find the rules file when none is given.
pub const RULES_FILE: &str = "/etc/chadthrottle/rules.toml";

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The rules file.
    #[arg(value_name = "FILE", default_value = RULES_FILE)]
    pub file: PathBuf,

    /// Print what would change, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// The configuration file [default: /etc/chadthrottle/config.toml, whose absence
    /// means every default]; a file named here must exist.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// The rules file applied at start and whenever it changes (missing: none applied).
    #[arg(long, value_name = "FILE", default_value = RULES_FILE)]
    pub rules: PathBuf,

    /// Stop after this many samples (for tests; default: until SIGTERM, SIGINT or SIGHUP).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
}

/// How `usage` groups its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UsageBy {
    App,
    Process,
    User,
    Day,
}

#[derive(Debug, Args)]
pub struct UsageArgs {
    /// The configuration file naming the database [default: /etc/chadthrottle/config.toml,
    /// whose absence means the default database]; a file named here must exist.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// From when: today (the current UTC day), or a time back from now (6h, 7d, 30d).
    #[arg(long, value_name = "WHEN", default_value = "today")]
    pub since: String,

    /// One row per application (as `top --by app`: the governing rule, else the
    /// executable, else the process name), process, user or day.
    #[arg(long, value_enum, default_value = "app")]
    pub by: UsageBy,

    /// Only this executable (as /proc/PID/exe shows it), under any rule.
    #[arg(long, value_name = "PATH", conflicts_with = "rule")]
    pub exe: Option<String>,

    /// Only the processes this rule governed (the application `top --by app` names for it).
    #[arg(long, value_name = "NAME")]
    pub rule: Option<String>,

    /// One JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct UnlimitArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// Lift only the upload limit (of a PID).
    #[arg(long)]
    pub up: bool,

    /// Lift only the download limit (of a PID).
    #[arg(long)]
    pub down: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// One JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RulesArgs {
    /// One JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BackendsArgs {
    /// One JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TopArgs {
    /// Print one snapshot and exit (after one --interval, to measure rates).
    #[arg(long)]
    pub once: bool,

    /// One JSON document per snapshot instead of tables.
    #[arg(long)]
    pub json: bool,

    /// Time between snapshots (500ms, 1s, 2s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "1s", allow_hyphen_values = true)]
    pub interval: Duration,

    /// Stop after this many snapshots.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,

    /// Only this process.
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,

    /// List connections (of --pid, if given): protocol, local, remote, state, rates, totals.
    #[arg(long)]
    pub connections: bool,

    /// Use the sock_diag fallback (TCP only, this network namespace) even where the eBPF
    /// accounting is available.
    #[arg(long)]
    pub fallback: bool,

    /// One row per process, or per application (a rule's members, else one executable's
    /// processes) with its processes under it.
    #[arg(long, value_name = "process|app", value_parser = parse_top_by, default_value = "process")]
    pub by: TopBy,
}

/// What `top` lists a row for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopBy {
    Process,
    App,
}

/// `--by`'s value; refused on one line, naming what is accepted (clap's own refusal of an
/// enum's value lists them on a second line).
fn parse_top_by(value: &str) -> Result<TopBy, String> {
    match value {
        "process" => Ok(TopBy::Process),
        "app" => Ok(TopBy::App),
        other => Err(format!("invalid grouping \"{other}\": give process or app")),
    }
}

/// `run`'s limits, as `limit --pid --tree` takes them, and its command.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("direction").required(true).multiple(true).args(["up", "down"]))]
pub struct RunArgs {
    /// One budget for the command and every process it starts; `--for` lifts it, the
    /// command running on.
    #[command(flatten)]
    pub rates: RateArgs,

    /// The command and its arguments, after `--`. Under sudo it runs as the user who
    /// invoked sudo (SUDO_UID, SUDO_GID, that user's groups, HOME, USER, LOGNAME).
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// The shells `completions` writes a script for, by the name it is given.
pub const SHELLS: [(&str, Shell); 3] = [
    ("bash", Shell::Bash),
    ("zsh", Shell::Zsh),
    ("fish", Shell::Fish),
];

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell the script is for.
    #[arg(value_name = "SHELL", value_parser = ShellName)]
    pub shell: Shell,
}

/// Parses a shell's name. Not clap's enum parser: its refusal runs over several lines, and
/// an unknown shell is refused like any other value — one line naming it and what is
/// accepted — while help and the completion scripts still list the names.
#[derive(Debug, Clone, Copy)]
struct ShellName;

impl TypedValueParser for ShellName {
    type Value = Shell;

    fn parse_ref(
        &self,
        _command: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<Shell, clap::Error> {
        let text = value.to_string_lossy();
        SHELLS
            .iter()
            .find(|(name, _)| *name == text)
            .map(|&(_, shell)| shell)
            .ok_or_else(|| {
                let accepted: Vec<&str> = SHELLS.iter().map(|&(name, _)| name).collect();
                clap::Error::raw(
                    ErrorKind::ValueValidation,
                    format!(
                        "unknown shell \"{text}\"; accepted: {}\n",
                        accepted.join(", ")
                    ),
                )
            })
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            SHELLS.iter().map(|&(name, _)| PossibleValue::new(name)),
        ))
    }
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Where the pages go (created if missing).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}
