//! Updates through the public API against the emulator: what goes over the wire on every path, and
//! what comes back for 200 and 204.

mod common;

use common::{TOKEN, builder, client, emulator};
use intune_user_status::{
    ApiVersion, CallOptions, ComplianceStatus, Route, StatusValue, Target, UpdateOutcome,
    UserStatusPatch,
};
use ius_emulator::PatchReturns;

const DIRECT: &str = "/deviceManagement/deviceConfigurations/cfg-1/userStatuses";

fn patch() -> UserStatusPatch {
    UserStatusPatch::new()
        .status(ComplianceStatus::Compliant)
        .devices_count(3)
}

#[test]
fn the_wire_carries_exactly_the_patch_and_graphs_headers() {
    let emu = emulator(PatchReturns::NoContent, &[DIRECT]);
    let client = builder(&emu.base_url())
        .user_agent_suffix("contoso-agent/4.2")
        .build()
        .unwrap();
    let patch = UserStatusPatch::from_json(
        r#"{"lastReportedDateTime":"2017-01-01T00:00:17.7769392-08:00","status":"notApplicable","userDisplayName":null}"#,
    )
    .unwrap();
    let outcome = client
        .update_user_status(&Target::new("cfg-1", "u1"), &patch)
        .unwrap();
    assert_eq!(outcome, UpdateOutcome::NoContent);

    let requests = emu.requests();
    assert_eq!(requests.len(), 1, "one update is one request");
    let sent = &requests[0];
    assert_eq!(sent.method, "PATCH");
    assert_eq!(
        sent.target,
        "/beta/deviceManagement/deviceConfigurations/cfg-1/userStatuses/u1"
    );
    assert_eq!(
        sent.header("authorization"),
        Some(&*format!("Bearer {TOKEN}"))
    );
    assert_eq!(sent.header("content-type"), Some("application/json"));
    assert_eq!(sent.header("accept"), Some("application/json"));
    let request_id = sent.header("client-request-id").unwrap();
    let parsed = uuid::Uuid::parse_str(request_id).expect("client-request-id is a GUID");
    assert_eq!(parsed.get_version_num(), 4);
    let sdk_version = sent.header("sdkversion").unwrap();
    assert!(
        sdk_version.starts_with(&format!(
            "intune-user-status/{} (hostOS={}; ",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS
        )) && sdk_version.ends_with("runtimeEnvironment=Rust)"),
        "{sdk_version}"
    );
    assert_eq!(
        sent.header("user-agent"),
        Some(&*format!(
            "intune-user-status/{} contoso-agent/4.2",
            env!("CARGO_PKG_VERSION")
        ))
    );
    // Only the set properties, the date with all seven fractional digits.
    assert_eq!(
        sent.body_str(),
        r#"{"userDisplayName":null,"status":"notApplicable","lastReportedDateTime":"2017-01-01T00:00:17.7769392-08:00"}"#
    );
    let stored = emu.user_status(DIRECT, "u1").unwrap();
    assert_eq!(
        stored["lastReportedDateTime"],
        "2017-01-01T00:00:17.7769392-08:00"
    );
    assert_eq!(stored["status"], "notApplicable");
    assert_eq!(stored["userDisplayName"], serde_json::Value::Null);
}

#[test]
fn each_request_gets_a_fresh_client_request_id() {
    let emu = emulator(PatchReturns::NoContent, &[DIRECT]);
    let client = client(&emu.base_url());
    for _ in 0..3 {
        client
            .update_user_status(&Target::new("cfg-1", "u1"), &patch())
            .unwrap();
    }
    let ids: std::collections::HashSet<String> = emu
        .requests()
        .iter()
        .map(|r| r.header("client-request-id").unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 3);
}

#[test]
fn a_body_larger_than_the_write_buffer_arrives_whole_and_the_connection_stays_usable() {
    // The transport holds writes back until the answer is awaited, and sends early only when its
    // buffer (128 KiB) is half full: a long name crosses that point several times.
    let emu = emulator(PatchReturns::NoContent, &[DIRECT]);
    let client = client(&emu.base_url());
    let long = UserStatusPatch::new().user_display_name("n".repeat(300_000));
    for patch in [&long, &patch(), &long] {
        client
            .update_user_status(&Target::new("cfg-1", "u1"), patch)
            .unwrap();
    }
    let requests = emu.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0].body, long.to_json());
    assert_eq!(requests[1].body, patch().to_json());
    assert_eq!(requests[2].body, long.to_json());
}

