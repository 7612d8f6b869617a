//! The `veloflux` binary: command line, configuration, logging and the wiring of every
//! crate into one process. This is the only crate that reads the environment and the only
//! one that knows every other crate.

pub mod cli;
pub mod config;
mod logging;
mod serve;
mod takeover;

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;

/// Exit code for bad usage or invalid input (configuration, arguments).
pub const EXIT_USAGE: u8 = 2;
/// Exit code for a failure while running.
pub const EXIT_FAILURE: u8 = 1;

/// Parses the command line, runs the command and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            let _ = writeln!(std::io::stderr(), "error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}
