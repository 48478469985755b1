//! The `/_emulator/*` endpoints: the request logs, fault rules, token
//! expiry, federated tokens, health and stats. No auth, not recorded.

use std::time::Duration;

use serde_json::Value;

use crate::faults::{FaultPlan, FaultRule};
use crate::federated::DEFAULT_ISSUER;
use crate::identity::Identity;
use crate::log::RequestLog;
use crate::message::{Request, RequestIds, Response};
use crate::odata::{self, method_not_allowed};

/// Whether `path` is an admin endpoint.
pub(crate) fn is_admin_path(path: &str) -> bool {
    path == "/_emulator" || path.starts_with("/_emulator/")
}

/// What the admin endpoints read and change.
pub(crate) struct AdminView<'a> {
    /// The Graph request log.
    pub(crate) requests: &'a RequestLog,
    /// The fault rules.
    pub(crate) faults: &'a FaultPlan,
    /// The token endpoint (its log, issued tokens).
    pub(crate) identity: &'a Identity,
    /// How many writes the throttle answered `429`.
    pub(crate) throttled: usize,
    /// How many TCP connections were accepted.
    pub(crate) connections: usize,
    /// How many of them ended.
    pub(crate) connections_closed: usize,
}

const JSON: &str = "application/json; charset=utf-8";

fn log_json(log: &RequestLog) -> Response {
    let all: Vec<Value> = log.snapshot().iter().map(|r| r.to_json()).collect();
    Response::with_body(200, JSON, serde_json::to_vec(&all).unwrap_or_default())
}

/// `POST /_emulator/federated-tokens`: `{"subject","issuer"?,"lifetimeSecs"?}`
/// gives `{"token"}`, a platform token for workload identity federation.
fn mint(identity: &Identity, body: &[u8], ids: &RequestIds) -> Response {
    let request: Value = match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Value::Object(map),
        _ => return odata::bad_request(ids, "The body must be a JSON object with 'subject'."),
    };
    let Some(subject) = request.get("subject").and_then(Value::as_str) else {
        return odata::bad_request(ids, "Missing 'subject' (a string).");
    };
    let issuer = match request.get("issuer") {
        None => DEFAULT_ISSUER,
        Some(Value::String(issuer)) => issuer.as_str(),
        Some(_) => return odata::bad_request(ids, "'issuer' must be a string."),
    };
    let lifetime = match request.get("lifetimeSecs") {
        None => 3600,
        Some(value) => match value.as_u64() {
            Some(secs) => secs,
            None => return odata::bad_request(ids, "'lifetimeSecs' must be a whole number."),
        },
    };
    let token = identity
        .federated
        .mint(issuer, subject, Duration::from_secs(lifetime));
    Response::with_body(
        200,
        JSON,
        serde_json::json!({ "token": token })
            .to_string()
            .into_bytes(),
    )
}

/// Answers one admin request.
pub(crate) fn answer(view: &AdminView<'_>, req: &Request, ids: &RequestIds) -> Response {
    match (req.path(), req.method.as_str()) {
        ("/_emulator/requests", "GET") => log_json(view.requests),
        ("/_emulator/requests", "DELETE") => {
            view.requests.clear();
            Response::empty(204)
        }
        ("/_emulator/requests", _) => method_not_allowed(ids, "GET, DELETE"),
        ("/_emulator/health", "GET") => {
            Response::with_body(200, JSON, br#"{"status":"ok"}"#.to_vec())
        }
        ("/_emulator/health", _) => method_not_allowed(ids, "GET"),
        ("/_emulator/faults", "POST") => {
            let rule = std::str::from_utf8(&req.body)
                .map_err(|_| "The fault rule is not UTF-8.".to_owned())
                .and_then(FaultRule::from_json);
            match rule {
                Ok(rule) => {
                    view.faults.add(rule);
                    Response::empty(204)
                }
                Err(message) => odata::bad_request(ids, &message),
            }
        }
        ("/_emulator/faults", "DELETE") => {
            view.faults.clear();
            Response::empty(204)
        }
        ("/_emulator/faults", _) => method_not_allowed(ids, "POST, DELETE"),
        ("/_emulator/token-requests", "GET") => log_json(&view.identity.log),
        ("/_emulator/token-requests", "DELETE") => {
            view.identity.log.clear();
            Response::empty(204)
        }
        ("/_emulator/token-requests", _) => method_not_allowed(ids, "GET, DELETE"),
        ("/_emulator/tokens/expire", "POST") => {
            view.identity.expire_all();
            Response::empty(204)
        }
        ("/_emulator/tokens/expire", _) => method_not_allowed(ids, "POST"),
        ("/_emulator/federated-tokens", "POST") => mint(view.identity, &req.body, ids),
        ("/_emulator/federated-tokens", _) => method_not_allowed(ids, "POST"),
        ("/_emulator/stats", "GET") => {
            let stats = serde_json::json!({
                "connectionsAccepted": view.connections,
                "connectionsClosed": view.connections_closed,
                "throttled": view.throttled,
                "requests": view.requests.len(),
                "tokenRequests": view.identity.log.len(),
                "issuedTokens": view.identity.issued_count(),
            });
            Response::with_body(200, JSON, stats.to_string().into_bytes())
        }
        ("/_emulator/stats", _) => method_not_allowed(ids, "GET"),
        _ => odata::error(
            ids,
            404,
            "ResourceNotFound",
            "Unknown emulator admin endpoint.",
        ),
    }
}