#[test]
fn ids_are_percent_encoded_as_one_segment() {
    let config = "cfg/1?x#y%z é";
    let status = "user 1/✓";
    let collection =
        "/deviceManagement/deviceConfigurations/cfg%2F1%3Fx%23y%25z%20%C3%A9/userStatuses";
    let emu = emulator(PatchReturns::NoContent, &[]);
    emu.insert_user_status(collection, serde_json::json!({"id": status}))
        .unwrap();
    client(&emu.base_url())
        .update_user_status(&Target::new(config, status), &patch())
        .unwrap();
    assert_eq!(
        emu.requests()[0].target,
        format!("/beta{collection}/user%201%2F%E2%9C%93")
    );
    assert_eq!(
        emu.user_status(collection, status).unwrap()["devicesCount"],
        3
    );
}

/// Every documented path, written out here independently of the crate's own table.
fn every_path() -> Vec<(Target, String)> {
    let cfg = "/deviceManagement/deviceConfigurations/cfg-1";
    let nested = |route: Route, segments: &str| {
        (
            Target::with_route("cfg-1", route, "u1"),
            format!("{cfg}/{segments}/userStatuses"),
        )
    };
    vec![
        (Target::new("cfg-1", "u1"), format!("{cfg}/userStatuses")),
        nested(Route::RootCertificate, "rootCertificate"),
        nested(Route::IdentityCertificate, "identityCertificate"),
        nested(
            Route::IdentityCertificateRootCertificate,
            "identityCertificate/rootCertificate",
        ),
        nested(
            Route::IosScepCertificateProfileRootCertificate,
            "microsoft.graph.iosScepCertificateProfile/rootCertificate",
        ),
        nested(
            Route::WindowsPhone81VpnIdentityCertificate,
            "microsoft.graph.windowsPhone81VpnConfiguration/identityCertificate",
        ),
        nested(
            Route::MacOsWiredNetworkRootCertificateForServerValidation,
            "microsoft.graph.macOSWiredNetworkConfiguration/rootCertificateForServerValidation",
        ),
        nested(
            Route::MacOsWiredNetworkIdentityCertificateForClientAuthentication,
            "microsoft.graph.macOSWiredNetworkConfiguration/identityCertificateForClientAuthentication",
        ),
        nested(
            Route::WindowsWifiEnterpriseEapIdentityCertificateForClientAuthentication,
            "microsoft.graph.windowsWifiEnterpriseEAPConfiguration/identityCertificateForClientAuthentication",
        ),
        nested(
            Route::WindowsWifiEnterpriseEapRootCertificatesForServerValidation {
                certificate_id: "root/1".into(),
            },
            "microsoft.graph.windowsWifiEnterpriseEAPConfiguration/rootCertificatesForServerValidation/root%2F1",
        ),
        nested(
            Route::MacOsScepCertificateProfileRootCertificate,
            "microsoft.graph.macOSScepCertificateProfile/rootCertificate",
        ),
        nested(
            Route::WindowsPhone81ScepCertificateProfileRootCertificate,
            "microsoft.graph.windowsPhone81SCEPCertificateProfile/rootCertificate",
        ),
        nested(
            Route::IosEnterpriseWiFiRootCertificatesForServerValidation {
                certificate_id: "ios-root".into(),
            },
            "microsoft.graph.iosEnterpriseWiFiConfiguration/rootCertificatesForServerValidation/ios-root",
        ),
        nested(
            Route::MacOsEnterpriseWiFiRootCertificatesForServerValidation {
                certificate_id: "mac-root".into(),
            },
            "microsoft.graph.macOSEnterpriseWiFiConfiguration/rootCertificatesForServerValidation/mac-root",
        ),
        (
            Target::autopilot_domain_join("profile-1", "u1"),
            "/deviceManagement/windowsAutopilotDeploymentProfiles/profile-1/microsoft.graph.activeDirectoryWindowsAutopilotDeploymentProfile/domainJoinConfiguration/userStatuses".into(),
        ),
    ]
}

#[test]
fn every_documented_path_is_updated_in_beta() {
    let paths = every_path();
    assert_eq!(paths.len(), 15);
    let collections: Vec<&str> = paths.iter().map(|(_, c)| c.as_str()).collect();
    let emu = emulator(PatchReturns::NoContent, &collections);
    let client = client(&emu.base_url());
    for (count, (target, collection)) in paths.iter().enumerate() {
        let patch = UserStatusPatch::new().devices_count(count as i32 + 1);
        client.update_user_status(target, &patch).unwrap();
        let sent = emu.requests().pop().unwrap();
        assert_eq!(sent.target, format!("/beta{collection}/u1"));
        assert_eq!(
            emu.user_status(collection, "u1").unwrap()["devicesCount"],
            count + 1,
            "{collection}"
        );
    }
}

