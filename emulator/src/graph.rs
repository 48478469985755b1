//! Graph semantics: auth, the user status handlers, validation and
//! Graph-shaped error bodies. Also the `/_emulator/*` admin endpoints.

use std::sync::atomic::Ordering;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::faults::{self, Fault, FaultRule};
use crate::identity::{self, TokenState};
use crate::router::{self, CollectionKey, RouteMatch, UnknownSegment};
use crate::server::{Ctx, Request, Response, lock};
use crate::store::{ODATA_TYPE, UserStatus};
use crate::{PatchReturns, Shared};

/// Content type of every Graph JSON response.
pub(crate) const JSON_CONTENT_TYPE: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

/// Default page size of a collection GET.
const DEFAULT_PAGE: usize = 100;

/// The values of the `deviceComplianceStatus` enum.
const STATUSES: [&str; 8] = [
    "unknown",
    "notApplicable",
    "compliant",
    "remediated",
    "nonCompliant",
    "error",
    "conflict",
    "notAssigned",
];

/// What to do with a request: answer it, or misbehave as a fault says.
pub(crate) enum Answer {
    /// Send this response.
    Response(Response),
    /// Apply this fault (see `faults::perform`).
    Fault(Fault),
}

/// Answers one request (admin or Graph). Graph requests are recorded first,
/// so the log holds a request before its response leaves, and then checked
/// against the fault plan, so faulted attempts are in the log too.
pub(crate) fn handle(shared: &Shared, req: &Request, ctx: &Ctx) -> Answer {
    let path = req.path();
    if path == "/_emulator" || path.starts_with("/_emulator/") {
        return Answer::Response(admin(shared, req, ctx));
    }
    // Token requests have their own log, so Graph request counts do not
    // depend on how the client authenticates.
    if identity::is_token_path(path) {
        shared.identity.log.record(req.to_recorded());
    } else {
        shared.log.record(req.to_recorded());
    }
    match shared.faults.pick(req) {
        Some(fault) => Answer::Fault(fault),
        None => Answer::Response(serve(shared, req, ctx)),
    }
}

/// Answers a request that is already recorded: a token request, or a Graph
/// request (auth, write throttling, then the handler).
pub(crate) fn serve(shared: &Shared, req: &Request, ctx: &Ctx) -> Response {
    let path = req.path();
    if identity::is_token_path(path) {
        return identity::token(shared, req, ctx);
    }
    if let Err(resp) = check_auth(shared, req, ctx) {
        return resp;
    }
    if let Some(resp) = faults::throttle(shared, req, ctx) {
        return resp;
    }
    let route = match router::match_path(path) {
        Ok(m) => m,
        Err(UnknownSegment(seg)) => {
            return error(
                ctx,
                400,
                "BadRequest",
                &format!("Resource not found for the segment '{seg}'."),
            );
        }
    };
    let links = Links::new(shared, req, &route);
    match (route.item.as_deref(), req.method.as_str()) {
        (None, "GET") => list(shared, req, ctx, &route, &links),
        (None, "POST") => create(shared, req, ctx, &route, &links),
        (None, _) => method_not_allowed(ctx, "GET, POST"),
        // `$count` is an OData segment, not an id (the SDKs expose it).
        (Some("$count"), "GET") => {
            let n = lock(&shared.store).len(&route.collection);
            Response::with_body(200, "text/plain;charset=utf-8", n.to_string().into_bytes())
        }
        (Some("$count"), _) => method_not_allowed(ctx, "GET"),
        (Some(id), "GET") => get(shared, ctx, &route.collection, id, &links),
        (Some(id), "PATCH") => update(shared, req, ctx, &route.collection, id, &links),
        (Some(id), "DELETE") => delete(shared, ctx, &route.collection, id),
        (Some(_), _) => method_not_allowed(ctx, "GET, PATCH, DELETE"),
    }
}

