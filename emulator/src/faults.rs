//! The fault plan: rules that make the emulator misbehave on demand, so a
//! client's retry, timeout and redirect handling can be tested.
//!
//! A fault applies to a Graph request after it was read and recorded in the
//! request log, so tests can count attempts and inspect faulted requests.
//! Only [`Fault::Latency`] and [`Fault::LostAnswer`] let the request reach the
//! handler; every other fault answers (or fails to) in its place, so the
//! store is untouched.
//! Requests inside a `$batch` are matched on their own method and path, like
//! direct ones; the envelope is matched as `POST /{version}/$batch`.

use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::identity::is_token_path;
use crate::managed_identity::is_endpoint_path;
use crate::message::{Request, RequestIds, Response};
use crate::odata::{self, JSON_CONTENT_TYPE};
use crate::server::WireFault;
use crate::sync::lock;

/// One way for the emulator to misbehave on a request.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer this status with a Graph error body (`TooManyRequests` for
    /// 429, `ServiceUnavailable` for 503, `GatewayTimeout` for 504, ...).
    Status {
        /// The status code.
        status: u16,
        /// The raw `Retry-After` value, sent as given (`2`, `2.128`, an HTTP
        /// date, or anything else); `None` sends no `Retry-After`.
        retry_after: Option<String>,
    },
    /// Wait this long, then handle the request normally.
    Latency(Duration),
    /// Never answer; keep the connection open until the client closes it
    /// or the emulator shuts down.
    NoAnswer,
    /// Send a `200` head announcing `Content-Length: 500`, then nothing
    /// (the connection stays open).
    StallAfterHeaders,
    /// Send a `200` head at once, then a small JSON body one byte per
    /// `interval`.
    TrickleBody {
        /// The pause before each body byte.
        interval: Duration,
    },
    /// Close the connection with a TCP RST (`SO_LINGER` 0), without answering.
    Reset,
    /// Close the connection cleanly (FIN), without answering.
    Close,
    /// Handle the request (a write is applied), then close the connection
    /// with a TCP RST instead of answering: the client cannot tell whether it
    /// was applied. Inside a `$batch`, the requests before it are applied
    /// too, those after it never run, and the whole answer is lost.
    LostAnswer,
    /// Answer `200` with a `Content-Length` larger than the body sent, then
    /// close the connection.
    Truncated,
    /// Answer with `Content-Type: text/html` and an HTML body, as a proxy
    /// or load balancer might.
    NonJson {
        /// The status code (e.g. `500`, or `200`).
        status: u16,
    },
    /// Answer `200` with a valid JSON body of exactly `bytes` bytes (for
    /// `bytes >= 2`).
    Oversized {
        /// The body size.
        bytes: usize,
    },
    /// Answer a redirect with a `Location` header and an empty body.
    Redirect {
        /// The status code: 301, 302, 303, 307 or 308.
        status: u16,
        /// The `Location` value, sent as given.
        location: String,
    },
}

/// Which of the matching requests a [`FaultRule`] applies to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scope {
    /// The next N matching requests; then the rule is spent and removed
    /// (`Next(0)` never applies).
    Next(u32),
    /// This share (0.0 to 1.0) of matching requests, drawn from a PRNG with
    /// a fixed seed per rule, so a run is repeatable.
    Share(f64),
    /// Every matching request.
    Always,
}

/// A fault, which requests it applies to, and how often.
///
/// ```
/// use ius_emulator::{Fault, FaultRule};
///
/// let rule = FaultRule::next(2, Fault::Status { status: 503, retry_after: Some("1".into()) })
///     .method("PATCH")
///     .path_contains("/userStatuses/");
/// # let _ = rule;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    /// What to do.
    pub fault: Fault,
    /// How many of the matching requests to do it to.
    pub scope: Scope,
    /// Only requests with this method (case-insensitive); `None` matches any.
    pub method: Option<String>,
    /// Only requests whose raw path (no query) contains this; `None`
    /// matches any.
    pub path_contains: Option<String>,
}

/// Keys every JSON rule may have, besides the fault's own.
const COMMON_KEYS: [&str; 5] = ["fault", "count", "share", "method", "pathContains"];

