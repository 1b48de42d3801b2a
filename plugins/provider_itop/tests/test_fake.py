"""The fake iTop itself, against the contract's fidelity checklist (section 12)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time

import httpx
import pytest

from opsgate_provider_itop.client import ItopClient
from opsgate_provider_itop.errors import ItopMissingAttributes
from opsgate_provider_itop.fake import FakeItop

URL = "http://itop.test/webservices/rest.php"
LOGIN = {"auth_user": "opsgate", "auth_pwd": "opsgate-secret"}
NEW_UR = {"org_id": 1, "caller_id": 1, "title": "VPN drops", "description": "Client disconnects"}


@pytest.fixture
async def http(fake):
    async with httpx.AsyncClient(transport=fake.transport()) as c:
        yield c


async def rest(http, payload, *, version="1.3", login=LOGIN, **kw):
    data = {**login, "json_data": json.dumps(payload)}
    response = await http.post(URL, params={"version": version} if version else None, data=data, **kw)
    return response, response.json()


async def test_every_reply_is_http_200_json_with_escaped_slashes(http):
    ok, _ = await rest(http, {"operation": "list_operations"})
    bad, body = await rest(http, {"operation": "core/frobnicate"})
    for response in (ok, bad):
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.headers["access-control-allow-origin"] == "*"
        assert "set-cookie" in response.headers
    assert b"core\\/frobnicate" in bad.content
    assert body == {"code": 11, "message": "Error: Unknown verb 'core/frobnicate' in version '1.3'"}


async def test_non_ascii_is_escaped(http):
    _, created = await rest(http, {"operation": "core/create", "class": "UserRequest", "comment": "c",
                                   "fields": {**NEW_UR, "title": "Frédéric"}, "output_fields": "title"})
    response, _ = await rest(http, {"operation": "core/get", "class": "UserRequest", "key": 1,
                                    "output_fields": "title"})
    assert b"Fr\\u00e9d\\u00e9ric" in response.content


async def test_envelope_order_and_codes(http):
    # login comes first, even before a missing version
    _, body = await rest(http, {"operation": "list_operations"}, version=None, login={"auth_user": "x"})
    assert body == {"code": 1, "message": "Error: Invalid login"}
    _, body = await rest(http, {"operation": "list_operations"}, version=None)
    assert body["code"] == 2
    response = await http.post(URL, params={"version": "1.3"}, data=LOGIN)
    assert response.json()["code"] == 3
    response = await http.post(URL, params={"version": "1.3"}, data={**LOGIN, "json_data": "{nope"})
    assert response.json()["code"] == 4
    _, body = await rest(http, {"operation": "list_operations"}, version="1.5")
    assert body["code"] == 10
    _, body = await rest(http, {"class": "UserRequest"})
    assert body == {"code": 100, "message": "Error: Missing parameter 'operation'"}


async def test_raw_json_body_is_not_read(http):
    response = await http.post(URL, params={"version": "1.3", **LOGIN},
                               content=json.dumps({"operation": "list_operations"}),
                               headers={"Content-Type": "application/json"})
    assert response.json()["code"] == 1  # query-string credentials are refused by default (no url mode)
    response = await http.post(URL, params={"version": "1.3"}, content=json.dumps({"operation": "list_operations"}),
                               headers={"Content-Type": "application/json"}, auth=("opsgate", "opsgate-secret"))
    assert response.json() == {"code": 3, "message": "Error: Missing parameter 'json_data'"}


async def test_multipart_and_query_string_json_data(http):
    response = await http.post(URL, params={"version": "1.3"},
                               files={"json_data": ("json_data", json.dumps({"operation": "list_operations"}))},
                               data=LOGIN)
    assert response.json()["message"] == "Operations: 7"
    response = await http.post(URL, params={"version": "1.3", "json_data": json.dumps({"operation": "list_operations"})},
                               data=LOGIN)
    assert response.json()["code"] == 0


async def test_token_as_parameter_and_url_mode():
    fake = FakeItop(allowed_login_types=("form", "basic", "url"))
    token = next(iter(fake.default_user.tokens))
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        response = await http.post(URL, params={"version": "1.3"},
                                   data={"auth_token": token, "json_data": '{"operation": "list_operations"}'})
        assert response.json()["code"] == 0
        response = await http.get(URL, params={"version": "1.3", **LOGIN,
                                               "json_data": '{"operation": "list_operations"}'})
        assert response.json()["code"] == 0
    no_token = FakeItop(token_login=False)
    async with httpx.AsyncClient(transport=no_token.transport()) as http:
        response = await http.post(URL, params={"version": "1.3"}, headers={"Auth-Token": token},
                                   data={"json_data": '{"operation": "list_operations"}'})
        assert response.json() == {"code": 1, "message": "Error: Invalid login"}


async def test_get_shapes_paging_and_found(http, fake):
    for n in range(5):
        await rest(http, {"operation": "core/create", "class": "Incident", "comment": "c",
                          "fields": {**NEW_UR, "title": f"t{n}"}})
    _, body = await rest(http, {"operation": "core/get", "class": "Incident", "key": "SELECT Incident",
                                "output_fields": "id,org_id,agent_id,resolution_date,tto", "limit": 2, "page": 3})
    assert body["message"] == "Found: 5"
    (name, entry), = body["objects"].items()
    assert name == "Incident::5"
    assert entry == {"code": 0, "message": "", "class": "Incident", "key": "5",
                     "fields": {"id": "5", "org_id": "1", "agent_id": "0", "resolution_date": "", "tto": 0}}
    _, body = await rest(http, {"operation": "core/get", "class": "Incident", "key": {"title": "zzz"}})
    assert body == {"code": 0, "message": "Found: 0", "objects": None}
    _, body = await rest(http, {"operation": "core/get", "class": "Incident", "key": 1, "page": 0, "limit": 1})
    assert body["code"] == 13 and body["objects"] is None and not body["message"].startswith("Error")


async def test_star_outputs_and_ticket_class(http):
    await rest(http, {"operation": "core/create", "class": "UserRequest", "comment": "c", "fields": NEW_UR})
    _, star = await rest(http, {"operation": "core/get", "class": "Ticket", "key": 1})
    fields = star["objects"]["UserRequest::1"]["fields"]
    assert "status" not in fields and fields["ref"] == "R-000002" and fields["finalclass"] == "UserRequest"
    _, plus = await rest(http, {"operation": "core/get", "class": "Ticket", "key": 1, "output_fields": "*+"})
    assert plus["objects"]["UserRequest::1"]["fields"]["status"] == "new"
    _, inc = await rest(http, {"operation": "core/get", "class": "UserRequest", "key": "SELECT Incident"})
    assert inc == {"code": 0, "message": "Found: 0", "objects": None}  # the OQL decides the class


async def test_ref_counter_is_shared_and_consumed_by_failures(http):
    _, a = await rest(http, {"operation": "core/create", "class": "UserRequest", "comment": "c", "fields": NEW_UR,
                             "output_fields": "ref"})
    _, failed = await rest(http, {"operation": "core/create", "class": "Incident", "comment": "c",
                                  "fields": {**NEW_UR, "org_id": 0}})
    assert failed["code"] == 100 and "Null not allowed" in failed["message"]
    _, b = await rest(http, {"operation": "core/create", "class": "Incident", "comment": "c", "fields": NEW_UR,
                             "output_fields": "id,ref"})
    assert a["objects"]["UserRequest::1"]["fields"]["ref"] == "R-000002"
    assert b["objects"]["Incident::2"]["fields"] == {"id": "2", "ref": "I-000004"}  # gap from the failure


async def test_priority_matrix_and_written_priority_is_ignored(http):
    cases = {("1", "3"): "2", ("3", "1"): "2", ("2", "3"): "3", ("1", "4"): "4", ("3", "3"): "3"}
    for (impact, urgency), expected in cases.items():
        _, body = await rest(http, {"operation": "core/create", "class": "Incident", "comment": "c",
                                    "fields": {**NEW_UR, "impact": impact, "urgency": urgency, "priority": "1"},
                                    "output_fields": "priority"})
        (entry,) = body["objects"].values()
        assert entry["fields"]["priority"] == expected


async def test_case_log_forms(http, fake):
    await rest(http, {"operation": "core/create", "class": "UserRequest", "comment": "c",
                      "fields": {**NEW_UR, "public_log": "first"}})
    fake.advance(10)
    await rest(http, {"operation": "core/update", "class": "UserRequest", "key": 1, "comment": "c",
                      "fields": {"public_log": {"add_item": {"message": "old", "format": "text",
                                                             "date": "2024-01-02 03:04:05"}}}})
    _, body = await rest(http, {"operation": "core/get", "class": "UserRequest", "key": 1,
                                "output_fields": "public_log"})
    entries = body["objects"]["UserRequest::1"]["fields"]["public_log"]["entries"]
    assert [(e["date"], e["message"], e["message_html"]) for e in entries] == [
        ("2024-05-02 10:00:00", "first", "<p>first</p>"), ("2024-01-02 03:04:05", "old", "old")]
    assert entries[0]["user_login"] == "AgentOps Bot" and entries[0]["user_id"] == "2"
    _, missing = await rest(http, {"operation": "core/update", "class": "UserRequest", "key": 1, "comment": "c",
                                   "fields": {"public_log": {"add_item": {"format": "text"}}}})
    assert missing["message"] == "Error: public_log: Missing mandatory entry: 'message'"
    _, denied = await rest(http, {"operation": "core/update", "class": "UserRequest", "key": 1, "comment": "c",
                                  "fields": {"public_log": {"add_item": {"message": "x", "user_id": 1}}}})
    assert denied["code"] == 1
    await rest(http, {"operation": "core/update", "class": "UserRequest", "key": 1, "comment": "c",
                      "fields": {"public_log": {"items": []}}})
    assert fake.get_object("UserRequest", 1)["public_log"] == []  # items replaces (wipes) the log


async def test_lifecycle_quirks(http, fake):
    await rest(http, {"operation": "core/create", "class": "UserRequest", "comment": "c", "fields": NEW_UR})

    async def fire(stimulus, fields=None):
        return (await rest(http, {"operation": "core/apply_stimulus", "class": "UserRequest", "key": 1,
                                  "comment": "c", "stimulus": stimulus, "fields": fields or {},
                                  "output_fields": "status"}))[1]

    assert (await fire("ev_reassign"))["message"] == "Invalid stimulus: 'ev_reassign' on the object R-000002 in state 'new'"
    assert (await fire("ev_assign"))["code"] == 0  # PHP 8: empty team/agent keys are not caught
    assert fake.get_object("UserRequest", 1)["agent_id"] == 0
    assert (await fire("ev_pending", {"pending_reason": "waiting"}))["code"] == 0
    assert (await fire("ev_resolve", {"solution": "x"}))["code"] == 100
    assert (await fire("ev_assign"))["code"] == 0
    assert (await fire("ev_resolve", {"solution": "x"}))["code"] == 0  # service_id not caught either
    assert (await fire("ev_close"))["code"] == 0
    body = await fire("ev_reopen")
    assert body["code"] == 100 and body["objects"] is None and "in state 'closed'" in body["message"]
    # closed tickets still accept case-log appends, and REST can write status directly
    _, updated = await rest(http, {"operation": "core/update", "class": "UserRequest", "key": 1, "comment": "c",
                                   "fields": {"private_log": "late note", "status": "new"}, "output_fields": "status"})
    assert updated["objects"]["UserRequest::1"]["fields"]["status"] == "new"


async def test_strict_mode_checks_external_keys():
    fake = FakeItop(strict_mandatory=True)
    client = ItopClient(fake.settings(), transport=fake.transport())
    obj = await client.create("Incident", NEW_UR, "c")
    with pytest.raises(ItopMissingAttributes) as err:
        await client.apply_stimulus("Incident", obj.key, "ev_assign", {}, "c")
    assert err.value.message == "Missing mandatory attribute(s) for applying the stimulus: team_id, agent_id."
    await client.aclose()


async def test_failed_stimulus_saves_nothing(http, fake):
    await rest(http, {"operation": "core/create", "class": "UserRequest", "comment": "c", "fields": NEW_UR})
    await rest(http, {"operation": "core/apply_stimulus", "class": "UserRequest", "key": 1, "comment": "c",
                      "stimulus": "ev_close", "fields": {"title": "changed"}})
    assert fake.get_object("UserRequest", 1)["title"] == "VPN drops"


async def test_external_key_forms(http):
    _, body = await rest(http, {"operation": "core/create", "class": "UserRequest", "comment": "c",
                                "fields": {**NEW_UR, "org_id": "SELECT Organization WHERE name = 'Demo'",
                                           "caller_id": {"email": "claude.monet@demo.com"}},
                                "output_fields": "org_id,caller_id,caller_name,caller_id_friendlyname"})
    assert body["objects"]["UserRequest::1"]["fields"] == {"org_id": "1", "caller_id": "1", "caller_name": "Monet",
                                                           "caller_id_friendlyname": "Claude Monet"}
    _, body = await rest(http, {"operation": "core/create", "class": "UserRequest", "comment": "c",
                                "fields": {**NEW_UR, "org_id": {"name": "Nope"}}})
    assert body["message"] == "Error: org_id: No item found with criteria: name: Nope (Nope)"


async def test_oql_subset(http):
    for n, (title, urgency) in enumerate([("VPN down", "1"), ("vpn slow", "3"), ("Printer", "4")]):
        await rest(http, {"operation": "core/create", "class": "Incident", "comment": "c",
                          "fields": {**NEW_UR, "title": title, "urgency": urgency}})

    async def keys(oql):
        _, body = await rest(http, {"operation": "core/get", "class": "Incident", "key": oql, "output_fields": "id"})
        assert body["code"] == 0, body
        return sorted((body["objects"] or {}).keys())

    assert await keys("SELECT Incident WHERE title LIKE 'vpn%'") == ["Incident::1", "Incident::2"]
    assert await keys("SELECT Incident AS i WHERE i.urgency IN ('1', '4') AND id != 1") == ["Incident::3"]
    assert await keys("SELECT Incident WHERE (urgency = 3 OR urgency = 4) AND title NOT LIKE '%slow%'") == \
        ["Incident::3"]
    assert await keys("SELECT Incident WHERE org_name = 'Demo' AND operational_status = 'ongoing'") == \
        ["Incident::1", "Incident::2", "Incident::3"]
    _, bad = await rest(http, {"operation": "core/get", "class": "Incident", "key": "SELECT Incident WHERE nope = 1"})
    assert bad["code"] == 100 and bad["message"].startswith("Error: Query failed to execute: query = ")


async def test_hooks_fail_and_count(http, fake):
    fake.fail_next(100, "Error: boom", operation="core/get")
    _, body = await rest(http, {"operation": "list_operations"})
    assert body["code"] == 0  # the fault waits for its operation
    _, body = await rest(http, {"operation": "core/get", "class": "Incident", "key": 1})
    assert body == {"code": 100, "message": "Error: boom"}
    fake.fail_next(1, "The current user does not have enough permissions", shape="in-operation")
    _, body = await rest(http, {"operation": "list_operations"})
    assert body == {"code": 1, "message": "The current user does not have enough permissions", "objects": None}
    fake.fail_next_http(500, "<b>Fatal error</b>")
    response = await http.post(URL, params={"version": "1.3"}, data={**LOGIN, "json_data": "{}"})
    assert response.status_code == 500 and response.headers["content-type"] == "text/html"
    fake.drop_next_reply()
    with pytest.raises(httpx.ReadTimeout):
        await rest(http, {"operation": "core/create", "class": "Incident", "comment": "c", "fields": NEW_UR})
    assert fake.creates == 1 and fake.get_object("Incident", 1) is not None
    assert fake.calls["list_operations"] == 1


async def test_asgi_transport(fake):
    client = ItopClient(fake.settings(), transport=httpx.ASGITransport(app=fake))
    obj = await client.create("UserRequest", NEW_UR, "c", "id,ref")
    assert obj.fields["ref"] == "R-000002"
    await client.aclose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_runs_as_a_server_on_loopback():
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "opsgate_provider_itop.fake", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        settings = FakeItop(url=f"http://127.0.0.1:{port}/").settings()
        client = ItopClient(settings)
        deadline = time.monotonic() + 15
        while True:
            try:
                operations = await client.list_operations()
                break
            except Exception:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                await asyncio.sleep(0.1)
        assert len(operations) == 7
        obj = await client.create("Incident", NEW_UR, "c", "id,ref")
        assert obj.fields["ref"] == "I-000002"
        await client.aclose()
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert f"ITOP_URL=http://127.0.0.1:{port}/" in out
