//! Which failures end a report's delivery, which say the next batch would fare the same, and how
//! an error is kept in the failed list.
//!
//! The failed list stores the error as JSON with every field of the [`Error`], so
//! [`Outbox::take_failed`](super::Outbox::take_failed) hands back the same error the flush saw
//! (and the C layer writes its usual error JSON from it).

use serde_json::{Value, json};

use crate::{Error, GraphError, TransportKind};

/// True when sending the report again cannot succeed by itself: Graph refused it with a 4xx
/// other than 401, 408 (timeout) or 429 (throttled), e.g. 404 for a user status that no longer
/// exists, or 403 (the app was authenticated and lacks the permission or scope: nothing but an
/// operator fixes that, and `requeue_failed` sends it again then), or the report itself is
/// invalid. Everything else is transient and retried by a later flush: throttling, 5xx, network,
/// timeouts, no token, and a 401 that a fresh token did not cure (credentials wrong for a while:
/// a secret rotated, consent pending; they come right without the report changing).
pub(crate) fn is_permanent(error: &Error) -> bool {
    match error {
        Error::Graph(graph) => {
            (400..500).contains(&graph.status) && !matches!(graph.status, 401 | 408 | 429)
        }
        Error::InvalidInput { .. } => true,
        _ => false,
    }
}

/// True when the result says every other request would fail alike now, so a flush stops sending
/// once a whole batch ends so: Graph or the token endpoint could not be reached (no answer at
/// all: refused, reset, DNS, a connect timeout), no token could be had, or Graph refused the
/// credentials (a 401 a fresh token did not cure).
pub(crate) fn fails_every_request(error: &Error) -> bool {
    error.got_no_answer() || error.auth().is_some() || refuses_the_credentials(error)
}

/// True when the result says the credentials were refused: no token could be had for a reason
/// trying later does not cure (the token endpoint refused them, e.g. `invalid_client`, or the
/// token source failed so), or Graph answered 401 (a fresh token did not cure it). The flush
/// that stops for it logs at WARN. A token endpoint that could not be reached or failed for a
/// while (a transient [`AuthError`](crate::AuthError)) refused nothing: the flush is offline.
/// Nor did a 401 whose resend with a fresh token never left (the client's own pacing gate
/// refused it: `retry_stopped` says so): the fresh token was not tried.
pub(crate) fn refuses_the_credentials(error: &Error) -> bool {
    error.auth().is_some_and(|auth| !auth.transient)
        || (error.http_status() == Some(401) && error.retry_stopped().is_none())
}

/// True when the request that ended so certainly was not processed by Graph, so it cannot land
/// later: Graph answered 401 (credentials refused), 429 (throttled) or 503 (unavailable), the
/// client's own hold after a 429 kept it from being sent, no token could be had before any
/// request carried it, or the connection (or its TLS session) could not be made, so the request
/// was never written. A timeout or a connection lost once the request may have been written, a
/// 504, any other answer-less end, or a retry that found no token or was refused at the pacing
/// gate after requests carried it (the error then tells nothing of those, whose fate is
/// unknown) is not: Graph may still apply it.
pub(crate) fn never_processed(error: &Error) -> bool {
    match error {
        Error::Graph(graph) => matches!(graph.status, 401 | 429 | 503),
        // Raised before a request leaves: it speaks for the requests before it only when there
        // were none.
        Error::Throttled { attempts, .. } => *attempts == 0,
        Error::Transport {
            kind: TransportKind::Connect | TransportKind::Dns | TransportKind::Tls,
            no_answer: true,
            ..
        } => true,
        // Only a name or a connection that timed out is a timeout with no answer.
        Error::Timeout {
            no_answer: true, ..
        } => true,
        other => other.auth().is_some() && other.attempts() == 0,
    }
}

