//! HTTP messages as the handlers see them: a fully read [`Request`], the
//! [`Response`] a handler builds, the ids that go with one exchange, and
//! the origin that absolute URLs are built from.

use std::time::Instant;

use crate::log::RecordedRequest;

/// A fully read request.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    /// Method as sent.
    pub(crate) method: String,
    /// Raw request-target.
    pub(crate) target: String,
    /// HTTP/1.x minor version.
    pub(crate) minor: u8,
    /// Headers as sent.
    pub(crate) headers: Vec<(String, String)>,
    /// De-chunked body.
    pub(crate) body: Vec<u8>,
    /// When its last byte was read.
    pub(crate) received: Instant,
}

impl Request {
    /// The target without the query string.
    pub(crate) fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The raw query string, if any.
    pub(crate) fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// First header with this name (case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether a comma-separated header (e.g. `Connection`) lists `token`.
    fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// Whether the connection may stay open after this request.
    pub(crate) fn keep_alive(&self) -> bool {
        if self.header_has_token("connection", "close") {
            false
        } else if self.minor == 0 {
            self.header_has_token("connection", "keep-alive")
        } else {
            true
        }
    }

    /// The log entry for this request (as received on the wire).
    pub(crate) fn to_recorded(&self) -> RecordedRequest {
        RecordedRequest {
            method: self.method.clone(),
            target: self.target.clone(),
            headers: self.headers.clone(),
            body: self.body.clone(),
            received: self.received,
            batch: None,
        }
    }
}

/// A response before the server adds the per-response headers
/// (`request-id`, `client-request-id`, `Date`, `Content-Length`, `Connection`).
#[derive(Debug, Clone)]
pub(crate) struct Response {
    /// Status code.
    pub(crate) status: u16,
    /// Handler-specific headers.
    pub(crate) headers: Vec<(String, String)>,
    /// Body bytes (always sent with Content-Length, never chunked).
    pub(crate) body: Vec<u8>,
}

impl Response {
    /// A response without body.
    pub(crate) fn empty(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A response with a body of the given content type.
    pub(crate) fn with_body(status: u16, content_type: &str, body: Vec<u8>) -> Self {
        Response {
            status,
            headers: vec![("Content-Type".to_owned(), content_type.to_owned())],
            body,
        }
    }

    /// Adds a header.
    pub(crate) fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }
}

/// The ids of one exchange, chosen before the handler runs so error bodies
/// and headers agree.
#[derive(Debug, Clone)]
pub(crate) struct RequestIds {
    /// Fresh `request-id`.
    pub(crate) request_id: String,
    /// The client's `client-request-id`, or a fresh one.
    pub(crate) client_request_id: String,
}

impl RequestIds {
    /// A fresh `request-id`, and the client's `client-request-id` when it
    /// sent a non-empty one.
    pub(crate) fn new(client_request_id: Option<&str>) -> Self {
        let client_request_id = match client_request_id.map(str::trim) {
            Some(v) if !v.is_empty() => v.to_owned(),
            _ => uuid::Uuid::new_v4().to_string(),
        };
        RequestIds {
            request_id: uuid::Uuid::new_v4().to_string(),
            client_request_id,
        }
    }
}

/// Where the emulator is reachable, for absolute URLs in answers.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    /// `http` or `https`.
    pub(crate) scheme: &'static str,
    /// `scheme://ip:port` of the bound socket.
    pub(crate) bound_url: String,
}

impl Origin {
    /// `scheme://host` as the client addressed us (the Host header when
    /// present, so absolute URLs work through any hostname used).
    pub(crate) fn url_for(&self, req: &Request) -> String {
        match req.header("host").map(str::trim) {
            Some(h) if !h.is_empty() => format!("{}://{h}", self.scheme),
            _ => self.bound_url.clone(),
        }
    }
}

/// `YYYY-MM-DD<separator>HH:MM:SS` of `t` in UTC, whole seconds, no
/// offset (Graph's and Entra's error bodies write times so).
pub(crate) fn utc_seconds(t: time::OffsetDateTime, separator: char) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}{separator}{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub(crate) fn http_date(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let weekday = t.weekday().to_string();
    let month = t.month().to_string();
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        &weekday[..3],
        t.day(),
        &month[..3],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_seconds_has_no_fraction_or_offset() {
        let t = time::OffsetDateTime::from_unix_timestamp(784_111_777).unwrap();
        assert_eq!(utc_seconds(t, 'T'), "1994-11-06T08:49:37");
    }

    #[test]
    fn http_date_is_imf_fixdate() {
        let t = time::OffsetDateTime::from_unix_timestamp(784_111_777).unwrap();
        assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
    }
}
