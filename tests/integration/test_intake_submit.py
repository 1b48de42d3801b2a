"""POST /api/intake/submit end to end, GET /api/intake/sessions, and RACI auto-assignment
(also on POST /api/tickets): when it assigns, every reason it skips, and no fan-out under concurrency."""

import asyncio

import pytest

from opsgate import plugins
from opsgate.db.pool import connect
from opsgate.auth.principal import LOCAL_ADMIN
from opsgate.intake import autoassign
from opsgate.testing import audit_rows, fake_harness
from opsgate.tickets import service as tickets
from opsgate.tickets.schemas import TicketCreate

HARNESS = [("fake-harness", fake_harness)]
PHISH = {
    "title": "Phishing email from fake CEO",
    "message": "Sender ceo@evil.example asked me to buy gift cards. I did not click the link.",
    "requester_name": "Ann Example", "requester_email": "ann@example.com",
    "attachments": [{"filename": "message.eml", "content_type": "message/rfc822", "size_bytes": 2048,
                     "storage_ref": "s3://intake/7f3a.eml", "sha256": "ab" * 32}],
}


@pytest.fixture
def app(make_app):
    return make_app(plugins=HARNESS)


@pytest.fixture
async def db(db_url):
    conn = await connect(db_url)
    yield conn
    await conn.close()


async def _model_for_phishing(client):
    """The seeded phishing rule names no model and the runtime config has no default: give it the fake's."""
    raci = (await client.get("/api/intake/raci")).json()
    rule = next(r for r in raci["rules"] if r["name"] == "phishing_report")
    r = await client.put(f"/api/intake/raci/rules/{rule['id']}", json={"auto_agent_model": "fake-model"})
    assert r.status_code == 200, r.text
    return rule["id"]


@pytest.fixture
async def admin(make_client, app, admin_token):
    async with make_client(app, admin_token) as c:
        await _model_for_phishing(c)
        yield c


