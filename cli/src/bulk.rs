//! `ius bulk`: JSON lines of items in, one result line per item out, in order, each naming its
//! input line. The input is read as it comes and sent a chunk at a time through the SDK's bulk
//! call, each chunk's results printed when it ends: memory stays bounded whatever the input's
//! length, and `tail -f queue | ius bulk` sends as lines arrive.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use intune_user_status::{
    AuthError, BulkItem, BulkProgress, BulkResult, BulkResultJson, CallOptions, Client, Error,
    bulk_result_json,
};
use serde::Serialize;

use crate::exit::{Failure, Tally, refuses_credentials};
use crate::input::strip_bom;
use crate::progress::{Progress, Throttling};

/// Items per bulk call: five `$batch` requests of 20, their retries mixed with fresh items.
const CHUNK: usize = 100;
/// A pause in the input this long sends the items read so far.
const QUIET: Duration = Duration::from_millis(100);
/// A chunk is sent at most this long after its first item arrived, however slowly the rest come.
const GATHER: Duration = Duration::from_secs(1);
/// The longest line read: far more than an item needs, and a bound on memory.
const MAX_LINE: u64 = 1024 * 1024;

/// Reads the items from `input` (a file, or `-` for standard input), sends them and writes one
/// result line per item to `out`.
pub fn run(client: &Client, input: &str, out: &mut impl Write) -> Result<(), Failure> {
    let name = if input == "-" {
        "standard input"
    } else {
        input
    };
    let (reader, total) = open(input).map_err(|err| cannot_read(name, &err))?;
    let progress = Progress::new(total);
    let throttling = Throttling::since_now(client);
    let mut feed = Feed::start(reader);
    let mut tally = Tally::default();
    // Inner 429s of the chunks before the current one.
    let mut throttled_before = 0;
    let mut printed: u64 = 0;
    // Set once a chunk's every item was refused for its credentials: the rest is not sent.
    let mut stopped = false;
    loop {
        let chunk = feed.next_chunk();
        if chunk.is_empty() {
            break;
        }
        let (numbers, parsed): (Vec<u64>, Vec<Result<BulkItem, Error>>) = chunk.into_iter().unzip();
        let items: Vec<BulkItem> = parsed
            .iter()
            .filter_map(|p| p.as_ref().ok())
            .cloned()
            .collect();
        let answers: Vec<BulkResult> = if stopped {
            items.iter().map(|_| not_sent()).collect()
        } else {
            // The SDK counts the items it is given; those that did not parse are done already.
            let base = printed + (parsed.len() - items.len()) as u64;
            let latest = Arc::new(Mutex::new(BulkProgress::default()));
            let meter = progress.meter();
            let options = CallOptions::new().on_progress({
                let latest = latest.clone();
                let throttling = throttling.clone();
                move |report: BulkProgress| {
                    *latest.lock().unwrap_or_else(PoisonError::into_inner) = report;
                    let (throttled, held) = throttling.seen(throttled_before + report.throttled);
                    meter.show(base + report.done as u64, throttled, held);
                }
            });
            let answers = client.update_user_statuses_detailed(&items, &options);
            throttled_before += latest
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .throttled;
            stopped = !answers.is_empty()
                && answers
                    .iter()
                    .all(|answer| answer.result.as_ref().is_err_and(refuses_credentials));
            answers
        };
        let mut answers = answers.into_iter();
        let results: Vec<BulkResult> = parsed
            .into_iter()
            .map(|parsed| match parsed {
                Ok(_) => answers.next().unwrap_or_else(not_sent),
                Err(error) => BulkResult::new(Err(error), 0),
            })
            .collect();
        progress.suspend(|| print(out, &numbers, &results))?;
        results.iter().for_each(|result| tally.add(&result.result));
        printed += results.len() as u64;
        let (throttled, held) = throttling.seen(throttled_before);
        progress.meter().show(printed, throttled, held);
    }
    drop(progress);
    if let Some(err) = feed.error {
        return Err(cannot_read(name, &err));
    }
    tally.end()
}

/// A result line: the C API's result for the item, and the input line it came from.
#[derive(Serialize)]
struct ResultLine<'a> {
    #[serde(flatten)]
    result: BulkResultJson<'a>,
    line: u64,
}

/// Writes one result line per item (`numbers` their input lines).
fn print(out: &mut impl Write, numbers: &[u64], results: &[BulkResult]) -> io::Result<()> {
    for (&line, result) in numbers.iter().zip(results) {
        let result = ResultLine {
            result: bulk_result_json(result),
            line,
        };
        let mut text = serde_json::to_vec(&result).map_err(io::Error::other)?;
        text.push(b'\n');
        out.write_all(&text)?;
    }
    out.flush()
}

/// The result of an item not sent because an earlier chunk's credentials were refused.
fn not_sent() -> BulkResult {
    let error: Error = AuthError::new(
        "not sent: every item of an earlier chunk was refused for its credentials, so ius \
         stopped sending (repeated refusals can lock an account out); fix the credentials and \
         send this item again",
    )
    .into();
    BulkResult::new(Err(error), 0)
}

fn cannot_read(name: &str, err: &io::Error) -> Failure {
    Failure::usage(format!("cannot read {name}: {err}"))
}

/// The input and, when it is a regular file, how many items it holds (for the time left).
fn open(input: &str) -> io::Result<(Box<dyn Read + Send>, Option<u64>)> {
    if input == "-" {
        let total = stdin_file()
            .filter(|file| file.metadata().is_ok_and(|m| m.is_file()))
            .and_then(|mut file| count_items(&mut file).ok());
        return Ok((Box::new(io::stdin()), total));
    }
    let mut file = File::open(input)?;
    let total = match file.metadata()?.is_file() {
        true => Some(count_items(&mut file)?),
        false => None,
    };
    Ok((Box::new(file), total))
}

