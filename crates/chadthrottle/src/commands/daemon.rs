//! `chadthrottle daemon`: keeps the usage history. Every interval it reads the accounting
//! `top` reads, turns it into per-process increments (`core::tally`), charges each to its
//! application and user, and writes them with the checkpoint in one transaction
//! (`chadthrottle_store`). It applies the rules file at start and whenever the file
//! changes, through `apply`. A failed read or write (a full disk, a read-only database) is
//! logged and the daemon goes on: the next write carries what the failed one did not, and
//! the limits are the kernel's whatever happens here. Unless `[metrics] enabled = false`,
//! it serves the Prometheus endpoint (`metrics_server`) and feeds it each sample.

use super::{config_file, rule_change};
use crate::cli::{DaemonArgs, Global};
use crate::metrics_server::{self, MetricsFeed, MetricsServer};
use anyhow::Context as _;
use chadthrottle_core::ProcessRef;
use chadthrottle_core::access;
use chadthrottle_core::application;
use chadthrottle_core::backend::Backend as _;
use chadthrottle_core::daemon_config::DaemonConfig;
use chadthrottle_core::monitor::Monitor;
use chadthrottle_core::system::{Processes, System, UsageSource};
use chadthrottle_core::tally::Tally;
use chadthrottle_core::usage::{LimitRates, Reading, Source};
use chadthrottle_core::usage_history::{Application, HOUR};
use chadthrottle_store::{Sample, Store};
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

/// How often the stop flag is looked at while waiting for the next sample.
const STOP_CHECK: Duration = Duration::from_millis(100);

pub fn run<S: System>(
    system: &mut S,
    global: &Global,
    args: &DaemonArgs,
    stop: &AtomicBool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let config = config_file::load(args.config.as_deref())?;
    access::root_only(system.caller(), || "the daemon".to_owned())?;
    let (mut source, note) = system.usage(&global.datapath(), None);
    if source.kind().0 != Source::Ebpf {
        anyhow::bail!("{}: {}", NO_EBPF, note.unwrap_or_default());
    }
    if let Some(directory) = config.database.parent() {
        std::fs::create_dir_all(directory)
            .with_context(|| format!("cannot create {}", directory.display()))?;
    }
    log(
        out,
        &format!(
            "sampling every {}s into {}",
            config.interval.as_secs(),
            config.database.display()
        ),
    );
    // the endpoint first: a busy address refuses the start, before anything is written
    let mut metrics = if config.metrics.enabled {
        let feed = MetricsFeed::new(config.metrics.top_applications);
        let server = metrics_server::serve(&config.metrics.listen.to_string(), feed.clone())?;
        log(
            out,
            &format!("metrics on http://{}/metrics", server.address()),
        );
        let (kind, layer) = source.kind();
        let interval_ms = u64::try_from(config.interval.as_millis()).unwrap_or(u64::MAX);
        Some(Metrics {
            feed,
            server,
            monitor: Monitor::new(kind, layer, None, interval_ms),
            known: HashMap::new(),
        })
    } else {
        None
    };
    let mut rules = RulesFile::new(args.rules.clone());
    let mut history = History::new(config);
    let mut follower = Follower::default();
    let mut samples = 0;
    loop {
        if !current(&mut source, out) {
            // a `reset` took the datapath out: install it again (as `top` would), read
            // its new counters (a new epoch), and set the rules file's rules again
            log(
                out,
                "the datapath was reset: installing it again, reading its new counters",
            );
            let started = std::time::Instant::now();
            let (reopened, note) = system.usage(&global.datapath(), None);
            source = reopened;
            if let Some(note) = note {
                log(out, &format!("{NO_EBPF}: {note}"));
            } else {
                // what was sent between the reset and now is in no counter: say how long
                log(
                    out,
                    &format!(
                        "the datapath is installed again ({} ms): counting",
                        started.elapsed().as_millis()
                    ),
                );
            }
            rules.forget();
        }
        rules.apply_if_changed(system, global, out);
        follower.follow(system, global, out);
        history.sample(system, &mut source, out);
        if let (Some(metrics), Some(sampled)) = (&mut metrics, history.last_sample.take()) {
            if let Err(error) = metrics.record(system, global, &mut source, sampled, &history) {
                log(out, &format!("metrics not updated: {error:#}"));
            }
        }
        samples += 1;
        if args.count.is_some_and(|count| samples >= count) || wait(stop, history.config.interval) {
            break;
        }
    }
    if let Some(metrics) = metrics {
        metrics.server.stop();
    }
    log(out, &format!("stopped after {samples} samples"));
    Ok(())
}

/// The endpoint and what turns each sample into its figures: per-application rates and
/// totals as `top --by app` groups them, the limits and rules as `status` lists them.
/// One sample's reading and the rule governing each process in it (`UsageSource::rules`).
type Sampled = (Reading, HashMap<ProcessRef, (String, LimitRates)>);

