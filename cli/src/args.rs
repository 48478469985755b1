//! The command line, as clap reads it: the connection flags every command shares, one variant per
//! subcommand.

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
    #[command(subcommand)]
    pub command: Command,
}

/// Where the client's configuration and token come from.
#[derive(Debug, Args)]
pub struct Connection {
    /// The client's configuration: a file, or the JSON itself (the C API's config JSON: baseUrl,
    /// cloud, auth, timeouts, retry, pacing, ...). Default: $IUS_CONFIG
    #[arg(long, global = true, value_name = "FILE|JSON")]
    pub config: Option<String>,
    /// A bearer token, sent as it is (other users may see a command line: prefer $IUS_TOKEN).
    /// Default: $IUS_TOKEN
    #[arg(long, global = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// The service root instead of the cloud's, e.g. http://127.0.0.1:8080 for the emulator
    /// (plain http only on loopback). Default: $IUS_BASE_URL
    #[arg(long, global = true, value_name = "URL")]
    pub base_url: Option<String>,
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
        /// The object, as JSON (its id may be given or left to Graph)
        #[arg(long, value_name = "JSON")]
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
    /// What to set, as JSON: {"status":"compliant","devicesCount":3,...}
    #[arg(long, value_name = "JSON")]
    pub patch: String,
    #[command(flatten)]
    pub at: At,
}

/// What to do with an outbox.
#[derive(Debug, Subcommand)]
pub enum OutboxAction {
    /// Print its figures: {"pending","failed","skipped","applied","bytes","oldestPendingSeconds"}
    Stats,
    /// Send what is due; print the report:
    /// {"sent","applied","retryLater","failed","skipped","pending","nextAttemptInSeconds"}
    Flush,
    /// Store a report durably, merged into any pending for the same user status
    Enqueue(Update),
}

impl Command {
    /// Whether the command talks to Graph, and so needs credentials (the emulator and an
    /// outbox's stats and enqueue do not).
    pub fn sends(&self) -> bool {
        match self {
            Command::Outbox { action, .. } => matches!(action, OutboxAction::Flush),
            Command::Emulator { .. } => false,
            _ => true,
        }
    }
}
