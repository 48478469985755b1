//! How `ius` ends: the exit codes, declared once in [`EXIT_CODES`] (which `ius --help` and the
//! README print, and which maps each of the SDK's [`ErrorKind`]s), and the error JSON it writes
//! on standard error when it fails.

use std::fmt::Write as _;
use std::process::ExitCode;

use intune_user_status::{Error, ErrorKind};
use serde_json::{Value, json};

/// Why `ius` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It did what it was asked.
    Ok,
    /// It failed in a way that has no code of its own.
    Failed,
    /// The command line (or a file it names) could not be used.
    Usage,
    /// A bulk run: at least one item failed.
    Partial,
    /// The SDK failed with an error of this kind.
    Error(ErrorKind),
}

/// Every exit code: the outcome, its code, and what it means. Each SDK error kind has its row (a
/// test checks, so a new kind cannot go unnamed); the C API's `ius_status` is the model.
pub const EXIT_CODES: [(Outcome, u8, &str); 16] = [
    (Outcome::Ok, 0, "success"),
    (
        Outcome::Failed,
        1,
        "failed for a reason without a code of its own (e.g. standard output closed)",
    ),
    (
        Outcome::Usage,
        2,
        "bad arguments, an unreadable file, no credentials",
    ),
    (
        Outcome::Partial,
        3,
        "a bulk run where at least one item failed (each result line says why)",
    ),
    (
        Outcome::Error(ErrorKind::Throttled),
        4,
        "Graph answered 429 after the retries, or the client's hold outlasted the time budget",
    ),
    (
        Outcome::Error(ErrorKind::Auth),
        5,
        "no access token could be obtained; nothing was sent to Graph",
    ),
    (
        Outcome::Error(ErrorKind::InvalidInput),
        6,
        "a bad id, route or patch (`field` names it); nothing was sent",
    ),
    (
        Outcome::Error(ErrorKind::Config),
        7,
        "the configuration was rejected (`field` names the key)",
    ),
    (
        Outcome::Error(ErrorKind::Graph),
        8,
        "Graph answered an HTTP error, e.g. 404 (`httpStatus`, `code`, `requestId`)",
    ),
    (
        Outcome::Error(ErrorKind::UnexpectedResponse),
        9,
        "Graph answered something the call cannot accept",
    ),
    (
        Outcome::Error(ErrorKind::Timeout),
        10,
        "no complete response in time",
    ),
    (
        Outcome::Error(ErrorKind::Network),
        11,
        "DNS, connection refused or broken",
    ),
    (
        Outcome::Error(ErrorKind::Tls),
        12,
        "the TLS handshake or certificate check failed",
    ),
    (
        Outcome::Error(ErrorKind::OutboxFull),
        13,
        "the report for a new user status was not stored",
    ),
    (
        Outcome::Error(ErrorKind::Storage),
        14,
        "the outbox file could not be used (`path` names it)",
    ),
    (
        Outcome::Error(ErrorKind::Cancelled),
        15,
        "an interrupt ended the call; a request in flight may or may not have been applied",
    ),
];

impl Outcome {
    /// The error JSON's `status`: the SDK's name for an error kind, or `ius`'s own.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "OK",
            Outcome::Failed => "FAILED",
            Outcome::Usage => "USAGE",
            Outcome::Partial => "PARTIAL",
            Outcome::Error(kind) => kind.name(),
        }
    }

    /// The exit code from [`EXIT_CODES`]; an outcome without a row (a kind newer than the table,
    /// which a test forbids) exits as `Failed`.
    pub fn code(self) -> u8 {
        EXIT_CODES
            .iter()
            .find(|(outcome, _, _)| *outcome == self)
            .map_or(1, |(_, code, _)| *code)
    }
}

/// The exit codes as `ius --help` shows them.
pub fn help() -> String {
    let mut text = String::from("Exit codes:\n");
    for (outcome, code, meaning) in EXIT_CODES {
        let _ = writeln!(text, "  {code:>2}  {:<19} {meaning}", outcome.name());
    }
    text.push_str(
        "On failure, standard error gets one line of error JSON, {\"status\",\"message\",...} as the C API\n\
         writes it; a command line that cannot be read gets its usage message instead.",
    );
    text
}

/// A failed run: how it ends and the error JSON it prints.
#[derive(Debug)]
pub struct Failure {
    outcome: Outcome,
    json: Value,
}

impl Failure {
    /// A failure of `ius`'s own, with the error JSON's `status` and `message`.
    fn own(outcome: Outcome, message: impl Into<String>) -> Failure {
        Failure {
            outcome,
            json: json!({"status": outcome.name(), "message": message.into()}),
        }
    }

    /// The command line, or a file it names, could not be used.
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure::own(Outcome::Usage, message)
    }

    /// Failed with no code of its own (standard output closed, ...).
    pub fn failed(message: impl Into<String>) -> Failure {
        Failure::own(Outcome::Failed, message)
    }

    /// A bulk run in which `failed` of `total` items failed.
    pub fn partial(failed: usize, total: usize) -> Failure {
        Failure::own(
            Outcome::Partial,
            format!("{failed} of {total} items failed; each result line says why"),
        )
    }

    /// Writes the error JSON to standard error and returns the exit code.
    pub fn report(self) -> ExitCode {
        eprintln!("{}", self.json);
        ExitCode::from(self.outcome.code())
    }
}

/// An SDK error: its kind's exit code, its own error JSON.
impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        Failure {
            outcome: Outcome::Error(error.kind()),
            json: serde_json::to_value(&error).unwrap_or_else(|_| json!({"status": "FAILED"})),
        }
    }
}

/// Standard output could not be written (closed, full).
impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Failure {
        Failure::failed(format!("cannot write standard output: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rows of the exit code table in the project's Markdown (README.md, or a guide in docs/
    /// it moved to): the lines after its header, up to the first that is not a row.
    fn documented_rows() -> Vec<String> {
        const HEADER: &str = "| code | `status` | meaning |";
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut files = vec![root.join("README.md")];
        if let Ok(docs) = std::fs::read_dir(root.join("docs")) {
            files.extend(docs.filter_map(|entry| entry.ok().map(|entry| entry.path())));
        }
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            if let Some((_, after)) = text.split_once(HEADER) {
                return after
                    .lines()
                    .skip(2) // the rest of the header line, and the alignment row
                    .take_while(|line| line.starts_with("| "))
                    .map(str::to_owned)
                    .collect();
            }
        }
        panic!("no exit code table (\"{HEADER}\") in README.md or docs/");
    }

    #[test]
    fn the_documented_table_is_this_one() {
        let table: Vec<String> = EXIT_CODES
            .iter()
            .map(|(outcome, code, meaning)| {
                format!("| {code} | `{}` | {meaning} |", outcome.name())
            })
            .collect();
        assert_eq!(
            documented_rows(),
            table,
            "the Markdown's exit codes and EXIT_CODES differ"
        );
    }

    #[test]
    fn every_error_kind_has_one_code_and_codes_are_distinct() {
        for kind in ErrorKind::ALL {
            let rows = EXIT_CODES
                .iter()
                .filter(|(outcome, _, _)| *outcome == Outcome::Error(kind))
                .count();
            assert_eq!(rows, 1, "{kind:?} needs exactly one row in EXIT_CODES");
        }
        let mut codes: Vec<u8> = EXIT_CODES.iter().map(|(_, code, _)| *code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), EXIT_CODES.len());
        assert_eq!(
            [
                Outcome::Ok,
                Outcome::Failed,
                Outcome::Usage,
                Outcome::Partial
            ]
            .map(Outcome::code),
            [0, 1, 2, 3]
        );
    }
}
