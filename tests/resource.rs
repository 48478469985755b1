//! Get, list, create and delete through the public API against the emulator: what goes over the
//! wire, what comes back, and paging (every page, the page limit, a next link to another host).

mod common;

use common::{RawServer, TOKEN, client, emulator, http_response};
use intune_user_status::{
    ApiVersion, CallOptions, Collection, ComplianceStatus, Error, ListOptions, Route, Target,
    UserStatusPatch,
};
use ius_emulator::{Fault, FaultRule, PatchReturns};
use serde_json::json;

const DIRECT: &str = "/deviceManagement/deviceConfigurations/cfg-1/userStatuses";
const NESTED: &str =
    "/deviceManagement/deviceConfigurations/cfg-1/identityCertificate/rootCertificate/userStatuses";
const AUTOPILOT: &str = "/deviceManagement/windowsAutopilotDeploymentProfiles/p-1/microsoft.graph.activeDirectoryWindowsAutopilotDeploymentProfile/domainJoinConfiguration/userStatuses";

#[test]
fn get_reads_the_entity_and_a_missing_one_is_graphs_404() {
    let emu = emulator(PatchReturns::NoContent, &[DIRECT, NESTED]);
    let client = client(&emu.base_url());
    let entity = client
        .get_user_status(&Target::with_route(
            "cfg-1",
            Route::IdentityCertificateRootCertificate,
            "u1",
        ))
        .unwrap();
    assert_eq!(entity.id.as_deref(), Some("u1"));
    assert_eq!(entity.user_display_name.as_deref(), Some("User One"));
    let requests = emu.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].target, format!("/beta{NESTED}/u1"));
    assert_eq!(
        requests[0].header("authorization"),
        Some(&*format!("Bearer {TOKEN}"))
    );

    let err = client
        .get_user_status(&Target::new("cfg-1", "nobody"))
        .unwrap_err();
    let graph = err.graph().expect("a Graph error");
    assert_eq!(graph.status, 404);
    assert_eq!(graph.code.as_deref(), Some("ResourceNotFound"));
    assert!(graph.request_id.is_some(), "support needs the request-id");
    assert_eq!(graph.attempts, 1, "a 404 is not retried");
}

#[test]
fn create_posts_the_validated_entity_and_returns_what_graph_created() {
    let emu = emulator(PatchReturns::NoContent, &[AUTOPILOT]);
    let client = client(&emu.base_url());
    let collection = Collection::autopilot_domain_join("p-1");
    let entity = UserStatusPatch::new()
        .id("new-1")
        .status(ComplianceStatus::Error)
        .devices_count(2);
    let created = client.create_user_status(&collection, &entity).unwrap();
    assert_eq!(created.id.as_deref(), Some("new-1"));
    assert_eq!(created.devices_count, Some(2));
    let sent = &emu.requests()[0];
    assert_eq!(
        (sent.method.as_str(), sent.target.as_str()),
        ("POST", &*format!("/beta{AUTOPILOT}"))
    );
    assert_eq!(
        sent.body_str(),
        r#"{"id":"new-1","devicesCount":2,"status":"error"}"#
    );
    assert_eq!(sent.header("content-type"), Some("application/json"));
    assert_eq!(
        emu.user_status(AUTOPILOT, "new-1").unwrap()["status"],
        "error"
    );

    // Without an id the service names it.
    let created = client
        .create_user_status(&collection, &UserStatusPatch::new().devices_count(1))
        .unwrap();
    assert!(created.id.as_deref().is_some_and(|id| !id.is_empty()));

    // A taken id is Graph's 409; an invalid entity is refused before anything is sent.
    let err = client.create_user_status(&collection, &entity).unwrap_err();
    assert_eq!(err.http_status(), Some(409));
    let before = emu.requests().len();
    let err = client
        .create_user_status(&collection, &UserStatusPatch::new().devices_count(-1))
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidInput { field, .. } if field == "devicesCount"),
        "{err}"
    );
    assert_eq!(emu.requests().len(), before, "nothing was sent");
}

#[test]
fn delete_removes_it_and_a_second_delete_is_404() {
    let emu = emulator(PatchReturns::NoContent, &[DIRECT]);
    let client = client(&emu.base_url());
    let target = Target::new("cfg-1", "u1");
    client.delete_user_status(&target).unwrap();
    assert!(emu.user_status(DIRECT, "u1").is_none());
    let sent = &emu.requests()[0];
    assert_eq!(
        (sent.method.as_str(), sent.target.as_str()),
        ("DELETE", &*format!("/beta{DIRECT}/u1"))
    );
    assert!(sent.body.is_empty());
    let err = client.delete_user_status(&target).unwrap_err();
    assert_eq!(err.http_status(), Some(404));
}

