//! Upstream ChadThrottle's form, kept for its users:
//! `chadthrottle --pid 4242 --download-limit 1M --upload-limit 500K [--duration 30]`.
//! Limits in the foreground and lifts the limit on Ctrl+C, SIGTERM, after `--duration`,
//! or when the process exits. With `--duration` the kernel also holds the expiry, so the
//! limit lapses on time even if this command is killed.

use super::limit;
use crate::cli::Global;
use chadthrottle_core::backend::{Backend, Change};
use chadthrottle_core::system::System;
use chadthrottle_core::{PerDirection, Rate};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What the upstream form asks for.
#[derive(Debug, Clone, Copy)]
pub struct Foreground {
    pub pid: u32,
    pub upload: Option<Rate>,
    pub download: Option<Rate>,
    pub duration: Option<Duration>,
}

/// Limits, waits until `stop` is set, the duration elapses or the process exits, then
/// lifts the limit.
pub fn run<S: System>(
    system: &mut S,
    global: &Global,
    asked: &Foreground,
    stop: &AtomicBool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let change = limit::direction_limits(asked.upload, asked.download, None, None, None)
        .map(|_, limit| Change::set_or_keep(*limit));
    let limited = limit::apply(system, global, asked.pid, change, asked.duration)?;
    limit::print_applied(&limited, system, out)?;
    let limit::Limited {
        mut backend,
        request,
        ..
    } = limited;
    out.flush()?;
    let until = asked.duration.map(|duration| Instant::now() + duration);
    let process = request.target.process;
    let reason = loop {
        if stop.load(Ordering::Relaxed) {
            break "interrupted";
        }
        if until.is_some_and(|until| Instant::now() >= until) {
            break "duration elapsed";
        }
        if !system.is_alive(process) {
            break "process exited";
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    backend.remove(
        asked.pid,
        PerDirection {
            up: true,
            down: true,
        },
    )?;
    writeln!(out, "PID {}: limit removed ({reason})", asked.pid)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{CURL, machine, ok};
    use super::*;
    use crate::cli::Cli;
    use clap::Parser as _;

    #[test]
    fn the_limit_is_lifted_when_the_process_exits_or_on_a_signal() {
        let mut system = machine();
        let cli = Cli::try_parse_from(["chadthrottle", "--pid", "4242", "--upload-limit", "1M"])
            .expect("parses");
        let asked = Foreground {
            pid: CURL,
            upload: cli.upload_limit,
            download: None,
            duration: None,
        };
        let mut out = Vec::new();
        run(
            &mut system,
            &cli.global,
            &asked,
            &AtomicBool::new(true),
            &mut out,
        )
        .expect("interrupted at once");
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("PID 4242 (curl): up 1MB/s"), "{text}");
        assert!(
            text.ends_with("PID 4242: limit removed (interrupted)\n"),
            "{text}"
        );
        assert!(system.machine().limits.is_empty());

        // the process goes while the form waits: the fake's exit hook takes the limit,
        // and the form's own removal finds nothing left and still ends cleanly
        let waiting = system.clone();
        let exit = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            waiting.machine().exit(CURL);
        });
        let mut out = Vec::new();
        run(
            &mut system,
            &cli.global,
            &asked,
            &AtomicBool::new(false),
            &mut out,
        )
        .expect("ends when the process exits");
        exit.join().expect("exit thread");
        let text = String::from_utf8_lossy(&out);
        assert!(text.ends_with("limit removed (process exited)\n"), "{text}");
        assert_eq!(ok(&mut system, &["status"]), "no active limits\n");
    }
}
