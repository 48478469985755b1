//! Graph's side of the emulator: checks the bearer token, applies the write
//! throttle and routes a request to the user status handlers.
//!
//! `handlers` answers each operation, `validation` says what a valid body
//! is, `throttle` holds the write limit. Requests reach [`Graph::serve`]
//! already recorded and past the fault plan (see `dispatch`).

mod handlers;
mod query;
mod throttle;
mod validation;

use std::time::Duration;

use serde_json::Value;

pub use handlers::PatchReturns;

use crate::identity::{Identity, TokenState};
use crate::message::{Request, RequestIds, Response};
use crate::odata::{self, bad_request, method_not_allowed};
use crate::router::{self, UnknownSegment};
pub(crate) use handlers::Paging;
use handlers::{Links, UserStatuses};
use throttle::WriteThrottle;

/// Graph's state: the accepted token, the data and the write throttle.
#[derive(Debug)]
pub(crate) struct Graph {
    /// The only bearer token accepted; `None` accepts any non-empty token
    /// (or, once apps are registered, only issued ones).
    token: Option<String>,
    statuses: UserStatuses,
    throttle: WriteThrottle,
}

impl Graph {
    /// Graph with an empty store.
    pub(crate) fn new(
        token: Option<String>,
        patch_returns: PatchReturns,
        throttle_writes: Option<(u32, Duration)>,
        throttle_retry_after: bool,
        paging: Paging,
    ) -> Self {
        Graph {
            token,
            statuses: UserStatuses::new(patch_returns, paging),
            throttle: WriteThrottle::new(throttle_writes, throttle_retry_after),
        }
    }

    /// Adds a user status (see [`crate::Emulator::insert_user_status`]).
    pub(crate) fn insert(&self, collection: &str, entity: Value) -> Result<(), String> {
        self.statuses.insert(collection, entity)
    }

    /// A stored user status (see [`crate::Emulator::user_status`]).
    pub(crate) fn user_status(&self, collection: &str, id: &str) -> Option<Value> {
        self.statuses.user_status(collection, id)
    }

    /// How many writes the throttle answered `429`.
    pub(crate) fn throttled_count(&self) -> usize {
        self.throttle.throttled_count()
    }

    /// Answers a recorded Graph request: auth, write throttling, then the
    /// handler. `base` is `scheme://host` as the client addressed us.
    pub(crate) fn serve(
        &self,
        req: &Request,
        ids: &RequestIds,
        base: &str,
        identity: &Identity,
    ) -> Response {
        if let Err(resp) = self.authenticate(req, ids, identity) {
            return resp;
        }
        if let Some(resp) = self.throttle.check(&req.method, ids) {
            return resp;
        }
        let route = match router::match_path(req.path()) {
            Ok(m) => m,
            Err(UnknownSegment(seg)) => {
                return bad_request(ids, &format!("Resource not found for the segment '{seg}'."));
            }
        };
        let links = Links::new(base, &route);
        let statuses = &self.statuses;
        match (route.item.as_deref(), req.method.as_str()) {
            (None, "GET") => statuses.list(req, ids, &route, &links),
            (None, "POST") => statuses.create(req, ids, &route, &links),
            (None, _) => method_not_allowed(ids, "GET, POST"),
            // `$count` is an OData segment, not an id (the SDKs expose it).
            (Some("$count"), "GET") => statuses.count(&route.collection),
            (Some("$count"), _) => method_not_allowed(ids, "GET"),
            (Some(id), "GET") => statuses.get(req, ids, &route.collection, id, &links),
            (Some(id), "PATCH") => statuses.update(req, ids, &route.collection, id, &links),
            (Some(id), "DELETE") => statuses.delete(ids, &route.collection, id),
            (Some(_), _) => method_not_allowed(ids, "GET, PATCH, DELETE"),
        }
    }

    /// Checks `Authorization: Bearer <token>` against the configured token,
    /// the tokens the identity endpoint issued, or (with neither) accepts
    /// any non-empty token.
    pub(crate) fn authenticate(
        &self,
        req: &Request,
        ids: &RequestIds,
        identity: &Identity,
    ) -> Result<(), Response> {
        let token = req.header("authorization").and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim())
                .filter(|t| !t.is_empty())
        });
        let Some(got) = token else {
            return Err(unauthorized(ids, "Access token is empty."));
        };
        if self.token.as_deref() == Some(got) {
            return Ok(());
        }
        let message = match identity.check(got) {
            TokenState::Valid => return Ok(()),
            TokenState::Expired => "Lifetime validation failed, the token is expired.",
            TokenState::Unknown if self.token.is_some() => {
                "Access token validation failure. Invalid audience."
            }
            TokenState::Unknown if identity.issues_tokens() => "Access token validation failure.",
            TokenState::Unknown => return Ok(()),
        };
        Err(unauthorized(ids, message))
    }
}

/// Graph's `401 InvalidAuthenticationToken`.
fn unauthorized(ids: &RequestIds, message: &str) -> Response {
    odata::error(ids, 401, "InvalidAuthenticationToken", message).header(
        "WWW-Authenticate",
        "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
    )
}
