//! Turning a complete HTTP response into the typed entity or a typed error.

use serde::Deserialize;

use crate::pipeline::Response;
use crate::retry::parse_retry_after;
use crate::{DeviceConfigurationUserStatus, Error, GraphError};

/// How much of a non-Graph error body is kept (an HTML page from a proxy can be large).
const RAW_BODY_KEPT: usize = 4096;

/// The entity in a 200/201 body.
pub(crate) fn entity(response: &Response) -> Result<DeviceConfigurationUserStatus, Error> {
    serde_json::from_slice(&response.body).map_err(|err| {
        unexpected(
            response,
            &format!("body is not a deviceConfigurationUserStatus: {err}"),
        )
    })
}

/// A status this operation does not handle, outside 4xx/5xx (a redirect, a 202, ...).
pub(crate) fn unexpected(response: &Response, what: &str) -> Error {
    Error::UnexpectedResponse {
        status: response.status,
        reason: what.to_owned(),
        request_id: response.header("request-id").map(str::to_owned),
        client_request_id: response.client_request_id.clone(),
        attempts: response.attempts,
    }
}

#[derive(Deserialize)]
struct Envelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: Option<String>,
    message: Option<String>,
    #[serde(rename = "innerError", alias = "innererror")]
    inner_error: Option<InnerError>,
}

#[derive(Deserialize)]
struct InnerError {
    #[serde(rename = "request-id")]
    request_id: Option<String>,
    date: Option<String>,
    // Graph nests innerError inside innerError on some paths.
    #[serde(rename = "innerError", alias = "innererror")]
    inner_error: Option<Box<InnerError>>,
}

/// Graph's error for a 4xx/5xx, with the ids support needs, whether or not the body is Graph JSON.
pub(crate) fn graph_error(response: Response) -> Error {
    let parsed = serde_json::from_slice::<Envelope>(&response.body).ok();
    let (mut code, mut message, mut request_id, mut date) = (None, None, None, None);
    let raw_body = match parsed {
        Some(Envelope { error }) => {
            code = error.code;
            message = error.message;
            let mut inner = error.inner_error.as_ref();
            while let Some(level) = inner {
                request_id = request_id.or_else(|| level.request_id.clone());
                date = date.or_else(|| level.date.clone());
                inner = level.inner_error.as_deref();
            }
            None
        }
        None if response.body.is_empty() => None,
        None => Some(truncate(&response.body)),
    };
    // The header is authoritative; the body's copy covers proxies that strip headers.
    let request_id = response
        .header("request-id")
        .map(str::to_owned)
        .or(request_id);
    let date = date.or_else(|| response.header("date").map(str::to_owned));
    let retry_after = response.header("retry-after").and_then(parse_retry_after);
    Error::Graph(Box::new(GraphError {
        status: response.status,
        code,
        message,
        request_id,
        client_request_id: response.client_request_id,
        date,
        retry_after,
        raw_body,
        attempts: response.attempts,
        retry_stopped: response.retry_stopped,
    }))
}

fn truncate(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(RAW_BODY_KEPT)]);
    text.into_owned()
}
