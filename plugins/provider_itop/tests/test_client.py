"""ItopClient against the fake iTop: every operation, the auth modes, each error code."""

from __future__ import annotations

import json

import httpx
import pytest

from opsgate_provider_itop.client import ItopClient, oql_quote
from opsgate_provider_itop.errors import (
    ItopAmbiguousKey,
    ItopConfigError,
    ItopInternalError,
    ItopInvalidStimulus,
    ItopLoginError,
    ItopMissingAttributes,
    ItopNotFound,
    ItopPermissionError,
    ItopRequestError,
)
from opsgate_provider_itop.fake import FakeItop, FakeUser

NEW_UR = {"org_id": 1, "caller_id": 1, "title": "VPN drops", "description": "Client disconnects"}


def _client(fake: FakeItop, **overrides) -> ItopClient:
    return ItopClient(fake.settings(**overrides), transport=fake.transport())


async def test_list_operations(client):
    verbs = {op["verb"] for op in await client.list_operations()}
    assert verbs == {"core/create", "core/update", "core/apply_stimulus", "core/get", "core/delete",
                     "core/get_related", "core/check_credentials"}


async def test_check_credentials(client):
    assert await client.check_credentials("admin", "admin-secret") is True
    assert await client.check_credentials("admin", "wrong") is False


async def test_create_returns_computed_fields(client, fake):
    obj = await client.create("UserRequest", {**NEW_UR, "impact": "2", "urgency": 2}, "opsgate: test",
                              "id,ref,status,priority,start_date,last_update,description,org_name")
    assert obj.cls == "UserRequest" and obj.message == "created"
    assert obj.key == obj.fields["id"] == "1"
    assert obj.fields["ref"] == "R-000002"  # shared counter, not the id
    assert obj.fields["status"] == "new" and obj.fields["priority"] == "2"
    assert obj.fields["start_date"] == obj.fields["last_update"] == "2024-05-02 10:00:00"
    assert obj.fields["description"] == "<p>Client disconnects</p>"
    assert obj.fields["org_name"] == "Demo"
    assert fake.requests[-1].data["comment"] == "opsgate: test"


async def test_get_by_id_oql_and_criteria_with_paging(client):
    for n in range(5):
        await client.create("Incident", {**NEW_UR, "title": f"disk {n}"}, "c", "id")
    by_id = await client.get("Incident", 3, "title")
    assert by_id.found == 1 and by_id.objects[0].fields == {"title": "disk 2"}
    by_oql = await client.get("Incident", "SELECT Incident WHERE title LIKE 'disk%'", "id", limit=2, page=2)
    assert by_oql.found == 5 and [o.key for o in by_oql.objects] == ["3", "4"]
    by_criteria = await client.get("Incident", {"title": "disk 4"}, ["id", "ref"])
    assert [o.key for o in by_criteria.objects] == ["5"]
    nothing = await client.get("Incident", {"title": "nope"}, "id")
    assert nothing.found == 0 and nothing.objects == []


async def test_update_and_case_log_append(client):
    obj = await client.create("UserRequest", NEW_UR, "c", "id")
    updated = await client.update("UserRequest", {"ref": "R-000002"}, {"urgency": "1"}, "c", "priority")
    assert updated.message == "updated" and updated.fields == {"priority": "1"}
    await client.append_case_log("UserRequest", obj.key, "public_log", "We are on it.", "c")
    logged = await client.append_case_log("UserRequest", obj.key, "private_log", "root cause: <b>DNS</b>", "c",
                                          "public_log,private_log")
    (public,) = logged.fields["public_log"]["entries"]
    (private,) = logged.fields["private_log"]["entries"]
    assert public["message"] == "We are on it." and public["user_login"] == "AgentOps Bot"
    assert public["user_id"] == "2" and public["date"] == "2024-05-02 10:00:00"
    assert private["message"] == "root cause: <b>DNS</b>"
    assert private["message_html"] == "root cause: &lt;b&gt;DNS&lt;/b&gt;"
    with pytest.raises(ValueError):
        await client.append_case_log("UserRequest", obj.key, "description", "x", "c")


async def test_apply_stimulus_lifecycle(client):
    obj = await client.create("UserRequest", NEW_UR, "c", "id")
    assigned = await client.apply_stimulus("UserRequest", obj.key, "ev_assign", {"team_id": 1, "agent_id": 3}, "c",
                                           "status,assignment_date,agent_id_friendlyname")
    assert assigned.fields == {"status": "assigned", "assignment_date": "2024-05-02 10:00:00",
                               "agent_id_friendlyname": "Jules Verne"}
    resolved = await client.apply_stimulus("UserRequest", obj.key, "ev_resolve", {"solution": "patched"}, "c",
                                           "status,solution,operational_status")
    assert resolved.fields == {"status": "resolved", "solution": "<p>patched</p>", "operational_status": "resolved"}
    closed = await client.apply_stimulus("UserRequest", obj.key, "ev_close", None, "c", "status,close_date")
    assert closed.fields["status"] == "closed" and closed.fields["close_date"]


