//! `chadthrottle` without a command: the terminal UI. This module is the TUI's runner:
//! the terminal, the threads that feed the app's one event channel (input, readings),
//! and the one place where the app's effects reach the machine (the rule effects through
//! `tui_rules`).
//!
//! Everything but the terminal and the input thread is generic over the core's `System`
//! seam, so the loop (events in, effects applied, outcomes shown) is tested on the core's
//! fake machine and ratatui's `TestBackend`.

use crate::cli::Global;
use anyhow::Context as _;
use chadthrottle_core::backend::Change;
use chadthrottle_core::bucket::default_burst;
use chadthrottle_core::saved::{SavedLimit, SavedLimits};
use chadthrottle_core::status::DirectionLimit;
use chadthrottle_core::system::{Processes, System, UsageSource};
use chadthrottle_core::usage::{Reading, Source};
use chadthrottle_core::{Direction, PerDirection, ProcessRef};
use chadthrottle_tui::grouping::Membership;
use chadthrottle_tui::{App, Effect, Event};
use ratatui::crossterm::event::{self as term, DisableMouseCapture, EnableMouseCapture};
use ratatui::crossterm::execute;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

const INTERVAL: Duration = Duration::from_secs(1);

/// Reads the usage source every `interval` and sends the readings (what the caller may
/// see of them), until the app is gone.
fn collect<P: Processes, U: UsageSource>(
    processes: &P,
    mut source: U,
    events: &Sender<Event>,
    interval: Duration,
) {
    let mut known = HashMap::new();
    loop {
        let (event, membership) = match super::access::read(processes, &mut source) {
            Ok(reading) => {
                let membership = membership(processes, &mut source, &reading, &mut known);
                let limits = source.limits().unwrap_or_default();
                (Event::Update { reading, limits }, Some(membership))
            }
            Err(error) => (
                Event::Done(Err(chadthrottle_kernel::describe(&error))),
                None,
            ),
        };
        if events.send(event).is_err() {
            return;
        }
        if let Some(membership) = membership
            && events.send(Event::Membership(membership)).is_err()
        {
            return;
        }
        std::thread::sleep(interval);
    }
}

/// What groups `reading`'s processes into applications: their executables (each read
/// once, kept in `known`) and the rules that govern them (none if they cannot be read).
fn membership<P: Processes, U: UsageSource>(
    processes: &P,
    source: &mut U,
    reading: &Reading,
    known: &mut HashMap<ProcessRef, Option<String>>,
) -> Membership {
    let listed = reading.processes.iter().map(|p| p.process).collect();
    Membership {
        exes: super::access::executables(processes, &listed, known),
        rules: source.rules().unwrap_or_default(),
    }
}

/// Terminal input, as events, until the app is gone.
fn input(events: &Sender<Event>) {
    loop {
        let event = match term::read() {
            Ok(term::Event::Key(key)) => Event::Key(key),
            Ok(term::Event::Mouse(mouse)) => Event::Mouse(mouse),
            Ok(term::Event::Resize(width, height)) => Event::Resize(width, height),
            Ok(_) => continue,
            Err(_) => return,
        };
        if events.send(event).is_err() {
            return;
        }
    }
}

/// Where this TUI keeps the limits it sets: `--saved-limits`, else root's file or the
/// caller's own under `$XDG_STATE_HOME`; `None` when there is nowhere to keep them.
fn saved_path<S: System>(system: &S, global: &Global) -> Option<PathBuf> {
    let env = |name| std::env::var_os(name).map(PathBuf::from);
    global.saved_limits.clone().or_else(|| {
        chadthrottle_core::access::saved_limits_path(
            system.caller(),
            env("XDG_STATE_HOME"),
            env("HOME"),
        )
    })
}