struct Metrics {
    feed: MetricsFeed,
    server: MetricsServer,
    monitor: Monitor,
    /// Each process's executable, read once while it runs (`access::executables`).
    known: HashMap<ProcessRef, Option<String>>,
}

impl Metrics {
    fn record<S: System>(
        &mut self,
        system: &mut S,
        global: &Global,
        source: &mut S::Usage,
        (reading, governing): Sampled,
        history: &History,
    ) -> anyhow::Result<()> {
        self.monitor.ingest(reading);
        let mut snapshot = self.monitor.snapshot(&source.limits()?);
        application::attribute_rules(&mut snapshot.processes, &governing);
        let grouped = super::top::by_application(system, snapshot, &mut self.known);
        // listed as `status --json` lists them, without its pruning: the daemon only looks
        let (limits, rules, full) = super::status::held(system, global, false)?;
        let status = super::status::report(&limits, &rules, full);
        self.feed
            .record(&grouped, &status, history.written, history.database_bytes());
        Ok(())
    }
}

/// Why the daemon refuses the fallback.
const NO_EBPF: &str =
    "the daemon needs the eBPF accounting (the fallback's totals fall when connections close)";

/// Whether `source` reads the installed eBPF counters (a failure to tell is logged and
/// taken as yes: the next sample says more).
fn current<U: UsageSource>(source: &mut U, out: &mut dyn Write) -> bool {
    if source.kind().0 != Source::Ebpf {
        return false;
    }
    source.is_current().unwrap_or_else(|error| {
        log(
            out,
            &format!("cannot tell whether the datapath was reset: {error}"),
        );
        true
    })
}

/// One line of the daemon's log (stdout: the journal under systemd).
fn log(out: &mut dyn Write, line: &str) {
    // nowhere to report a log that cannot be written; the history goes on
    let _written = writeln!(out, "chadthrottle daemon: {line}").and_then(|()| out.flush());
}

/// Waits `interval`; true if asked to stop meanwhile.
fn wait(stop: &AtomicBool, interval: Duration) -> bool {
    let mut waited = Duration::ZERO;
    while waited < interval {
        if stop.load(Ordering::Relaxed) {
            return true;
        }
        let step = STOP_CHECK.min(interval - waited);
        std::thread::sleep(step);
        waited += step;
    }
    stop.load(Ordering::Relaxed)
}

/// Puts the per-interface backends on the interfaces limited processes started using
/// since their limits were set (`Backend::follow`), once a sample: a VPN that comes up is
/// held by ifb or htb within an interval, not only by the policer until the next `limit`.
/// Then gives ifb to the shared rules' downloads left to the default that got the
/// fallback for want of a member (`rule_change::default_downloads_again`): a rules file
/// applied at boot, before its programs run, gets what `limit` would choose once they do.
#[derive(Default)]
struct Follower {
    /// The last failure, logged once until it changes or ends.
    failing: Option<String>,
}

impl Follower {
    fn follow<S: System>(&mut self, system: &mut S, global: &Global, out: &mut dyn Write) {
        let followed = system
            .open(&global.datapath())
            .map_err(anyhow::Error::from)
            .and_then(|backend| match backend {
                Some(mut backend) => {
                    backend.follow().map_err(anyhow::Error::from)?;
                    rule_change::default_downloads_again(system, global, &mut backend)
                }
                None => Ok(Vec::new()),
            });
        match followed {
            Ok(switched) => {
                if self.failing.take().is_some() {
                    log(out, "the limits follow their processes' interfaces again");
                }
                for (rule, chosen) in switched {
                    log(
                        out,
                        &format!("rule \"{rule}\": download backend ifb: {}", chosen.reason),
                    );
                }
            }
            Err(error) => {
                let error = format!("{error:#}");
                if self.failing.as_ref() != Some(&error) {
                    log(
                        out,
                        &format!(
                            "cannot put the limits on new interfaces: {error}; the policer \
                             holds them there"
                        ),
                    );
                    self.failing = Some(error);
                }
            }
        }
    }
}

/// The database, the tally and what is known of each process, across samples.
struct History {
    config: DaemonConfig,
    /// `None` until the database could be opened (a read-only file system at start).
    store: Option<Store>,
    tally: Tally,
    /// Each process's executable and user, read from /proc once while it runs.
    known: HashMap<ProcessRef, (Option<String>, String)>,
    last_prune: Option<u64>,
    /// Failures in a row, logged at the first and when they end.
    failures: u64,
    /// Samples written since the daemon started (the metrics' health figure).
    written: u64,
    /// The last sample's reading and the rules that governed its processes, for the
    /// metrics (taken by them).
    last_sample: Option<Sampled>,
}

impl History {
    fn new(config: DaemonConfig) -> History {
        History {
            config,
            store: None,
            tally: Tally::default(),
            known: HashMap::new(),
            last_prune: None,
            failures: 0,
            written: 0,
            last_sample: None,
        }
    }

