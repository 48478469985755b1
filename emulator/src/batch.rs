//! JSON batching: `POST /{version}/$batch`, with Graph's rules.
//!
//! - At most [`MAX_REQUESTS`] requests (more: `400`). Each needs an `id`
//!   (a non-empty string, unique without regard to case: a duplicate is
//!   `400`), a `method` (`GET`, `POST`, `PATCH`, `PUT` or `DELETE`) and a
//!   `url` relative to the version root (`/deviceManagement/...`; an
//!   absolute URL is `400`). `headers` is an object of strings; a `body`
//!   needs a `Content-Type` among them (else `400`). `dependsOn` lists ids
//!   of the same batch (unknown ids, self-references and cycles are `400`).
//! - Every check is made before any request runs, so a `400` batch changes
//!   nothing. Otherwise the batch answers `200`
//!   `{"responses":[{"id","status","headers","body"}]}` whatever its
//!   requests answered.
//! - Requests run one after another, in input order except that a request
//!   runs after those it depends on. Each runs like a direct request (see
//!   the runner the dispatcher passes: recorded, faults, auth, write
//!   throttle, handler). A request whose dependency answered other than
//!   2xx is not run and answers `424 FailedDependency`.
//! - Inner `headers` carry the handler's headers (`Content-Type`,
//!   `Location`, `Retry-After`, ...) plus the inner `request-id` and
//!   `client-request-id`. A JSON body is embedded as JSON; any other body
//!   as a base64 string, as Graph does; an empty body is left out.
//! - The responses come in input order, or shuffled by [`ResponseOrder`]
//!   when a seed is configured (the same seed gives the same orders).
//! - A wire fault picked for an inner request (reset, close, no answer,
//!   ...) happens to the envelope's connection: the whole answer is lost,
//!   while the requests that already ran stay applied.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine as _;
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::log::{BatchItem, RecordedRequest};
use crate::message::{Request, RequestIds, Response};
use crate::odata::{self, bad_request, json_response, method_not_allowed};
use crate::server::Answer;
use crate::sync::lock;

/// The most requests one batch may hold.
pub(crate) const MAX_REQUESTS: usize = 20;

/// The methods an inner request may use.
const METHODS: [&str; 5] = ["GET", "POST", "PATCH", "PUT", "DELETE"];

/// The version segment of `/{version}/$batch` (`beta` or `v1.0`, any case,
/// as sent), if `path` is one.
pub(crate) fn batch_version(path: &str) -> Option<&str> {
    let (version, rest) = path.strip_prefix('/')?.split_once('/')?;
    let known = version.eq_ignore_ascii_case("beta") || version.eq_ignore_ascii_case("v1.0");
    (known && rest == "$batch").then_some(version)
}

/// The order in which a batch's responses are listed.
#[derive(Debug)]
pub(crate) struct ResponseOrder {
    /// The shuffle's PRNG state; `None` keeps input order.
    rng: Mutex<Option<u64>>,
}

impl ResponseOrder {
    /// Input order (`None`), or shuffled by a PRNG seeded with `seed`.
    pub(crate) fn new(seed: Option<u64>) -> Self {
        ResponseOrder {
            rng: Mutex::new(seed.map(|s| s ^ 0x9E37_79B9_7F4A_7C15)),
        }
    }