/// The saved limits at `path`, read with the caller's own permissions (none if there is
/// no such file or it does not parse).
fn load_saved<S: System>(system: &S, path: &Path) -> SavedLimits {
    system
        .as_caller(|| std::fs::read(path))
        .ok()
        .and_then(Result::ok)
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// Writes `saved` to `path` with the caller's own permissions, readable by its owner only
/// (it names other users' processes when root keeps it): a new file, mode 0600, renamed
/// over the old one, in a directory created 0700.
fn store_saved<S: System>(system: &S, path: &Path, saved: &SavedLimits) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    let text = serde_json::to_vec_pretty(saved)?;
    let partial = path.with_extension("json.new");
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)?;
        std::io::Write::write_all(&mut file, &text)?;
        std::fs::rename(&partial, path)
    };
    system
        .as_caller(write)
        .and_then(|written| written)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The files the TUI keeps limits in.
#[derive(Debug, Clone, Copy)]
struct Files<'a> {
    /// The PID limits earlier versions saved, which `--restore` still sets again; `None`
    /// when there is nowhere to keep them.
    saved: Option<&'a Path>,
    /// Where a limit on an executable is saved as a rule (`--rules-file`).
    rules: &'a Path,
    /// The daemon's configuration naming the usage database (`--config`; `None`: the
    /// default file).
    config: Option<&'a Path>,
}

/// Forgets a PID limit saved by an earlier version once it is lifted, so that
/// `--restore` does not set it again. New PID limits are not saved: a limit that should
/// outlive its process is set on the executable, as a rule.
fn forget_saved<S: System>(
    system: &S,
    path: Option<&Path>,
    process: ProcessRef,
) -> anyhow::Result<()> {
    let (Some(path), Some(exe)) = (path, system.exe(process.pid)) else {
        return Ok(()); // nowhere it was kept, or gone, or no executable to match it by
    };
    let mut saved = load_saved(system, path);
    let before = saved.limits.len();
    // a limit with neither direction takes the process's saved one out
    saved.set(SavedLimit {
        pid: process.pid,
        exe,
        start_time: process.start_time,
        name: String::new(),
        up: None,
        down: None,
    });
    if saved.limits.len() == before {
        return Ok(());
    }
    store_saved(system, path, &saved)
}

/// Sets saved limits again for processes that still run and have no limit now.
fn restore<S: System>(
    system: &mut S,
    global: &Global,
    path: &Path,
    current: &HashSet<u32>,
) -> Result<String, String> {
    let mut saved = load_saved(system, path);
    let read = saved.clone();
    let found = saved.restore(&system.running());
    let mut restored = 0;
    let mut failures = Vec::new();
    for (pid, limit) in found {
        if current.contains(&pid) {
            continue;
        }
        let process = ProcessRef {
            pid,
            start_time: limit.start_time,
        };
        match set_limit(system, global, process, &limit.name, limit.up, limit.down) {
            Ok(_) => restored += 1,
            Err(error) => failures.push(format!("PID {pid}: {error:#}")),
        }
    }
    // written only to drop the limits of processes that are gone: no file is made
    if saved != read {
        store_saved(system, path, &saved).map_err(|error| format!("{error:#}"))?;
    }
    match (restored, failures.is_empty()) {
        (0, true) => Ok(String::new()),
        (n, true) => Ok(format!(
            "restored {n} saved limit{}",
            if n == 1 { "" } else { "s" }
        )),
        (_, false) => Err(format!("restoring saved limits: {}", failures.join("; "))),
    }
}

/// Applies one effect that changes a limit or a rule; the answer goes to the status bar.
fn apply<S: System>(
    system: &mut S,
    global: &Global,
    files: Files<'_>,
    effect: &Effect,
) -> Result<String, String> {
    let done = match effect {
        Effect::SetLimit {
            process,
            name,
            up,
            down,
        } => set_limit(system, global, *process, name, *up, *down),
        Effect::ClearLimit { process, name } => {
            set_limit(system, global, *process, name, None, None).and_then(|text| {
                forget_saved(system, files.saved, *process)?;
                Ok(text)
            })
        }
        Effect::SetRule {
            target,
            up,
            down,
            each,
            save,
        } => {
            let rates = (*up, *down);
            super::tui_rules::set_rule(system, global, files.rules, target, rates, *each, *save)
        }
        Effect::LiftRule(target) => {
            super::tui_rules::lift_held(system, global, files.rules, target)
        }
        Effect::Inspect(_)
        | Effect::OfferTargets(_)
        | Effect::ListRules
        | Effect::ReadHistory(_)
        | Effect::Quit => {
            return Ok(String::new());
        }
    };
    done.map_err(|error| {
        format!(
            "limit failed: {}",
            chadthrottle_kernel::describe(error.as_ref())
        )
    })
}