    /// The database's size on disk, its write-ahead log included (0 where unreadable).
    fn database_bytes(&self) -> u64 {
        let wal = PathBuf::from(format!("{}-wal", self.config.database.display()));
        [&self.config.database, &wal]
            .iter()
            .filter_map(|path| std::fs::metadata(path).ok())
            .map(|meta| meta.len())
            .sum()
    }

    /// Reads, writes, prunes once an hour; logs a failure instead of returning it.
    fn sample<S: System>(&mut self, system: &S, source: &mut S::Usage, out: &mut dyn Write) {
        let now = system.now_unix();
        match self.write(system, source, now) {
            Ok(()) => {
                if self.failures > 0 {
                    log(
                        out,
                        &format!("writing again after {} failed samples", self.failures),
                    );
                }
                self.failures = 0;
                self.written += 1;
            }
            Err(error) => {
                if self.failures == 0 {
                    log(
                        out,
                        &format!("{error:#}; going on, the next write carries this one's bytes"),
                    );
                }
                self.failures += 1;
                return;
            }
        }
        if self.last_prune.is_none_or(|then| now >= then + HOUR) {
            self.last_prune = Some(now);
            if let Some(store) = &mut self.store {
                let pruned = store.prune(now, self.config.retention, self.config.hourly_retention);
                if let Err(error) = pruned {
                    log(out, &format!("{error}"));
                }
            }
        }
    }

    fn write<S: System>(
        &mut self,
        system: &S,
        source: &mut S::Usage,
        now: u64,
    ) -> anyhow::Result<()> {
        if self.store.is_none() {
            let store = Store::open(&self.config.database)?;
            self.tally = Tally::resume(store.checkpoint()?);
            self.store = Some(store);
        }
        let Some(store) = &mut self.store else {
            return Ok(());
        };
        anyhow::ensure!(source.kind().0 == Source::Ebpf, NO_EBPF);
        let reading = source.read().context("cannot read the accounting")?;
        let epoch = source
            .epoch()
            .context("cannot read the accounting's epoch")?
            .context("the accounting has no epoch")?;
        let governing = source.rules().context("cannot read the rules")?;
        let mut next = self.tally.clone();
        let increments = next.take(&epoch, &reading);
        let names: HashMap<ProcessRef, &str> = reading
            .processes
            .iter()
            .map(|p| (p.process, p.name.as_str()))
            .collect();
        self.known.retain(|process, _| names.contains_key(process));
        let mut samples = Vec::with_capacity(increments.len());
        for increment in increments {
            let process = increment.process;
            let name = names.get(&process).copied().unwrap_or("?");
            let (exe, user) = self
                .known
                .entry(process)
                .or_insert_with(|| identify(system, process));
            let rule = governing.get(&process).map(|(rule, _)| rule.as_str());
            samples.push(Sample {
                increment,
                name: name.to_owned(),
                application: Application::of(exe.as_deref(), name, rule),
                user: user.clone(),
            });
        }
        if let Some(checkpoint) = next.checkpoint() {
            store.record(now, &samples, checkpoint)?;
        }
        self.tally = next;
        self.last_sample = Some((reading, governing));
        Ok(())
    }
}

/// `process`'s executable and user as /proc shows them, if it is still that process
/// (its start time checked after the executable was read, so a reused PID is not taken
/// for it); `None` and `?` if it is gone.
fn identify<P: Processes>(processes: &P, process: ProcessRef) -> (Option<String>, String) {
    let exe = processes.exe(process.pid);
    match processes.inspect(process.pid) {
        Some(info) if info.start_time == process.start_time => {
            (exe, processes.user_name(info.uids.real))
        }
        _ => (None, "?".to_owned()),
    }
}

/// The rules file, applied at start and whenever its modification time or size changes.
struct RulesFile {
    path: PathBuf,
    /// What the file looked like when last applied; `None` before the first look.
    seen: Option<Option<(SystemTime, u64)>>,
}

impl RulesFile {
    fn new(path: PathBuf) -> RulesFile {
        RulesFile { path, seen: None }
    }

    /// Applies the file at the next look, changed or not (the datapath lost its rules).
    fn forget(&mut self) {
        self.seen = None;
    }

    fn apply_if_changed<S: System>(
        &mut self,
        system: &mut S,
        global: &Global,
        out: &mut dyn Write,
    ) {
        let now = std::fs::metadata(&self.path).ok().map(|meta| {
            (
                meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                meta.len(),
            )
        });
        if self.seen == Some(now) {
            return;
        }
        let first = self.seen.is_none();
        self.seen = Some(now);
        if now.is_none() {
            let what = if first {
                "no rules file at {}: none applied"
            } else {
                "the rules file {} is gone: the rules in force stay"
            };
            log(out, &what.replace("{}", &self.path.display().to_string()));
            return;
        }
        log(out, &format!("applying {}", self.path.display()));
        if let Err(error) = super::apply::run(system, global, &self.path, false, out) {
            log(
                out,
                &format!(
                    "{}; the rules in force stay",
                    chadthrottle_kernel::describe(error.as_ref())
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests;
