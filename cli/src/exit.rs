//! How `ius` ends: the exit codes, declared once in [`EXIT_CODES`] (which `ius --help` and the
//! README print, and which maps each of the SDK's [`ErrorKind`]s, and Graph statuses that mean
//! something else than the kind says), and the error JSON it writes on standard error when it
//! fails.

use std::fmt::Write as _;
use std::process::ExitCode;

use intune_user_status::{Error, ErrorKind, UpdateOutcome};
use serde::Serialize;

/// What a row of [`EXIT_CODES`] covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// It did what it was asked.
    Ok,
    /// It failed in a way that has no code of its own.
    Failed,
    /// The command line (or a file it names) could not be used.
    Usage,
    /// A bulk run with failures of more than one code, or failures and successes.
    Partial,
    /// Standard output's reader went away (`ius bulk | head -1`).
    BrokenPipe,
    /// The SDK failed with an error of this kind.
    Kind(ErrorKind),
    /// The SDK failed with an error of this kind and this HTTP status: a row that comes before
    /// the kind's own.
    KindStatus(ErrorKind, u16),
}

/// Every exit code: what it covers, its code, and what it means. Each SDK error kind has its row
/// (a test checks, so a new kind cannot go unnamed); the C API's `ius_status` is the model.
/// Graph's 401 and 403 are Graph errors to the SDK but a credentials problem to an operator, so
/// they exit as AUTH does.
pub const EXIT_CODES: [(Case, u8, &str); 19] = [
    (Case::Ok, 0, "success"),
    (
        Case::Failed,
        1,
        "failed for a reason without a code of its own (e.g. standard output closed)",
    ),
    (
        Case::Usage,
        2,
        "bad arguments, an unreadable file, no credentials",
    ),
    (
        Case::Partial,
        3,
        "a bulk run where some items failed and others succeeded, or failures differ in code (each result line says why); a run whose every item failed with one code exits with that code",
    ),
    (
        Case::Kind(ErrorKind::Throttled),
        4,
        "Graph answered 429 after the retries, or the client's hold outlasted the time budget",
    ),
    (
        Case::Kind(ErrorKind::Auth),
        5,
        "no access token could be obtained; nothing was sent to Graph",
    ),
    (
        Case::KindStatus(ErrorKind::Graph, 401),
        5,
        "Graph refused the token, even after a fresh one (expired, for another tenant or audience)",
    ),
    (
        Case::KindStatus(ErrorKind::Graph, 403),
        5,
        "Graph refused the permission (the app lacks DeviceManagementConfiguration.ReadWrite.All or an Intune role)",
    ),
    (
        Case::Kind(ErrorKind::InvalidInput),
        6,
        "a bad id, route or patch (`field` names it); nothing was sent",
    ),
    (
        Case::Kind(ErrorKind::Config),
        7,
        "the configuration was rejected (`field` names the key)",
    ),
    (
        Case::Kind(ErrorKind::Graph),
        8,
        "Graph answered another HTTP error, e.g. 404 (`httpStatus`, `code`, `requestId`)",
    ),
    (
        Case::Kind(ErrorKind::UnexpectedResponse),
        9,
        "Graph answered something the call cannot accept",
    ),
    (
        Case::Kind(ErrorKind::Timeout),
        10,
        "no complete response in time",
    ),
    (
        Case::Kind(ErrorKind::Network),
        11,
        "DNS, connection refused or broken",
    ),
    (
        Case::Kind(ErrorKind::Tls),
        12,
        "the TLS handshake or certificate check failed",
    ),
    (
        Case::Kind(ErrorKind::OutboxFull),
        13,
        "the report for a new user status was not stored",
    ),
    (
        Case::Kind(ErrorKind::Storage),
        14,
        "the outbox file could not be used (`path` names it)",
    ),
    (
        Case::Kind(ErrorKind::Cancelled),
        15,
        "an interrupt ended the call; a request in flight may or may not have been applied",
    ),
    (
        Case::BrokenPipe,
        141,
        "standard output's reader went away (e.g. `ius bulk | head -1`): ius stops quietly, with the code a shell shows for a process SIGPIPE ended",
    ),
];

