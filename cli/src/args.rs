//! The command line, as clap reads it: the connection flags every command shares, one variant per
//! subcommand.

use std::fmt;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use intune_user_status::ApiVersion;

/// Microsoft Graph's deviceConfigurationUserStatus from the shell: update, read, list, create and
/// delete user statuses, send many in $batch requests, look after an agent's outbox, or run the
/// bundled emulator. Results are JSON on standard output.
#[derive(Debug, Parser)]
#[command(name = "ius", version)]
pub struct Cli {
    #[command(flatten)]
    pub connection: Connection,
    /// At the end, print the client's metrics JSON (requests and how they ended, retries, 429
    /// holds, $batch items, latency, tokens, bytes) on standard error, as one line after
    /// everything else, whether the command succeeded or not
    #[arg(long, global = true)]
    pub metrics: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the client's configuration and token come from. A flag's source replaces the
/// environment's: with --config or --token, IUS_CONFIG and IUS_TOKEN are not read.
#[derive(Args)]
pub struct Connection {
    /// The client's configuration: the JSON itself (a value holding `{`), or a file (the C API's
    /// config JSON: baseUrl, cloud, auth, timeouts, retry, pacing, ...). Never shown in
    /// messages. Default: $IUS_CONFIG
    #[arg(long, global = true, value_name = "FILE|JSON")]
    pub config: Option<String>,
    /// A bearer token, sent as it is (other users may see a command line: prefer $IUS_TOKEN).
    /// Default: $IUS_TOKEN
    #[arg(long, global = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// The service root instead of the cloud's (or the config's baseUrl), e.g.
    /// http://127.0.0.1:8080 for the emulator (plain http only on loopback). Default, with a
    /// token only: $IUS_BASE_URL
    #[arg(long, global = true, value_name = "URL")]
    pub base_url: Option<String>,
}

/// The config and the token may hold secrets: only whether they were given is shown.
impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let given = |value: &Option<String>| value.as_ref().map(|_| "<redacted>");
        f.debug_struct("Connection")
            .field("config", &given(&self.config))
            .field("token", &given(&self.token))
            .field("base_url", &self.base_url)
            .finish()
    }
}