/// Sets `process`'s limits as the dialog says, in one request: an empty field (`None`)
/// lifts that direction.
fn set_limit<S: System>(
    system: &mut S,
    global: &Global,
    process: ProcessRef,
    name: &str,
    up: Option<u64>,
    down: Option<u64>,
) -> anyhow::Result<String> {
    if !system.is_alive(process) {
        anyhow::bail!("PID {} has exited", process.pid);
    }
    let limit = |rate: Option<u64>| {
        let rate = chadthrottle_core::Rate::new(rate?)?;
        Some(DirectionLimit {
            rate: rate.bytes_per_sec(),
            burst: default_burst(rate).bytes(),
            // the backends --upload-backend / --download-backend chose, as for `limit`
            enforcement: Default::default(),
            by_default: false,
        })
    };
    let change = PerDirection {
        up: Change::set_or_lift(limit(up)),
        down: Change::set_or_lift(limit(down)),
    };
    super::limit::apply(system, global, process.pid, change, None)?;
    if up.is_none() && down.is_none() {
        return Ok(format!("{name} (PID {}): limit removed", process.pid));
    }
    let text = |d: Direction, rate: Option<u64>| {
        format!(
            "{d} {}",
            rate.map_or("unlimited".to_owned(), chadthrottle_core::rate::format_rate)
        )
    };
    Ok(format!(
        "{name} (PID {}): {}, {}",
        process.pid,
        text(Direction::Down, down),
        text(Direction::Up, up)
    ))
}

