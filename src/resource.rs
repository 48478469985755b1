//! The rest of the resource: list (every page), create and delete, each a request description
//! plus a response decoder over the one pipeline.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::Deserialize;
use ureq::http::{Method, Uri};

use crate::client::CallOptions;
use crate::metrics::Operation;
use crate::pipeline::{Budget, Request, origin};
use crate::{
    ApiVersion, Client, Collection, DeviceConfigurationUserStatus, Error, Target, UserStatusPatch,
    response,
};

/// Pages followed at most unless [`ListOptions::max_pages`] says otherwise.
pub const DEFAULT_MAX_PAGES: u32 = 1000;

/// Entities returned at most unless [`ListOptions::max_items`] says otherwise: a bound on the
/// memory a list may take (1,000 pages of 1 MiB would be about 1 GiB).
pub const DEFAULT_MAX_ITEMS: u32 = 100_000;

/// What [`Client::list_user_statuses`] asks for: OData `$top`, `$filter`, `$select`, and how many
/// pages and entities it may take.
///
/// ```
/// use intune_user_status::ListOptions;
/// let options = ListOptions::new().top(50).filter("status eq 'error'").select(["id", "status"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListOptions {
    /// `$top`: entities per page (the service may send fewer).
    pub top: Option<u32>,
    /// `$filter`, sent as written (percent-encoded).
    pub filter: Option<String>,
    /// `$select`: the properties to return (default: all).
    pub select: Vec<String>,
    /// Pages followed at most (default 1000); a collection with more is an error, never a
    /// truncated list.
    pub max_pages: u32,
    /// Entities returned at most (default 100,000); a collection with more is an error, never a
    /// truncated list.
    pub max_items: u32,
}

impl Default for ListOptions {
    fn default() -> Self {
        ListOptions {
            top: None,
            filter: None,
            select: Vec::new(),
            max_pages: DEFAULT_MAX_PAGES,
            max_items: DEFAULT_MAX_ITEMS,
        }
    }
}

impl ListOptions {
    /// Every entity, default page size.
    pub fn new() -> ListOptions {
        ListOptions::default()
    }

    /// Sets `$top`.
    pub fn top(mut self, top: u32) -> Self {
        self.top = Some(top);
        self
    }

    /// Sets `$filter`.
    pub fn filter(mut self, filter: impl Into<String>) -> Self {
        self.filter = Some(filter.into());
        self
    }

    /// Sets `$select`.
    pub fn select(mut self, properties: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.select = properties.into_iter().map(Into::into).collect();
        self
    }

    /// Follows at most `pages` pages (at least 1).
    pub fn max_pages(mut self, pages: u32) -> Self {
        self.max_pages = pages;
        self
    }

    /// Returns at most `items` entities (at least 1); more is an error.
    pub fn max_items(mut self, items: u32) -> Self {
        self.max_items = items;
        self
    }

    /// The one place the options' rules live (Rust and C callers alike); fields are named as
    /// the C options JSON names them.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.max_pages == 0 {
            return Err(Error::invalid("maxPages", "must be at least 1"));
        }
        if self.max_items == 0 {
            return Err(Error::invalid("maxItems", "must be at least 1"));
        }
        if self.top == Some(0) {
            return Err(Error::invalid("top", "must be at least 1"));
        }
        if self.filter.as_deref().is_some_and(str::is_empty) {
            return Err(Error::invalid("filter", "must not be empty"));
        }
        if let Some(bad) = self.select.iter().find(|p| {
            p.is_empty()
                || !p
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '@' || c == '.')
        }) {
            return Err(Error::invalid(
                "select",
                format!("\"{bad}\" is not a property name"),
            ));
        }
        Ok(())
    }

    /// `?$top=..&$filter=..&$select=..`, each value percent-encoded.
    fn write_query(&self, url: &mut String) {
        let mut separator = '?';
        let mut push = |url: &mut String, name: &str, value: &str| {
            url.push(separator);
            separator = '&';
            url.push_str(name);
            url.push('=');
            url.extend(utf8_percent_encode(value, QUERY_VALUE));
        };
        if let Some(top) = self.top {
            push(url, "$top", &top.to_string());
        }
        if let Some(filter) = &self.filter {
            push(url, "$filter", filter);
        }
        if !self.select.is_empty() {
            push(url, "$select", &self.select.join(","));
        }
    }
}

