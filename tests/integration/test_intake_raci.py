"""RACI groups and rules: the seed set, administration, validation, disable-not-delete, permissions."""

from importlib import resources

import pytest

from opsgate.db.pool import connect
from opsgate.testing import audit_rows

GROUPS = {"Security Operations", "Identity & Access", "Infrastructure Operations", "Network Operations",
          "Endpoint Support", "Email Operations", "DevSecOps", "Business Applications", "Change Advisory Board",
          "Service Desk"}


@pytest.fixture
async def db(db_url):
    conn = await connect(db_url)
    yield conn
    await conn.close()


async def _raci(client):
    r = await client.get("/api/intake/raci")
    assert r.status_code == 200, r.text
    return r.json()


def _rule(raci, name):
    return next(r for r in raci["rules"] if r["name"] == name)


async def test_seed_set(admin_client):
    raci = await _raci(admin_client)
    assert {g["name"] for g in raci["groups"]} == GROUPS and all(g["enabled"] for g in raci["groups"])
    rules = {r["name"]: r for r in raci["rules"]}
    assert {"phishing_report", "security_alert", "account_lockout_mfa", "access_request", "network_vpn_outage",
            "email_delivery", "software_install", "cicd_security_finding", "general"} <= set(rules)
    phishing = rules["phishing_report"]
    assert (phishing["assignment_group"], phishing["ticket_class"], phishing["approval_required"]) == (
        "Security Operations", "Incident", False)
    assert [r["name"] for r in raci["rules"] if r["auto_assign_agent"]] == ["phishing_report"]
    assert rules["general"]["assignment_group"] == "Service Desk" and rules["general"]["keywords"] == []
    assert all(r["priority"] in ("P1", "P2", "P3", "P4") for r in raci["rules"])
    assert all(r["keywords"] and all(isinstance(k, str) for k in r["keywords"])
               for r in raci["rules"] if r["name"] != "general")
    assert all(r["approval_action"] for r in raci["rules"] if r["approval_required"])


async def test_seed_is_idempotent(db):
    """The whole file re-runs without duplicating a row or overwriting an operator's edit."""
    text = resources.files("opsgate.db.migrations").joinpath("0006_intake.sql").read_text()
    before = await db.fetchval("SELECT count(*) FROM raci_rules") + await db.fetchval("SELECT count(*) FROM raci_groups")
    await db.execute("UPDATE raci_groups SET description = 'edited by an operator' WHERE name = 'DevSecOps'")
    await db.execute(text)
    after = await db.fetchval("SELECT count(*) FROM raci_rules") + await db.fetchval("SELECT count(*) FROM raci_groups")
    assert before == after
    assert await db.fetchval("SELECT description FROM raci_groups WHERE name = 'DevSecOps'") == "edited by an operator"