/// The app's loop: draws after each event, hands events to the app and applies the
/// effects it returns, until it quits, the channel closes or `terminated` is set.
fn event_loop<S: System, B: ratatui::backend::Backend>(
    system: &mut S,
    global: &Global,
    files: Files<'_>,
    app: &mut App,
    terminal: &mut ratatui::Terminal<B>,
    inbox: &Receiver<Event>,
    terminated: &AtomicBool,
) -> anyhow::Result<()>
where
    B::Error: Send + Sync + 'static,
{
    let mut dirty = true;
    loop {
        // drawn only after something happened: idle, the TUI wakes once a second
        if dirty {
            terminal.draw(|frame| chadthrottle_tui::view::draw(frame, app))?;
        }
        let event = match inbox.recv_timeout(Duration::from_millis(200)) {
            Ok(event) => event,
            Err(RecvTimeoutError::Timeout) => {
                if terminated.load(Ordering::Relaxed) {
                    return Ok(());
                }
                dirty = false;
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        };
        dirty = true;
        for effect in app.handle(event) {
            match effect {
                Effect::Quit => return Ok(()),
                Effect::Inspect(process) => {
                    let details = super::access::details(system, process);
                    app.handle(Event::Details(details));
                }
                Effect::OfferTargets(process) => {
                    let offers = super::tui_rules::offers(system, global, process);
                    app.handle(Event::Targets { process, offers });
                }
                Effect::ListRules => {
                    let listed = super::rules::held(system, global).map_err(|error| {
                        format!(
                            "cannot list the rules: {}",
                            chadthrottle_kernel::describe(error.as_ref())
                        )
                    });
                    app.handle(match listed {
                        Ok(rules) => Event::Rules(rules),
                        Err(error) => Event::Done(Err(error)),
                    });
                }
                Effect::ReadHistory(range) => {
                    let now = system.now_unix();
                    let answer = super::tui_history::read(files.config, now, range);
                    app.handle(Event::History(answer));
                }
                effect => {
                    let done = apply(system, global, files, &effect);
                    app.handle(Event::Done(done));
                }
            }
        }
        if terminated.load(Ordering::Relaxed) {
            return Ok(());
        }
    }
}

/// Opens the usage source, restores saved limits (with `restore_saved`) and builds the
/// app; returns it with the source for the collector.
fn prepare<S: System>(
    system: &mut S,
    global: &Global,
    saved: Option<&Path>,
    restore_saved: bool,
) -> (App, S::Usage) {
    let refused = super::access::fallback_reason(system, global);
    let (mut source, note) = system.usage(&global.datapath(), refused);
    let (kind, layer) = source.kind();
    let read_only = (kind == Source::SockDiag).then(|| note.clone().unwrap_or_default());
    let color = std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    let interval_ms = u64::try_from(INTERVAL.as_millis()).unwrap_or(1000);
    let mut app = App::new(kind, layer, note, interval_ms, read_only, color);
    if let Some(path) = saved.filter(|_| restore_saved && kind == Source::Ebpf) {
        let current = source
            .limits()
            .map(|limits| limits.keys().map(|p| p.pid).collect())
            .unwrap_or_default();
        match restore(system, global, path, &current) {
            Ok(text) if text.is_empty() => {}
            outcome => {
                app.handle(Event::Done(outcome));
            }
        }
    }
    (app, source)
}

/// Proves every backend (slow: it loads programs) and sends the answers once, with what
/// the kernel makes the datapath do without.
fn probe_backends<S: System>(system: &S, events: &Sender<Event>) {
    let _app_gone = events.send(Event::Degraded(system.degraded()));
    let _app_gone = events.send(Event::Backends(super::backends::proven(system)));
}

pub fn run<S: System + Clone + Send + 'static>(
    system: &mut S,
    global: &Global,
    restore_saved: bool,
    rules_file: &Path,
    config: Option<&Path>,
) -> anyhow::Result<()> {
    let saved = saved_path(system, global);
    let (mut app, source) = prepare(system, global, saved.as_deref(), restore_saved);

    let terminated = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&terminated))?;
    // ratatui::init restores the terminal on panic too
    let mut terminal = ratatui::init();
    execute!(std::io::stdout(), EnableMouseCapture)?;
    let outcome = (|| -> anyhow::Result<()> {
        let (events, inbox) = mpsc::channel();
        let size = terminal.size()?;
        app.handle(Event::Resize(size.width, size.height));
        let (feed, prober) = (events.clone(), events.clone());
        let (machine, reader) = (system.clone(), system.clone());
        std::thread::spawn(move || probe_backends(&machine, &prober));
        std::thread::spawn(move || collect(&reader, source, &feed, INTERVAL));
        std::thread::spawn(move || input(&events));
        let files = Files {
            saved: saved.as_deref(),
            rules: rules_file,
            config,
        };
        event_loop(
            system,
            global,
            files,
            &mut app,
            &mut terminal,
            &inbox,
            &terminated,
        )
    })();
    let _ = execute!(std::io::stdout(), DisableMouseCapture);
    ratatui::restore();
    outcome
}

#[cfg(test)]
mod tests {
    use super::super::testing::{CURL, WGET, machine, ok, with_readings};
    use super::*;
    use crate::cli::Cli;
    use chadthrottle_core::fake::FakeSystem;
    use chadthrottle_tui::fixtures::usage;
    use clap::Parser as _;
    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    /// Global options with the saved limits in a directory of this test's own (removed when
    /// the returned guard drops, even when the test fails), and the rules file beside them.
    fn global(test: &str) -> (Global, tempfile::TempDir, PathBuf) {
        let dir = tempfile::Builder::new()
            .prefix(&format!("chadthrottle-tui-test-{test}-"))
            .tempdir()
            .expect("a temporary directory");
        let path = dir.path().join("saved-limits.json");
        let cli = Cli::try_parse_from([
            "chadthrottle",
            "--saved-limits",
            path.to_str().expect("a UTF-8 temp path"),
        ])
        .expect("parses");
        let rules = dir.path().join("rules.toml");
        (cli.global, dir, rules)
    }

    fn path(global: &Global) -> &Path {
        global
            .saved_limits
            .as_deref()
            .expect("the test names a file")
    }

    fn files<'a>(global: &'a Global, rules: &'a Path) -> Files<'a> {
        Files {
            saved: Some(path(global)),
            rules,
            config: None,
        }
    }