/// True when no request carried the item (`carried` requests did): an interrupt, the client's
/// own gate (pacing, the hold after another call's 429), no token, or the outbox unable to write
/// until when Graph may apply the request (the departure hook's STORAGE: the request did not
/// leave) stopped it before the first left. Nothing of it is in doubt, and it failed nothing: it
/// is due as before its claim.
pub(crate) fn never_sent(error: &Error, carried: u32) -> bool {
    (matches!(
        error,
        Error::Cancelled { .. } | Error::Throttled { .. } | Error::Storage { .. }
    ) || error.auth().is_some())
        && carried == 0
}

/// True when no token could be had before any request carried the item: the flush cannot go
/// on, and returns that error (as when its first batch has none).
pub(crate) fn no_token(error: &Error) -> bool {
    error.auth().is_some() && error.attempts() == 0
}

/// True when the client's own gate (pacing, or the hold after another call's 429) kept the item
/// from leaving at all: Graph was not asked about it. (A retry refused there after a request
/// carried it is that request's outcome: a 429 that set the hold, say, and a throttled stop.)
pub(crate) fn refused_at_the_gate(error: &Error) -> bool {
    matches!(error, Error::Throttled { .. }) && error.attempts() == 0
}

/// An error as stored in the failed list.
pub(crate) fn to_json(error: &Error) -> String {
    let value = match error {
        Error::Graph(g) => json!({
            "kind": "graph",
            "status": g.status,
            "code": g.code,
            "message": g.message,
            "requestId": g.request_id,
            "clientRequestId": g.client_request_id,
            "date": g.date,
            "rawBody": g.raw_body,
            "attempts": g.attempts,
        }),
        Error::InvalidInput { field, reason } => json!({
            "kind": "invalidInput",
            "field": field,
            "reason": reason,
        }),
        Error::Storage {
            path,
            reason,
            attempts,
        } => json!({
            "kind": "storage",
            "path": path,
            "reason": reason,
            "attempts": attempts,
        }),
        other => json!({ "kind": "other", "message": other.to_string() }),
    };
    value.to_string()
}

/// A stored error's `attempts` (0 when absent: a file written before it was stored).
fn attempts_of(value: &Value) -> u32 {
    value
        .get("attempts")
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0)
}