/// The fault names the JSON form accepts (matched case-insensitively).
const FAULT_NAMES: &str = "status, latency, noAnswer, stall, trickle, reset, close, lostAnswer, truncated, nonJson, oversized, redirect";

impl FaultRule {
    /// Applies `fault` to the next `n` matching requests.
    pub fn next(n: u32, fault: Fault) -> Self {
        Self::with_scope(Scope::Next(n), fault)
    }

    /// Applies `fault` to a share `p` (0.0 to 1.0) of matching requests.
    pub fn share(p: f64, fault: Fault) -> Self {
        Self::with_scope(Scope::Share(p), fault)
    }

    /// Applies `fault` to every matching request.
    pub fn always(fault: Fault) -> Self {
        Self::with_scope(Scope::Always, fault)
    }

    fn with_scope(scope: Scope, fault: Fault) -> Self {
        FaultRule {
            fault,
            scope,
            method: None,
            path_contains: None,
        }
    }

    /// Restricts the rule to requests with this method, e.g. `"PATCH"`.
    pub fn method(mut self, method: impl Into<String>) -> Self {
        self.method = Some(method.into());
        self
    }

    /// Restricts the rule to requests whose raw path contains `part`.
    ///
    /// Only rules with a path filter apply to token requests
    /// (`/{tenant}/oauth2/v2.0/token`, and the managed-identity endpoints),
    /// e.g. `path_contains("/oauth2/")` or `path_contains("/metadata/identity/")`;
    /// rules without one apply to Graph requests only.
    ///
    /// A request inside a `$batch` is matched on its own path
    /// (`/{version}` + its `url`); `path_contains("/$batch")` matches the
    /// envelope only.
    pub fn path_contains(mut self, part: impl Into<String>) -> Self {
        self.path_contains = Some(part.into());
        self
    }