    fn saved(system: &FakeSystem, global: &Global) -> SavedLimits {
        load_saved(system, path(global))
    }

    const CURL_REF: ProcessRef = ProcessRef {
        pid: CURL,
        start_time: 100,
    };

    fn set(
        system: &mut FakeSystem,
        files: Files<'_>,
        global: &Global,
        up: Option<u64>,
        down: Option<u64>,
    ) -> String {
        let effect = Effect::SetLimit {
            process: CURL_REF,
            name: "curl".into(),
            up,
            down,
        };
        apply(system, global, files, &effect).expect("applied")
    }

    #[test]
    fn the_dialog_sets_and_lifts_a_pid_limit_in_one_request_and_saves_nothing() {
        let (global, _dir, rules) = global("dialog");
        let files = files(&global, &rules);
        let mut system = machine();
        let text = set(&mut system, files, &global, Some(1 << 20), Some(2 << 20));
        assert_eq!(text, "curl (PID 4242): down 2MB/s, up 1MB/s");
        // an emptied upload field lifts the upload, in the same one request
        let text = set(&mut system, files, &global, None, Some(2 << 20));
        assert_eq!(text, "curl (PID 4242): down 2MB/s, up unlimited");
        {
            let machine = system.machine();
            assert_eq!(machine.requests, 2, "one request per dialog");
            let limit = &machine.limits[&CURL];
            assert_eq!(
                (limit.limits.up, limit.limits.down.map(|l| l.rate)),
                (None, Some(2 << 20))
            );
        }
        assert!(
            !path(&global).exists() && !rules.exists(),
            "a PID limit lasts as long as its process: nothing is written"
        );
        let clear = Effect::ClearLimit {
            process: CURL_REF,
            name: "curl".into(),
        };
        assert_eq!(
            apply(&mut system, &global, files, &clear),
            Ok("curl (PID 4242): limit removed".into())
        );
        assert!(system.machine().limits.is_empty());
    }

    #[test]
    fn a_process_that_went_is_refused_in_the_status_bar() {
        let (global, _dir, rules) = global("gone");
        let mut system = machine();
        system.machine().exit(CURL);
        let effect = Effect::SetLimit {
            process: CURL_REF,
            name: "curl".into(),
            up: Some(1024),
            down: None,
        };
        assert_eq!(
            apply(&mut system, &global, files(&global, &rules), &effect),
            Err("limit failed: PID 4242 has exited".into())
        );
        assert_eq!(system.machine().requests, 0);
    }

    #[test]
    fn limits_saved_by_earlier_versions_come_back_for_the_same_processes_only() {
        let (global, _dir, rules) = global("restore");
        let mut system = machine();
        let mut file = SavedLimits::default();
        file.set(SavedLimit {
            pid: CURL,
            exe: "/usr/bin/curl".into(),
            start_time: 100,
            name: "curl".into(),
            up: Some(1 << 20),
            down: None,
        });
        // wget's saved limit is for a run that started at another time: never restored
        file.set(SavedLimit {
            pid: WGET,
            exe: "/usr/bin/wget".into(),
            start_time: 999,
            name: "wget".into(),
            up: Some(1),
            down: None,
        });
        store_saved(&system, path(&global), &file).expect("stored");
        assert_eq!(
            restore(&mut system, &global, path(&global), &HashSet::new()),
            Ok("restored 1 saved limit".into())
        );
        let machine = system.machine();
        assert_eq!(machine.limits.keys().copied().collect::<Vec<_>>(), [CURL]);
        drop(machine);
        assert_eq!(
            saved(&system, &global).limits.len(),
            1,
            "the saved limit of a run that is gone is dropped"
        );
        // a process that has a limit now keeps it
        assert_eq!(
            restore(&mut system, &global, path(&global), &HashSet::from([CURL])),
            Ok(String::new())
        );
        // lifted in the TUI, it is forgotten: not set again by the next --restore
        let clear = Effect::ClearLimit {
            process: CURL_REF,
            name: "curl".into(),
        };
        apply(&mut system, &global, files(&global, &rules), &clear).expect("lifted");
        assert!(saved(&system, &global).limits.is_empty());
    }

