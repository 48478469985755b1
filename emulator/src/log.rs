//! The request log: every Graph request the emulator received, in arrival
//! order, with the requests a `$batch` carried marked as such.

use std::sync::Mutex;

/// One HTTP request as the emulator received it.
///
/// Everything is kept as it arrived on the wire (target not decoded, header
/// names in their original case and order) so tests can assert on exactly
/// what a client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The request method, e.g. `PATCH`.
    pub method: String,
    /// The raw request-target: path plus query, percent-encoding untouched.
    pub target: String,
    /// Header fields in the order and case they were received.
    pub headers: Vec<(String, String)>,
    /// The request body, de-chunked if it was sent with chunked encoding.
    /// For a request that came inside a `$batch`, the bytes of its `body`
    /// exactly as they stood in the batch JSON.
    pub body: Vec<u8>,
    /// When the emulator had read the request's last byte (for an inner request of a `$batch`,
    /// its envelope's): what tests measure a client's waits and budgets by, on the wire's side.
    pub received: std::time::Instant,
    /// `Some` for a request that came inside a `POST /{version}/$batch`
    /// (recorded right after its envelope); `None` for one received on the
    /// wire, the envelope included. For an inner request, `target` is
    /// `/{version}` followed by its `url`, and `headers` are its own
    /// `headers` in the order given.
    pub batch: Option<BatchItem>,
}

/// Where an inner request of a `$batch` came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchItem {
    /// Its `id` in the batch, as given.
    pub id: String,
    /// Its `url`, as given (relative to the version root).
    pub url: String,
    /// Its `dependsOn` ids, as given.
    pub depends_on: Vec<String>,
    /// The `request-id` of the answer to its envelope.
    pub envelope_request_id: String,
}

impl RecordedRequest {
    /// The target without its query string.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The raw query string (after `?`), if any.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// The first header value with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header value with this name (case-insensitive), in received order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body as text; invalid UTF-8 is replaced (lossy).
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether this request came inside a `$batch`.
    pub fn is_batch_item(&self) -> bool {
        self.batch.is_some()
    }

    /// The JSON form served by `GET /_emulator/requests`.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "method": self.method,
            "target": self.target,
            "headers": self.headers.iter().map(|(n, v)| [n, v]).collect::<Vec<_>>(),
            "body": self.body_str(),
            "batch": self.batch.as_ref().map(|b| serde_json::json!({
                "id": b.id,
                "url": b.url,
                "dependsOn": b.depends_on,
                "envelopeRequestId": b.envelope_request_id,
            })),
        })
    }
}

/// Thread-safe, append-only (until cleared) list of recorded requests.
#[derive(Debug, Default)]
pub(crate) struct RequestLog {
    entries: Mutex<Vec<RecordedRequest>>,
}

impl RequestLog {
    /// Appends one request.
    pub(crate) fn record(&self, request: RecordedRequest) {
        self.lock().push(request);
    }

    /// A copy of every recorded request.
    pub(crate) fn snapshot(&self) -> Vec<RecordedRequest> {
        self.lock().clone()
    }

    /// A copy of the recorded requests that pass `keep`.
    pub(crate) fn filtered(&self, keep: impl Fn(&RecordedRequest) -> bool) -> Vec<RecordedRequest> {
        self.lock().iter().filter(|r| keep(r)).cloned().collect()
    }

    /// How many requests are recorded.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Forgets every recorded request.
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<RecordedRequest>> {
        crate::sync::lock(&self.entries)
    }
}
