//! One module per command. Each takes the parsed arguments and the machine (the core's
//! `System` seam: the kernel in production, the core's fake in tests), does the work and
//! writes what it has to say to `out`; errors go back to `main`, which prints them on one
//! line and exits 1.

mod access;
pub mod apply;
pub mod backends;
pub mod completions;
mod config_file;
pub mod daemon;
pub mod foreground;
pub mod limit;
pub mod man_pages;
pub mod reset;
pub mod rule_change;
pub mod rules;
pub mod run;
pub mod save;
pub mod status;
pub mod top;
pub mod tui;
pub mod tui_history;
pub mod tui_rules;
pub mod unlimit;
pub mod usage;

#[cfg(test)]
mod testing;

use crate::cli::{Cli, Command, RULES_FILE, Selected};
use chadthrottle_core::system::System;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Runs the command `cli` names on `system`.
pub fn run<S: System + Clone + Send + 'static>(
    cli: &Cli,
    system: &mut S,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let global = &cli.global;
    match &cli.command {
        Some(Command::Limit(args)) => match args.target.selected().map_err(anyhow::Error::msg)? {
            Selected::Pid(pid) => limit::run(system, global, pid, args, out),
            Selected::Rule(target) => match &args.save {
                Some(file) => save::run(system, global, &target, args, file, out),
                None => rule_change::set(system, global, &target, args, None, out).map(drop),
            },
        },
        Some(Command::Unlimit(args)) => match args.target.selected().map_err(anyhow::Error::msg)? {
            Selected::Pid(pid) => unlimit::run(system, global, pid, args, out),
            Selected::Rule(target) => rule_change::remove(system, global, &target, out),
        },
        Some(Command::Status(args)) => status::run(system, global, args, out),
        Some(Command::Rules(args)) => rules::run(system, global, args.json, out),
        Some(Command::Apply(args)) => apply::run(system, global, &args.file, args.dry_run, out),
        Some(Command::Reset) => reset::run(system, global, out),
        Some(Command::Backends(args)) => backends::run(system, args.json, out),
        Some(Command::Top(args)) => top::run(system, global, args, out),
        Some(Command::Run(args)) => run::run(system, global, args),
        Some(Command::Completions(args)) => completions::run(args.shell, out),
        Some(Command::Man(args)) => man_pages::run(&args.dir, out),
        Some(Command::Daemon(args)) => {
            let stop = stop_on_signals()?;
            daemon::run(system, global, args, &stop, out)
        }
        Some(Command::Usage(args)) => usage::run(system, args, out),
        None if cli.list_backends => backends::run(system, false, out),
        None => match cli.pid {
            Some(pid) => {
                let stop = stop_on_signals()?;
                let limits = foreground::Foreground {
                    pid,
                    upload: cli.upload_limit,
                    download: cli.download_limit,
                    duration: cli.duration,
                };
                foreground::run(system, global, &limits, &stop, out)
            }
            None => {
                let rules_file = cli.rules_file.as_deref();
                let rules_file = rules_file.unwrap_or(std::path::Path::new(RULES_FILE));
                tui::run(
                    system,
                    global,
                    !cli.no_restore,
                    rules_file,
                    cli.config.as_deref(),
                )
            }
        },
    }
}

/// A flag raised by SIGINT, SIGTERM or SIGHUP, for the commands that run until told
/// to stop.
fn stop_on_signals() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    Ok(stop)
}

/// Whether `error` is a write to a pipe whose reader went away.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