async def _submit(client, body=None, **headers):
    r = await client.post("/api/intake/submit", json=body or PHISH, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


async def test_submit_end_to_end(admin, db):
    out = await _submit(admin)
    t, c, s, auto = out["ticket"], out["classification"], out["session"], out["auto_assignment"]
    assert (t["owning_group"], t["assignee_team"], t["assignee"]) == (
        "Security Operations", "Security Operations", "soc.tier1")
    assert (t["ticket_class"], t["priority"], t["status"], t["security_classification"]) == (
        "Incident", "P2", "assigned", "confidential")
    assert t["requester_email"] == "ann@example.com" and t["description"].startswith("Sender ceo@evil.example")
    assert c["rule_name"] == "phishing_report" and c["matched"] and not c["low_confidence"]
    assert out["approval"] == {"required": False, "action": None, "status": "not_required",
                               "change_request_id": None}
    assert [a["filename"] for a in out["attachments"]] == ["message.eml"]
    assert out["attachments"][0]["note_id"] == s["classification_note_id"]
    assert out["attachments"][0]["metadata"] == {"source": "intake"}
    assert s["ticket_id"] == t["id"] and s["rule_name"] == "phishing_report" and s["matched"] is True
    assert s["attachment_ids"] == [out["attachments"][0]["id"]]
    assert auto["decision"] == "assigned" and auto["reason_code"] == "assigned" and auto["matched"] is True
    assert auto["agent_id"] is not None and t["agent_id"] == auto["agent_id"]
    assert s["auto_assignment"]["agent_id"] == auto["agent_id"]
    assert out["idempotent_replay"] is False

    agents = await db.fetch("SELECT * FROM agents WHERE ticket_id = $1", t["id"])
    assert len(agents) == 1 and agents[0]["model"] == "fake-model" and agents[0]["status"] == "queued"
    tasks = await db.fetch("SELECT * FROM agent_tasks WHERE ticket_id = $1", t["id"])
    assert len(tasks) == 1 and tasks[0]["status"] == "queued"
    assert "Instructions of RACI rule 'phishing_report'" in tasks[0]["prompt"]
    notes = await db.fetch("SELECT kind, source, body, details FROM ticket_notes WHERE ticket_id = $1 ORDER BY id",
                           t["id"])
    assert [(n["kind"], n["source"]) for n in notes] == [("created", "control-plane"), ("note", "intake"),
                                                         ("agent", "intake")]
    assert notes[1]["body"].startswith("Intake classification: routed to Security Operations by rule "
                                       "phishing_report")
    assert notes[2]["body"].startswith(f"Auto-assignment: agent {auto['agent_id']} assigned.")
    assert notes[2]["details"]["reason_code"] == "assigned"
    actions = [a["action"] for a in await audit_rows(db) if a["ticket_id"] == t["id"]]
    assert actions == ["ticket_created", "ticket_attachment_added", "intake_submitted", "agent_spawned",
                       "ticket_auto_assigned"]
    decisions = await db.fetch("SELECT decision, agent_id FROM intake_auto_assignments WHERE ticket_id = $1",
                               t["id"])
    assert [tuple(d) for d in decisions] == [("assigned", auto["agent_id"])]

    listed = (await admin.get("/api/intake/sessions")).json()["sessions"]
    assert [x["id"] for x in listed] == [s["id"]]
    assert (await admin.get(f"/api/intake/sessions?ticket_id={t['id']}")).json()["sessions"][0]["id"] == s["id"]
    assert (await admin.get("/api/intake/sessions?ticket_id=999999")).json()["sessions"] == []
    assert (await admin.get("/api/intake/sessions?limit=0")).status_code == 400


async def test_submit_with_approval_requirement_and_manual_rule(admin, db):
    out = await _submit(admin, {"title": "Need access to the finance share",
                                "message": "Read access for the audit, approved by my manager.", "priority": 2,
                                "answers": {"resource": "\\\\fs01\\finance"}})
    assert out["classification"]["rule_name"] == "access_request"
    approval = out["approval"]
    assert (approval["required"], approval["action"], approval["status"]) == (True, "grant_access", "pending")
    assert out["session"]["approval_status"] == "pending"
    assert out["session"]["change_request_id"] == approval["change_request_id"] is not None
    gate = (await admin.get(f"/api/changes/{approval['change_request_id']}")).json()
    assert (gate["status"], gate["ticket_id"], gate["action"]) == ("pending", out["ticket"]["id"], "grant_access")
    assert gate["risk_level"] == "medium"
    assert out["ticket"]["priority"] == "P2" and out["ticket"]["ticket_class"] == "UserRequest"
    assert "Answers to clarification questions:\n- resource:" in out["ticket"]["description"]
    auto = out["auto_assignment"]
    assert auto["decision"] == "skipped" and auto["reason_code"] == "manual_rule" and auto["agent_id"] is None
    note = await db.fetchval("SELECT body FROM ticket_notes WHERE ticket_id = $1 AND body LIKE 'Intake%'",
                             out["ticket"]["id"])
    assert "Approval required: grant_access." in note
    assert await db.fetchval("SELECT count(*) FROM agents") == 0


async def test_submit_without_auto_assign_and_fallback(admin, db):
    out = await _submit(admin, {**PHISH, "auto_assign": False, "attachments": []})
    assert out["auto_assignment"]["decision"] == "not_requested" and out["ticket"]["agent_id"] is None
    assert out["session"]["auto_assign_requested"] is False
    assert out["session"]["auto_assignment"]["decision"] == "not_requested"
    out = await _submit(admin, {"title": "Question about the holiday calendar"})
    assert out["ticket"]["owning_group"] == "Service Desk" and out["classification"]["matched"] is False
    assert out["auto_assignment"]["reason_code"] == "no_match"
    assert await db.fetchval("SELECT count(*) FROM agents") == 0
    assert await db.fetchval("SELECT count(*) FROM intake_sessions") == 2


async def test_submit_routes_outside_the_submitters_groups(make_client, make_token, app, admin_token):
    analyst = await make_token("analyst", groups=["Service Desk"])
    async with make_client(app, analyst) as c:
        r = await c.post("/api/intake/submit", json={**PHISH, "auto_assign": False})
        assert r.status_code == 201, r.text
        ticket = r.json()["ticket"]
        assert ticket["owning_group"] == "Security Operations"
        # routed to a group outside their scope: no longer theirs to read
        assert (await c.get(f"/api/tickets/{ticket['id']}")).status_code == 404
        assert (await c.get("/api/intake/sessions")).json()["sessions"] == []
    async with make_client(app, admin_token) as c:
        assert len((await c.get("/api/intake/sessions")).json()["sessions"]) == 1


@pytest.mark.parametrize(("body", "field"), [
    ({}, "title"),
    ({"title": " "}, "title"),
    ({"title": "ok", "priority": "P7"}, "priority"),
    ({"title": "ok", "security_classification": "cosmic"}, "security_classification"),
    ({"title": "ok", "attachments": [{"filename": ""}]}, "attachments"),
    ({"title": "ok", "attachments": [{"filename": "a", "sha256": "xyz"}]}, "attachments"),
    ({"title": "ok", "auto_assign": "yes"}, "auto_assign"),
    ({"title": "ok", "answers": {"BAD": "x"}}, "answers"),
    ({"title": "ok", "message": "é" * 40000}, "message"),
])
async def test_submit_bad_input(admin, body, field):
    r = await admin.post("/api/intake/submit", json=body)
    assert r.status_code == 400, r.text
    assert any(field in e["field"] for e in r.json()["errors"]), r.text


async def test_submit_permission(make_client, make_token, app):
    auditor = await make_token("auditor")
    async with make_client(app, auditor) as c:
        r = await c.post("/api/intake/submit", json=PHISH)
        assert r.status_code == 403 and r.json()["required_permission"] == "intake:submit"
        assert (await c.post("/api/intake/classify", json={"title": "x"})).status_code == 200


async def test_a_submitter_may_raise_but_not_lower_the_classification(admin):
    out = await _submit(admin, {**PHISH, "security_classification": "public", "auto_assign": False})
    assert out["ticket"]["security_classification"] == "confidential"
    out = await _submit(admin, {**PHISH, "security_classification": "secret", "auto_assign": False})
    assert out["ticket"]["security_classification"] == "secret"


# --- auto-assignment on POST /api/tickets ----------------------------------------------------


async def _ticket(client, **fields):
    r = await client.post("/api/tickets", json={"title": "Investigate phishing report",
                                                "description": "User reported a suspicious email.", **fields})
    assert r.status_code == 201, r.text
    return r.json()


async def test_ticket_create_auto_assigns_only_on_a_real_auto_rule_match(admin, db):
    t = await _ticket(admin, auto_assign=True)
    a = t["auto_assignment"]
    assert a["requested"] and a["matched"] and a["agent_id"] is not None and a["rule_id"] is not None
    assert t["agent_id"] == a["agent_id"]
    cases = [
        ({"title": "Printer paper jam", "description": "", "ticket_class": "Incident"}, "manual"),
        ({"title": "Incident", "description": "Something happened.", "ticket_class": "Incident"}, "no RACI rule"),
        ({"title": "Cedric's chair", "description": "Siemens clock", "ticket_class": "Incident"}, "no RACI rule"),
        ({"title": "Phishing awareness training", "ticket_class": "UserRequest"}, "UserRequest"),
        ({"title": "Investigate phishing report", "status": "resolved"}, "resolved"),
    ]
    for fields, reason in cases:
        t = await _ticket(admin, auto_assign=True, **fields)
        a = t["auto_assignment"]
        assert a["requested"] and a["agent_id"] is None and reason in a["reason"], (fields, a)
    assert await db.fetchval("SELECT count(*) FROM agents") == 1
    codes = [r["reason_code"] for r in await db.fetch("SELECT reason_code FROM intake_auto_assignments ORDER BY id")]
    assert codes == ["assigned", "manual_rule", "no_match", "no_match", "class_mismatch", "ticket_status"]
    # every decision is a ticket note
    assert await db.fetchval("SELECT count(*) FROM ticket_notes WHERE source = 'intake' AND kind = 'agent'") == 6
    t = await _ticket(admin)
    assert t["auto_assignment"]["requested"] is False
    assert await db.fetchval("SELECT count(*) FROM intake_auto_assignments WHERE ticket_id = $1", t["id"]) == 0


async def _direct(test_settings, pool, fn, **env):
    settings = test_settings(env)
    host = plugins.load(settings, extra=HARNESS, discover=False)
    async with pool.acquire() as conn:
        return await fn(conn, settings, host)


async def test_catch_up_sync_never_auto_assigns(admin, test_settings, pool, db):
    async def create(conn, settings, host):
        return await tickets.create_ticket(conn, LOCAL_ADMIN, settings, host, TicketCreate(
            title="Phishing email reported in 2023", description="suspicious email", auto_assign=True,
            sync_provider=False), catch_up_sync=True)

    created = await _direct(test_settings, pool, create)
    assert created.auto_assignment.agent_id is None
    assert "catch-up sync" in created.auto_assignment.reason
    assert await db.fetchval("SELECT reason_code FROM intake_auto_assignments WHERE ticket_id = $1",
                             created.id) == "catch_up_sync"
    assert await db.fetchval("SELECT count(*) FROM agents") == 0


async def test_resolved_and_already_assigned_tickets_are_skipped(admin, test_settings, pool, db):
    resolved = await _ticket(admin)
    r = await admin.post(f"/api/tickets/{resolved['id']}/status", json={"status": "resolved"})
    assert r.status_code == 200, r.text
    busy = await _ticket(admin)
    r = await admin.post(f"/api/tickets/{busy['id']}/assign-agent", json={"model": "fake-model"})
    assert r.status_code == 201, r.text

    async def run(conn, settings, host):
        return [await autoassign.auto_assign(conn, LOCAL_ADMIN, settings, host, resolved["id"]),
                await autoassign.auto_assign(conn, LOCAL_ADMIN, settings, host, busy["id"])]

    first, second = await _direct(test_settings, pool, run)
    assert (first.decision, first.reason_code) == ("skipped", "ticket_status") and "resolved" in first.reason
    assert (second.decision, second.reason_code) == ("skipped", "active_agent")
    assert await db.fetchval("SELECT count(*) FROM agents") == 1


async def test_the_per_rule_cap(make_app, make_client, admin_token, db):
    app = make_app(plugins=HARNESS, env={"OPSGATE_INTAKE_AUTO_ASSIGN_CAP": "2"})
    async with make_client(app, admin_token) as c:
        await _model_for_phishing(c)
        outs = [await _submit(c) for _ in range(3)]
    assert [o["auto_assignment"]["decision"] for o in outs] == ["assigned", "assigned", "skipped"]
    over = outs[2]["auto_assignment"]
    assert over["reason_code"] == "over_cap" and "cap 2" in over["reason"]
    assert await db.fetchval("SELECT count(*) FROM agents") == 2
    # the cap counts a window: assignments older than it no longer count
    await db.execute("UPDATE intake_auto_assignments SET created_at = now() - interval '2 hours'")
    async with make_client(app, admin_token) as c:
        assert (await _submit(c))["auto_assignment"]["decision"] == "assigned"


async def test_cap_zero_turns_auto_assignment_off(make_app, make_client, admin_token):
    app = make_app(plugins=HARNESS, env={"OPSGATE_INTAKE_AUTO_ASSIGN_CAP": "0"})
    async with make_client(app, admin_token) as c:
        await _model_for_phishing(c)
        assert (await _submit(c))["auto_assignment"]["reason_code"] == "over_cap"


async def test_a_refused_spawn_is_a_recorded_skip(make_app, make_client, admin_token, db):
    app = make_app(plugins=HARNESS)
    async with make_client(app, admin_token) as c:  # no model for the phishing rule, no default model
        out = await _submit(c)
    auto = out["auto_assignment"]
    assert auto["decision"] == "skipped" and auto["reason_code"] == "spawn_refused" and "model" in auto["reason"]
    assert out["ticket"]["agent_id"] is None
    assert await db.fetchval("SELECT count(*) FROM agents") == 0


# --- concurrency: one agent per ticket ----------------------------------------------------------


async def test_concurrent_submits_of_the_same_report_assign_one_agent_per_ticket(admin, db):
    outs = await asyncio.gather(*(admin.post("/api/intake/submit", json=PHISH) for _ in range(6)))
    assert all(r.status_code == 201 for r in outs), [r.text for r in outs]
    ticket_ids = {r.json()["ticket"]["id"] for r in outs}
    assert len(ticket_ids) == 6
    per_ticket = await db.fetch("SELECT ticket_id, count(*) AS n FROM agents GROUP BY ticket_id")
    assert {r["ticket_id"]: r["n"] for r in per_ticket} == {t: 1 for t in ticket_ids}
    assert await db.fetchval("SELECT count(*) FROM agent_tasks") == 6


async def test_concurrent_submits_with_one_idempotency_key_make_one_ticket_and_one_agent(admin, db):
    outs = await asyncio.gather(*(admin.post("/api/intake/submit", json=PHISH,
                                             headers={"Idempotency-Key": "phish-report-42"}) for _ in range(4)))
    # The racers wait on the first submission's transaction, then replay its ticket and session.
    assert all(r.status_code == 201 for r in outs), [r.text for r in outs]
    bodies = [r.json() for r in outs]
    assert sorted(b["idempotent_replay"] for b in bodies) == [False, True, True, True]
    assert len({b["ticket"]["id"] for b in bodies}) == 1 and len({b["session"]["id"] for b in bodies}) == 1
    again = await admin.post("/api/intake/submit", json=PHISH, headers={"Idempotency-Key": "phish-report-42"})
    assert again.status_code == 201 and again.json()["idempotent_replay"] is True
    assert again.json()["ticket"]["id"] == bodies[0]["ticket"]["id"]
    assert again.json()["auto_assignment"]["decision"] == "assigned"
    assert await db.fetchval("SELECT count(*) FROM agents") == 1
    assert await db.fetchval("SELECT count(*) FROM intake_sessions") == 1
    assert await db.fetchval("SELECT count(*) FROM ticket_attachments") == 1
    # a different body under the same key is a conflict, and so is a key first used on POST /api/tickets
    r = await admin.post("/api/intake/submit", json={**PHISH, "title": "Another report"},
                         headers={"Idempotency-Key": "phish-report-42"})
    assert r.status_code == 409


async def test_racing_auto_assignments_of_one_ticket_spawn_one_agent(admin, test_settings, pool, db):
    ticket = await _ticket(admin)
    settings = test_settings()
    host = plugins.load(settings, extra=HARNESS, discover=False)

    async def one():
        async with pool.acquire() as conn:
            return await autoassign.auto_assign(conn, LOCAL_ADMIN, settings, host, ticket["id"])

    decisions = await asyncio.gather(*(one() for _ in range(4)))
    assert sorted(d.decision for d in decisions) == ["assigned", "skipped", "skipped", "skipped"]
    assert {d.reason_code for d in decisions if d.decision == "skipped"} == {"active_agent"}
    assert await db.fetchval("SELECT count(*) FROM agents WHERE ticket_id = $1", ticket["id"]) == 1


async def test_missing_ticket_is_not_found(admin, test_settings, pool):
    from opsgate.errors import NotFound

    async def run(conn, settings, host):
        return await autoassign.auto_assign(conn, LOCAL_ADMIN, settings, host, 999999)

    with pytest.raises(NotFound):
        await _direct(test_settings, pool, run)