async def test_group_lifecycle(admin_client, db):
    r = await admin_client.post("/api/intake/raci/groups", json={
        "name": "  Facilities  ", "description": "Buildings", "default_assignee": "fac.queue", "risk_level": "LOW"})
    assert r.status_code == 201, r.text
    g = r.json()
    assert (g["name"], g["risk_level"], g["enabled"]) == ("Facilities", "low", True)
    assert (await admin_client.post("/api/intake/raci/groups", json={"name": "facilities"})).status_code == 409

    r = await admin_client.put(f"/api/intake/raci/groups/{g['id']}", json={"name": "Facilities Management",
                                                                           "risk_level": "medium"})
    assert r.status_code == 200 and r.json()["name"] == "Facilities Management"
    rule = await admin_client.post("/api/intake/raci/rules", json={
        "name": "broken_chair", "intent": "facilities", "assignment_group": "facilities management",
        "keywords": ["broken chair", "desk"], "ticket_class": "UserRequest", "priority": 4})
    assert rule.status_code == 201, rule.text
    assert rule.json()["assignment_group"] == "Facilities Management" and rule.json()["priority"] == "P4"

    # a group that enabled rules route to cannot be disabled
    r = await admin_client.delete(f"/api/intake/raci/groups/{g['id']}")
    assert r.status_code == 409 and "broken_chair" in r.json()["detail"]
    assert (await admin_client.delete(f"/api/intake/raci/rules/{rule.json()['id']}")).status_code == 200
    r = await admin_client.delete(f"/api/intake/raci/groups/{g['id']}")
    assert r.status_code == 200 and r.json()["enabled"] is False
    assert (await admin_client.delete(f"/api/intake/raci/groups/{g['id']}")).status_code == 409
    # kept, not deleted; a rename cascaded to the (disabled) rule
    raci = await _raci(admin_client)
    assert any(x["id"] == g["id"] and not x["enabled"] for x in raci["groups"])
    assert _rule(raci, "broken_chair")["enabled"] is False
    # an enabled rule may not route to a disabled group
    r = await admin_client.put(f"/api/intake/raci/rules/{rule.json()['id']}", json={"enabled": True})
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "assignment_group"
    actions = [a["action"] for a in await audit_rows(db) if a["category"] == "intake"]
    assert actions == ["raci_group_created", "raci_group_updated", "raci_rule_created", "raci_rule_disabled",
                       "raci_group_disabled"]
    assert await db.fetchval("SELECT count(*) FROM event_log WHERE kind LIKE 'raci_%'") == 5


async def test_rule_lifecycle_and_history(admin_client):
    r = await admin_client.post("/api/intake/raci/rules", json={
        "name": "printer_toner", "intent": "printer_toner", "assignment_group": "Endpoint Support",
        "keywords": ["toner", "Toner", "out of toner", "  ink cartridge "], "consulted": ["Facilities", "facilities"],
        "approval_required": True, "approval_action": "purchase", "knowledge_tags": ["printing"]})
    assert r.status_code == 201, r.text
    rule = r.json()
    assert rule["keywords"] == ["toner", "out of toner", "ink cartridge"] and rule["consulted"] == ["Facilities"]
    c = (await admin_client.post("/api/intake/classify", json={"title": "Out of toner on floor 3"})).json()
    assert c["rule_name"] == "printer_toner" and c["approval_action"] == "purchase"

    r = await admin_client.put(f"/api/intake/raci/rules/{rule['id']}", json={"priority": "p2", "keywords": ["ink"]})
    assert r.status_code == 200 and r.json()["priority"] == "P2" and r.json()["keywords"] == ["ink"]
    assert r.json()["updated_by"].startswith("test-platform-admin")
    r = await admin_client.delete(f"/api/intake/raci/rules/{rule['id']}")
    assert r.status_code == 200 and r.json()["enabled"] is False
    assert (await admin_client.delete(f"/api/intake/raci/rules/{rule['id']}")).status_code == 409
    c = (await admin_client.post("/api/intake/classify", json={"title": "Need ink for the printer"})).json()
    assert c["rule_name"] != "printer_toner"
    assert _rule(await _raci(admin_client), "printer_toner")["enabled"] is False


async def test_general_fallback_is_protected(admin_client):
    general = _rule(await _raci(admin_client), "general")
    assert (await admin_client.delete(f"/api/intake/raci/rules/{general['id']}")).status_code == 409
    r = await admin_client.put(f"/api/intake/raci/rules/{general['id']}", json={"name": "misc"})
    assert r.status_code == 409
    r = await admin_client.put(f"/api/intake/raci/rules/{general['id']}", json={"auto_assign_agent": True})
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "auto_assign_agent"
    r = await admin_client.put(f"/api/intake/raci/rules/{general['id']}", json={"priority": "P3"})
    assert r.status_code == 200 and r.json()["priority"] == "P3"


