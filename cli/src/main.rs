//! `ius`: the intune-user-status SDK as a command, over its public Rust API only (as any user's
//! program): `update`, `get`, `list`, `create`, `delete`, `bulk`, `outbox`, `emulator`.
//!
//! - [`args`]: the command line (clap); [`connect`]: the client from `--config` or `--token`;
//!   [`input`]: JSON given as itself, `@FILE` or `-`, and the config, never echoed;
//! - [`resource`]: the single calls; [`bulk`]: JSON lines through the bulk call, with
//!   [`progress`]'s bar; [`outbox`]: an agent's outbox file;
//! - [`exit`]: the exit codes, declared once, and the error JSON on standard error.

mod args;
mod bulk;
mod connect;
mod exit;
mod input;
mod outbox;
mod progress;
mod resource;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use intune_user_status::Client;

use crate::args::{Cli, Command};
use crate::exit::{Case, Failure};

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
    let mut measured = None;
    let code = match run(&cli, &mut measured) {
        Ok(()) => ExitCode::from(Case::Ok.code()),
        Err(failure) => failure.report(),
    };
    if let Some(client) = measured {
        print_metrics(&client);
    }
    code
}

/// `--metrics`: the client's metrics JSON, one line on standard error (standard output holds
/// the command's answer, which scripts read).
fn print_metrics(client: &Client) {
    match serde_json::to_string(&client.metrics()) {
        Ok(json) => eprintln!("{json}"),
        Err(err) => eprintln!("ius: the metrics could not be written: {err}"),
    }
}

/// Runs a command that uses a client, writing its answer to standard output; with `--metrics`,
/// leaves the client in `measured` for its metrics.
fn run(cli: &Cli, measured: &mut Option<Client>) -> Result<(), Failure> {
    // Writes to a closed descriptor 1 would vanish unreported (Rust's standard output ignores
    // EBADF), and a file opened later could take its number.
    if !stdout_is_open() {
        return Err(Failure::failed(
            "standard output is closed; nothing was done (redirect it to /dev/null to discard it)",
        ));
    }
    let client = connect::client(&cli.connection, cli.command.needs())?;
    if cli.metrics {
        *measured = Some(client.clone());
    }
    let mut out = std::io::stdout().lock();
    match &cli.command {
        Command::Resource(command) => resource::run(&client, command, &mut out),
        Command::Bulk { input } => bulk::run(&client, input, &mut out),
        Command::Outbox { path, action } => outbox::run(&client, path, action, &mut out),
        // Run by `main` itself: it needs no client.
        Command::Emulator { .. } => Ok(()),
    }
}

/// clap's own message (usage errors, `--help`, `--version`), with the exit code of the table.
fn usage(err: &clap::Error) -> ExitCode {
    let _ = err.print();
    if err.use_stderr() {
        ExitCode::from(Case::Usage.code())
    } else {
        ExitCode::from(Case::Ok.code())
    }
}

/// Whether standard output was open when ius started. Rust's runtime puts `/dev/null`, opened
/// read-write, in place of a closed descriptor 1 (`>&-`); a shell redirects to it write-only.
#[cfg(unix)]
fn stdout_is_open() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let out = std::io::stdout();
    // SAFETY: F_GETFL only reads the flags of a descriptor this process holds.
    let flags = unsafe { libc::fcntl(1, libc::F_GETFL) };
    if flags == -1 {
        return false;
    }
    if flags & libc::O_ACCMODE != libc::O_RDWR {
        return true;
    }
    let opened = out
        .as_fd()
        .try_clone_to_owned()
        .and_then(|fd| std::fs::File::from(fd).metadata());
    match (opened, std::fs::metadata("/dev/null")) {
        (Ok(out), Ok(null)) => (out.dev(), out.ino()) != (null.dev(), null.ino()),
        _ => true,
    }
}
/// Whether standard output is an open handle (a process started without one has none).
#[cfg(windows)]
fn stdout_is_open() -> bool {
    use std::os::windows::io::AsHandle;
    std::io::stdout().as_handle().try_clone_to_owned().is_ok()
}