    /// Parses the JSON form used by `POST /_emulator/faults` and `--fault`,
    /// e.g. `{"fault":"status","status":503,"retryAfter":"2.5","count":2}`.
    ///
    /// Keys: `fault` (one of `status`, `latency`, `noAnswer`, `stall`,
    /// `trickle`, `reset`, `close`, `lostAnswer`, `truncated`, `nonJson`, `oversized`,
    /// `redirect`), its parameters (`status`, `retryAfter` (string or
    /// number), `ms`, `intervalMs`, `bytes`, `location`), and optionally
    /// `count` or `share` (neither means every request), `method` and
    /// `pathContains`. Unknown keys are refused, to catch typos. The error
    /// names the problem.
    pub fn from_json(text: &str) -> Result<FaultRule, String> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| format!("The fault rule is not valid JSON: {e}."))?;
        let Value::Object(map) = value else {
            return Err("A fault rule must be a JSON object.".to_owned());
        };
        let kind = match map.get("fault") {
            Some(Value::String(k)) => k.as_str(),
            Some(other) => return Err(format!("'fault' must be a string, not {other}.")),
            None => return Err(format!("Missing 'fault' (one of {FAULT_NAMES}).")),
        };
        let (fault, params): (Fault, &[&str]) = match kind.to_ascii_lowercase().as_str() {
            "status" => (
                Fault::Status {
                    status: status_key(&map, "status", 200..=599)?
                        .ok_or("Missing 'status' (200 to 599).")?,
                    retry_after: match map.get("retryAfter") {
                        None | Some(Value::Null) => None,
                        Some(Value::String(s)) => Some(s.clone()),
                        Some(Value::Number(n)) => Some(n.to_string()),
                        Some(other) => {
                            return Err(format!(
                                "'retryAfter' must be a string or a number, not {other}."
                            ));
                        }
                    },
                },
                &["status", "retryAfter"],
            ),
            "latency" => (
                Fault::Latency(Duration::from_millis(
                    uint_key(&map, "ms")?.ok_or("Missing 'ms' (the delay).")?,
                )),
                &["ms"],
            ),
            "noanswer" => (Fault::NoAnswer, &[]),
            "stall" | "stallafterheaders" => (Fault::StallAfterHeaders, &[]),
            "trickle" | "tricklebody" => (
                Fault::TrickleBody {
                    interval: Duration::from_millis(
                        uint_key(&map, "intervalMs")?
                            .ok_or("Missing 'intervalMs' (the pause per byte).")?,
                    ),
                },
                &["intervalMs"],
            ),
            "reset" => (Fault::Reset, &[]),
            "close" => (Fault::Close, &[]),
            "lostanswer" => (Fault::LostAnswer, &[]),
            "truncated" => (Fault::Truncated, &[]),
            "nonjson" => (
                Fault::NonJson {
                    status: status_key(&map, "status", 200..=599)?.unwrap_or(200),
                },
                &["status"],
            ),
            "oversized" => {
                let bytes = uint_key(&map, "bytes")?.ok_or("Missing 'bytes' (the body size).")?;
                let bytes = usize::try_from(bytes).map_err(|_| "'bytes' is too large.")?;
                (Fault::Oversized { bytes }, &["bytes"])
            }
            "redirect" => {
                let status = status_key(&map, "status", 300..=399)?
                    .ok_or("Missing 'status' (301, 302, 303, 307 or 308).")?;
                let location = match map.get("location") {
                    Some(Value::String(l)) => l.clone(),
                    Some(other) => {
                        return Err(format!("'location' must be a string, not {other}."));
                    }
                    None => return Err("Missing 'location'.".to_owned()),
                };
                (
                    Fault::Redirect { status, location },
                    &["status", "location"],
                )
            }
            _ => return Err(format!("Unknown fault '{kind}' (one of {FAULT_NAMES}).")),
        };
        if let Some(key) = map
            .keys()
            .find(|k| !COMMON_KEYS.contains(&k.as_str()) && !params.contains(&k.as_str()))
        {
            let mut allowed: Vec<&str> = COMMON_KEYS.to_vec();
            allowed.extend_from_slice(params);
            return Err(format!(
                "Unknown key '{key}' for fault '{kind}' (allowed: {}).",
                allowed.join(", ")
            ));
        }
        let scope = match (map.get("count"), map.get("share")) {
            (Some(_), Some(_)) => return Err("Give 'count' or 'share', not both.".to_owned()),
            (Some(_), None) => {
                let n = uint_key(&map, "count")?.unwrap_or(0);
                Scope::Next(u32::try_from(n).map_err(|_| "'count' is too large.")?)
            }
            (None, Some(v)) => match v.as_f64() {
                Some(p) if (0.0..=1.0).contains(&p) => Scope::Share(p),
                _ => return Err(format!("'share' must be a number from 0 to 1, not {v}.")),
            },
            (None, None) => Scope::Always,
        };
        let mut rule = FaultRule::with_scope(scope, fault);
        rule.method = opt_string_key(&map, "method")?;
        rule.path_contains = opt_string_key(&map, "pathContains")?;
        Ok(rule)
    }

    fn matches(&self, req: &Request) -> bool {
        // A rule without a path filter is about Graph: letting it hit token
        // requests too would shift every count as soon as a client fetches
        // a token first.
        (self.path_contains.is_some()
            || !(is_token_path(req.path()) || is_endpoint_path(req.path())))
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(&req.method))
            && self
                .path_contains
                .as_deref()
                .is_none_or(|p| req.path().contains(p))
    }
}

/// A non-negative integer key, if present.
fn uint_key(map: &Map<String, Value>, key: &str) -> Result<Option<u64>, String> {
    match map.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("'{key}' must be a non-negative integer, not {v}.")),
    }
}

/// A status code key in `range`, if present.
fn status_key(
    map: &Map<String, Value>,
    key: &str,
    range: std::ops::RangeInclusive<u16>,
) -> Result<Option<u16>, String> {
    let Some(v) = map.get(key) else {
        return Ok(None);
    };
    match v.as_u64().and_then(|n| u16::try_from(n).ok()) {
        Some(n) if range.contains(&n) => Ok(Some(n)),
        _ => Err(format!(
            "'{key}' must be a status code from {} to {}, not {v}.",
            range.start(),
            range.end()
        )),
    }
}

/// A string key, if present.
fn opt_string_key(map: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("'{key}' must be a string, not {other}.")),
    }
}

/// A rule in the plan, with its own PRNG state for [`Scope::Share`].
#[derive(Debug)]
struct ActiveRule {
    rule: FaultRule,
    rng: u64,
}

