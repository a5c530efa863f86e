//! `chadthrottle`: the command line.

mod cli;
mod commands;
mod metrics_server;
mod render;
mod top_view;
mod usage_view;

use clap::Parser as _;
use clap::error::ErrorKind;
use cli::Cli;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error)
            if matches!(
                error.kind(),
                ErrorKind::ValueValidation | ErrorKind::ArgumentConflict
            ) =>
        {
            // a refused value, or two options that exclude each other: one line that
            // names them and what is accepted
            let rendered = error.render().to_string();
            let first = rendered.lines().next().unwrap_or_default();
            eprintln!("chadthrottle: {}", first.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
        Err(error) => error.exit(),
    };
    if let Err(conflict) = cli.check() {
        eprintln!("chadthrottle: {conflict}");
        return ExitCode::from(2);
    }
    let mut system = chadthrottle_kernel::Kernel;
    let outcome = commands::run(&cli, &mut system, &mut std::io::stdout().lock());
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        // whoever read the output stopped reading (`| head`): not a failure of ours
        Err(error) if commands::is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            if let Some(status) = error.downcast_ref::<commands::run::CommandStatus>() {
                // `run`'s command ended so: its status is run's, and it said what it had to say
                return ExitCode::from(status.0);
            }
            eprintln!(
                "chadthrottle: {}",
                chadthrottle_kernel::describe(error.as_ref())
            );
            ExitCode::FAILURE
        }
    }
}
