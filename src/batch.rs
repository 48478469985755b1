//! Graph's JSON batching wire format (`POST /{version}/$batch`): the request envelope and the
//! decoder that splits its answer into one response per inner request.
//!
//! Bodies are written into the envelope as the bytes the caller serialized once, so a retried
//! item costs no new serialization; inner answers become [`Response`]s, so the same decoders
//! (`response::entity`, `response::graph_error`) read them as they read a direct answer.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use ureq::http::{HeaderMap, HeaderName, HeaderValue};

use crate::pipeline::Response;

/// At most this many requests go in one batch (Graph's limit).
pub(crate) const MAX_BATCH: usize = 20;

/// One inner request, borrowed from what the caller prepared once.
pub(crate) struct InnerRequest<'a> {
    /// Unique within the batch, compared without regard to case.
    pub id: &'a str,
    pub method: &'a str,
    /// Relative to the version root: `/deviceManagement/...`.
    pub url: &'a str,
    /// A JSON document, written into the envelope as is.
    pub body: Option<&'a [u8]>,
}

/// `{"requests":[{"id","method","url","headers":{"Content-Type":"application/json"},"body"}]}`.
pub(crate) fn encode<'a>(requests: impl IntoIterator<Item = InnerRequest<'a>>) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(b"{\"requests\":[");
    for (n, request) in requests.into_iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"id\":");
        push_string(&mut out, request.id);
        out.extend_from_slice(b",\"method\":");
        push_string(&mut out, request.method);
        out.extend_from_slice(b",\"url\":");
        push_string(&mut out, request.url);
        if let Some(body) = request.body {
            out.extend_from_slice(
                b",\"headers\":{\"Content-Type\":\"application/json\"},\"body\":",
            );
            out.extend_from_slice(body);
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    out
}