    fn key(code: KeyCode) -> Event {
        Event::Key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn chars(text: &str) -> impl Iterator<Item = Event> + '_ {
        text.chars().map(|c| key(KeyCode::Char(c)))
    }

    /// Runs the TUI's loop on `system` (which has readings of `processes`) over `keys`,
    /// until they run out; returns the screen as last drawn.
    fn drive(
        system: &mut FakeSystem,
        global: &Global,
        rules: &Path,
        processes: &[(u32, String, u64)],
        keys: Vec<Event>,
    ) -> String {
        drive_with(system, global, files(global, rules), processes, keys)
    }

    /// [`drive`] with the files given.
    fn drive_with(
        system: &mut FakeSystem,
        global: &Global,
        files: Files<'_>,
        processes: &[(u32, String, u64)],
        keys: Vec<Event>,
    ) -> String {
        with_readings(system, processes);
        let (mut app, mut source) = prepare(system, global, Some(path(global)), true);
        let (events, inbox) = mpsc::channel();
        events.send(Event::Resize(100, 20)).expect("send");
        for _ in 0..3 {
            let reading = source.read().expect("reading");
            events
                .send(Event::Update {
                    reading,
                    limits: source.limits().expect("limits"),
                })
                .expect("send");
        }
        for event in keys {
            events.send(event).expect("send");
        }
        drop(events);
        let mut terminal =
            ratatui::Terminal::new(ratatui::backend::TestBackend::new(100, 20)).expect("terminal");
        event_loop(
            system,
            global,
            files,
            &mut app,
            &mut terminal,
            &inbox,
            &AtomicBool::new(false),
        )
        .expect("the loop ends when the channel closes");
        terminal
            .backend()
            .buffer()
            .content()
            .iter()
            .map(|cell| cell.symbol())
            .collect()
    }

    #[test]
    fn the_loop_applies_what_the_keys_ask_and_shows_the_outcome() {
        let (global, _dir, rules) = global("loop");
        let mut system = machine();
        let mut keys = vec![key(KeyCode::Char('t'))];
        keys.extend(chars("500K"));
        keys.push(key(KeyCode::Enter));
        let screen = drive(
            &mut system,
            &global,
            &rules,
            &[usage(CURL, "curl", 1000)],
            keys,
        );
        let limit = system
            .machine()
            .limits
            .get(&CURL)
            .cloned()
            .expect("limited");
        assert_eq!(limit.limits.down.map(|l| l.rate), Some(500 << 10));
        assert_eq!(limit.limits.up, None);
        assert!(
            screen.contains("curl (PID 4242): down 500KB/s, up unlimited"),
            "the outcome is in the status bar: {screen}"
        );
    }

    /// A database written through the store: curl moved 30 MB an hour ago and 50 MB
    /// three days ago, wget under the rule `downloads` 2 MB an hour ago; and a
    /// configuration naming it.
    fn usage_database(dir: &Path, now: u64) -> PathBuf {
        use chadthrottle_core::tally::{Bytes, Checkpoint, Increment};
        use chadthrottle_core::usage_history::Application;
        use chadthrottle_store::{Sample, Store};
        let database = dir.join("usage.db");
        let mut store = Store::open(&database).expect("open the database");
        let sample = |pid: u32, exe: &str, rule: Option<&str>, rx: u64| Sample {
            increment: Increment {
                process: ProcessRef { pid, start_time: 1 },
                internet: Bytes {
                    rx_bytes: rx,
                    tx_bytes: rx / 100,
                },
                local: Bytes::default(),
                rx_packets: rx / 1000,
                tx_packets: rx / 100_000,
            },
            name: exe.rsplit('/').next().unwrap_or(exe).to_owned(),
            application: Application::of(Some(exe), "x", rule),
            user: "chad".into(),
        };
        let checkpoint = Checkpoint {
            epoch: "e".into(),
            counters: HashMap::new(),
        };
        let hour_ago = [
            sample(CURL, "/usr/bin/curl", None, 30_000_000),
            sample(WGET, "/usr/bin/wget", Some("downloads"), 2_000_000),
        ];
        let days_ago = [sample(CURL, "/usr/bin/curl", None, 50_000_000)];
        store
            .record(now - 3 * 86_400, &days_ago, &checkpoint)
            .expect("write");
        store
            .record(now - 3600, &hour_ago, &checkpoint)
            .expect("write");
        drop(store);
        let config = dir.join("config.toml");
        let text = format!("database = \"{}\"\n", database.display());
        std::fs::write(&config, text).expect("write the configuration");
        config
    }