/// A Graph error response: `{"error":{"code","message","innerError":{...}}}`.
pub(crate) fn error(ctx: &Ctx, status: u16, code: &str, message: &str) -> Response {
    let now = time::OffsetDateTime::now_utc();
    let date = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    // Structs rather than `json!` so the keys keep Graph's order.
    #[derive(Serialize)]
    struct Body<'a> {
        error: Error<'a>,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Error<'a> {
        code: &'a str,
        message: &'a str,
        inner_error: Inner<'a>,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "kebab-case")]
    struct Inner<'a> {
        date: String,
        request_id: &'a str,
        client_request_id: &'a str,
    }
    let body = Body {
        error: Error {
            code,
            message,
            inner_error: Inner {
                date,
                request_id: &ctx.request_id,
                client_request_id: &ctx.client_request_id,
            },
        },
    };
    json_response(status, &body)
}

fn json_response<T: Serialize>(status: u16, body: &T) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    Response::with_body(status, JSON_CONTENT_TYPE, bytes)
}

fn method_not_allowed(ctx: &Ctx, allow: &str) -> Response {
    error(
        ctx,
        405,
        "MethodNotAllowed",
        &format!("The HTTP method is not allowed on this resource. Allowed: {allow}."),
    )
    .header("Allow", allow)
}

fn not_found(ctx: &Ctx, id: &str) -> Response {
    error(
        ctx,
        404,
        "ResourceNotFound",
        &format!("Resource not found: no deviceConfigurationUserStatus with id '{id}'."),
    )
}

/// Checks `Authorization: Bearer <token>` against the configured token (or
/// accepts any non-empty token when none is configured).
fn check_auth(shared: &Shared, req: &Request, ctx: &Ctx) -> Result<(), Response> {
    let token = req.header("authorization").and_then(|v| {
        let (scheme, token) = v.trim().split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty())
    });
    let Some(got) = token else {
        return Err(unauthorized(ctx, "Access token is empty."));
    };
    if shared.token.as_deref() == Some(got) {
        return Ok(());
    }
    let message = match shared.identity.check(got) {
        TokenState::Valid => return Ok(()),
        TokenState::Expired => "Lifetime validation failed, the token is expired.",
        TokenState::Unknown if shared.token.is_some() => {
            "Access token validation failure. Invalid audience."
        }
        TokenState::Unknown if shared.identity.has_apps() => "Access token validation failure.",
        TokenState::Unknown => return Ok(()),
    };
    Err(unauthorized(ctx, message))
}

/// Graph's `401 InvalidAuthenticationToken`.
fn unauthorized(ctx: &Ctx, message: &str) -> Response {
    error(ctx, 401, "InvalidAuthenticationToken", message).header(
        "WWW-Authenticate",
        "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
    )
}

/// `scheme://host` as the client addressed us (the Host header when
/// present, so absolute URLs work through any hostname used).
pub(crate) fn base_of(shared: &Shared, req: &Request) -> String {
    match req.header("host").map(str::trim) {
        Some(h) if !h.is_empty() => format!("{}://{h}", shared.scheme),
        _ => shared.base_url.clone(),
    }
}

/// Absolute URLs derived from how the client addressed us (the Host
/// header when present, so links work through any hostname used).
struct Links {
    /// `<base>/<version>/$metadata#<collection context>`.
    context: String,
    /// `<base><collection path as sent>`.
    collection_url: String,
}

impl Links {
    fn new(shared: &Shared, req: &Request, route: &RouteMatch) -> Links {
        let base = base_of(shared, req);
        Links {
            context: format!(
                "{base}/{}/$metadata#{}",
                route.version.as_str(),
                route.collection.context_path()
            ),
            collection_url: format!("{base}{}", route.collection_path),
        }
    }
}

/// An entity preceded by its `@odata.context`.
#[derive(Serialize)]
struct WithContext<'a> {
    #[serde(rename = "@odata.context")]
    context: String,
    #[serde(flatten)]
    entity: &'a UserStatus,
}

fn entity_response(status: u16, links: &Links, entity: &UserStatus) -> Response {
    let body = WithContext {
        context: format!("{}/$entity", links.context),
        entity,
    };
    json_response(status, &body)
}

/// One page of a collection. Graph puts the next link before `value`.
#[derive(Serialize)]
struct Page {
    #[serde(rename = "@odata.context")]
    context: String,
    #[serde(rename = "@odata.nextLink", skip_serializing_if = "Option::is_none")]
    next_link: Option<String>,
    value: Vec<UserStatus>,
}