/// Standard input as a file of its own (sharing its position), to count what a redirected file
/// holds.
#[cfg(unix)]
fn stdin_file() -> Option<File> {
    use std::os::fd::AsFd;
    io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .ok()
        .map(File::from)
}
#[cfg(windows)]
fn stdin_file() -> Option<File> {
    use std::os::windows::io::AsHandle;
    io::stdin()
        .as_handle()
        .try_clone_to_owned()
        .ok()
        .map(File::from)
}

/// The lines that are not blank from `file`'s position to its end, leaving it where it was.
fn count_items(file: &mut File) -> io::Result<u64> {
    let start = file.stream_position()?;
    let mut reader = BufReader::with_capacity(64 * 1024, &mut *file);
    let (mut count, mut filled) = (0, false);
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        for &byte in buf {
            if byte == b'\n' {
                count += u64::from(filled);
                filled = false;
            } else if !byte.is_ascii_whitespace() {
                filled = true;
            }
        }
        let n = buf.len();
        reader.consume(n);
    }
    drop(reader);
    file.seek(SeekFrom::Start(start))?;
    Ok(count + u64::from(filled))
}

/// A line of input, as the reading thread hands it over.
enum Line {
    /// Its number (from 1) and its bytes.
    Text(u64, Vec<u8>),
    /// A line longer than [`MAX_LINE`], skipped.
    TooLong(u64),
    /// The input could not be read further.
    Failed(io::Error),
}

/// The input, read on a thread of its own so a pause in it can be noticed.
struct Feed {
    lines: Receiver<Line>,
    ended: bool,
    /// Why the input ended early.
    error: Option<io::Error>,
}

impl Feed {
    fn start(input: Box<dyn Read + Send>) -> Feed {
        let (tx, lines) = sync_channel(CHUNK);
        // Blocked on a read when the run ends (a pipe that stays open): it ends with the process.
        std::thread::spawn(move || read_lines(BufReader::new(input), &tx));
        Feed {
            lines,
            ended: false,
            error: None,
        }
    }

    /// The next items with their line numbers: up to [`CHUNK`], fewer when the input pauses for
    /// [`QUIET`] or the first has waited [`GATHER`]; none at the end of the input.
    fn next_chunk(&mut self) -> Vec<(u64, Result<BulkItem, Error>)> {
        let mut chunk = Vec::new();
        let mut first: Option<Instant> = None;
        while !self.ended && chunk.len() < CHUNK {
            let line = match first {
                None => self.lines.recv().ok(),
                Some(first) => {
                    let wait = QUIET.min(GATHER.saturating_sub(first.elapsed()));
                    match self.lines.recv_timeout(wait) {
                        Ok(line) => Some(line),
                        Err(RecvTimeoutError::Timeout) => break,
                        Err(RecvTimeoutError::Disconnected) => None,
                    }
                }
            };
            let parsed = match line {
                None => {
                    self.ended = true;
                    continue;
                }
                Some(Line::Failed(err)) => {
                    self.error = Some(err);
                    self.ended = true;
                    continue;
                }
                Some(Line::TooLong(number)) => Some((
                    number,
                    Err(bad_line(format!("is longer than {MAX_LINE} bytes"))),
                )),
                Some(Line::Text(number, bytes)) => parse(&bytes).map(|item| (number, item)),
            };
            if let Some(parsed) = parsed {
                first.get_or_insert_with(Instant::now);
                chunk.push(parsed);
            }
        }
        chunk
    }
}

/// Reads `input` line by line into `tx` until its end, a failure, or no one listening.
fn read_lines(mut input: impl BufRead, tx: &SyncSender<Line>) {
    let mut number = 0;
    loop {
        let mut bytes = Vec::new();
        let line = match input
            .by_ref()
            .take(MAX_LINE + 1)
            .read_until(b'\n', &mut bytes)
        {
            Ok(0) => return,
            Ok(_) => {
                number += 1;
                if bytes.len() as u64 > MAX_LINE && bytes.last() != Some(&b'\n') {
                    match skip_line(&mut input) {
                        Ok(()) => Line::TooLong(number),
                        Err(err) => Line::Failed(err),
                    }
                } else {
                    Line::Text(number, bytes)
                }
            }
            Err(err) => Line::Failed(err),
        };
        let failed = matches!(line, Line::Failed(_));
        if tx.send(line).is_err() || failed {
            return;
        }
    }
}

/// Skips the rest of a line.
fn skip_line(input: &mut impl BufRead) -> io::Result<()> {
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        if let Some(end) = buf.iter().position(|&byte| byte == b'\n') {
            input.consume(end + 1);
            return Ok(());
        }
        let n = buf.len();
        input.consume(n);
    }
}

/// A line as an item; `None` for a blank line, which is no item. A line that is not UTF-8, or
/// that starts with a byte order mark, is that line's error.
fn parse(bytes: &[u8]) -> Option<Result<BulkItem, Error>> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) if strip_bom(text).len() != text.len() => {
            return Some(Err(bad_line(
                "starts with a byte order mark (U+FEFF): save the input as UTF-8 without one"
                    .into(),
            )));
        }
        Ok(text) => text,
        Err(err) => {
            return Some(Err(bad_line(format!(
                "is not valid UTF-8 (at byte {})",
                err.valid_up_to()
            ))));
        }
    };
    Some(BulkItem::from_json(text))
}

/// An input line that is no item, for the reason given.
fn bad_line(reason: String) -> Error {
    Error::InvalidInput {
        field: "line".into(),
        reason,
    }
}