    /// Reorders `items` (Fisher-Yates over splitmix64); each batch draws
    /// on, so later batches get other orders, repeatably.
    fn apply<T>(&self, items: &mut [T]) {
        let mut rng = lock(&self.rng);
        let Some(state) = rng.as_mut() else {
            return;
        };
        for i in (1..items.len()).rev() {
            *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = *state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let j = (z % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

/// A JSON object with its members in document order, values kept raw.
struct OrderedObject(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for OrderedObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = OrderedObject;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedObject, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, Box<RawValue>>()? {
                    members.push(member);
                }
                Ok(OrderedObject(members))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

impl OrderedObject {
    fn get(&self, name: &str) -> Option<&RawValue> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| &**v)
    }
}

/// One inner request, checked.
struct Item {
    id: String,
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    /// The raw JSON text of `body`, if present and not `null`.
    body: Option<String>,
    depends_on: Vec<String>,
}

/// Parses and checks a whole batch; the error is the `400` message.
fn parse(body: &[u8]) -> Result<Vec<Item>, String> {
    let envelope: OrderedObject = serde_json::from_slice(body).map_err(|e| {
        format!("The batch request body is not a JSON object with a 'requests' array: {e}.")
    })?;
    let requests = envelope
        .get("requests")
        .ok_or("The batch request body has no 'requests' property.")?;
    let requests: Vec<&RawValue> = serde_json::from_str(requests.get())
        .map_err(|_| "The batch property 'requests' must be an array.".to_owned())?;
    if requests.len() > MAX_REQUESTS {
        return Err(format!(
            "The batch holds {} requests; the limit is {MAX_REQUESTS}.",
            requests.len()
        ));
    }
    let items = requests
        .iter()
        .enumerate()
        .map(|(i, raw)| parse_item(i, raw))
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen: HashMap<String, &str> = HashMap::new();
    for item in &items {
        if let Some(first) = seen.insert(item.id.to_lowercase(), &item.id) {
            return Err(format!(
                "The batch request ids must be unique without regard to case: '{first}' and '{}'.",
                item.id
            ));
        }
    }
    for (i, item) in items.iter().enumerate() {
        for dep in &item.depends_on {
            if dep.eq_ignore_ascii_case(&item.id) {
                return Err(format!(
                    "requests[{i}].dependsOn: request '{}' depends on itself.",
                    item.id
                ));
            }
            if !seen.contains_key(&dep.to_lowercase()) {
                return Err(format!(
                    "requests[{i}].dependsOn: '{dep}' is not the id of a request in this batch."
                ));
            }
        }
    }
    Ok(items)
}

fn parse_item(i: usize, raw: &RawValue) -> Result<Item, String> {
    let object: OrderedObject = serde_json::from_str(raw.get())
        .map_err(|_| format!("requests[{i}] must be a JSON object."))?;
    let string = |name: &str| -> Result<Option<String>, String> {
        match object.get(name) {
            None => Ok(None),
            Some(v) => match serde_json::from_str::<Value>(v.get()) {
                Ok(Value::String(s)) => Ok(Some(s)),
                _ => Err(format!("requests[{i}].{name} must be a string.")),
            },
        }
    };
    let id = string("id")?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("requests[{i}].id is required (a non-empty string)."))?;
    let method = string("method")?
        .ok_or_else(|| format!("requests[{i}].method is required."))?
        .to_ascii_uppercase();
    if !METHODS.contains(&method.as_str()) {
        return Err(format!(
            "requests[{i}].method '{method}' is not one of {}.",
            METHODS.join(", ")
        ));
    }
    let url = string("url")?.ok_or_else(|| format!("requests[{i}].url is required."))?;
    if url.contains("://") || url.starts_with("//") {
        return Err(format!(
            "requests[{i}].url '{url}' must be relative to the version root, e.g. /deviceManagement/..."
        ));
    }
    let headers = match object.get("headers") {
        None => Vec::new(),
        Some(raw) if raw.get() == "null" => Vec::new(),
        Some(raw) => {
            let members: OrderedObject = serde_json::from_str(raw.get())
                .map_err(|_| format!("requests[{i}].headers must be an object."))?;
            members
                .0
                .into_iter()
                .map(
                    |(name, value)| match serde_json::from_str::<Value>(value.get()) {
                        Ok(Value::String(v)) => Ok((name, v)),
                        _ => Err(format!("requests[{i}].headers.{name} must be a string.")),
                    },
                )
                .collect::<Result<Vec<_>, _>>()?
        }
    };
    let body = object
        .get("body")
        .map(|b| b.get().to_owned())
        .filter(|b| b != "null");
    if body.is_some()
        && !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
    {
        return Err(format!(
            "requests[{i}] has a body but no Content-Type header."
        ));
    }
    let depends_on = match object.get("dependsOn") {
        None => Vec::new(),
        Some(raw) => serde_json::from_str::<Vec<String>>(raw.get())
            .map_err(|_| format!("requests[{i}].dependsOn must be an array of ids."))?,
    };
    Ok(Item {
        id,
        method,
        url,
        headers,
        body,
        depends_on,
    })
}

/// The order in which to run `items`: input order, each after the items it
/// depends on; `None` if `dependsOn` forms a cycle.
fn run_order(items: &[Item]) -> Option<Vec<usize>> {
    let mut done: Vec<String> = Vec::new();
    let mut pending: Vec<usize> = (0..items.len()).collect();
    let mut order = Vec::new();
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|&i| {
            let ready = items[i]
                .depends_on
                .iter()
                .all(|d| done.iter().any(|x| x.eq_ignore_ascii_case(d)));
            if ready {
                done.push(items[i].id.clone());
                order.push(i);
            }
            !ready
        });
        if pending.len() == before {
            return None;
        }
    }
    Some(order)
}