fn list(shared: &Shared, req: &Request, ctx: &Ctx, route: &RouteMatch, links: &Links) -> Response {
    let mut top: Option<usize> = None;
    let mut after: u64 = 0;
    for (name, value) in query_pairs(req.query().unwrap_or("")) {
        match name.as_str() {
            "$top" => match value.parse::<usize>() {
                Ok(n) => top = Some(n),
                Err(_) => {
                    return error(
                        ctx,
                        400,
                        "BadRequest",
                        &format!("Invalid $top value '{value}': expected a non-negative integer."),
                    );
                }
            },
            "$skiptoken" => match value.parse::<u64>() {
                Ok(n) => after = n,
                Err(_) => {
                    return error(
                        ctx,
                        400,
                        "BadRequest",
                        &format!("Invalid $skiptoken value '{value}'."),
                    );
                }
            },
            _ => {}
        }
    }
    let page_size = top.unwrap_or(DEFAULT_PAGE);
    let (value, next) = lock(&shared.store).page(&route.collection, after, page_size);
    let next_link = next.map(|seq| match top {
        Some(t) => format!("{}?$top={t}&$skiptoken={seq}", links.collection_url),
        None => format!("{}?$skiptoken={seq}", links.collection_url),
    });
    json_response(
        200,
        &Page {
            context: links.context.clone(),
            next_link,
            value,
        },
    )
}

/// Decoded `name=value` pairs of a query string (`+` is a space there).
fn query_pairs(query: &str) -> Vec<(String, String)> {
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

fn get(shared: &Shared, ctx: &Ctx, key: &CollectionKey, id: &str, links: &Links) -> Response {
    match lock(&shared.store).get(key, id) {
        Some(entity) => entity_response(200, links, entity),
        None => not_found(ctx, id),
    }
}

fn create(
    shared: &Shared,
    req: &Request,
    ctx: &Ctx,
    route: &RouteMatch,
    links: &Links,
) -> Response {
    let props = match parse_body(&req.body) {
        Ok(p) => p,
        Err(message) => return error(ctx, 400, "BadRequest", &message),
    };
    let entity = new_entity(props);
    let mut store = lock(&shared.store);
    if store.insert(&route.collection, entity.clone()).is_err() {
        return error(
            ctx,
            409,
            "Conflict",
            &format!(
                "A deviceConfigurationUserStatus with id '{}' already exists.",
                entity.id
            ),
        );
    }
    drop(store);
    let location = format!("{}/{}", links.collection_url, encode_segment(&entity.id));
    entity_response(201, links, &entity).header("Location", location)
}

fn update(
    shared: &Shared,
    req: &Request,
    ctx: &Ctx,
    key: &CollectionKey,
    id: &str,
    links: &Links,
) -> Response {
    // Absence is checked first: Graph reports a missing entity before
    // looking at the body.
    if lock(&shared.store).get(key, id).is_none() {
        return not_found(ctx, id);
    }
    let props = match parse_body(&req.body) {
        Ok(p) => p,
        Err(message) => return error(ctx, 400, "BadRequest", &message),
    };
    if let Some(Value::String(body_id)) = props.get("id")
        && body_id != id
    {
        return error(
            ctx,
            400,
            "BadRequest",
            &format!(
                "The property 'id' in the request body ('{body_id}') does not match the key in the URL ('{id}')."
            ),
        );
    }
    let mut store = lock(&shared.store);
    let Some(entity) = store.get_mut(key, id) else {
        return not_found(ctx, id);
    };
    apply(entity, props);
    let updated = entity.clone();
    drop(store);
    match shared.patch_returns {
        PatchReturns::NoContent => Response::empty(204),
        PatchReturns::Ok => entity_response(200, links, &updated),
    }
}

fn delete(shared: &Shared, ctx: &Ctx, key: &CollectionKey, id: &str) -> Response {
    if lock(&shared.store).remove(key, id) {
        Response::empty(204)
    } else {
        not_found(ctx, id)
    }
}

/// Percent-encodes an id for use as one path segment.
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

/// Parses and validates a request body (POST or PATCH).
fn parse_body(body: &[u8]) -> Result<Map<String, Value>, String> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| format!("The request body is not valid JSON: {e}."))?;
    validate(value)
}

