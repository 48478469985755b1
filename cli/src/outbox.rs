//! `ius outbox PATH ...`: an operator's view of an agent's outbox file, through the SDK's
//! [`Outbox`]: its figures, a flush, an enqueue.
//!
//! `failed` (print the failed list and keep it) and `requeue-failed` (move it back to pending)
//! are to come as two more [`OutboxAction`]s here, once the Outbox API reads the failed list
//! without taking it and requeues it.

use std::io::Write;
use std::path::Path;

use intune_user_status::{BulkItem, Client, Outbox, OutboxOptions};

use crate::args::OutboxAction;
use crate::exit::Failure;
use crate::resource::print;

/// Runs `action` on the outbox at `path`, printing its answer to `out`.
pub fn run(
    client: &Client,
    path: &Path,
    action: &OutboxAction,
    out: &mut impl Write,
) -> Result<(), Failure> {
    // Looking at a file must not make one: only an enqueue may create the outbox.
    if !matches!(action, OutboxAction::Enqueue(_)) && !path.exists() {
        return Err(Failure::usage(format!(
            "no outbox at {}: nothing to show or flush",
            path.display()
        )));
    }
    let outbox = Outbox::open(client, path, OutboxOptions::new())?;
    match action {
        OutboxAction::Stats => print(out, &outbox.stats()?),
        OutboxAction::Flush => print(out, &outbox.flush()?),
        OutboxAction::Enqueue(update) => {
            let (target, patch) = update.parts()?;
            let mut item = BulkItem::new(target, patch);
            if let Some(version) = update.at.api_version {
                item = item.api_version(version);
            }
            outbox.enqueue_many(&[item])?;
            Ok(())
        }
    }
}
