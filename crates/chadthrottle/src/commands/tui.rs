//! `chadthrottle` without a command: the terminal UI. This module is the TUI's runner:
//! the terminal, the threads that feed the app's one event channel (input, readings),
//! and the one place where the app's effects reach the kernel.

use crate::cli::Global;
use crate::usage_source::UsageSource;
use anyhow::Context as _;
use chadthrottle_core::Direction;
use chadthrottle_core::PerDirection;
use chadthrottle_core::ProcessRef;
use chadthrottle_core::backend::{Backend, Change};
use chadthrottle_core::bucket::default_burst;
use chadthrottle_core::saved::{SavedLimit, SavedLimits};
use chadthrottle_core::status::DirectionLimit;
use chadthrottle_core::usage::Source;
use chadthrottle_kernel::Datapath;
use chadthrottle_tui::{App, Effect, Event};
use ratatui::crossterm::event::{self as term, DisableMouseCapture, EnableMouseCapture};
use ratatui::crossterm::execute;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::Duration;

const INTERVAL: Duration = Duration::from_secs(1);

/// Sends the backends' availability once, then reads the usage source every interval and
/// sends the readings, until the app is gone.
fn collect(mut source: UsageSource, events: Sender<Event>) {
    let backends = chadthrottle_kernel::probe::descriptors()
        .into_iter()
        .map(|backend| {
            let availability = chadthrottle_kernel::probe::availability(&backend);
            (backend, availability)
        })
        .collect();
    if events.send(Event::Backends(backends)).is_err() {
        return;
    }
    loop {
        let update = source.read().map(|reading| Event::Update {
            reading,
            limits: source.limits().unwrap_or_default(),
        });
        let event = update.unwrap_or_else(|error| Event::Done(Err(format!("{error:#}"))));
        if events.send(event).is_err() {
            return;
        }
        std::thread::sleep(INTERVAL);
    }
}