/// The stored error back as the [`Error`] the flush saw.
pub(crate) fn from_json(text: &str) -> Error {
    let value: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let text_of = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
    match value.get("kind").and_then(Value::as_str) {
        Some("graph") => Error::Graph(Box::new(GraphError {
            status: value
                .get("status")
                .and_then(Value::as_u64)
                .and_then(|s| u16::try_from(s).ok())
                .unwrap_or(0),
            code: text_of("code"),
            message: text_of("message"),
            request_id: text_of("requestId"),
            client_request_id: text_of("clientRequestId").unwrap_or_default(),
            date: text_of("date"),
            retry_after: None,
            raw_body: text_of("rawBody"),
            attempts: attempts_of(&value),
            retry_stopped: None,
        })),
        Some("invalidInput") => Error::InvalidInput {
            field: text_of("field").unwrap_or_default(),
            reason: text_of("reason").unwrap_or_default(),
        },
        Some("storage") => {
            let mut error = Error::storage(
                text_of("path").unwrap_or_default(),
                text_of("reason").unwrap_or_default(),
            );
            error.set_attempts(attempts_of(&value));
            error
        }
        _ => Error::InvalidInput {
            field: "error".into(),
            reason: text_of("message").unwrap_or_else(|| format!("unreadable stored error {text}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report Graph would refuse as sent (invalid input) fails at once: it is not retried by
    /// every flush for ever. (Kills the mutant that drops `InvalidInput` from `is_permanent`.)
    #[test]
    fn an_invalid_report_is_permanent() {
        assert!(is_permanent(&Error::invalid("devicesCount", "negative")));
        assert!(!is_permanent(&Error::storage("o.db", "disk I/O error")));
    }

    /// Only the client's own gate refusing a request before any left is "paced": a THROTTLED
    /// after a request carried the item is that request's outcome, and another error that carried
    /// nothing (an interrupt, the departure hook's STORAGE) is not the gate. (Kills `&&` -> `||`.)
    #[test]
    fn only_a_gate_refusal_before_any_request_is_paced() {
        let throttled = |attempts| Error::Throttled {
            wait: std::time::Duration::from_secs(1),
            client_request_id: "crid".into(),
            attempts,
        };
        assert!(refused_at_the_gate(&throttled(0)));
        assert!(!refused_at_the_gate(&throttled(1)));
        assert!(!refused_at_the_gate(&Error::cancelled(
            "about to send",
            "crid",
            0
        )));
        assert!(!refused_at_the_gate(&Error::storage("o.db", "busy")));
    }

    #[test]
    fn a_graph_error_round_trips_and_only_real_refusals_are_permanent() {
        let graph = |status| {
            Error::Graph(Box::new(GraphError {
                status,
                code: Some("ResourceNotFound".into()),
                message: Some("gone".into()),
                request_id: Some("req".into()),
                client_request_id: "crid".into(),
                date: None,
                retry_after: None,
                raw_body: None,
                attempts: 1,
                retry_stopped: None,
            }))
        };
        let back = from_json(&to_json(&graph(404)));
        assert_eq!(back.graph(), graph(404).graph());
        assert!(is_permanent(&graph(404)) && is_permanent(&graph(400)));
        for status in [408, 429, 500, 503] {
            assert!(!is_permanent(&graph(status)), "{status}");
        }
        let invalid = from_json(&to_json(&Error::invalid("route", "v1.0")));
        assert!(matches!(invalid, Error::InvalidInput { field, .. } if field == "route"));
        let storage = Error::storage("/var/lib/outbox.db", "row /x cannot be read");
        assert!(matches!(
            from_json(&to_json(&storage)),
            Error::Storage { path, reason, .. } if path == "/var/lib/outbox.db" && reason == "row /x cannot be read"
        ));
        let mut carried = storage.clone();
        carried.set_attempts(2);
        assert_eq!(from_json(&to_json(&carried)).attempts(), 2);
    }

    #[test]
    fn a_401_is_transient_and_stops_a_flush_as_no_token_and_no_answer_do() {
        let graph = |status| {
            Error::Graph(Box::new(GraphError {
                status,
                code: None,
                message: None,
                request_id: None,
                client_request_id: "crid".into(),
                date: None,
                retry_after: None,
                raw_body: None,
                attempts: 2,
                retry_stopped: None,
            }))
        };
        assert!(!is_permanent(&graph(401)) && is_permanent(&graph(403)));
        assert!(fails_every_request(&graph(401)));
        assert!(!fails_every_request(&graph(403)) && !fails_every_request(&graph(503)));
        let no_token: Error = crate::AuthError::new("secret rotated").into();
        assert!(fails_every_request(&no_token) && !is_permanent(&no_token));
        // No answer is the error's own flag, whatever its stage is called.
        let timeout = |stage: &str, no_answer| Error::Timeout {
            stage: stage.into(),
            elapsed: std::time::Duration::from_secs(1),
            client_request_id: String::new(),
            attempts: 1,
            no_answer,
        };
        assert!(fails_every_request(&timeout("connect", true)));
        assert!(!fails_every_request(&timeout("connect", false)));
        assert!(!fails_every_request(&timeout("response", false)));
    }

    #[test]
    fn a_refusal_at_the_gate_is_never_processed_only_when_no_request_went_before_it() {
        let refused = |attempts| Error::Throttled {
            wait: std::time::Duration::from_secs(1),
            client_request_id: "crid".into(),
            attempts,
        };
        assert!(never_processed(&refused(0)));
        // The request before the refused retry may still land.
        assert!(!never_processed(&refused(1)) && !never_processed(&refused(2)));
        let cancelled = Error::cancelled("waiting at the pacing gate", "crid", 1);
        assert!(!never_processed(&cancelled));
    }

    #[test]
    fn the_departure_hooks_storage_error_is_not_sent_only_when_no_request_carried_the_item() {
        let hook = Error::storage("o.db", "database is locked");
        assert!(never_sent(&hook, 0));
        // A resend the hook kept back: the request before it may still land.
        assert!(!never_sent(&hook, 1) && !never_processed(&hook));
    }
}