/// Which path a user status is reached by, and in which API version.
#[derive(Debug, Args)]
pub struct At {
    /// The route under the device configuration, as the documentation writes it (default: the
    /// direct path); the Autopilot route makes CONFIG_ID a deployment profile's id
    #[arg(long, value_name = "ROUTE", default_value = "")]
    pub route: String,
    /// The certificate id a route with a certificate placeholder needs
    #[arg(long, value_name = "ID")]
    pub certificate_id: Option<String>,
    /// beta or v1.0 (default: the configuration's, else beta)
    #[arg(long, value_name = "VERSION")]
    pub api_version: Option<ApiVersion>,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    #[command(flatten)]
    Resource(ResourceCommand),
    /// Update many user statuses in $batch requests. Reads JSON lines of
    /// {"target":{...},"patch":{...}} (the C API's bulk items) and prints one result line per
    /// item, in order; a progress bar on standard error when it is a terminal
    Bulk {
        /// The items; - or none for standard input
        #[arg(value_name = "FILE|-", default_value = "-")]
        input: String,
    },
    /// Look at and act on an agent's outbox file
    Outbox {
        /// The outbox file
        path: PathBuf,
        #[command(subcommand)]
        action: OutboxAction,
    },
    /// Run the bundled Graph emulator until killed (`ius emulator --help` for its flags); the
    /// first line is `listening on http://IP:PORT`
    #[command(disable_help_flag = true)]
    Emulator {
        /// The emulator's flags: --listen ADDR, --token T, --seed FILE, --fault JSON, ...
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// One call on one user status or collection.
#[derive(Debug, Subcommand)]
pub enum ResourceCommand {
    /// Update one user status (PATCH); prints the object when Graph returns it, nothing after 204
    Update(Update),
    /// Read one user status; prints it
    Get {
        /// The device configuration's id
        config_id: String,
        /// The user status's id
        status_id: String,
        #[command(flatten)]
        at: At,
    },
    /// List a device configuration's user statuses, every page; prints a JSON array
    List {
        /// The device configuration's id
        config_id: String,
        /// Entities per page
        #[arg(long, value_name = "N")]
        top: Option<u32>,
        /// An OData $filter
        #[arg(long, value_name = "FILTER")]
        filter: Option<String>,
        /// The properties to return, comma-separated
        #[arg(long, value_name = "NAMES", value_delimiter = ',')]
        select: Vec<String>,
        /// At most this many pages (default 1000; more is an error, never a cut list)
        #[arg(long, value_name = "N")]
        max_pages: Option<u32>,
        #[command(flatten)]
        at: At,
    },
    /// Create a user status (POST); prints the object Graph made
    Create {
        /// The device configuration's id
        config_id: String,
        /// The object, as JSON (its id may be given or left to Graph); @FILE reads a file, -
        /// standard input
        #[arg(long, value_name = "JSON|@FILE|-")]
        entity: String,
        #[command(flatten)]
        at: At,
    },
    /// Delete a user status
    Delete {
        /// The device configuration's id
        config_id: String,
        /// The user status's id
        status_id: String,
        #[command(flatten)]
        at: At,
    },
}

/// A change to one user status: which, and what to set.
#[derive(Debug, Args)]
pub struct Update {
    /// The device configuration's id
    pub config_id: String,
    /// The user status's id
    pub status_id: String,
    /// What to set, as JSON: {"status":"compliant","devicesCount":3,...}; @FILE reads a file, -
    /// standard input
    #[arg(long, value_name = "JSON|@FILE|-")]
    pub patch: String,
    #[command(flatten)]
    pub at: At,
}

/// What to do with an outbox.
#[derive(Debug, Subcommand)]
pub enum OutboxAction {
    /// Print its figures as JSON, as the C API's ius_outbox_stats writes them. Reads the file
    /// only: never creates, migrates or writes it, and needs no credentials
    Stats,
    /// Print the failed list, one JSON line per report as the C API's ius_outbox_take_failed
    /// writes it, and keep it. Reads the file only, as stats does
    Failed,
    /// Move the failed list back to pending (merged under newer pending reports); a later flush
    /// sends it. Prints {"requeued":N}
    RequeueFailed(Bounds),
    /// Send what is due; print the flush report JSON, as the C API's ius_outbox_flush writes it
    /// (its stoppedBy says why a flush stopped early: auth, offline, throttled, held, paced, time,
    /// storage); a flush with no token, or whose request the file kept back (storage), prints it
    /// too, then fails (non-zero exit)
    Flush(Bounds),
    /// End the hold a stopped flush left on the whole outbox (stats' heldUntil), so the next
    /// flush sends what is due at once: once the cause is fixed (credentials, network), not to
    /// get round throttling. Prints {"cleared":true} if a hold was in force, else false
    ClearHold,
    /// Store a report durably, merged into any pending for the same user status
    Enqueue {
        #[command(flatten)]
        update: Update,
        #[command(flatten)]
        bounds: Bounds,
    },
}

/// The outbox's options, as the agent that owns the file gives them.
#[derive(Debug, Args)]
pub struct Bounds {
    /// The outbox options JSON of the C API's ius_outbox_open (maxPending, maxBytes,
    /// skipUnchanged, resendAfterSeconds, flushTimeMs, maxFailed), so the agent's bounds apply;
    /// @FILE reads a file, - standard input. Default: the defaults
    #[arg(long, value_name = "JSON|@FILE|-")]
    pub options: Option<String>,
}

/// What a command needs of the connection flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Nothing: it sends nothing, and no setting changes what it does (the emulator; an
    /// outbox's stats, failed list, requeue and clear-hold).
    Nothing,
    /// A client's settings if given (the API version an enqueued report takes); it sends
    /// nothing.
    Settings,
    /// Credentials: it talks to Graph.
    Credentials,
}

impl Command {
    /// What the command needs of the connection flags.
    pub fn needs(&self) -> Needs {
        match self {
            Command::Outbox { action, .. } => match action {
                OutboxAction::Flush(_) => Needs::Credentials,
                OutboxAction::Enqueue { .. } => Needs::Settings,
                OutboxAction::Stats
                | OutboxAction::Failed
                | OutboxAction::RequeueFailed(_)
                | OutboxAction::ClearHold => Needs::Nothing,
            },
            Command::Emulator { .. } => Needs::Nothing,
            Command::Resource(_) | Command::Bulk { .. } => Needs::Credentials,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_never_shows_its_secrets() {
        let connection = Connection {
            config: Some(r#"{"auth":{"clientSecret":"s3cr3t"}}"#.into()),
            token: Some("eyJ0b2tlbg".into()),
            base_url: Some("http://127.0.0.1:1".into()),
        };
        let shown = format!("{connection:?}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("eyJ0b2tlbg"),
            "{shown}"
        );
        assert!(
            shown.contains("<redacted>") && shown.contains("127.0.0.1:1"),
            "{shown}"
        );
    }
}