impl Case {
    /// The row an SDK error falls under: its kind and HTTP status's, else its kind's.
    pub fn of(error: &Error) -> Case {
        let kind = error.kind();
        let specific = error
            .http_status()
            .map(|status| Case::KindStatus(kind, status));
        match specific {
            Some(case) if EXIT_CODES.iter().any(|(row, _, _)| *row == case) => case,
            _ => Case::Kind(kind),
        }
    }

    /// The error JSON's `status`: the SDK's name for an error kind, or `ius`'s own.
    pub fn name(self) -> &'static str {
        match self {
            Case::Ok => "OK",
            Case::Failed => "FAILED",
            Case::Usage => "USAGE",
            Case::Partial => "PARTIAL",
            Case::BrokenPipe => "BROKEN_PIPE",
            Case::Kind(kind) | Case::KindStatus(kind, _) => kind.name(),
        }
    }

    /// How the row is named where the table is shown: the status, and the HTTP status it is for.
    fn label(self) -> String {
        match self {
            Case::KindStatus(_, status) => format!("{} {status}", self.name()),
            _ => self.name().to_owned(),
        }
    }

    /// The exit code from [`EXIT_CODES`]; a case without a row (a kind newer than the table,
    /// which a test forbids) exits as `Failed`.
    pub fn code(self) -> u8 {
        EXIT_CODES
            .iter()
            .find(|(case, _, _)| *case == self)
            .map_or(1, |(_, code, _)| *code)
    }

    /// The first row with `code`, which names it.
    fn named_by(code: u8) -> Case {
        EXIT_CODES
            .iter()
            .find(|(_, row, _)| *row == code)
            .map_or(Case::Failed, |(case, _, _)| *case)
    }
}

/// Whether `error` says the credentials were refused (it exits as AUTH does): sending more with
/// them is pointless, and a token endpoint may lock the account out.
pub fn refuses_credentials(error: &Error) -> bool {
    Case::of(error).code() == Case::Kind(ErrorKind::Auth).code()
}

/// The exit codes as `ius --help` shows them.
pub fn help() -> String {
    let mut text = String::from("Exit codes:\n");
    for (case, code, meaning) in EXIT_CODES {
        let _ = writeln!(text, "  {code:>3}  {:<19} {meaning}", case.label());
    }
    text.push_str(
        "On failure, standard error gets one line of error JSON, {\"status\",\"message\",...} as the C API\n\
         writes it (an SDK error's `status` is its kind, e.g. GRAPH with httpStatus 401 for exit 5);\n\
         a command line that cannot be read gets its usage message instead.",
    );
    text
}

/// A failed run: its exit code and the error JSON it prints (none for a broken pipe).
#[derive(Debug)]
pub struct Failure {
    code: u8,
    json: Option<String>,
}

/// The error JSON of `ius`'s own failures, `status` first.
#[derive(Serialize)]
struct Own<'a> {
    status: &'a str,
    message: &'a str,
}

impl Failure {
    /// A failure of `ius`'s own, exiting as `case`, with the error JSON's `status` and `message`.
    fn own(case: Case, message: &str) -> Failure {
        let own = Own {
            status: case.name(),
            message,
        };
        Failure {
            code: case.code(),
            json: serde_json::to_string(&own).ok(),
        }
    }

    /// The command line, or a file it names, could not be used.
    pub fn usage(message: impl AsRef<str>) -> Failure {
        Failure::own(Case::Usage, message.as_ref())
    }

    /// Failed with no code of its own (standard output closed, ...).
    pub fn failed(message: impl AsRef<str>) -> Failure {
        Failure::own(Case::Failed, message.as_ref())
    }

    /// Writes the error JSON to standard error and returns the exit code.
    pub fn report(self) -> ExitCode {
        if let Some(json) = self.json {
            eprintln!("{json}");
        }
        ExitCode::from(self.code)
    }
}

/// An SDK error: its row's exit code, its own error JSON.
impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        Failure {
            code: Case::of(&error).code(),
            // Straight to text: a serde_json::Value would sort the keys.
            json: Some(
                serde_json::to_string(&error)
                    .unwrap_or_else(|_| format!(r#"{{"status":"{}"}}"#, error.kind().name())),
            ),
        }
    }
}