#[test]
fn v1_serves_only_the_direct_collection() {
    let emu = emulator(PatchReturns::NoContent, &[DIRECT]);
    let client = client(&emu.base_url());
    let v1 = CallOptions::new().api_version(ApiVersion::V1_0);
    let listed = client
        .list_user_statuses_with(&Collection::new("cfg-1"), &ListOptions::new(), &v1)
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(emu.requests()[0].target, format!("/v1.0{DIRECT}"));
    let err = client
        .list_user_statuses_with(
            &Collection::with_route("cfg-1", Route::RootCertificate),
            &ListOptions::new(),
            &v1,
        )
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidInput { field, .. } if field == "route"),
        "{err}"
    );
    assert_eq!(emu.requests().len(), 1, "nothing was sent");
}

/// An emulator whose direct collection holds `count` user statuses `s0`, `s1`, ...
fn emulator_with(count: usize) -> ius_emulator::Emulator {
    let emu = emulator(PatchReturns::NoContent, &[]);
    for n in 0..count {
        emu.insert_user_status(DIRECT, json!({"id": format!("s{n}"), "devicesCount": n}))
            .unwrap();
    }
    emu
}

#[test]
fn list_follows_every_page_in_order() {
    let emu = emulator_with(7);
    let client = client(&emu.base_url());
    let listed = client
        .list_user_statuses(
            &Collection::new("cfg-1"),
            &ListOptions::new().top(3).select(["id", "devicesCount"]),
        )
        .unwrap();
    let ids: Vec<_> = listed.iter().map(|e| e.id.clone().unwrap()).collect();
    assert_eq!(ids, ["s0", "s1", "s2", "s3", "s4", "s5", "s6"]);
    let requests = emu.requests();
    assert_eq!(requests.len(), 3, "three pages: 3 + 3 + 1");
    assert_eq!(
        requests[0].target,
        format!("/beta{DIRECT}?$top=3&$select=id,devicesCount")
    );
    for request in &requests[1..] {
        assert!(request.target.contains("$skiptoken="), "{}", request.target);
        assert_eq!(
            request.header("authorization"),
            Some(&*format!("Bearer {TOKEN}"))
        );
    }
}

