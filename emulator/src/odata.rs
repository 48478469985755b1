//! Graph's wire conventions shared by every handler: the JSON content type,
//! OData error bodies, `405` answers, query strings and path segments.

use serde::Serialize;

use crate::message::{RequestIds, Response, utc_seconds};

/// Content type of every Graph JSON response.
pub(crate) const JSON_CONTENT_TYPE: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

/// A Graph error response: `{"error":{"code","message","innerError":{...}}}`.
pub(crate) fn error(ids: &RequestIds, status: u16, code: &str, message: &str) -> Response {
    json_response(status, &error_body(ids, code, message))
}

// Structs rather than `json!` so the keys keep Graph's order.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
    inner_error: InnerError<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct InnerError<'a> {
    date: String,
    request_id: &'a str,
    client_request_id: &'a str,
}

fn error_body<'a>(ids: &'a RequestIds, code: &'a str, message: &'a str) -> ErrorBody<'a> {
    let date = utc_seconds(time::OffsetDateTime::now_utc(), 'T');
    ErrorBody {
        error: ErrorDetail {
            code,
            message,
            inner_error: InnerError {
                date,
                request_id: &ids.request_id,
                client_request_id: &ids.client_request_id,
            },
        },
    }
}

/// `400 BadRequest` with this message.
pub(crate) fn bad_request(ids: &RequestIds, message: &str) -> Response {
    error(ids, 400, "BadRequest", message)
}

/// A JSON body with Graph's content type.
pub(crate) fn json_response<T: Serialize>(status: u16, body: &T) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    Response::with_body(status, JSON_CONTENT_TYPE, bytes)
}

/// `405 MethodNotAllowed` with an `Allow` header.
pub(crate) fn method_not_allowed(ids: &RequestIds, allow: &str) -> Response {
    error(
        ids,
        405,
        "MethodNotAllowed",
        &format!("The HTTP method is not allowed on this resource. Allowed: {allow}."),
    )
    .header("Allow", allow)
}

/// Decoded `name=value` pairs of a query string (`+` is a space there).
pub(crate) fn query_pairs(query: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(n), decode(v))
        })
        .collect()
}

/// Percent-encodes a value for use as one path segment or query value.
pub(crate) fn encode_segment(id: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'#')
        .add(b'%')
        .add(b'/')
        .add(b'<')
        .add(b'>')
        .add(b'?')
        .add(b'\\')
        .add(b'^')
        .add(b'`')
        .add(b'{')
        .add(b'|')
        .add(b'}');
    percent_encoding::utf8_percent_encode(id, SEGMENT).to_string()
}

/// Percent-encodes a query parameter value (everything but unreserved
/// characters and `$`).
pub(crate) fn encode_query_value(value: &str) -> String {
    const VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~')
        .remove(b'$');
    percent_encoding::utf8_percent_encode(value, VALUE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_segments() {
        assert_eq!(encode_segment("a/b?#% é"), "a%2Fb%3F%23%25%20%C3%A9");
    }

    #[test]
    fn decodes_query_pairs() {
        let pairs = query_pairs("$top=2&$filter=status%20eq%20'x'&a+b=c+d&flag");
        assert_eq!(pairs[0], ("$top".into(), "2".into()));
        assert_eq!(pairs[1], ("$filter".into(), "status eq 'x'".into()));
        assert_eq!(pairs[2], ("a b".into(), "c d".into()));
        assert_eq!(pairs[3], ("flag".into(), String::new()));
    }
}
