//! Proxies and trust stores: requests reach the service through a proxy, secrets in proxy URLs
//! stay out of errors.

mod common;

use common::{TunnelProxy, builder, emulator};
use intune_user_status::{Error, Target, UserStatusPatch};
use ius_emulator::PatchReturns;

const DIRECT: &str = "/deviceManagement/deviceConfigurations/cfg-1/userStatuses";

#[test]
fn updates_go_through_an_explicit_proxy_with_its_credentials() {
    let emu = emulator(PatchReturns::NoContent, &[DIRECT]);
    let proxy = TunnelProxy::start();
    let with_credentials = proxy.url.replace("http://", "http://agent:s3cret@");
    let client = builder(&emu.base_url())
        .proxy(with_credentials)
        .build()
        .unwrap();
    client
        .update_user_status(
            &Target::new("cfg-1", "u1"),
            &UserStatusPatch::new().devices_count(2),
        )
        .unwrap();
    let seen = proxy.seen();
    let authority = emu.base_url().replace("http://", "");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].starts_with(&format!("CONNECT {authority} ")),
        "{seen:?}"
    );
    // Basic base64("agent:s3cret")
    assert!(seen[0].contains("YWdlbnQ6czNjcmV0"), "{seen:?}");
    assert_eq!(emu.user_status(DIRECT, "u1").unwrap()["devicesCount"], 2);
}

#[test]
fn a_bad_proxy_url_is_a_config_error_that_hides_its_password() {
    let err = builder("http://127.0.0.1:1")
        .proxy("gopher://agent:hunter2@proxy")
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, Error::Config { field, .. } if field == "proxy"),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?}").contains("hunter2"));
}