#[test]
fn more_pages_than_allowed_is_an_error_not_a_truncated_list() {
    let emu = emulator_with(7);
    let client = client(&emu.base_url());
    let err = client
        .list_user_statuses(
            &Collection::new("cfg-1"),
            &ListOptions::new().top(3).max_pages(2),
        )
        .unwrap_err();
    match &err {
        Error::UnexpectedResponse { reason, .. } => {
            assert!(reason.contains("maxPages"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(emu.requests().len(), 2, "stopped at the limit");
}

#[test]
fn the_filter_is_sent_percent_encoded() {
    let emu = emulator_with(1);
    let client = client(&emu.base_url());
    client
        .list_user_statuses(
            &Collection::new("cfg-1"),
            &ListOptions::new().filter("status eq 'error'"),
        )
        .unwrap();
    assert_eq!(
        emu.requests()[0].target,
        format!("/beta{DIRECT}?$filter=status%20eq%20%27error%27")
    );
}

/// A server answering every request with one page of `s0` whose next link is
/// `{next_base}/beta/...?$skiptoken=1` (`next_base` is given the server's own base URL).
fn one_page_linking_to(next_base: impl FnOnce(&str) -> String) -> RawServer {
    RawServer::start_with(|base_url| {
        let page = json!({
            "value": [{"id": "s0"}],
            "@odata.nextLink": format!("{}/beta{DIRECT}?$skiptoken=1", next_base(base_url)),
        })
        .to_string();
        http_response(
            "200 OK",
            &[("Content-Type", "application/json")],
            page.as_bytes(),
        )
    })
}

/// Lists from `graph` and returns why the list was refused.
fn refused_listing(graph: &RawServer) -> String {
    let err = common::client(&graph.base_url)
        .list_user_statuses(&Collection::new("cfg-1"), &ListOptions::new())
        .unwrap_err();
    match err {
        Error::UnexpectedResponse { reason, .. } => reason,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_next_link_to_another_host_is_refused_and_never_sees_the_token() {
    // Another host (another port is another origin): any request reaching it counts a connection.
    let elsewhere = RawServer::start(http_response("200 OK", &[], b"{}"));
    let graph = one_page_linking_to(|_| elsewhere.base_url.clone());
    let reason = refused_listing(&graph);
    assert!(reason.contains("was not followed"), "{reason}");
    assert!(!reason.contains(TOKEN));
    assert_eq!(graph.connections(), 1, "the first page was read");
    assert_eq!(elsewhere.connections(), 0, "nothing reached the other host");
}

#[test]
fn a_next_link_that_leads_back_is_a_loop_refused_not_followed_forever() {
    // Every page links to the same second page: the second time it is named, it is refused.
    let graph = one_page_linking_to(str::to_owned);
    let reason = refused_listing(&graph);
    assert!(reason.contains("already followed (a loop)"), "{reason}");
}

#[test]
fn a_page_answered_503_is_retried_by_the_pipeline() {
    let emu = emulator_with(4);
    emu.add_fault(
        ius_emulator::FaultRule::next(
            1,
            ius_emulator::Fault::Status {
                status: 503,
                retry_after: Some("0.01".into()),
            },
        )
        .method("GET"),
    );
    let client = client(&emu.base_url());
    let listed = client
        .list_user_statuses(&Collection::new("cfg-1"), &ListOptions::new().top(2))
        .unwrap();
    assert_eq!(listed.len(), 4);
    let requests = emu.requests();
    assert_eq!(
        requests.len(),
        3,
        "page 1 answered 503, page 1 again, page 2"
    );
    assert_eq!(requests[0].target, requests[1].target);
    assert_eq!(requests[1].header("retry-attempt"), Some("1"));
    assert!(requests[2].target.contains("$skiptoken="));
}

#[test]
fn pages_of_the_emulators_page_size_are_all_read() {
    let emu = ius_emulator::Emulator::start(ius_emulator::Config {
        token: Some(TOKEN.into()),
        page_size: 2,
        ..ius_emulator::Config::default()
    })
    .unwrap();
    for n in 0..6 {
        emu.insert_user_status(DIRECT, json!({"id": format!("s{n}")}))
            .unwrap();
    }
    let client = client(&emu.base_url());
    let listed = client
        .list_user_statuses(&Collection::new("cfg-1"), &ListOptions::new())
        .unwrap();
    assert_eq!(listed.len(), 6);
    assert_eq!(emu.requests().len(), 3, "three pages of two");
}

#[test]
fn a_next_link_based_elsewhere_by_the_emulator_is_refused() {
    let elsewhere = RawServer::start(http_response("200 OK", &[], b"{}"));
    let emu = ius_emulator::Emulator::start(ius_emulator::Config {
        token: Some(TOKEN.into()),
        page_size: 1,
        next_link_base: Some(elsewhere.base_url.clone()),
        ..ius_emulator::Config::default()
    })
    .unwrap();
    for n in 0..2 {
        emu.insert_user_status(DIRECT, json!({"id": format!("s{n}")}))
            .unwrap();
    }
    let err = client(&emu.base_url())
        .list_user_statuses(&Collection::new("cfg-1"), &ListOptions::new())
        .unwrap_err();
    assert!(
        matches!(&err, Error::UnexpectedResponse { reason, .. } if reason.contains("not followed")),
        "{err}"
    );
    assert_eq!(emu.requests().len(), 1);
    assert_eq!(
        elsewhere.connections(),
        0,
        "the token never left for the other host"
    );
}

/// The POSTs the emulator received.
fn posts(emu: &ius_emulator::Emulator) -> usize {
    emu.requests().iter().filter(|r| r.method == "POST").count()
}

#[test]
fn a_create_answered_504_is_not_sent_again_and_says_the_outcome_is_unknown() {
    let emu = emulator(PatchReturns::NoContent, &[DIRECT]);
    emu.add_fault(
        FaultRule::next(
            1,
            Fault::Status {
                status: 504,
                retry_after: None,
            },
        )
        .method("POST"),
    );
    let err = client(&emu.base_url())
        .create_user_status(
            &Collection::new("cfg-1"),
            &UserStatusPatch::new().id("new-1").devices_count(1),
        )
        .unwrap_err();
    assert_eq!(err.http_status(), Some(504), "{err}");
    let why = err.retry_stopped().unwrap_or_default();
    assert!(why.contains("outcome is unknown"), "{err}");
    assert_eq!(posts(&emu), 1, "a create after a 504 may have been applied");
}

#[test]
fn a_create_whose_connection_dropped_after_sending_is_not_sent_again() {
    for fault in [Fault::Close, Fault::Reset] {
        let emu = emulator(PatchReturns::NoContent, &[DIRECT]);
        emu.add_fault(FaultRule::next(1, fault.clone()).method("POST"));
        let err = client(&emu.base_url())
            .create_user_status(
                &Collection::new("cfg-1"),
                &UserStatusPatch::new().id("new-1").devices_count(1),
            )
            .unwrap_err();
        assert!(
            matches!(&err, Error::Transport { message, .. } if message.contains("outcome is unknown")),
            "{fault:?}: {err}"
        );
        assert_eq!(posts(&emu), 1, "{fault:?}: not resent");
        assert_eq!(err.attempts(), 1);
    }
}

#[test]
fn a_create_answered_429_or_503_is_sent_again_graph_cannot_have_processed_it() {
    let emu = emulator(PatchReturns::NoContent, &[DIRECT]);
    for status in [503, 429] {
        emu.add_fault(
            FaultRule::next(
                1,
                Fault::Status {
                    status,
                    retry_after: Some("0.01".into()),
                },
            )
            .method("POST"),
        );
    }
    let created = client(&emu.base_url())
        .create_user_status(
            &Collection::new("cfg-1"),
            &UserStatusPatch::new().id("new-1").devices_count(1),
        )
        .unwrap();
    assert_eq!(created.id.as_deref(), Some("new-1"));
    assert_eq!(posts(&emu), 3, "503, 429, then created");
}

#[test]
fn a_create_whose_connection_was_refused_is_sent_again() {
    // Nothing listens: every attempt fails before the request is written.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = client(&format!("http://127.0.0.1:{port}"))
        .create_user_status(
            &Collection::new("cfg-1"),
            &UserStatusPatch::new().devices_count(1),
        )
        .unwrap_err();
    assert_eq!(err.attempts(), 4, "the first try and 3 retries: {err}");
    assert!(!err.to_string().contains("outcome is unknown"), "{err}");
}

#[test]
fn a_delete_whose_retry_answers_404_after_an_unknown_outcome_succeeded() {
    // The first attempt's answer is lost (a 504, a dropped connection): as if Graph deleted it
    // then. The retry finds nothing to delete.
    for fault in [
        Fault::Status {
            status: 504,
            retry_after: Some("0.01".into()),
        },
        Fault::Close,
    ] {
        let emu = emulator(PatchReturns::NoContent, &[DIRECT]);
        emu.add_fault(FaultRule::next(1, fault.clone()).method("DELETE"));
        client(&emu.base_url())
            .delete_user_status(&Target::new("cfg-1", "already-gone"))
            .unwrap_or_else(|err| panic!("{fault:?}: {err}"));
        let deletes = emu
            .requests()
            .iter()
            .filter(|r| r.method == "DELETE")
            .count();
        assert_eq!(deletes, 2, "{fault:?}");
    }
    // A 404 with no doubt before it stays an error.
    let emu = emulator(PatchReturns::NoContent, &[DIRECT]);
    let err = client(&emu.base_url())
        .delete_user_status(&Target::new("cfg-1", "never-there"))
        .unwrap_err();
    assert_eq!(err.http_status(), Some(404));
}

#[test]
fn more_entities_than_max_items_is_an_error_naming_the_bound_and_nothing_is_returned() {
    let emu = emulator_with(7);
    let client = client(&emu.base_url());
    let err = client
        .list_user_statuses(
            &Collection::new("cfg-1"),
            &ListOptions::new().top(3).max_items(5),
        )
        .unwrap_err();
    match &err {
        Error::UnexpectedResponse { reason, .. } => {
            assert!(
                reason.contains("maxItems") && reason.contains('5'),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        emu.requests().len(),
        2,
        "stopped at the page that passed it"
    );
    let all = client
        .list_user_statuses(
            &Collection::new("cfg-1"),
            &ListOptions::new().top(3).max_items(7),
        )
        .unwrap();
    assert_eq!(all.len(), 7, "exactly the bound is fine");
    assert_eq!(
        ListOptions::new().max_items,
        intune_user_status::DEFAULT_MAX_ITEMS
    );
    assert_eq!(intune_user_status::DEFAULT_MAX_ITEMS, 100_000);
}