/// Everything but RFC 3986 `unreserved` and `,` is escaped in a query value.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b',');

#[derive(Deserialize)]
struct Page {
    value: Vec<DeviceConfigurationUserStatus>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
}

impl Client {
    /// Lists every user status of `collection`: follows `@odata.nextLink` page after page, only
    /// to the client's own origin and API version (a link elsewhere is
    /// [`Error::UnexpectedResponse`], and the token is never sent there), up to
    /// [`ListOptions::max_pages`] pages and [`ListOptions::max_items`] entities (more is
    /// [`Error::UnexpectedResponse`] naming the bound; nothing is half-returned). Each page goes
    /// through the pipeline (retries, pacing, auth); the call's total budget spans all pages.
    pub fn list_user_statuses(
        &self,
        collection: &Collection,
        list: &ListOptions,
    ) -> Result<Vec<DeviceConfigurationUserStatus>, Error> {
        self.list_user_statuses_with(collection, list, &CallOptions::default())
    }

    /// [`list_user_statuses`](Self::list_user_statuses) with per-call options.
    pub fn list_user_statuses_with(
        &self,
        collection: &Collection,
        list: &ListOptions,
        options: &CallOptions,
    ) -> Result<Vec<DeviceConfigurationUserStatus>, Error> {
        list.validate()?;
        let version = self.version(options);
        let mut url = String::with_capacity(self.pipeline().root().len() + 200);
        url.push_str(self.pipeline().root());
        collection.write_url(&mut url, version)?;
        list.write_query(&mut url);
        let budget = self.budget(options)?;
        let watch = self.watch(options);
        let started = Instant::now();
        let mut entities = Vec::new();
        let mut pages = 0;
        // Every URL asked for, to refuse a next link that leads back (a loop).
        let mut followed = HashSet::from([url.clone()]);
        loop {
            let response = self.pipeline().execute(
                &Request {
                    operation: Operation::List,
                    method: Method::GET,
                    url,
                    body: None,
                    idempotent: true,
                },
                left_of(budget, started)?,
                &watch,
            )?;
            if response.status != 200 {
                return Err(self.failure(response, "GET of a collection answers 200"));
            }
            let page: Page = serde_json::from_slice(&response.body).map_err(|err| {
                response::unexpected(
                    &response,
                    &format!("body is not a page of deviceConfigurationUserStatus: {err}"),
                )
            })?;
            if entities.len() + page.value.len() > list.max_items as usize {
                return Err(response::unexpected(
                    &response,
                    &format!(
                        "the collection has more than {} entities (maxItems); raise maxItems or narrow the filter",
                        list.max_items
                    ),
                ));
            }
            entities.extend(page.value);
            pages += 1;
            let Some(next) = page.next_link else {
                return Ok(entities);
            };
            if pages == list.max_pages {
                return Err(response::unexpected(
                    &response,
                    &format!(
                        "the collection has more than {} pages (maxPages); raise maxPages or narrow the filter",
                        list.max_pages
                    ),
                ));
            }
            url = self
                .check_next_link(&next, version)
                .map_err(|reason| response::unexpected(&response, &reason))?;
            if !followed.insert(url.clone()) {
                return Err(response::unexpected(
                    &response,
                    &format!(
                        "@odata.nextLink \"{url}\" was already followed (a loop); it was not followed again"
                    ),
                ));
            }
        }
    }

