//! `ius`: the intune-user-status SDK as a command, over its public Rust API only (as any user's
//! program): `update`, `get`, `list`, `create`, `delete`, `bulk`, `outbox`, `emulator`.
//!
//! - [`args`]: the command line (clap); [`connect`]: the client from `--config` or `--token`;
//! - [`resource`]: the single calls; [`bulk`]: JSON lines through the bulk call, with
//!   [`progress`]'s bar; [`outbox`]: an agent's outbox file;
//! - [`exit`]: the exit codes, declared once, and the error JSON on standard error.

mod args;
mod bulk;
mod connect;
mod exit;
mod outbox;
mod progress;
mod resource;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use crate::args::{Cli, Command};
use crate::exit::{Failure, Outcome};

fn main() -> ExitCode {
    let matches = match Cli::command().after_help(exit::help()).try_get_matches() {
        Ok(matches) => matches,
        Err(err) => return usage(&err),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => return usage(&err),
    };
    if let Command::Emulator { args } = cli.command {
        return ius_emulator::command_line::main("ius emulator", args);
    }
    match run(&cli) {
        Ok(()) => ExitCode::from(Outcome::Ok.code()),
        Err(failure) => failure.report(),
    }
}

/// Runs a command that uses a client, writing its answer to standard output.
fn run(cli: &Cli) -> Result<(), Failure> {
    let client = connect::client(&cli.connection, cli.command.sends())?;
    let mut out = std::io::stdout().lock();
    match &cli.command {
        Command::Resource(command) => resource::run(&client, command, &mut out),
        Command::Bulk { input } => bulk::run(&client, input, &mut out),
        Command::Outbox { path, action } => outbox::run(&client, path, action, &mut out),
        // Run by `main` itself: it needs no client.
        Command::Emulator { .. } => Ok(()),
    }
    // `--metrics` is to print the client's metrics JSON here, once the SDK collects them.
}

/// clap's own message (usage errors, `--help`, `--version`), with the exit code of the table.
fn usage(err: &clap::Error) -> ExitCode {
    let _ = err.print();
    if err.use_stderr() {
        ExitCode::from(Outcome::Usage.code())
    } else {
        ExitCode::from(Outcome::Ok.code())
    }
}
