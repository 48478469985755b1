//! The user status handlers: list (paged, see `query`), get, create, update, delete and
//! `$count` on one collection, over the in-memory store.

use std::sync::Mutex;

use serde::Serialize;
use serde_json::Value;

use super::query::{Options, Shaped};
use super::validation::{self, apply, new_entity, parse_body};
use crate::message::{Request, RequestIds, Response};
use crate::odata::{self, bad_request, encode_segment, json_response};
use crate::router::{self, CollectionKey, RouteMatch};
use crate::store::Store;
use crate::sync::lock;

/// What a successful PATCH answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PatchReturns {
    /// `204 No Content`, as real Intune does.
    #[default]
    NoContent,
    /// `200 OK` with the full updated entity.
    Ok,
}

/// How collections are paged.
#[derive(Debug, Clone)]
pub(crate) struct Paging {
    /// Entities per page when the client gives no `$top` (at least 1).
    pub(crate) page_size: usize,
    /// What `@odata.nextLink` starts with instead of the client's host.
    pub(crate) next_link_base: Option<String>,
}

/// The user statuses of every collection and how the handlers answer.
#[derive(Debug)]
pub(crate) struct UserStatuses {
    store: Mutex<Store>,
    patch_returns: PatchReturns,
    paging: Paging,
}

/// Absolute URLs derived from how the client addressed us.
pub(crate) struct Links {
    /// `<base>/<version>/$metadata#<collection context>`.
    context: String,
    /// `<base><collection path as sent>`.
    collection_url: String,
}

impl Links {
    /// The links of `route`, with `base` = `scheme://host`.
    pub(crate) fn new(base: &str, route: &RouteMatch) -> Links {
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
    entity: Shaped<'a>,
}

/// One page of a collection. Graph puts the next link before `value`.
#[derive(Serialize)]
struct Page<'a> {
    #[serde(rename = "@odata.context")]
    context: String,
    #[serde(rename = "@odata.nextLink", skip_serializing_if = "Option::is_none")]
    next_link: Option<String>,
    value: Vec<Shaped<'a>>,
}

fn entity_response(status: u16, links: &Links, entity: Shaped<'_>) -> Response {
    let body = WithContext {
        context: format!("{}/$entity", links.context),
        entity,
    };
    json_response(status, &body)
}

fn not_found(ids: &RequestIds, id: &str) -> Response {
    odata::error(
        ids,
        404,
        "ResourceNotFound",
        &format!("Resource not found: no deviceConfigurationUserStatus with id '{id}'."),
    )
}

impl UserStatuses {
    /// An empty store; successful PATCHes answer as `patch_returns` says.
    pub(crate) fn new(patch_returns: PatchReturns, paging: Paging) -> Self {
        UserStatuses {
            store: Mutex::new(Store::default()),
            patch_returns,
            paging,
        }
    }

    /// Adds a user status to a version-less `collection` path, validated
    /// like a POST body (for seeds and the library API).
    pub(crate) fn insert(&self, collection: &str, entity: Value) -> Result<(), String> {
        let key = router::collection_key(collection)?;
        let entity = new_entity(validation::validate(entity)?);
        let id = entity.id.clone();
        lock(&self.store)
            .insert(&key, entity)
            .map_err(|_| format!("a user status with id '{id}' already exists in '{collection}'"))
    }

    /// The stored status `id` in a version-less `collection` path, as JSON.
    pub(crate) fn user_status(&self, collection: &str, id: &str) -> Option<Value> {
        let key = router::collection_key(collection).ok()?;
        lock(&self.store).get(&key, id).map(|e| e.to_value())
    }

    /// `GET .../userStatuses/$count`.
    pub(crate) fn count(&self, key: &CollectionKey) -> Response {
        let n = lock(&self.store).len(key);
        Response::with_body(200, "text/plain;charset=utf-8", n.to_string().into_bytes())
    }

    /// `GET .../userStatuses`: one page.
    pub(crate) fn list(
        &self,
        req: &Request,
        ids: &RequestIds,
        route: &RouteMatch,
        links: &Links,
    ) -> Response {
        let options = match Options::parse(req.query().unwrap_or("")) {
            Ok(o) => o,
            Err(message) => return bad_request(ids, &message),
        };
        let page_size = options.top.unwrap_or(self.paging.page_size.max(1));
        let (entities, next) =
            lock(&self.store).page(&route.collection, options.after, page_size, |e| {
                options.keeps(e)
            });
        let collection_url = match &self.paging.next_link_base {
            Some(base) => format!("{}{}", base.trim_end_matches('/'), route.collection_path),
            None => links.collection_url.clone(),
        };
        let next_link = next.map(|seq| format!("{collection_url}?{}", options.next_query(seq)));
        let value: Vec<Shaped<'_>> = entities.iter().map(|e| options.shape(e)).collect();
        json_response(
            200,
            &Page {
                context: links.context.clone(),
                next_link,
                value,
            },
        )
    }

    /// `GET .../userStatuses/{id}` (honouring `$select`).
    pub(crate) fn get(
        &self,
        req: &Request,
        ids: &RequestIds,
        key: &CollectionKey,
        id: &str,
        links: &Links,
    ) -> Response {
        let options = match Options::parse(req.query().unwrap_or("")) {
            Ok(o) => o,
            Err(message) => return bad_request(ids, &message),
        };
        match lock(&self.store).get(key, id) {
            Some(entity) => entity_response(200, links, options.shape(entity)),
            None => not_found(ids, id),
        }
    }

    /// `POST .../userStatuses`.
    pub(crate) fn create(
        &self,
        req: &Request,
        ids: &RequestIds,
        route: &RouteMatch,
        links: &Links,
    ) -> Response {
        let props = match parse_body(&req.body) {
            Ok(p) => p,
            Err(message) => return bad_request(ids, &message),
        };
        let entity = new_entity(props);
        let mut store = lock(&self.store);
        if store.insert(&route.collection, entity.clone()).is_err() {
            return odata::error(
                ids,
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
        entity_response(201, links, Options::default().shape(&entity)).header("Location", location)
    }

    /// `PATCH .../userStatuses/{id}`.
    pub(crate) fn update(
        &self,
        req: &Request,
        ids: &RequestIds,
        key: &CollectionKey,
        id: &str,
        links: &Links,
    ) -> Response {
        // Absence is checked first: Graph reports a missing entity before
        // looking at the body.
        if lock(&self.store).get(key, id).is_none() {
            return not_found(ids, id);
        }
        let props = match parse_body(&req.body) {
            Ok(p) => p,
            Err(message) => return bad_request(ids, &message),
        };
        if let Some(Value::String(body_id)) = props.get("id")
            && body_id != id
        {
            return bad_request(
                ids,
                &format!(
                    "The property 'id' in the request body ('{body_id}') does not match the key in the URL ('{id}')."
                ),
            );
        }
        let mut store = lock(&self.store);
        let Some(entity) = store.get_mut(key, id) else {
            return not_found(ids, id);
        };
        apply(entity, props);
        let updated = entity.clone();
        drop(store);
        match self.patch_returns {
            PatchReturns::NoContent => Response::empty(204),
            PatchReturns::Ok => entity_response(200, links, Options::default().shape(&updated)),
        }
    }

    /// `DELETE .../userStatuses/{id}`.
    pub(crate) fn delete(&self, ids: &RequestIds, key: &CollectionKey, id: &str) -> Response {
        if lock(&self.store).remove(key, id) {
            Response::empty(204)
        } else {
            not_found(ids, id)
        }
    }
}