    #[test]
    fn the_history_view_reads_the_daemons_database_for_each_range() {
        let (global, dir, rules) = global("history");
        let mut system = machine();
        // 2026-11-30 12:00 UTC
        let now = 1_795_996_800 + 12 * 3600;
        system.machine().now_unix = now;
        let config = usage_database(dir.path(), now);
        let files = Files {
            config: Some(&config),
            ..files(&global, &rules)
        };
        let processes = [usage(CURL, "curl", 1000)];
        let mut keys = vec![key(KeyCode::Char('u'))];
        let today = drive_with(&mut system, &global, files, &processes, keys.clone());
        let line = |screen: &str, app: &str| {
            // the screen is one string of 100-column lines
            let chars: Vec<char> = screen.chars().collect();
            chars
                .chunks(100)
                .map(|line| line.iter().collect::<String>())
                .find(|line| line.starts_with(app))
                .unwrap_or_default()
        };
        assert!(
            line(&today, "/usr/bin/curl ").contains(" 28.61MB "),
            "{today}"
        );
        assert!(
            line(&today, "rule downloads ").contains(" 1.91MB "),
            "{today}"
        );
        // the application a rule holds is selected and charted like an executable
        let rule_keys = vec![key(KeyCode::Char('u')), key(KeyCode::Down)];
        let selected = drive_with(&mut system, &global, files, &processes, rule_keys);
        assert!(
            selected.contains("rule downloads: by UTC day"),
            "{selected}"
        );
        keys.push(key(KeyCode::Tab));
        let week = drive_with(&mut system, &global, files, &processes, keys);
        assert!(week.contains("last 7 days"), "{week}");
        // 30 MB + 50 MB three days earlier
        assert!(
            line(&week, "/usr/bin/curl ").contains(" 76.29MB "),
            "{week}"
        );
        assert!(week.contains("/usr/bin/curl: by UTC day"), "{week}");
    }

    #[test]
    fn the_history_view_says_where_the_database_is_missing() {
        let (global, dir, rules) = global("history-missing");
        let mut system = machine();
        let config = dir.path().join("config.toml");
        let database = dir.path().join("none.db");
        let text = format!("database = \"{}\"\n", database.display());
        std::fs::write(&config, text).expect("write the configuration");
        let gone = dir.path().join("gone.toml");
        let cases = [
            (
                &config,
                format!("no usage history: {} does not exist", database.display()),
            ),
            // a named configuration that cannot be read says so, with its path
            (
                &gone,
                format!("cannot read the usage history {}:", gone.display()),
            ),
        ];
        for (named, said) in cases {
            let named = Files {
                config: Some(named),
                ..files(&global, &rules)
            };
            let keys = vec![key(KeyCode::Char('u'))];
            let screen = drive_with(&mut system, &global, named, &[usage(CURL, "curl", 1)], keys);
            assert!(screen.contains(&said), "{screen}");
        }
    }