async def test_invalid_stimulus_and_missing_attributes(client, fake):
    obj = await client.create("UserRequest", NEW_UR, "c", "id")
    with pytest.raises(ItopInvalidStimulus) as err:
        await client.apply_stimulus("UserRequest", obj.key, "ev_resolve", {"solution": "x"}, "c")
    assert err.value.code == 100
    assert err.value.message == "Invalid stimulus: 'ev_resolve' on the object R-000002 in state 'new'"
    await client.apply_stimulus("UserRequest", obj.key, "ev_assign", {"team_id": 1, "agent_id": 3}, "c")
    with pytest.raises(ItopMissingAttributes) as err:
        await client.apply_stimulus("UserRequest", obj.key, "ev_pending", {}, "c")
    assert err.value.attributes == ["pending_reason"]
    assert fake.get_object("UserRequest", 1)["status"] == "assigned"  # nothing saved


async def test_delete_and_get_related(fake):
    admin = _client(fake, user="admin", password="admin-secret")
    obj = await admin.create("Incident", NEW_UR, "c", "id")
    related = await admin.call({"operation": "core/get_related", "class": "Incident", "key": int(obj.key),
                                "relation": "impacts"})
    assert related["message"].startswith("Scope: 1")
    simulated = await admin.delete("Incident", obj.key, "cleanup", simulate=True)
    assert [o.key for o in simulated] == [obj.key] and fake.get_object("Incident", 1) is not None
    deleted = await admin.delete("Incident", obj.key, "cleanup")
    assert deleted[0].fields == {"id": "1", "friendlyname": "I-000002"}
    assert fake.get_object("Incident", 1) is None
    await admin.aclose()


async def test_list_changed_since_uses_last_update(client, fake):
    await client.create("Incident", {**NEW_UR, "title": "old"}, "c", "id")
    fake.advance(3600)
    await client.create("Incident", {**NEW_UR, "title": "new"}, "c", "id")
    page = await client.list_changed_since("Incident", "2024-05-02 10:30:00", "title")
    assert page.found == 1 and page.objects[0].fields == {"title": "new"}
    everything = await client.list_changed_since("Incident", None, "title")
    assert everything.found == 2
    assert "last_update >= '2024-05-02 10:30:00'" in fake.requests[-2].data["key"]


def test_oql_quote_escapes():
    assert oql_quote("it's a \\ test") == "'it\\'s a \\\\ test'"


# --- wire format and auth modes --------------------------------------------