fn push_string(out: &mut Vec<u8>, text: &str) {
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

#[derive(Deserialize)]
struct Envelope {
    /// Each element decoded on its own, so one malformed answer does not sink its neighbours.
    responses: Vec<Value>,
}

#[derive(Deserialize)]
struct Inner {
    // The id is read before, from the element itself.
    status: u16,
    /// `null` is no headers.
    #[serde(default)]
    headers: Option<HashMap<String, Value>>,
    #[serde(default)]
    body: Option<Value>,
}

/// One inner answer: a response, or why it could not be read.
pub(crate) type Answer = Result<Response, String>;

/// The inner responses of a 200 `$batch` answer, keyed by id in lower case (Graph compares ids
/// without regard to case). Each is a complete [`Response`] carrying the batch's
/// `client-request-id`; `attempts` is left for the caller to set per item. An element that is
/// malformed but has a string id is that id's `Err`; one without a readable id is left out (its
/// item has no answer). Only a body that is not a batch response at all, or two answers for one
/// id, fail the whole batch.
pub(crate) fn decode(batch: &Response) -> Result<HashMap<String, Answer>, String> {
    let envelope: Envelope = serde_json::from_slice(&batch.body)
        .map_err(|err| format!("the $batch body is not a batch response: {err}"))?;
    let mut by_id = HashMap::with_capacity(envelope.responses.len());
    for element in envelope.responses {
        let Some(id) = element.get("id").and_then(Value::as_str).map(str::to_owned) else {
            continue;
        };
        let key = id.to_lowercase();
        if by_id.contains_key(&key) {
            return Err(format!(
                "the $batch answer holds two responses for id \"{id}\""
            ));
        }
        let answer = Inner::deserialize(element)
            .map(|inner| to_response(inner, batch))
            .map_err(|err| format!("the $batch answer for id \"{id}\" is malformed: {err}"));
        by_id.insert(key, answer);
    }
    Ok(by_id)
}

fn to_response(inner: Inner, batch: &Response) -> Response {
    let fields = inner.headers.unwrap_or_default();
    let mut headers = HeaderMap::with_capacity(fields.len());
    for (name, value) in fields {
        let text = match value {
            Value::String(text) => text,
            other => other.to_string(),
        };
        // A header Graph could not have sent on the wire is dropped, not fatal.
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(text),
        ) {
            headers.append(name, value);
        }
    }
    let body = match inner.body {
        None | Some(Value::Null) => Vec::new(),
        // Graph sends non-JSON inner bodies base64-encoded as a string; kept as the text.
        Some(Value::String(text)) => text.into_bytes(),
        Some(value) => serde_json::to_vec(&value).unwrap_or_default(),
    };
    Response {
        status: inner.status,
        headers,
        body,
        client_request_id: batch.client_request_id.clone(),
        attempts: 0,
        waited: Duration::ZERO,
        retry_stopped: None,
        redirected_to_get: false,
        earlier_outcome_unknown: false,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A 200 `$batch` answer with `body`, as the pipeline would return it.
    pub(crate) fn batch_response(body: &str) -> Response {
        Response {
            status: 200,
            headers: HeaderMap::new(),
            body: body.as_bytes().to_vec(),
            client_request_id: "crid-batch".into(),
            attempts: 1,
            waited: Duration::ZERO,
            retry_stopped: None,
            redirected_to_get: false,
            earlier_outcome_unknown: false,
        }
    }

    #[test]
    fn the_envelope_carries_each_body_byte_for_byte() {
        let body = br#"{"devicesCount":3,"status":"compliant"}"#;
        let encoded = encode([
            InnerRequest {
                id: "0",
                method: "PATCH",
                url: "/deviceManagement/deviceConfigurations/c%2F1/userStatuses/u\"1",
                body: Some(body),
            },
            InnerRequest {
                id: "1",
                method: "GET",
                url: "/deviceManagement/x",
                body: None,
            },
        ]);
        let text = String::from_utf8(encoded).unwrap();
        assert!(
            text.contains(r#""body":{"devicesCount":3,"status":"compliant"}}"#),
            "{text}"
        );
        let value: Value = serde_json::from_str(&text).unwrap();
        let requests = value["requests"].as_array().unwrap();
        assert_eq!(requests.len(), 2);
        assert_eq!(
            requests[0],
            serde_json::json!({
                "id": "0", "method": "PATCH",
                "url": "/deviceManagement/deviceConfigurations/c%2F1/userStatuses/u\"1",
                "headers": {"Content-Type": "application/json"},
                "body": {"devicesCount": 3, "status": "compliant"}
            })
        );
        assert_eq!(
            requests[1],
            serde_json::json!({"id": "1", "method": "GET", "url": "/deviceManagement/x"})
        );
        assert_eq!(encode([]), b"{\"requests\":[]}");
    }

    #[test]
    fn answers_are_keyed_by_id_without_regard_to_case_with_their_own_headers() {
        let batch = batch_response(
            r#"{"responses":[
                {"id":"B","status":429,"headers":{"Retry-After":"0.249","x-n":5},"body":{"error":{"code":"TooManyRequests"}}},
                {"id":"a","status":204,"body":null}
            ]}"#,
        );
        let by_id = decode(&batch).unwrap();
        assert_eq!(by_id.len(), 2);
        let throttled = by_id["b"].as_ref().unwrap();
        assert_eq!(throttled.status, 429);
        assert_eq!(throttled.header("retry-after"), Some("0.249"));
        assert_eq!(throttled.header("x-n"), Some("5"));
        assert_eq!(throttled.client_request_id, "crid-batch");
        assert!(String::from_utf8_lossy(&throttled.body).contains("TooManyRequests"));
        assert!(by_id["a"].as_ref().unwrap().body.is_empty());
    }

    #[test]
    fn malformed_answers_and_duplicate_ids_are_refused() {
        for body in [
            "",
            "{}",
            r#"{"responses":{}}"#,
            r#"{"responses":[{"id":"x","status":204},{"id":"X","status":204}]}"#,
        ] {
            assert!(decode(&batch_response(body)).is_err(), "{body}");
        }
    }

    #[test]
    fn one_malformed_answer_is_its_own_items_error_and_spares_its_neighbours() {
        for body in [
            r#"{"responses":[{"id":"0","status":"204"},{"id":"1","status":204}]}"#,
            r#"{"responses":[{"id":"0","status":70000},{"id":"1","status":204}]}"#,
            r#"{"responses":[{"id":"0","status":204,"headers":7},{"id":"1","status":204}]}"#,
        ] {
            let by_id = decode(&batch_response(body)).expect(body);
            assert_eq!(by_id["1"].as_ref().unwrap().status, 204, "{body}");
            let Err(error) = &by_id["0"] else {
                panic!("{body}: answer 0 was read");
            };
            assert!(error.contains("id \"0\" is malformed"), "{error}");
        }
        // No readable id: no answer for anyone; the others are kept.
        let body = r#"{"responses":[{"id":0,"status":204},{"id":"1","status":204}]}"#;
        let by_id = decode(&batch_response(body)).unwrap();
        assert_eq!(by_id.len(), 1);
        assert_eq!(by_id["1"].as_ref().unwrap().status, 204);
        // `headers: null` is no headers.
        let body = r#"{"responses":[{"id":"0","status":204,"headers":null}]}"#;
        let answer = decode(&batch_response(body)).unwrap().remove("0").unwrap();
        assert!(answer.unwrap().headers.is_empty());
    }
}