    #[test]
    fn the_collector_says_what_groups_the_processes_and_the_table_groups_by_it() {
        let mut system = machine();
        let processes = [
            usage(CURL, "curl", 1000),
            usage(WGET, "wget", 500),
            usage(2, "kthreadd", 10),
        ];
        with_readings(&system, &processes);
        ok(&mut system, &["limit", "--name", "wget", "--up", "2M"]);
        let (global, _dir, _rules) = global("membership");
        let (mut source, _) = system.usage(&global.datapath(), None);
        let reading = source.read().expect("reading");
        let mut known = HashMap::new();
        let found = membership(&system, &mut source, &reading, &mut known);
        let at = |pid| ProcessRef { pid, start_time: 1 };
        let mut exes: Vec<(u32, &str)> = found
            .exes
            .iter()
            .map(|(p, exe)| (p.pid, exe.as_str()))
            .collect();
        exes.sort_unstable();
        assert_eq!(
            exes,
            [(CURL, "/usr/bin/curl"), (WGET, "/usr/bin/wget")],
            "the kernel thread has none"
        );
        assert_eq!(
            found.rules.get(&at(WGET)).map(|(name, _)| name.as_str()),
            Some("name wget")
        );
        // curl exits: it keeps the executable it had
        system.machine().processes.remove(&CURL);
        let again = membership(&system, &mut source, &reading, &mut known);
        assert_eq!(
            again.exes.get(&at(CURL)).map(String::as_str),
            Some("/usr/bin/curl")
        );
        let layer = chadthrottle_core::usage::Layer::TransportPayload;
        let mut app = App::new(Source::Ebpf, layer, None, 1000, None, false);
        app.handle(Event::Update {
            reading,
            limits: HashMap::new(),
        });
        app.handle(Event::Membership(found));
        app.handle(key(KeyCode::Char('a')));
        let grouping = app.grouping.as_ref().expect("grouped");
        let mut names: Vec<&str> = grouping
            .applications
            .iter()
            .map(|a| a.name.as_str())
            .collect();
        names.sort_unstable();
        assert_eq!(names, ["curl", "kthreadd", "name wget"]);
    }

    #[test]
    fn another_users_executable_is_not_read_where_proc_hides_it() {
        use chadthrottle_core::access::HidePid;
        use chadthrottle_core::process::Uids;
        let system = machine();
        with_readings(&system, &[usage(CURL, "curl", 1000)]);
        {
            let mut machine = system.machine();
            machine.caller = Uids::of(65_534);
            machine.hidepid = HidePid::NoAccess;
        }
        let listed = HashSet::from([ProcessRef {
            pid: CURL,
            start_time: 1,
        }]);
        let exes = super::super::access::executables(&system, &listed, &mut HashMap::new());
        assert!(exes.is_empty(), "root's curl, seen by nobody: {exes:?}");
        system.machine().hidepid = HidePid::Off;
        let exes = super::super::access::executables(&system, &listed, &mut HashMap::new());
        assert_eq!(exes.len(), 1, "as ps shows it: {exes:?}");
    }

    #[test]
    fn the_dialog_limits_the_executable_saves_it_and_the_rules_view_lists_it() {
        let (global, _dir, rules) = global("exe");
        let mut system = machine();
        // the dialog offers this process, its tree, its executable: → → chooses the last
        let mut keys = vec![
            key(KeyCode::Char('t')),
            key(KeyCode::Right),
            key(KeyCode::Right),
        ];
        keys.extend(chars("2M"));
        keys.extend([key(KeyCode::Enter), key(KeyCode::Char('R'))]);
        let processes = [usage(CURL, "curl", 1000), usage(WGET, "wget", 10)];
        let screen = drive(&mut system, &global, &rules, &processes, keys);
        let listed = super::super::testing::rules_json(&mut system);
        let rule = &listed[0];
        assert_eq!(
            (
                rule["target"].as_str(),
                rule["down"].as_u64(),
                rule["mode"].as_str()
            ),
            (Some("exe /usr/bin/curl"), Some(2 << 20), Some("shared"))
        );
        assert_eq!(listed.len(), 1);
        let file = std::fs::read_to_string(&rules).expect("the rule is saved");
        assert!(file.contains("exe = \"/usr/bin/curl\""), "{file}");
        assert!(
            screen.contains("exe-curl")
                && screen.contains("↓2MB/s ↑-")
                && screen.contains("1000B/s"),
            "the rules view lists it, with its member's rate: {screen}"
        );
        assert!(system.machine().limits.is_empty(), "no PID limit was set");
        assert!(
            !path(&global).exists(),
            "no saved-limits file is made: the rule is in the rules file"
        );
    }
}
