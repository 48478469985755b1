//! `ius outbox PATH ...`: an operator's view of an agent's outbox file, through the SDK: its
//! figures and failed list read without writing the file ([`OutboxReader`]), and a flush, an
//! enqueue, a requeue of the failed list and the end of a hold through an [`Outbox`] opened with
//! the agent's options (the defaults, for clear-hold).

use std::io::Write;
use std::path::Path;

use intune_user_status::{BulkItem, Client, FlushReport, Outbox, OutboxOptions, OutboxReader};
use serde_json::json;

use crate::args::{Bounds, OutboxAction};
use crate::exit::Failure;
use crate::input::json_arg;
use crate::resource::print;

/// Runs `action` on the outbox at `path`, printing its answer to `out`.
pub fn run(
    client: &Client,
    path: &Path,
    action: &OutboxAction,
    out: &mut impl Write,
) -> Result<(), Failure> {
    // Only an enqueue may create the outbox.
    if !matches!(action, OutboxAction::Enqueue { .. }) && !path.exists() {
        return Err(Failure::usage(format!(
            "no outbox at {}: nothing to show, flush or requeue",
            path.display()
        )));
    }
    match action {
        OutboxAction::Stats => print(out, &OutboxReader::open(path)?.stats()?),
        OutboxAction::Failed => {
            for report in OutboxReader::open(path)?.failed()? {
                print(out, &report)?;
            }
            Ok(())
        }
        OutboxAction::RequeueFailed(bounds) => {
            let requeued = open(client, path, bounds)?.requeue_failed()?;
            print(out, &json!({ "requeued": requeued }))
        }
        OutboxAction::Flush(bounds) => {
            let mut report = FlushReport::default();
            let flushed = open(client, path, bounds)?.flush_into(&mut report);
            // A flush that stopped for want of a token, was interrupted, or failed after requests
            // went out says what it did (stoppedBy, sent, pending) and still fails.
            if report.tells_of(&flushed) {
                print(out, &report)?;
            }
            Ok(flushed?)
        }
        OutboxAction::ClearHold => {
            let outbox = Outbox::open(client, path, OutboxOptions::new())?;
            print(out, &json!({ "cleared": outbox.clear_hold()? }))
        }
        OutboxAction::Enqueue { update, bounds } => {
            let (target, patch) = update.parts()?;
            let mut item = BulkItem::new(target, patch);
            if let Some(version) = update.at.api_version {
                item = item.api_version(version);
            }
            open(client, path, bounds)?.enqueue_many(&[item])?;
            Ok(())
        }
    }
}

/// The outbox at `path`, with the options `bounds` gives (the defaults when none).
fn open(client: &Client, path: &Path, bounds: &Bounds) -> Result<Outbox, Failure> {
    let options = match &bounds.options {
        Some(options) => OutboxOptions::from_json(&json_arg("--options", options)?)?,
        None => OutboxOptions::new(),
    };
    Ok(Outbox::open(client, path, options)?)
}
