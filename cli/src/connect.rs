//! The client, from `--config` (a file or the JSON itself), `--token`, or their environment
//! variables, with `--base-url` over either. Flags win over the environment.

use intune_user_status::{Client, ClientBuilder};

use crate::args::Connection;
use crate::exit::Failure;

/// Where the client's settings come from.
enum Source {
    /// Config JSON (the text, and where it came from for messages).
    Config(String, &'static str),
    Token(String),
}

/// The token of a client that is never sent anything (an outbox's `stats` and `enqueue` open the
/// file through a client but make no request); it can authenticate nowhere.
const UNUSED_TOKEN: &str = "ius-sends-nothing";

/// Builds the client. `sends` says whether the command talks to Graph: one that does needs
/// credentials, one that does not gets a client that never sends when none are given.
pub fn client(connection: &Connection, sends: bool) -> Result<Client, Failure> {
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
    let builder = match source {
        Some(Source::Config(config, from)) => {
            ClientBuilder::from_config_json(&config_text(&config, from)?)?
        }
        Some(Source::Token(token)) => Client::builder().access_token(token),
        None if sends => {
            return Err(Failure::usage(
                "no credentials: give --config FILE|JSON or --token (or set IUS_CONFIG or IUS_TOKEN)",
            ));
        }
        None => Client::builder().access_token(UNUSED_TOKEN),
    };
    let builder = match connection.base_url.clone().or_else(|| env("IUS_BASE_URL")) {
        Some(url) => builder.base_url(url),
        None => builder,
    };
    Ok(builder.build()?)
}

/// The config JSON: the value itself when it is an object, else the file it names.
fn config_text(config: &str, from: &str) -> Result<String, Failure> {
    if config.trim_start().starts_with('{') {
        return Ok(config.to_owned());
    }
    std::fs::read_to_string(config)
        .map_err(|err| Failure::usage(format!("{from}: cannot read {config}: {err}")))
}