async def test_form_login_posts_form_fields_and_keeps_no_cookies(fake):
    seen: list[httpx.Request] = []

    def spy(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return fake.handle_httpx(request)

    client = ItopClient(fake.settings(), transport=httpx.MockTransport(spy))
    await client.list_operations()
    await client.list_operations()
    request = seen[-1]
    assert request.method == "POST"
    assert request.url.path == "/webservices/rest.php" and request.url.params["version"] == "1.3"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    form = dict(httpx.QueryParams(request.content.decode()))
    assert form["auth_user"] == "opsgate" and form["auth_pwd"] == "opsgate-secret"
    assert json.loads(form["json_data"]) == {"operation": "list_operations"}
    assert "cookie" not in request.headers  # the fake sets a session cookie on every reply
    assert "authorization" not in request.headers
    assert [r.auth for r in fake.requests] == ["form", "form"]
    await client.aclose()


async def test_basic_login(fake):
    client = _client(fake, auth_method="basic")
    assert len(await client.list_operations()) == 7
    assert fake.requests[-1].auth == "basic"
    await client.aclose()


async def test_token_login_sends_auth_token_header(fake):
    token = next(iter(fake.default_user.tokens))
    client = _client(fake, user="", password="", auth_token=token)
    assert len(await client.list_operations()) == 7
    assert fake.requests[-1].auth == "token"
    await client.aclose()
    bad = _client(fake, user="", password="", auth_token="tok-wrong")
    with pytest.raises(ItopLoginError) as err:
        await bad.list_operations()
    assert err.value.code == 1 and err.value.message == "Error: Invalid login"
    await bad.aclose()


@pytest.mark.parametrize("user,password", [("opsgate", "wrong"), ("nobody", "x")])
async def test_bad_login_is_code_1(fake, user, password):
    client = _client(fake, user=user, password=password)
    with pytest.raises(ItopLoginError) as err:
        await client.get("UserRequest", 1)
    assert err.value.code == 1 and "Invalid login" in err.value.message
    assert password not in str(err.value) and password not in repr(err.value)
    await client.aclose()


async def test_missing_rest_profile_and_portal_user_are_permission_errors(fake):
    for user, password, text in (("norest", "norest-secret", "REST Services User is required"),
                                 ("portal", "portal-secret", "Portal user is not allowed")):
        client = _client(fake, user=user, password=password)
        with pytest.raises(ItopPermissionError) as err:
            await client.list_operations()
        assert err.value.code == 1 and text in err.value.message
        await client.aclose()


async def test_missing_class_rights_is_in_operation_code_1(fake):
    fake.add_user(FakeUser("reader", "reader-secret", 9, "Read Only", rights={"UserRequest": {"read"}}))
    client = _client(fake, user="reader", password="reader-secret")
    with pytest.raises(ItopPermissionError) as err:
        await client.create("UserRequest", NEW_UR, "c")
    assert err.value.message == "The current user does not have enough permissions for creating data of class UserRequest"
    await client.aclose()
    agent = _client(fake)
    with pytest.raises(ItopPermissionError):
        await agent.delete("Organization", 1, "no")  # the agent profile cannot delete
    await agent.aclose()


async def test_unsupported_version_is_code_10(fake):
    client = _client(fake, api_version="2.0")
    with pytest.raises(ItopRequestError) as err:
        await client.list_operations()
    assert err.value.code == 10
    await client.aclose()


async def test_unknown_operation_is_code_11(client):
    with pytest.raises(ItopRequestError) as err:
        await client.call({"operation": "core/frobnicate"})
    assert err.value.code == 11 and err.value.message == "Error: Unknown verb 'core/frobnicate' in version '1.3'"


async def test_bad_page_is_code_13(client):
    with pytest.raises(ItopRequestError) as err:
        await client.get("UserRequest", "SELECT UserRequest", "id", limit=5, page=0)
    assert err.value.code == 13


async def test_code_100_variants(client):
    await client.create("UserRequest", NEW_UR, "c")
    await client.create("UserRequest", NEW_UR, "c")
    with pytest.raises(ItopNotFound) as err:
        await client.update("UserRequest", 999, {"urgency": 1}, "c")
    assert err.value.message == "Error: Invalid object UserRequest::999"
    with pytest.raises(ItopNotFound):
        await client.update("UserRequest", {"ref": "R-nope"}, {"urgency": 1}, "c")
    with pytest.raises(ItopAmbiguousKey) as err:
        await client.update("UserRequest", "SELECT UserRequest", {"urgency": 1}, "c")
    assert err.value.message == "Error: Several items found (2) for query: SELECT UserRequest"
    with pytest.raises(ItopInternalError) as err:
        await client.get("Nope", 1)
    assert err.value.message == "Error: class: 'Nope' is not a valid class'"
    with pytest.raises(ItopInternalError) as err:
        await client.get("Ticket", 1, "status")
    assert err.value.message == "Error: output_fields: invalid attribute code 'status'"
    with pytest.raises(ItopInternalError) as err:
        await client.create("UserRequest", {**NEW_UR, "urgency": 9}, "c")
    assert "Value not allowed [9]" in err.value.message
    with pytest.raises(ItopInternalError) as err:
        await client.create("UserRequest", {**NEW_UR, "org_id": 999}, "c")
    assert err.value.message == "Error: org_id: Invalid object Organization::999"
    with pytest.raises(ItopInternalError) as err:
        await client.create("UserRequest", {**NEW_UR, "foo": 1}, "c")
    assert err.value.message == "Error: foo: Unknown attribute"
    with pytest.raises(ItopInternalError) as err:
        await client.get("UserRequest", "SELECT UserRequest WHERE", "id")
    assert err.value.message.startswith("Error: Query failed to execute: query = ")
    with pytest.raises(ItopInternalError) as err:
        await client.call({"operation": "core/create", "class": "UserRequest", "fields": NEW_UR})
    assert err.value.message == "Error: Missing parameter 'comment'"


async def test_client_without_url_refuses_before_any_io():
    client = ItopClient(FakeItop().settings(url=""))
    with pytest.raises(ItopConfigError) as err:
        await client.list_operations()
    assert err.value.variable == "ITOP_URL"
    assert client._http is None