#[test]
fn every_route_string_names_the_same_path_as_its_typed_route() {
    for (target, _) in every_path() {
        let (route, certificate) = match target.route() {
            Some(route) => (route.template(), route.certificate_id()),
            None => (Target::AUTOPILOT_ROUTE, None),
        };
        let parent = if target.route().is_some() {
            "cfg-1"
        } else {
            "profile-1"
        };
        assert_eq!(
            Target::from_route(parent, route, certificate, "u1").unwrap(),
            target,
            "{route}"
        );
    }
}

#[test]
fn v1_updates_the_direct_path_and_refuses_the_others_before_sending() {
    let emu = emulator(PatchReturns::NoContent, &[DIRECT]);
    let client = builder(&emu.base_url())
        .api_version(ApiVersion::V1_0)
        .build()
        .unwrap();
    client
        .update_user_status(&Target::new("cfg-1", "u1"), &patch())
        .unwrap();
    assert_eq!(
        emu.requests()[0].target,
        "/v1.0/deviceManagement/deviceConfigurations/cfg-1/userStatuses/u1"
    );
    for (target, _) in every_path().into_iter().skip(1) {
        let err = client.update_user_status(&target, &patch()).unwrap_err();
        assert!(
            matches!(&err, intune_user_status::Error::InvalidInput { field, reason }
                if field == "route" && reason.contains("v1.0")),
            "{err}"
        );
    }
    assert_eq!(emu.requests().len(), 1, "nothing else was sent");

    // A beta client can make one call in v1.0, and back.
    let beta = common::client(&emu.base_url());
    beta.update_user_status_with(
        &Target::new("cfg-1", "u1"),
        &patch(),
        &CallOptions::new().api_version(ApiVersion::V1_0),
    )
    .unwrap();
    assert!(emu.requests()[1].target.starts_with("/v1.0/"));
}

#[test]
fn a_200_returns_the_typed_object() {
    let emu = emulator(PatchReturns::Ok, &[DIRECT]);
    let outcome = client(&emu.base_url())
        .update_user_status(&Target::new("cfg-1", "u1"), &patch())
        .unwrap();
    let UpdateOutcome::Updated(entity) = outcome else {
        panic!("expected Updated, got {outcome:?}");
    };
    assert_eq!(entity.id.as_deref(), Some("u1"));
    assert_eq!(
        entity.status,
        Some(StatusValue::Known(ComplianceStatus::Compliant))
    );
    assert_eq!(entity.devices_count, Some(3));
    assert_eq!(entity.user_display_name.as_deref(), Some("User One"));
    assert_eq!(emu.requests().len(), 1);
}

#[test]
fn a_204_is_no_content_unless_the_caller_asks_to_fetch() {
    let emu = emulator(PatchReturns::NoContent, &[DIRECT]);
    let target = Target::new("cfg-1", "u1");
    let plain = client(&emu.base_url());
    assert_eq!(
        plain.update_user_status(&target, &patch()).unwrap(),
        UpdateOutcome::NoContent
    );
    assert_eq!(emu.requests().len(), 1);

    let fetching = builder(&emu.base_url())
        .fetch_after_no_content(true)
        .build()
        .unwrap();
    let outcome = fetching
        .update_user_status(&target, &patch().devices_count(7))
        .unwrap();
    let UpdateOutcome::Fetched(entity) = outcome else {
        panic!("expected Fetched, got {outcome:?}");
    };
    assert_eq!(entity.devices_count, Some(7));
    let requests = emu.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[2].method, "GET");
    assert_eq!(requests[2].target, requests[1].target);
    assert!(requests[2].body.is_empty());
    assert_eq!(requests[2].header("content-length"), None);
}

#[test]
fn eight_threads_share_one_client_and_every_update_lands() {
    let collections: Vec<String> = (0..8)
        .map(|t| format!("/deviceManagement/deviceConfigurations/cfg-{t}/userStatuses"))
        .collect();
    let refs: Vec<&str> = collections.iter().map(String::as_str).collect();
    let emu = emulator(PatchReturns::NoContent, &refs);
    let client = client(&emu.base_url());
    std::thread::scope(|scope| {
        for t in 0..8 {
            let client = client.clone();
            scope.spawn(move || {
                for n in 1..=25 {
                    let patch = UserStatusPatch::new().devices_count(n);
                    client
                        .update_user_status(&Target::new(format!("cfg-{t}"), "u1"), &patch)
                        .unwrap();
                }
            });
        }
    });
    assert_eq!(emu.requests().len(), 200);
    for collection in &collections {
        assert_eq!(
            emu.user_status(collection, "u1").unwrap()["devicesCount"],
            25
        );
    }
}
