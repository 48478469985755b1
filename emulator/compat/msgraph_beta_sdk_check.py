"""Microsoft's official Graph beta SDK for Python against the emulator: create, update, read,
list, count and delete a user status, and Graph-shaped errors. `cargo test` runs it
(emulator/tests/python_sdk.rs) when the SDK is installed; .ci/run installs it. By hand:

    python3 -m venv /tmp/msgraph && /tmp/msgraph/bin/pip install -r emulator/compat/requirements.txt
    cargo run -p ius-emulator -- --listen 127.0.0.1:8080 &
    /tmp/msgraph/bin/python emulator/compat/msgraph_beta_sdk_check.py http://127.0.0.1:8080
"""
import asyncio
import datetime
import sys

from kiota_abstractions.authentication import (AccessTokenProvider, AllowedHostsValidator,
                                               BaseBearerTokenAuthenticationProvider)
from msgraph_beta import GraphRequestAdapter, GraphServiceClient
from msgraph_beta.generated.models.compliance_status import ComplianceStatus
from msgraph_beta.generated.models.device_configuration_user_status import \
    DeviceConfigurationUserStatus


class StaticToken(AccessTokenProvider):
    async def get_authorization_token(self, uri, additional_authentication_context=None):
        return "emulator-token"

    def get_allowed_hosts_validator(self):
        return AllowedHostsValidator([])


async def main(base):
    adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(StaticToken()))
    adapter.base_url = base + "/beta"
    client = GraphServiceClient(request_adapter=adapter)
    statuses = (client.device_management.device_configurations
                .by_device_configuration_id("config 1/x").user_statuses)
    created = await statuses.post(DeviceConfigurationUserStatus(
        id="u1", user_display_name="Ann", devices_count=2, status=ComplianceStatus.Compliant,
        last_reported_date_time=datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc),
        user_principal_name="ann@contoso.example"))
    assert created.id == "u1" and created.status == ComplianceStatus.Compliant, created

    item = statuses.by_device_configuration_user_status_id("u1")
    patched = await item.patch(DeviceConfigurationUserStatus(
        status=ComplianceStatus.NonCompliant, devices_count=3))
    assert patched is None, "the emulator answers PATCH with 204, like Intune"

    got = await item.get()
    assert (got.status, got.devices_count, got.user_display_name) == \
        (ComplianceStatus.NonCompliant, 3, "Ann"), got
    assert [s.id for s in (await statuses.get()).value] == ["u1"]
    assert await statuses.count.get() == 1

    try:
        await statuses.by_device_configuration_user_status_id("missing").get()
        raise AssertionError("expected a 404")
    except Exception as err:  # the SDK's ODataError
        assert err.response_status_code == 404 and err.error.code == "ResourceNotFound", err

    await item.delete()
    assert (await statuses.get()).value == []
    print("msgraph-beta-sdk: create, update (204), get, list, count, 404 and delete all work")


asyncio.run(main(sys.argv[1]))