@pytest.mark.parametrize(("body", "field"), [
    ({}, "name"),
    ({"name": "x", "intent": "x"}, "assignment_group"),
    ({"name": "x", "intent": "x", "assignment_group": "Nowhere", "keywords": ["a"]}, "assignment_group"),
    ({"name": "x", "intent": "Bad Intent", "assignment_group": "Service Desk", "keywords": ["a"]}, "intent"),
    ({"name": "x", "intent": "x", "assignment_group": "Service Desk", "keywords": []}, "keywords"),
    ({"name": "x", "intent": "x", "assignment_group": "Service Desk", "keywords": ["  "]}, "keywords"),
    ({"name": "x", "intent": "x", "assignment_group": "Service Desk", "keywords": ["!!!"]}, "keywords"),
    ({"name": "x", "intent": "x", "assignment_group": "Service Desk", "keywords": "phishing"}, "keywords"),
    ({"name": "x", "intent": "x", "assignment_group": "Service Desk", "keywords": ["a"], "priority": "P9"},
     "priority"),
    ({"name": "x", "intent": "x", "assignment_group": "Service Desk", "keywords": ["a"], "ticket_class": "Bug"},
     "ticket_class"),
    ({"name": "x", "intent": "x", "assignment_group": "Service Desk", "keywords": ["a"], "risk_level": "mild"},
     "risk_level"),
    ({"name": "x", "intent": "x", "assignment_group": "Service Desk", "keywords": ["a"],
      "security_classification": "top"}, "security_classification"),
    ({"name": "x", "intent": "x", "assignment_group": "Service Desk", "keywords": ["a"],
      "approval_required": True}, "approval_action"),
    ({"name": "x", "intent": "x", "assignment_group": "Service Desk", "keywords": ["a"], "extra": 1}, "extra"),
    ({"name": " ", "intent": "x", "assignment_group": "Service Desk", "keywords": ["a"]}, "name"),
])
async def test_rule_validation_names_the_field(admin_client, body, field):
    r = await admin_client.post("/api/intake/raci/rules", json=body)
    assert r.status_code == 400, r.text
    assert field in {e["field"] for e in r.json()["errors"]}, r.text


async def test_not_found_and_conflicts(admin_client):
    assert (await admin_client.put("/api/intake/raci/groups/999999", json={"name": "x"})).status_code == 404
    assert (await admin_client.delete("/api/intake/raci/groups/999999")).status_code == 404
    assert (await admin_client.put("/api/intake/raci/rules/999999", json={"priority": "P1"})).status_code == 404
    assert (await admin_client.delete("/api/intake/raci/rules/999999")).status_code == 404
    r = await admin_client.post("/api/intake/raci/rules", json={
        "name": "Phishing_Report", "intent": "x", "assignment_group": "Service Desk", "keywords": ["a"]})
    assert r.status_code == 409
    r = await admin_client.post("/api/intake/raci/groups", json={"name": "Service Desk"})
    assert r.status_code == 409
    groups = {g["name"]: g["id"] for g in (await _raci(admin_client))["groups"]}
    r = await admin_client.put(f"/api/intake/raci/groups/{groups['DevSecOps']}", json={"name": "Service Desk"})
    assert r.status_code == 409
    r = await admin_client.put(f"/api/intake/raci/groups/{groups['DevSecOps']}", json={"risk_level": "extreme"})
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "risk_level"
    r = await admin_client.put(f"/api/intake/raci/rules/{_rule(await _raci(admin_client), 'general')['id']}",
                               json={})
    assert r.status_code == 400


async def test_administration_needs_intake_admin(make_client, make_token):
    analyst = await make_token("analyst")
    manager = await make_token("soc-manager")
    async with make_client(token=analyst) as c:
        assert (await c.get("/api/intake/raci")).status_code == 200
        r = await c.post("/api/intake/raci/groups", json={"name": "Shadow IT"})
        assert r.status_code == 403 and r.json()["required_permission"] == "intake:admin"
    async with make_client(token=manager) as c:
        assert (await c.post("/api/intake/raci/groups", json={"name": "Shadow IT"})).status_code == 201