/// Validates a user status given as JSON; returns its properties.
pub(crate) fn validate(value: Value) -> Result<Map<String, Value>, String> {
    let Value::Object(map) = value else {
        return Err(
            "The request body must be a JSON object representing a deviceConfigurationUserStatus."
                .to_owned(),
        );
    };
    for (name, value) in &map {
        validate_property(name, value)?;
    }
    Ok(map)
}

fn validate_property(name: &str, value: &Value) -> Result<(), String> {
    let invalid = |why: &str| Err(format!("Invalid value for property '{name}': {why}."));
    match name {
        "@odata.type" => match value.as_str() {
            Some(ODATA_TYPE) => Ok(()),
            _ => invalid(&format!("expected '{ODATA_TYPE}', got {value}")),
        },
        "id" => match value.as_str() {
            Some(s) if !s.is_empty() => Ok(()),
            Some(_) => invalid("must not be empty"),
            None => invalid(&format!("expected a string, got {value}")),
        },
        "userDisplayName" | "userPrincipalName" => match value {
            Value::String(_) | Value::Null => Ok(()),
            _ => invalid(&format!("expected a string or null, got {value}")),
        },
        "devicesCount" => match value.as_i64().map(i32::try_from) {
            Some(Ok(_)) => Ok(()),
            _ => invalid(&format!("expected an Int32 integer, got {value}")),
        },
        "status" => match value.as_str() {
            Some(s) if STATUSES.contains(&s) => Ok(()),
            _ => invalid(&format!(
                "{value} is not a valid deviceComplianceStatus (one of {})",
                STATUSES.join(", ")
            )),
        },
        "lastReportedDateTime" => {
            let ok = value.as_str().is_some_and(|s| {
                time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                    .is_ok()
            });
            if ok {
                Ok(())
            } else {
                invalid(&format!(
                    "expected an ISO 8601 date-time with offset (e.g. 2024-01-31T12:00:00Z), got {value}"
                ))
            }
        }
        _ => Err(format!(
            "The property '{name}' does not exist on type 'microsoft.graph.deviceConfigurationUserStatus'. Make sure to only use property names that are defined by the type or mark the type as open type."
        )),
    }
}

/// A new entity from validated properties, defaults for the rest.
pub(crate) fn new_entity(props: Map<String, Value>) -> UserStatus {
    let id = match props.get("id") {
        Some(Value::String(id)) => id.clone(),
        _ => uuid::Uuid::new_v4().to_string(),
    };
    let mut entity = UserStatus::with_defaults(id);
    apply(&mut entity, props);
    entity
}

/// Merges validated properties into an entity.
fn apply(entity: &mut UserStatus, props: Map<String, Value>) {
    for (name, value) in props {
        match (name.as_str(), value) {
            ("userDisplayName", v) => entity.user_display_name = v.as_str().map(str::to_owned),
            ("userPrincipalName", v) => entity.user_principal_name = v.as_str().map(str::to_owned),
            ("devicesCount", v) => {
                if let Some(n) = v.as_i64().and_then(|n| i32::try_from(n).ok()) {
                    entity.devices_count = n;
                }
            }
            ("status", Value::String(s)) => entity.status = s,
            ("lastReportedDateTime", Value::String(s)) => entity.last_reported_date_time = s,
            // `id` is fixed at creation; `@odata.type` is constant.
            _ => {}
        }
    }
}

