//! Collections in pages: `@odata.nextLink`, the page size, `$top`,
//! `$select`, `$filter`, and a next link pointing elsewhere.

mod common;

use common::request;
use ius_emulator::{Config, Emulator, SeedEntry};
use serde_json::{Value, json};

const C1: &str = "/deviceManagement/deviceConfigurations/c1/userStatuses";

/// An emulator holding `n` statuses `u0..`, every third one compliant.
fn start(n: usize, config: Config) -> Emulator {
    Emulator::start(Config {
        seed: (0..n)
            .map(|i| SeedEntry {
                collection: C1.into(),
                entity: json!({
                    "id": format!("u{i}"),
                    "status": if i % 3 == 0 { "compliant" } else { "unknown" },
                    "devicesCount": i,
                }),
            })
            .collect(),
        ..config
    })
    .unwrap()
}

/// GETs an absolute URL (spaces sent as `%20`); returns the status and the
/// JSON body.
fn get(url: &str) -> (u16, Value) {
    let resp = request(
        "GET",
        &url.replace(' ', "%20"),
        None,
        &[("Authorization", "Bearer t")],
    );
    (resp.status, resp.json())
}

/// Follows next links from `first`; returns each page's ids and the links.
fn walk(first: &str) -> (Vec<Vec<String>>, Vec<String>) {
    let mut pages = Vec::new();
    let mut links = Vec::new();
    let mut url = first.to_owned();
    for _ in 0..50 {
        let (status, page) = get(&url);
        assert_eq!(status, 200, "{page}");
        pages.push(
            page["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_owned())
                .collect(),
        );
        match page["@odata.nextLink"].as_str() {
            Some(next) => {
                links.push(next.to_owned());
                url = next.to_owned();
            }
            None => return (pages, links),
        }
    }
    panic!("more than 50 pages");
}

fn ids(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("u{i}")).collect()
}

#[test]
fn three_pages_of_the_configured_size_with_absolute_next_links() {
    let emu = start(
        5,
        Config {
            page_size: 2,
            ..Config::default()
        },
    );
    let (pages, links) = walk(&format!("{}/beta{C1}", emu.base_url()));
    assert_eq!(pages, [ids(0..2), ids(2..4), ids(4..5)]);
    assert_eq!(links.len(), 2);
    for link in &links {
        let prefix = format!("{}/beta{C1}?$skiptoken=", emu.base_url());
        assert!(link.starts_with(&prefix), "{link}");
    }
    // Each page was one request on the wire.
    assert_eq!(emu.requests().len(), 3);
}

#[test]
fn the_default_page_is_100() {
    let emu = start(150, Config::default());
    let (pages, _) = walk(&format!("{}/beta{C1}", emu.base_url()));
    assert_eq!(pages.len(), 2);
    assert_eq!(pages[0], ids(0..100));
    assert_eq!(pages[1], ids(100..150));
}

#[test]
fn top_sets_the_page_size_and_is_kept_in_the_next_link() {
    let emu = start(7, Config::default());
    let (pages, links) = walk(&format!("{}/v1.0{C1}?$top=3", emu.base_url()));
    assert_eq!(pages, [ids(0..3), ids(3..6), ids(6..7)]);
    assert!(links.iter().all(|l| l.contains("$top=3&")), "{links:?}");
    assert!(links[0].starts_with(&format!("{}/v1.0{C1}?", emu.base_url())));
}

#[test]
fn filter_and_select_apply_on_every_page() {
    let emu = start(
        10,
        Config {
            page_size: 2,
            ..Config::default()
        },
    );
    let first = format!(
        "{}/beta{C1}?$filter=status%20eq%20'compliant'&$select=id,devicesCount",
        emu.base_url()
    );
    let (pages, links) = walk(&first);
    // u0, u3, u6, u9 are compliant.
    assert_eq!(pages, [vec!["u0", "u3"], vec!["u6", "u9"]]);
    assert_eq!(links.len(), 1);
    let (_, page) = get(&links[0]);
    assert_eq!(page["value"][0], json!({"id": "u6", "devicesCount": 6}));
    let (_, page) = get(&format!(
        "{}/beta{C1}?$filter=status ne 'compliant' and devicesCount eq 4",
        emu.base_url()
    ));
    assert_eq!(
        page["value"],
        json!([{
            "@odata.type": "#microsoft.graph.deviceConfigurationUserStatus",
            "id": "u4", "userDisplayName": null, "devicesCount": 4, "status": "unknown",
            "lastReportedDateTime": "0001-01-01T00:00:00Z", "userPrincipalName": null,
        }])
    );
    let (_, item) = get(&format!("{}/beta{C1}/u5?$select=status", emu.base_url()));
    assert_eq!(item["status"], "unknown");
    assert!(item.get("id").is_none() && item["@odata.context"].is_string());
}

#[test]
fn unsupported_filters_and_unknown_properties_are_400() {
    let emu = start(1, Config::default());
    for (query, needle) in [
        ("$filter=startswith(status,'c')", "Unsupported $filter"),
        ("$filter=status gt 'c'", "Unsupported $filter"),
        ("$filter=bogus eq 1", "'bogus'"),
        ("$select=id,bogus", "'bogus'"),
        ("$skiptoken=x", "$skiptoken"),
    ] {
        let (status, body) = get(&format!("{}/beta{C1}?{query}", emu.base_url()));
        assert_eq!(status, 400, "{query}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{query}: {message}");
    }
}

#[test]
fn next_link_base_points_the_link_at_another_host() {
    let emu = start(
        3,
        Config {
            page_size: 2,
            next_link_base: Some("https://elsewhere.example:8443/".into()),
            ..Config::default()
        },
    );
    let (status, page) = get(&format!("{}/beta{C1}", emu.base_url()));
    assert_eq!(status, 200);
    let link = page["@odata.nextLink"].as_str().unwrap();
    assert!(
        link.starts_with(&format!(
            "https://elsewhere.example:8443/beta{C1}?$skiptoken="
        )),
        "{link}"
    );
    // The same query still pages on this emulator.
    let query = link.split_once('?').unwrap().1;
    let (_, rest) = get(&format!("{}/beta{C1}?{query}", emu.base_url()));
    assert_eq!(rest["value"][0]["id"], "u2");
}