/// Terminal input, as events, until the app is gone.
fn input(events: Sender<Event>) {
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

fn load_saved(path: &std::path::Path) -> SavedLimits {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

fn store_saved(path: &std::path::Path, saved: &SavedLimits) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let text = serde_json::to_vec_pretty(saved)?;
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Remembers (or forgets) a limit the TUI set, for `--restore`.
fn remember(
    global: &Global,
    process: ProcessRef,
    name: &str,
    up: Option<u64>,
    down: Option<u64>,
) -> anyhow::Result<()> {
    let Some(exe) = chadthrottle_kernel::procs::exe(process.pid) else {
        return Ok(()); // gone, or no executable to match it by
    };
    let mut saved = load_saved(&global.saved_limits);
    saved.set(SavedLimit {
        pid: process.pid,
        exe,
        start_time: process.start_time,
        name: name.to_owned(),
        up,
        down,
    });
    store_saved(&global.saved_limits, &saved)
}

/// Sets saved limits again for processes that still run and have no limit now.
fn restore(global: &Global, current: &std::collections::HashSet<u32>) -> Result<String, String> {
    let mut saved = load_saved(&global.saved_limits);
    let found = saved.restore(&chadthrottle_kernel::procs::running());
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
        match set_limit(global, process, &limit.name, limit.up, limit.down) {
            Ok(_) => restored += 1,
            Err(error) => failures.push(format!("PID {pid}: {error:#}")),
        }
    }
    store_saved(&global.saved_limits, &saved).map_err(|error| format!("{error:#}"))?;
    match (restored, failures.is_empty()) {
        (0, true) => Ok(String::new()),
        (n, true) => Ok(format!(
            "restored {n} saved limit{}",
            if n == 1 { "" } else { "s" }
        )),
        (_, false) => Err(format!("restoring saved limits: {}", failures.join("; "))),
    }
}

/// Applies one effect; the answer goes to the status bar.
fn apply(global: &Global, effect: &Effect) -> Result<String, String> {
    let outcome = match effect {
        Effect::SetLimit {
            process,
            name,
            up,
            down,
        } => set_limit(global, *process, name, *up, *down).and_then(|text| {
            remember(global, *process, name, *up, *down)?;
            Ok(text)
        }),
        Effect::ClearLimit { process, name } => {
            clear_limit(global, *process, name).and_then(|text| {
                remember(global, *process, name, None, None)?;
                Ok(text)
            })
        }
        Effect::Inspect(_) | Effect::Quit => return Ok(String::new()),
    };
    outcome.map_err(|error| {
        format!(
            "limit failed: {}",
            chadthrottle_kernel::describe(error.as_ref())
        )
    })
}

fn same_process(process: ProcessRef) -> anyhow::Result<()> {
    match chadthrottle_kernel::procs::start_time(process.pid) {
        Some(start) if start == process.start_time => Ok(()),
        _ => anyhow::bail!("PID {} has exited", process.pid),
    }
}

fn set_limit(
    global: &Global,
    process: ProcessRef,
    name: &str,
    up: Option<u64>,
    down: Option<u64>,
) -> anyhow::Result<String> {
    same_process(process)?;
    let limit = |rate: Option<u64>| {
        let rate = chadthrottle_core::Rate::new(rate?)?;
        Some(DirectionLimit {
            rate: rate.bytes_per_sec(),
            burst: default_burst(rate).bytes(),
            // the backends --upload-backend / --download-backend chose, as for `limit`
            enforcement: Default::default(),
        })
    };
    // an empty field lifts that direction, in the same request
    let change = PerDirection {
        up: Change::set_or_lift(limit(up)),
        down: Change::set_or_lift(limit(down)),
    };
    super::limit::apply(global, process.pid, change, None)?;
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

fn clear_limit(global: &Global, process: ProcessRef, name: &str) -> anyhow::Result<String> {
    let all = PerDirection {
        up: true,
        down: true,
    };
    if let Some(mut datapath) = Datapath::open(&global.pin_dir)? {
        datapath.remove(process.pid, all)?;
    }
    Ok(format!("{name} (PID {}): limit removed", process.pid))
}

pub fn run(global: &Global, restore_saved: bool) -> anyhow::Result<()> {
    let (mut source, note) = UsageSource::open(global, false);
    let (kind, layer) = source.kind();
    let read_only = (kind == Source::SockDiag).then(|| note.clone().unwrap_or_default());
    let color = std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    let interval_ms = u64::try_from(INTERVAL.as_millis()).unwrap_or(1000);
    let mut app = App::new(kind, layer, note, interval_ms, read_only, color);
    if restore_saved && kind == Source::Ebpf {
        let current = source
            .limits()
            .map(|limits| limits.keys().map(|p| p.pid).collect())
            .unwrap_or_default();
        match restore(global, &current) {
            Ok(text) if text.is_empty() => {}
            outcome => {
                app.handle(Event::Done(outcome));
            }
        }
    }

    let terminated = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&terminated))?;
    // ratatui::init restores the terminal on panic too
    let mut terminal = ratatui::init();
    execute!(std::io::stdout(), EnableMouseCapture)?;
    let outcome = (|| -> anyhow::Result<()> {
        let (events, inbox) = mpsc::channel();
        let size = terminal.size()?;
        app.handle(Event::Resize(size.width, size.height));
        let feed = events.clone();
        std::thread::spawn(move || collect(source, feed));
        std::thread::spawn(move || input(events));
        let mut dirty = true;
        loop {
            // drawn only after something happened: idle, the TUI wakes once a second
            if dirty {
                terminal.draw(|frame| chadthrottle_tui::view::draw(frame, &app))?;
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
                if effect == Effect::Quit {
                    return Ok(());
                }
                if let Effect::Inspect(process) = effect {
                    let details =
                        chadthrottle_kernel::procs::details(process.pid, process.start_time);
                    app.handle(Event::Details(details));
                    continue;
                }
                let done = apply(global, &effect);
                app.handle(Event::Done(done));
            }
            if terminated.load(Ordering::Relaxed) {
                return Ok(());
            }
        }
    })();
    let _ = execute!(std::io::stdout(), DisableMouseCapture);
    ratatui::restore();
    outcome
}