    /// A next link may only lead to this client's origin and the same API version: the token
    /// goes with it. The link is parsed as a URI, never matched as text: no user info, the path
    /// (not the query) under `{root}/{version}/`, and no `.`/`..` segment or encoded `/` or `\`,
    /// percent-encoded or not, that could climb out of it on the server.
    fn check_next_link(&self, next: &str, version: ApiVersion) -> Result<String, String> {
        let root = self.pipeline().root();
        let refuse = |why: &str| {
            format!(
                "@odata.nextLink \"{next}\" {why}; it was not followed (the token is sent only to the client's own service root, {root}/{version})"
            )
        };
        let uri: Uri = next.parse().map_err(|_| refuse("is not a URL"))?;
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(refuse("carries user info"));
        }
        if origin(next).is_none_or(|o| origin(root) != Some(o)) {
            return Err(refuse("leads to another origin"));
        }
        let root_path = root
            .parse::<Uri>()
            .map(|root| root.path().trim_end_matches('/').to_owned())
            .unwrap_or_default();
        let prefix = format!("{root_path}/{}/", version.as_str());
        let path = uri.path();
        if !path.starts_with(&prefix) {
            return Err(refuse("leaves the version"));
        }
        for segment in path.split('/') {
            let decoded = percent_decode_str(segment).decode_utf8_lossy();
            if decoded == "." || decoded == ".." || decoded.contains(['/', '\\']) {
                return Err(refuse("has a dot segment or an encoded separator"));
            }
        }
        Ok(next.to_owned())
    }

    /// Creates a user status in `collection` (POST; Graph answers 201 with the entity). The
    /// entity is validated as a patch is; its `id` may be given or left to the service.
    ///
    /// A create is sent again only when Graph cannot have processed it: after a 429, a 503, or a
    /// connection that failed before the request was written. After a 504, or a connection lost
    /// once the request was sent, it is not: the error says the outcome is unknown (Graph may
    /// have created it; look before creating again).
    pub fn create_user_status(
        &self,
        collection: &Collection,
        entity: &UserStatusPatch,
    ) -> Result<DeviceConfigurationUserStatus, Error> {
        self.create_user_status_with(collection, entity, &CallOptions::default())
    }

    /// [`create_user_status`](Self::create_user_status) with per-call options.
    pub fn create_user_status_with(
        &self,
        collection: &Collection,
        entity: &UserStatusPatch,
        options: &CallOptions,
    ) -> Result<DeviceConfigurationUserStatus, Error> {
        entity.validate()?;
        let mut url = String::with_capacity(self.pipeline().root().len() + 160);
        url.push_str(self.pipeline().root());
        collection.write_url(&mut url, self.version(options))?;
        let body = entity.to_json();
        let response = self.pipeline().execute(
            &Request {
                operation: Operation::Create,
                method: Method::POST,
                url,
                body: Some(&body),
                idempotent: false,
            },
            self.budget(options)?,
            &self.watch(options),
        )?;
        if response.redirected_to_get {
            return Err(response::unexpected(
                &response,
                "a 303 redirect turned the POST into a GET; nothing was created there",
            ));
        }
        match response.status {
            200 | 201 => response::entity(&response),
            _ => Err(self.failure(response, "POST answers 201")),
        }
    }

    /// Deletes the user status at `target` (Graph answers 204). When an attempt's outcome was
    /// unknown (a 504, a connection lost after sending) and the retry answers 404, the delete
    /// succeeded: the first attempt removed it.
    pub fn delete_user_status(&self, target: &Target) -> Result<(), Error> {
        self.delete_user_status_with(target, &CallOptions::default())
    }

    /// [`delete_user_status`](Self::delete_user_status) with per-call options.
    pub fn delete_user_status_with(
        &self,
        target: &Target,
        options: &CallOptions,
    ) -> Result<(), Error> {
        let url = self.url(target, options)?;
        let response = self.pipeline().execute(
            &Request {
                operation: Operation::Delete,
                method: Method::DELETE,
                url,
                body: None,
                idempotent: true,
            },
            self.budget(options)?,
            &self.watch(options),
        )?;
        match response.status {
            200 | 204 if !response.redirected_to_get => Ok(()),
            // Already gone: an earlier attempt, whose answer was lost, deleted it.
            404 if response.earlier_outcome_unknown && !response.redirected_to_get => {
                log::info!(
                    "DELETE {}: 404 after an attempt with an unknown outcome; that attempt deleted it (client-request-id {})",
                    target.user_status_id(),
                    response.client_request_id
                );
                Ok(())
            }
            _ => Err(self.failure(response, "DELETE answers 204")),
        }
    }

    fn version(&self, options: &CallOptions) -> ApiVersion {
        options.api_version.unwrap_or(self.api_version())
    }
}

