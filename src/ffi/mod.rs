//! The C ABI: JSON text in and out, status codes, the panic boundary. No other logic lives here.
//!
//! Every rule (validation, routes, timeouts) is the Rust core's; this layer only translates C
//! strings and JSON into the core's types and the core's [`Error`](crate::Error) into a status
//! code plus an error JSON object. `include/intune_user_status.h` is generated from these files by
//! cbindgen (`IUS_BLESS=1 cargo test --test c_header`).
//!
//! One module per area, plumbing in modules of its own:
//! - [`status`]: the `ius_status` codes and their names, `ius_version`;
//! - [`error`]: core `Error` -> status + error JSON, in one place; [`error_json`]:
//!   `ius_error_json_get`, one key of it read back;
//! - [`config`]: `config_json` -> `Client` (the core reads the JSON); [`target`]: `target_json`
//!   -> `Target`;
//! - [`client`]: `ius_client_new` / `ius_client_new_with_token_callback` / `ius_client_free`;
//!   [`update`]: the update calls; [`bulk`]: `ius_update_user_statuses`; [`resource`]: get,
//!   list, create and delete; `outbox`: the `ius_outbox_*` calls (feature `outbox`);
//! - [`token`]: the token callback behind the core's token cache; [`log`]: the log callback;
//! - [`panic`]: the boundary every exported body runs in; [`strings`]: C string in/out.

#[macro_use]
mod panic;
mod bulk;
mod client;
mod config;
mod error;
mod error_json;
mod log;
#[cfg(feature = "outbox")]
mod outbox;
mod resource;
mod status;
mod strings;
mod target;
mod token;
mod update;

#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use log::LOG_CALLBACK_USERS;