/// One request of a batch, ready to run.
pub(crate) struct InnerRequest {
    /// The request as the handlers see it: `/{version}{url}`, its own
    /// headers plus the envelope's `Authorization` and `Host` when it has
    /// none, its body.
    pub(crate) request: Request,
    /// Its log entry (its own headers only, marked as a batch item).
    pub(crate) recorded: RecordedRequest,
    /// Its own ids (its `client-request-id` header, else the envelope's).
    pub(crate) ids: RequestIds,
}

/// Answers a `$batch` envelope (already recorded, faulted and
/// authenticated); `run` runs one inner request like a direct one.
pub(crate) fn answer(
    envelope: &Request,
    ids: &RequestIds,
    version: &str,
    order: &ResponseOrder,
    run: &mut dyn FnMut(&InnerRequest) -> Answer,
) -> Answer {
    if envelope.method != "POST" {
        return Answer::Respond(method_not_allowed(ids, "POST"));
    }
    let items = match parse(&envelope.body) {
        Ok(items) => items,
        Err(message) => return Answer::Respond(bad_request(ids, &message)),
    };
    let Some(run_order) = run_order(&items) else {
        return Answer::Respond(bad_request(
            ids,
            "The batch requests' dependsOn form a cycle.",
        ));
    };
    let mut statuses: Vec<Option<u16>> = vec![None; items.len()];
    let mut responses: Vec<Option<Value>> = vec![None; items.len()];
    for i in run_order {
        let item = &items[i];
        let inner = inner_request(envelope, ids, version, item);
        let failed = item.depends_on.iter().find(|d| {
            items.iter().zip(&statuses).any(|(other, status)| {
                other.id.eq_ignore_ascii_case(d) && !status.is_some_and(|s| (200..300).contains(&s))
            })
        });
        let response = match failed {
            Some(dep) => odata::error(
                &inner.ids,
                424,
                "FailedDependency",
                &format!(
                    "The request '{}' depends on '{dep}', which failed.",
                    item.id
                ),
            ),
            None => match run(&inner) {
                Answer::Respond(r) => r,
                Answer::Wire(fault) => return Answer::Wire(fault),
            },
        };
        statuses[i] = Some(response.status);
        responses[i] = Some(response_json(&item.id, response, &inner.ids));
    }
    let mut responses: Vec<Value> = responses.into_iter().flatten().collect();
    order.apply(&mut responses);
    Answer::Respond(json_response(200, &json!({ "responses": responses })))
}

fn inner_request(
    envelope: &Request,
    envelope_ids: &RequestIds,
    version: &str,
    item: &Item,
) -> InnerRequest {
    let url = if item.url.starts_with('/') {
        item.url.clone()
    } else {
        format!("/{}", item.url)
    };
    let body = item.body.clone().unwrap_or_default().into_bytes();
    let own = |name: &str| {
        item.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    let mut headers = item.headers.clone();
    for name in ["Authorization", "Host"] {
        if let (false, Some(value)) = (own(name), envelope.header(name)) {
            headers.push((name.to_owned(), value.to_owned()));
        }
    }
    let client_request_id = item
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("client-request-id"))
        .map(|(_, v)| v.as_str())
        .unwrap_or(&envelope_ids.client_request_id);
    let target = format!("/{version}{url}");
    InnerRequest {
        request: Request {
            method: item.method.clone(),
            target: target.clone(),
            minor: envelope.minor,
            headers,
            body: body.clone(),
            received: envelope.received,
        },
        recorded: RecordedRequest {
            method: item.method.clone(),
            target,
            headers: item.headers.clone(),
            body,
            received: envelope.received,
            batch: Some(BatchItem {
                id: item.id.clone(),
                url: item.url.clone(),
                depends_on: item.depends_on.clone(),
                envelope_request_id: envelope_ids.request_id.clone(),
            }),
        },
        ids: RequestIds::new(Some(client_request_id)),
    }
}