/// The `/_emulator/*` endpoints: no auth, not recorded.
fn admin(shared: &Shared, req: &Request, ctx: &Ctx) -> Response {
    let json = "application/json; charset=utf-8";
    match (req.path(), req.method.as_str()) {
        ("/_emulator/requests", "GET") => {
            let all: Vec<Value> = shared.log.snapshot().iter().map(|r| r.to_json()).collect();
            Response::with_body(200, json, serde_json::to_vec(&all).unwrap_or_default())
        }
        ("/_emulator/requests", "DELETE") => {
            shared.log.clear();
            Response::empty(204)
        }
        ("/_emulator/requests", _) => method_not_allowed(ctx, "GET, DELETE"),
        ("/_emulator/health", "GET") => {
            Response::with_body(200, json, br#"{"status":"ok"}"#.to_vec())
        }
        ("/_emulator/health", _) => method_not_allowed(ctx, "GET"),
        ("/_emulator/faults", "POST") => {
            let rule = std::str::from_utf8(&req.body)
                .map_err(|_| "The fault rule is not UTF-8.".to_owned())
                .and_then(FaultRule::from_json);
            match rule {
                Ok(rule) => {
                    shared.faults.add(rule);
                    Response::empty(204)
                }
                Err(message) => error(ctx, 400, "BadRequest", &message),
            }
        }
        ("/_emulator/faults", "DELETE") => {
            shared.faults.clear();
            Response::empty(204)
        }
        ("/_emulator/faults", _) => method_not_allowed(ctx, "POST, DELETE"),
        ("/_emulator/token-requests", "GET") => {
            let all: Vec<Value> = shared
                .identity
                .log
                .snapshot()
                .iter()
                .map(|r| r.to_json())
                .collect();
            Response::with_body(200, json, serde_json::to_vec(&all).unwrap_or_default())
        }
        ("/_emulator/token-requests", "DELETE") => {
            shared.identity.log.clear();
            Response::empty(204)
        }
        ("/_emulator/token-requests", _) => method_not_allowed(ctx, "GET, DELETE"),
        ("/_emulator/tokens/expire", "POST") => {
            shared.identity.expire_all();
            Response::empty(204)
        }
        ("/_emulator/tokens/expire", _) => method_not_allowed(ctx, "POST"),
        ("/_emulator/stats", "GET") => {
            let stats = serde_json::json!({
                "connectionsAccepted": shared.connections.load(Ordering::SeqCst),
                "throttled": shared.throttled.load(Ordering::SeqCst),
                "requests": shared.log.len(),
                "tokenRequests": shared.identity.log.len(),
                "issuedTokens": shared.identity.issued_count(),
            });
            Response::with_body(200, json, stats.to_string().into_bytes())
        }
        ("/_emulator/stats", _) => method_not_allowed(ctx, "GET"),
        _ => error(
            ctx,
            404,
            "ResourceNotFound",
            "Unknown emulator admin endpoint.",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_property() {
        let cases = [
            (serde_json::json!({"bogus": 1}), "bogus"),
            (serde_json::json!({"@odata.etag": "x"}), "@odata.etag"),
            (
                serde_json::json!({"@odata.type": "#microsoft.graph.user"}),
                "@odata.type",
            ),
            (serde_json::json!({"userDisplayName": 3}), "userDisplayName"),
            (
                serde_json::json!({"userPrincipalName": true}),
                "userPrincipalName",
            ),
            (serde_json::json!({"devicesCount": 1.5}), "devicesCount"),
            (
                serde_json::json!({"devicesCount": 2_147_483_648_i64}),
                "devicesCount",
            ),
            (serde_json::json!({"devicesCount": "1"}), "devicesCount"),
            (serde_json::json!({"status": "fine"}), "status"),
            (
                serde_json::json!({"lastReportedDateTime": "2024-01-01T00:00:00"}),
                "lastReportedDateTime",
            ),
            (serde_json::json!({"id": 5}), "id"),
        ];
        for (body, prop) in cases {
            let err = validate(body.clone()).unwrap_err();
            assert!(err.contains(&format!("'{prop}'")), "{body}: {err}");
        }
        assert!(validate(serde_json::json!([])).is_err());
    }

    #[test]
    fn accepts_valid_bodies() {
        let props = validate(serde_json::json!({
            "@odata.type": ODATA_TYPE,
            "id": "u1",
            "userDisplayName": null,
            "devicesCount": -2_147_483_648_i64,
            "status": "notAssigned",
            "lastReportedDateTime": "2024-05-01T10:11:12.1234567+02:00",
            "userPrincipalName": "a@b.c",
        }))
        .unwrap();
        let e = new_entity(props);
        assert_eq!(e.devices_count, i32::MIN);
        assert_eq!(
            e.last_reported_date_time,
            "2024-05-01T10:11:12.1234567+02:00"
        );
    }

    #[test]
    fn encodes_segments() {
        assert_eq!(encode_segment("a/b?#% é"), "a%2Fb%3F%23%25%20%C3%A9");
    }
}