/// A fixed seed: every share rule draws the same sequence, so runs repeat.
const SEED: u64 = 0x9E37_79B9_7F4A_7C15;

impl ActiveRule {
    fn new(rule: FaultRule) -> Self {
        ActiveRule { rule, rng: SEED }
    }

    /// A uniform draw in `[0, 1)` (xorshift64).
    fn draw(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The ordered fault rules of one emulator.
#[derive(Debug, Default)]
pub(crate) struct FaultPlan {
    rules: Mutex<Vec<ActiveRule>>,
}

impl FaultPlan {
    /// A plan with these rules, in order.
    pub(crate) fn new(rules: Vec<FaultRule>) -> Self {
        FaultPlan {
            rules: Mutex::new(rules.into_iter().map(ActiveRule::new).collect()),
        }
    }

    /// Appends a rule.
    pub(crate) fn add(&self, rule: FaultRule) {
        lock(&self.rules).push(ActiveRule::new(rule));
    }

    /// Removes every rule.
    pub(crate) fn clear(&self) {
        lock(&self.rules).clear();
    }

    /// The fault for this request, if any rule applies; counts it against
    /// that rule.
    pub(crate) fn pick(&self, req: &Request) -> Option<Fault> {
        let mut rules = lock(&self.rules);
        for i in 0..rules.len() {
            let active = &mut rules[i];
            if !active.rule.matches(req) {
                continue;
            }
            match active.rule.scope {
                Scope::Always => return Some(active.rule.fault.clone()),
                Scope::Share(p) => {
                    // A miss lets later rules have a go.
                    if active.draw() < p {
                        return Some(active.rule.fault.clone());
                    }
                }
                Scope::Next(0) => {}
                Scope::Next(n) => {
                    let fault = active.rule.fault.clone();
                    if n == 1 {
                        rules.remove(i);
                    } else {
                        active.rule.scope = Scope::Next(n - 1);
                    }
                    return Some(fault);
                }
            }
        }
        None
    }
}

/// What a fault does to the request it picked.
pub(crate) enum Effect {
    /// Answer this instead of the handler.
    Respond(Response),
    /// Wait this long, then let the handler answer.
    Delay(Duration),
    /// Let the handler run, then misbehave on the connection instead of
    /// answering.
    AfterHandler(WireFault),
    /// Misbehave on the connection (for a request inside a `$batch`, the
    /// envelope's connection).
    Wire(WireFault),
}

impl Fault {
    /// What this fault does; `ids` go into any error body.
    pub(crate) fn effect(&self, ids: &RequestIds) -> Effect {
        match self {
            Fault::Status {
                status,
                retry_after,
            } => {
                let (code, message) = match status {
                    429 => ("TooManyRequests", "Too many requests."),
                    500 => ("InternalServerError", "An internal server error occurred."),
                    502 => ("BadGateway", "Bad gateway."),
                    503 => (
                        "ServiceUnavailable",
                        "The service is temporarily unavailable.",
                    ),
                    504 => ("GatewayTimeout", "The gateway timed out."),
                    _ => ("UnknownError", "An injected fault occurred."),
                };
                let mut resp = odata::error(ids, *status, code, message);
                if let Some(value) = retry_after {
                    resp = resp.header("Retry-After", value.clone());
                }
                Effect::Respond(resp)
            }
            Fault::Latency(delay) => Effect::Delay(*delay),
            Fault::NoAnswer => Effect::Wire(WireFault::NoAnswer),
            Fault::StallAfterHeaders => Effect::Wire(WireFault::StallAfterHeaders),
            Fault::TrickleBody { interval } => Effect::Wire(WireFault::TrickleBody {
                interval: *interval,
            }),
            Fault::Reset => Effect::Wire(WireFault::Reset),
            Fault::Close => Effect::Wire(WireFault::Close),
            Fault::LostAnswer => Effect::AfterHandler(WireFault::Reset),
            Fault::Truncated => Effect::Wire(WireFault::Truncated),
            Fault::NonJson { status } => {
                let html = format!(
                    "<!DOCTYPE html>\n<html><head><title>{status}</title></head>\
                     <body><h1>{status}</h1><p>Injected non-JSON answer.</p></body></html>\n"
                );
                Effect::Respond(Response::with_body(
                    *status,
                    "text/html; charset=utf-8",
                    html.into_bytes(),
                ))
            }
            Fault::Oversized { bytes } => Effect::Respond(Response::with_body(
                200,
                JSON_CONTENT_TYPE,
                padded_json(*bytes),
            )),
            Fault::Redirect { status, location } => {
                Effect::Respond(Response::empty(*status).header("Location", location.clone()))
            }
        }
    }
}

/// A JSON object of exactly `bytes` bytes (a shorter object padded with
/// trailing whitespace when there is no room for the padding property).
fn padded_json(bytes: usize) -> Vec<u8> {
    const OPEN: &[u8] = br#"{"padding":""#;
    const CLOSE: &[u8] = br#""}"#;
    if bytes >= OPEN.len() + CLOSE.len() {
        let mut body = Vec::with_capacity(bytes);
        body.extend_from_slice(OPEN);
        body.resize(bytes - CLOSE.len(), b'x');
        body.extend_from_slice(CLOSE);
        body
    } else {
        let mut body = b"{}".to_vec();
        body.resize(bytes, b' ');
        body.truncate(bytes);
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_json_has_the_exact_size() {
        for n in [0, 1, 2, 5, 13, 14, 15, 1000] {
            let body = padded_json(n);
            assert_eq!(body.len(), n);
            if n >= 2 {
                serde_json::from_slice::<Value>(&body).unwrap();
            }
        }
    }

    #[test]
    fn parses_the_documented_examples() {
        let r =
            FaultRule::from_json(r#"{"fault":"status","status":503,"retryAfter":"2.5","count":2}"#)
                .unwrap();
        assert_eq!(
            r,
            FaultRule::next(
                2,
                Fault::Status {
                    status: 503,
                    retry_after: Some("2.5".into())
                }
            )
        );
        let r = FaultRule::from_json(r#"{"fault":"latency","ms":200,"share":0.5}"#).unwrap();
        assert_eq!(
            r,
            FaultRule::share(0.5, Fault::Latency(Duration::from_millis(200)))
        );
        let r = FaultRule::from_json(r#"{"fault":"reset","count":1,"method":"PATCH"}"#).unwrap();
        assert_eq!(r, FaultRule::next(1, Fault::Reset).method("PATCH"));
        let r = FaultRule::from_json(r#"{"fault":"noAnswer"}"#).unwrap();
        assert_eq!(r, FaultRule::always(Fault::NoAnswer));
        let r = FaultRule::from_json(r#"{"fault":"status","status":429,"retryAfter":2}"#).unwrap();
        assert!(matches!(r.fault, Fault::Status { retry_after: Some(ref v), .. } if v == "2"));
        let r = FaultRule::from_json(r#"{"fault":"nonJson"}"#).unwrap();
        assert_eq!(r.fault, Fault::NonJson { status: 200 });
    }

    #[test]
    fn bad_rules_name_the_problem() {
        let cases = [
            ("{", "not valid JSON"),
            ("[]", "JSON object"),
            (r#"{"count":1}"#, "Missing 'fault'"),
            (r#"{"fault":"boom"}"#, "Unknown fault 'boom'"),
            (r#"{"fault":"status"}"#, "'status'"),
            (r#"{"fault":"status","status":99}"#, "'status'"),
            (r#"{"fault":"latency","ms":-1}"#, "'ms'"),
            (r#"{"fault":"reset","cuont":1}"#, "'cuont'"),
            (r#"{"fault":"reset","count":1,"share":0.5}"#, "not both"),
            (r#"{"fault":"reset","share":1.5}"#, "'share'"),
            (r#"{"fault":"redirect","status":307}"#, "'location'"),
            (
                r#"{"fault":"redirect","status":200,"location":"x"}"#,
                "'status'",
            ),
            (r#"{"fault":"reset","method":1}"#, "'method'"),
        ];
        for (json, needle) in cases {
            let err = FaultRule::from_json(json).unwrap_err();
            assert!(err.contains(needle), "{json}: {err}");
        }
    }
}
