//! `chadthrottle`: the command line.

mod cli;
mod commands;
mod render;
mod top_view;
mod usage_source;

use clap::Parser as _;
use clap::error::ErrorKind;
use cli::{Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if error.kind() == ErrorKind::ValueValidation => {
            // a refused value: one line that names it and what is accepted
            let rendered = error.render().to_string();
            let first = rendered.lines().next().unwrap_or_default();
            eprintln!("chadthrottle: {}", first.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
        Err(error) => error.exit(),
    };
    if cli.command.is_some() && (cli.restore || cli.no_restore) {
        eprintln!(
            "chadthrottle: --restore and --no-restore are for the TUI: give them without a command"
        );
        return ExitCode::from(2);
    }
    if cli.command.is_some() && (cli.pid.is_some() || cli.list_backends) {
        eprintln!(
            "chadthrottle: --pid and --list-backends are the upstream form: give them without a command"
        );
        return ExitCode::from(2);
    }
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!(
                "chadthrottle: {}",
                chadthrottle_kernel::describe(error.as_ref())
            );
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let global = &cli.global;
    match &cli.command {
        Some(Command::Limit(args)) => commands::limit::run(global, args),
        Some(Command::Unlimit(args)) => commands::unlimit::run(global, args),
        Some(Command::Status(args)) => commands::status::run(global, args),
        Some(Command::Reset) => commands::reset::run(global),
        Some(Command::Backends(args)) => commands::backends::run(args.json),
        Some(Command::Top(args)) => commands::top::run(global, args),
        None if cli.list_backends => commands::backends::run(false),
        None => match cli.pid {
            Some(pid) => commands::foreground::run(
                global,
                pid,
                cli.upload_limit,
                cli.download_limit,
                cli.duration,
            ),
            None => commands::tui::run(global, !cli.no_restore),
        },
    }
}