/// What is left of the call's total budget for the next page.
fn left_of(budget: Budget, started: Instant) -> Result<Budget, Error> {
    let Some(total) = budget.total else {
        return Ok(budget);
    };
    let left = total.saturating_sub(started.elapsed());
    if left.is_zero() {
        return Err(Error::Timeout {
            stage: "the next page (the call's total time budget ran out)".into(),
            elapsed: started.elapsed(),
            client_request_id: String::new(),
            attempts: 0,
            no_answer: false,
        });
    }
    Ok(Budget {
        total: Some(left.max(Duration::from_millis(1))),
        ..budget
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links_stay_on_the_clients_root_and_version() {
        let client = Client::builder()
            .base_url("http://127.0.0.1:8080")
            .access_token("t")
            .build()
            .unwrap();
        let ok = "http://127.0.0.1:8080/beta/deviceManagement/x?$skiptoken=2";
        assert_eq!(client.check_next_link(ok, ApiVersion::Beta).unwrap(), ok);
        assert!(
            client
                .check_next_link("http://LOCALHOST:8080/beta/x", ApiVersion::Beta)
                .is_err(),
            "another host name is another origin"
        );
        for refused in [
            "http://127.0.0.1:8080/v1.0/deviceManagement/x",
            "http://127.0.0.1:8081/beta/deviceManagement/x",
            "https://127.0.0.1:8080/beta/deviceManagement/x",
            "http://127.0.0.1:8080/beta/../v1.0/x",
            "http://127.0.0.1:8080/betax/y",
            "/beta/deviceManagement/x",
            "",
        ] {
            let err = client
                .check_next_link(refused, ApiVersion::Beta)
                .unwrap_err();
            assert!(err.contains("not followed"), "{refused}: {err}");
        }
    }

    #[test]
    fn query_values_are_percent_encoded() {
        let mut url = String::new();
        ListOptions::new()
            .top(5)
            .filter("userPrincipalName eq 'a&b=c'")
            .select(["id", "status"])
            .write_query(&mut url);
        assert_eq!(
            url,
            "?$top=5&$filter=userPrincipalName%20eq%20%27a%26b%3Dc%27&$select=id,status"
        );
        for (bad, field) in [
            (ListOptions::new().max_pages(0), "maxPages"),
            (ListOptions::new().max_items(0), "maxItems"),
            (ListOptions::new().top(0), "top"),
            (ListOptions::new().filter(""), "filter"),
            (ListOptions::new().select(["id,status"]), "select"),
        ] {
            let err = bad.validate().unwrap_err();
            assert!(
                matches!(&err, Error::InvalidInput { field: f, .. } if f == field),
                "{err}"
            );
        }
    }

    #[test]
    fn next_links_cannot_leave_the_version_by_dot_segments_queries_or_user_info() {
        let client = Client::builder()
            .base_url("http://127.0.0.1:8080")
            .access_token("t")
            .build()
            .unwrap();
        let mut accepted = Vec::new();
        for sneaky in [
            "http://127.0.0.1:8080/beta/%2e%2e/v1.0/deviceManagement/x",
            "http://127.0.0.1:8080/beta/%2E./v1.0/x",
            "http://127.0.0.1:8080/beta/..",
            "http://127.0.0.1:8080/beta/./x",
            "http://127.0.0.1:8080/beta/a%2f..%2f..%2fv1.0/x",
            "http://127.0.0.1:8080/beta/a%5c..%5cv1.0/x",
            "http://127.0.0.1:8080?/beta/deviceManagement/x",
            "http://user:pw@127.0.0.1:8080/beta/deviceManagement/x",
            "http://@127.0.0.1:8080/beta/deviceManagement/x",
        ] {
            if client.check_next_link(sneaky, ApiVersion::Beta).is_ok() {
                accepted.push(sneaky);
            }
        }
        assert!(accepted.is_empty(), "followed: {accepted:#?}");
        let fine = "http://127.0.0.1:8080/beta/deviceManagement/x..y/%41?$skiptoken=a/../b";
        assert!(client.check_next_link(fine, ApiVersion::Beta).is_ok());
    }
}
