"""Transport failures and iTop error replies, with respx (no fake, no network)."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from opsgate_provider_itop.client import ItopClient
from opsgate_provider_itop.errors import (
    ItopError,
    ItopInternalError,
    ItopLoginError,
    ItopTimeout,
    ItopTransportError,
)
from opsgate_provider_itop.provider import ItopProvider
from opsgate_provider_itop.settings import ItopSettings

ENDPOINT = "http://itop.invalid/webservices/rest.php"
SECRET = "s3cr3t-pa55word"
TOKEN = "tok-" + "z" * 60


def settings(**overrides) -> ItopSettings:
    values = {"url": "http://itop.invalid", "user": "rest", "password": SECRET, "timeout_seconds": 0.5,
              "default_org_id": "1", "default_caller_id": "1"}
    values.update(overrides)
    return ItopSettings(**values)


def itop_reply(payload: dict) -> httpx.Response:
    body = json.dumps(payload).replace("/", "\\/")
    return httpx.Response(200, content=body.encode(), headers={"Content-type": "application/json"})


def assert_no_secret(exc: BaseException) -> None:
    for text in (str(exc), repr(exc), getattr(exc, "message", "")):
        assert SECRET not in text and TOKEN not in text


@pytest.fixture
def router():
    """Every request is answered by a respx route or refused (no traffic leaves the process)."""
    with respx.mock(assert_all_mocked=True, assert_all_called=True) as mock:
        yield mock


@pytest.fixture
async def client():
    c = ItopClient(settings())
    yield c
    await c.aclose()


async def test_request_shape_form_login(router, client):
    route = router.post(ENDPOINT, params={"version": "1.3"}).mock(
        return_value=itop_reply({"code": 0, "message": "Found: 0", "objects": None}))
    result = await client.get("UserRequest", {"ref": "R-000001"}, "id,ref")
    assert result.found == 0 and result.objects == []
    request = route.calls.last.request
    form = dict(httpx.QueryParams(request.content.decode()))
    assert form["auth_user"] == "rest" and form["auth_pwd"] == SECRET
    assert json.loads(form["json_data"]) == {"operation": "core/get", "class": "UserRequest",
                                             "key": {"ref": "R-000001"}, "output_fields": "id,ref"}
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"


async def test_token_goes_in_the_auth_token_header_only(router):
    route = router.post(ENDPOINT).mock(return_value=itop_reply({"code": 0, "message": "Operations: 0",
                                                               "operations": []}))
    c = ItopClient(settings(user="", password="", auth_token=TOKEN))
    await c.list_operations()
    request = route.calls.last.request
    assert request.headers["auth-token"] == TOKEN
    assert "auth_user" not in request.content.decode() and TOKEN not in str(request.url)
    await c.aclose()


async def test_basic_login_header(router):
    route = router.post(ENDPOINT).mock(return_value=itop_reply({"code": 0, "message": "Operations: 0",
                                                               "operations": []}))
    c = ItopClient(settings(auth_method="basic"))
    await c.list_operations()
    request = route.calls.last.request
    assert request.headers["authorization"].startswith("Basic ")
    assert "auth_pwd" not in request.content.decode()
    await c.aclose()


@pytest.mark.parametrize("exc", [httpx.ReadTimeout("read"), httpx.ConnectTimeout("connect"),
                                 httpx.WriteTimeout("write"), httpx.PoolTimeout("pool")])
async def test_timeouts(router, client, exc):
    router.post(ENDPOINT).mock(side_effect=exc)
    with pytest.raises(ItopTimeout) as err:
        await client.list_operations()
    assert err.value.code is None and err.value.operation == "list_operations"
    assert isinstance(err.value, ItopTransportError)
    assert_no_secret(err.value)


async def test_connection_refused(router, client):
    router.post(ENDPOINT).mock(side_effect=httpx.ConnectError("Connection refused"))
    with pytest.raises(ItopTransportError) as err:
        await client.list_operations()
    assert not isinstance(err.value, ItopTimeout) and "ConnectError" in err.value.message


@pytest.mark.parametrize("status", [500, 502, 503, 401, 302])
async def test_http_errors(router, client, status):
    router.post(ENDPOINT).mock(return_value=httpx.Response(status, text="<b>Fatal error</b>: Uncaught Exception"))
    with pytest.raises(ItopTransportError) as err:
        await client.create("UserRequest", {"title": "x"}, "c")
    assert err.value.http_status == status and f"HTTP {status}" in err.value.message
    assert err.value.operation == "core/create"
    assert_no_secret(err.value)


@pytest.mark.parametrize("body", [b"<html>Maintenance</html>", b"", b"callback({\"code\": 0})",
                                  b"[1, 2]", b"{\"message\": \"no code\"}"])
async def test_non_json_or_non_envelope_body(router, client, body):
    router.post(ENDPOINT).mock(return_value=httpx.Response(200, content=body,
                                                          headers={"Content-type": "text/html"}))
    with pytest.raises(ItopTransportError) as err:
        await client.list_operations()
    assert err.value.http_status == 200 and err.value.code is None


@pytest.mark.parametrize("code", [1, 5, 6])
async def test_login_failure_codes(router, client, code):
    router.post(ENDPOINT).mock(return_value=itop_reply({"code": code, "message": "Error: Invalid login"}))
    with pytest.raises(ItopLoginError) as err:
        await client.list_operations()
    assert err.value.code == code and err.value.message == "Error: Invalid login"
    assert "[%d]" % code in str(err.value)
    assert_no_secret(err.value)


async def test_internal_error_code_100(router, client):
    router.post(ENDPOINT).mock(return_value=itop_reply(
        {"code": 100, "message": "Error: Unexpected value for attribute 'Organization' (org_id) : Null not allowed"}))
    with pytest.raises(ItopInternalError) as err:
        await client.create("UserRequest", {"title": "x"}, "c")
    assert err.value.code == 100 and "Null not allowed" in err.value.message
    assert err.value.provider == "itop" and err.value.op == "core/create"


async def test_in_operation_error_shape(router, client):
    router.post(ENDPOINT).mock(return_value=itop_reply(
        {"code": 100, "message": "Invalid stimulus: 'ev_resolve' on the object R-000003 in state 'pending'",
         "objects": None}))
    with pytest.raises(ItopError) as err:
        await client.apply_stimulus("UserRequest", 3, "ev_resolve", {}, "c")
    assert type(err.value).__name__ == "ItopInvalidStimulus"


async def test_unknown_code_is_still_an_error(router, client):
    router.post(ENDPOINT).mock(return_value=itop_reply({"code": 42, "message": "Error: something new"}))
    with pytest.raises(ItopError) as err:
        await client.list_operations()
    assert err.value.code == 42


async def test_objects_may_be_missing_or_null(router, client):
    router.post(ENDPOINT).mock(return_value=itop_reply({"code": 0, "message": "Found: 0"}))
    assert (await client.get("Incident", "SELECT Incident")).objects == []


async def test_provider_health_reports_transport_failure_without_secrets(router):
    router.post(ENDPOINT).mock(side_effect=httpx.ReadTimeout("slow"))
    provider = ItopProvider(settings(auth_token=TOKEN))
    report = await provider.health()
    assert report["ok"] is False and report["kind"] == "ItopTimeout" and report["code"] is None
    assert SECRET not in repr(report) and TOKEN not in repr(report)
    await provider.aclose()


async def test_provider_create_raises_on_timeout_when_marker_lookup_fails_too(router):
    route = router.post(ENDPOINT).mock(side_effect=httpx.ReadTimeout("slow"))
    from opsgate.protocols import ProviderTicket

    provider = ItopProvider(settings())
    with pytest.raises(ItopTimeout):
        await provider.create(ProviderTicket(id=1, title="t", ticket_class="Incident", marker="m-1"))
    assert route.call_count == 2  # the create, then one lookup by marker
    await provider.aclose()


async def test_provider_fetch_with_http_500(router):
    router.post(ENDPOINT).mock(return_value=httpx.Response(500, text="Internal Server Error"))
    provider = ItopProvider(settings())
    with pytest.raises(ItopTransportError):
        await provider.fetch("Incident", "1")
    await provider.aclose()