/// `{"id","status","headers","body"}` for one inner response.
fn response_json(id: &str, response: Response, ids: &RequestIds) -> Value {
    let mut headers = Map::new();
    for (name, value) in &response.headers {
        headers.insert(name.clone(), Value::String(value.clone()));
    }
    headers.insert("request-id".into(), Value::String(ids.request_id.clone()));
    headers.insert(
        "client-request-id".into(),
        Value::String(ids.client_request_id.clone()),
    );
    let is_json = response
        .headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("content-type") && v.contains("json"));
    let mut out = json!({ "id": id, "status": response.status, "headers": headers });
    if !response.body.is_empty() {
        let body = match serde_json::from_slice::<Value>(&response.body) {
            Ok(v) if is_json => v,
            _ => Value::String(base64::engine::general_purpose::STANDARD.encode(&response.body)),
        };
        out["body"] = body;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_paths() {
        assert_eq!(batch_version("/beta/$batch"), Some("beta"));
        assert_eq!(batch_version("/V1.0/$batch"), Some("V1.0"));
        assert_eq!(batch_version("/v2/$batch"), None);
        assert_eq!(batch_version("/beta/$batch/x"), None);
        assert_eq!(batch_version("/beta/deviceManagement"), None);
    }

    #[test]
    fn checks_name_the_problem() {
        let cases = [
            (r#"[]"#, "JSON object"),
            (r#"{}"#, "'requests'"),
            (r#"{"requests":{}}"#, "array"),
            (r#"{"requests":[1]}"#, "requests[0] must be"),
            (
                r#"{"requests":[{"method":"GET","url":"/x"}]}"#,
                "requests[0].id",
            ),
            (
                r#"{"requests":[{"id":"1","method":"GO","url":"/x"}]}"#,
                "method 'GO'",
            ),
            (
                r#"{"requests":[{"id":"1","method":"GET"}]}"#,
                "url is required",
            ),
            (
                r#"{"requests":[{"id":"1","method":"GET","url":"https://graph.microsoft.com/beta/x"}]}"#,
                "relative",
            ),
            (
                r#"{"requests":[{"id":"1","method":"PATCH","url":"/x","body":{}}]}"#,
                "Content-Type",
            ),
            (
                r#"{"requests":[{"id":"a","method":"GET","url":"/x"},{"id":"A","method":"GET","url":"/y"}]}"#,
                "'a' and 'A'",
            ),
            (
                r#"{"requests":[{"id":"a","method":"GET","url":"/x","dependsOn":["b"]}]}"#,
                "'b' is not the id",
            ),
            (
                r#"{"requests":[{"id":"a","method":"GET","url":"/x","headers":{"X":1}}]}"#,
                "headers.X",
            ),
        ];
        for (body, needle) in cases {
            let err = parse(body.as_bytes()).err().unwrap_or_default();
            assert!(err.contains(needle), "{body}: {err}");
        }
    }

    #[test]
    fn keeps_body_bytes_and_header_order() {
        let items = parse(
            br#"{"requests":[{"id":"1","method":"patch","url":"/x","headers":{"Z":"1","A":"2","Content-Type":"application/json"},"body":{"b":1,"a":2}}]}"#,
        )
        .unwrap();
        assert_eq!(items[0].method, "PATCH");
        assert_eq!(items[0].body.as_deref(), Some(r#"{"b":1,"a":2}"#));
        let names: Vec<&str> = items[0].headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Z", "A", "Content-Type"]);
    }

    #[test]
    fn runs_dependencies_first_and_refuses_cycles() {
        let items = parse(
            br#"{"requests":[{"id":"1","method":"GET","url":"/x","dependsOn":["2"]},{"id":"2","method":"GET","url":"/x"}]}"#,
        )
        .unwrap();
        assert_eq!(run_order(&items), Some(vec![1, 0]));
        let cycle = parse(
            br#"{"requests":[{"id":"1","method":"GET","url":"/x","dependsOn":["2"]},{"id":"2","method":"GET","url":"/x","dependsOn":["1"]}]}"#,
        )
        .unwrap();
        assert_eq!(run_order(&cycle), None);
    }

    #[test]
    fn shuffles_repeatably_by_seed() {
        let order = |seed| {
            let o = ResponseOrder::new(seed);
            let mut v: Vec<u32> = (0..20).collect();
            o.apply(&mut v);
            v
        };
        assert_eq!(order(None), (0..20).collect::<Vec<_>>());
        assert_eq!(order(Some(7)), order(Some(7)));
        assert_ne!(order(Some(7)), (0..20).collect::<Vec<_>>());
        assert_ne!(order(Some(7)), order(Some(8)));
    }
}