/// Standard output could not be written: its reader went away (quietly, as SIGPIPE would end a
/// process), or it is closed or full.
impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Failure {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            return Failure {
                code: Case::BrokenPipe.code(),
                json: None,
            };
        }
        Failure::failed(format!("cannot write standard output: {error}"))
    }
}

/// How a bulk run's items went, to end the run: OK when none failed; when none succeeded and
/// every failure has the same exit code, that code; else PARTIAL.
#[derive(Debug, Default)]
pub struct Tally {
    succeeded: usize,
    failed: usize,
    /// The exit code the failures share: `None` before the first, `Some(None)` once they differ.
    shared: Option<Option<u8>>,
}

impl Tally {
    /// Counts one item's result.
    pub fn add(&mut self, result: &Result<UpdateOutcome, Error>) {
        let Err(error) = result else {
            self.succeeded += 1;
            return;
        };
        self.failed += 1;
        let code = Case::of(error).code();
        self.shared = match self.shared {
            None => Some(Some(code)),
            Some(Some(shared)) if shared == code => Some(Some(code)),
            _ => Some(None),
        };
    }

    /// How the run ends.
    pub fn end(self) -> Result<(), Failure> {
        let total = self.succeeded + self.failed;
        let case = match self.shared {
            None => return Ok(()),
            Some(Some(code)) if self.succeeded == 0 => Case::named_by(code),
            _ => Case::Partial,
        };
        let message = format!(
            "{} of {total} items failed; each result line says why",
            self.failed
        );
        Err(Failure::own(case, &message))
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
            .map(|(case, code, meaning)| {
                let status = match case {
                    Case::KindStatus(_, http) => format!("`{}` {http}", case.name()),
                    _ => format!("`{}`", case.name()),
                };
                format!("| {code} | {status} | {meaning} |")
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
                .filter(|(case, _, _)| *case == Case::Kind(kind))
                .count();
            assert_eq!(rows, 1, "{kind:?} needs exactly one row in EXIT_CODES");
        }
        // A code is one row's, except the rows of a kind and an HTTP status, which borrow
        // another's (and come after it, so it names the code).
        let mut codes: Vec<u8> = EXIT_CODES
            .iter()
            .filter(|(case, _, _)| !matches!(case, Case::KindStatus(..)))
            .map(|(_, code, _)| *code)
            .collect();
        let rows = codes.len();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), rows);
        for (case, code, _) in EXIT_CODES {
            if let Case::KindStatus(..) = case {
                assert!(codes.contains(&code), "{case:?}");
                assert!(!matches!(Case::named_by(code), Case::KindStatus(..)));
            }
        }
        assert_eq!(
            [Case::Ok, Case::Failed, Case::Usage, Case::Partial].map(Case::code),
            [0, 1, 2, 3]
        );
    }

    #[test]
    fn a_bulk_run_ends_with_the_code_its_failures_share_when_nothing_succeeded() {
        let end = |results: &[Result<UpdateOutcome, Error>]| {
            let mut tally = Tally::default();
            results.iter().for_each(|r| tally.add(r));
            tally
                .end()
                .map_err(|failure| (failure.code, failure.json.unwrap()))
        };
        let ok = || Ok(UpdateOutcome::NoContent);
        let invalid = || {
            Err(Error::InvalidInput {
                field: "line".into(),
                reason: "is blank".into(),
            })
        };
        let auth = || Err(intune_user_status::AuthError::new("refused").into());
        assert_eq!(end(&[]), Ok(()));
        assert_eq!(end(&[ok(), ok()]), Ok(()));
        let all_invalid = end(&[invalid(), invalid()]).unwrap_err();
        assert_eq!(
            all_invalid,
            (
                6,
                r#"{"status":"INVALID_INPUT","message":"2 of 2 items failed; each result line says why"}"#
                    .into()
            )
        );
        assert_eq!(end(&[auth(), auth()]).unwrap_err().0, 5);
        assert_eq!(end(&[invalid(), auth()]).unwrap_err().0, 3);
        assert_eq!(end(&[ok(), invalid()]).unwrap_err().0, 3);
    }
}
