//! `ius bulk`: JSON lines of items in, one result line per item out, in order, through the SDK's
//! bulk call a chunk at a time (so results stream and memory stays bounded), with the progress
//! bar fed by the call's progress reports.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use intune_user_status::{
    BulkItem, BulkProgress, BulkResult, CallOptions, Client, bulk_result_json,
};

use crate::exit::Failure;
use crate::progress::Progress;

/// Items per bulk call: five `$batch` requests of 20, their retries mixed with fresh items; the
/// results of a chunk are printed when it ends.
const CHUNK: usize = 100;

/// Reads the items from `input` (a file, or `-` for standard input), sends them and writes one
/// result line per item to `out`.
pub fn run(client: &Client, input: &str, out: &mut impl Write) -> Result<(), Failure> {
    let text = read(input)?;
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    let progress = Progress::new(lines.len() as u64);
    // The throttling of the chunks before the current one.
    let mut throttled_before = (0, Duration::ZERO);
    let mut failed = 0;
    for (number, chunk) in lines.chunks(CHUNK).enumerate() {
        let mut items = Vec::with_capacity(chunk.len());
        // Per line: None when it parsed (its result comes from the SDK), else why not.
        let mut unparsed = Vec::with_capacity(chunk.len());
        for line in chunk {
            match BulkItem::from_json(line) {
                Ok(item) => {
                    items.push(item);
                    unparsed.push(None);
                }
                Err(error) => unparsed.push(Some(error)),
            }
        }
        // The SDK counts the items it is given; those that did not parse are done already.
        let base = (number * CHUNK + chunk.len() - items.len()) as u64;
        let latest = Arc::new(Mutex::new(BulkProgress::default()));
        let options = CallOptions::new().on_progress({
            let (progress, latest) = (progress.clone(), latest.clone());
            move |report: BulkProgress| {
                *latest.lock().unwrap_or_else(PoisonError::into_inner) = report;
                progress.show(
                    base + report.done as u64,
                    throttled_before.0 + report.throttled,
                    throttled_before.1 + report.throttle_wait,
                );
            }
        });
        let mut results = client
            .update_user_statuses_detailed(&items, &options)
            .into_iter();
        let latest = *latest.lock().unwrap_or_else(PoisonError::into_inner);
        throttled_before = (
            throttled_before.0 + latest.throttled,
            throttled_before.1 + latest.throttle_wait,
        );
        for unparsed in unparsed {
            let result = match unparsed {
                Some(error) => BulkResult::new(Err(error), 0),
                None => results
                    .next()
                    .ok_or_else(|| Failure::failed("the SDK gave fewer results than items"))?,
            };
            failed += usize::from(result.result.is_err());
            serde_json::to_writer(&mut *out, &bulk_result_json(&result))
                .map_err(|err| Failure::failed(format!("cannot write a result: {err}")))?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
    }
    progress.finish();
    match failed {
        0 => Ok(()),
        failed => Err(Failure::partial(failed, lines.len())),
    }
}

/// The whole input: bulk runs report progress against the number of items, so it is read first.
fn read(input: &str) -> Result<String, Failure> {
    let mut text = String::new();
    let read = if input == "-" {
        std::io::stdin().read_to_string(&mut text)
    } else {
        std::fs::File::open(input).and_then(|mut file| file.read_to_string(&mut text))
    };
    read.map_err(|err| {
        let name = if input == "-" {
            "standard input"
        } else {
            input
        };
        Failure::usage(format!("cannot read {name}: {err}"))
    })?;
    Ok(text)
}
