//! The client, from `--config` (a file or the JSON itself), `--token`, or their environment
//! variables, and the base URL.
//!
//! The precedence, one rule per line:
//! - a flag's source replaces the environment's: with `--config` or `--token`, `IUS_CONFIG` and
//!   `IUS_TOKEN` are not read; two sources at one level (both flags, or both variables) are a
//!   usage error;
//! - `--base-url` replaces the service root of either source, the config's `baseUrl` included;
//! - `IUS_BASE_URL` is read only with a token: the environment never redirects a config (a
//!   stale variable would send the config's credentials to another host).

use intune_user_status::{Client, ClientBuilder};

use crate::args::{Connection, Needs};
use crate::exit::Failure;
use crate::input::config_text;

/// Where the client's settings come from.
enum Source {
    /// Config JSON, as given (a file or the JSON), and where it came from for messages.
    Config(String, &'static str),
    Token(String),
}

/// The token of a client that is never sent anything (an outbox's `enqueue` and
/// `requeue-failed` open the file through a client but make no request); it can authenticate
/// nowhere.
const UNUSED_TOKEN: &str = "ius-sends-nothing";

/// Builds the client a command needs: one with credentials for a command that talks to Graph; for
/// one that sends nothing, the settings given (or none), and for one that no setting changes, a
/// client that never sends, whatever is set.
pub fn client(connection: &Connection, needs: Needs) -> Result<Client, Failure> {
    let unused = || Ok(Client::builder().access_token(UNUSED_TOKEN).build()?);
    if needs == Needs::Nothing {
        return unused();
    }
    let env = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    let source = match (&connection.config, &connection.token) {
        (Some(_), Some(_)) => {
            return Err(Failure::usage(
                "give --config or --token, not both (a config's auth or accessToken holds the token)",
            ));
        }
        (Some(config), None) => Some(Source::Config(config.clone(), "--config")),
        (None, Some(token)) => Some(Source::Token(token.clone())),
        (None, None) => match (env("IUS_CONFIG"), env("IUS_TOKEN")) {
            (Some(_), Some(_)) => {
                return Err(Failure::usage(
                    "IUS_CONFIG and IUS_TOKEN are both set; unset one, or choose with --config or --token",
                ));
            }
            (Some(config), None) => Some(Source::Config(config, "IUS_CONFIG")),
            (None, Some(token)) => Some(Source::Token(token)),
            (None, None) => None,
        },
    };
    let (builder, env_base_url) = match source {
        Some(Source::Config(config, from)) => (
            ClientBuilder::from_config_json(&config_text(from, &config)?)?,
            None,
        ),
        Some(Source::Token(token)) => (Client::builder().access_token(token), env("IUS_BASE_URL")),
        None if needs == Needs::Credentials => {
            return Err(Failure::usage(
                "no credentials: give --config FILE|JSON or --token (or set IUS_CONFIG or IUS_TOKEN)",
            ));
        }
        None => return unused(),
    };
    let builder = match connection.base_url.clone().or(env_base_url) {
        Some(url) => builder.base_url(url),
        None => builder,
    };
    Ok(builder.build()?)
}
