"""Agent endpoints without a runner: spawning, configuration, control transitions, reads."""

import asyncpg
import pytest

from opsgate.testing import fake_harness

pytestmark = pytest.mark.asyncio


@pytest.fixture
def app(make_app):
    return make_app(plugins=[("fake-harness", fake_harness)], env={"CODEX_AUTH_MODE": "api_key"})


@pytest.fixture
async def admin(make_client, app, admin_token):
    async with make_client(app, admin_token) as c:
        yield c


async def _ticket(c, **fields):
    body = {"title": "Investigate phishing report", "description": "User reported a suspicious email.", **fields}
    r = await c.post("/api/tickets", json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def test_assign_agent_inserts_agent_and_queued_task_in_one_go(admin, db_url):
    ticket = await _ticket(admin)
    r = await admin.post(f"/api/tickets/{ticket['id']}/assign-agent", json={"model": "fake-model"})
    assert r.status_code == 201, r.text
    body = r.json()
    agent, task = body["agent"], body["task"]
    assert agent["status"] == "queued" and agent["harness"] == "fake" and agent["model"] == "fake-model"
    assert agent["ticket_id"] == ticket["id"] and agent["task_type"] == "ticket_resolution"
    assert task["status"] == "queued" and task["agent_id"] == agent["id"] and task["timeout_minutes"] == 60
    assert f"#{ticket['id']}" in task["prompt"]
    conn = await asyncpg.connect(db_url)
    try:
        assert await conn.fetchval("SELECT agent_id FROM tickets WHERE id = $1", ticket["id"]) == agent["id"]
        kinds = [r["kind"] for r in await conn.fetch("SELECT kind FROM event_log WHERE agent_id = $1", agent["id"])]
        assert kinds == ["agent_spawned"]
        assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'agent_spawned'") == 1
    finally:
        await conn.close()
    # the ticket's status is not touched by assigning an agent
    assert (await admin.get(f"/api/tickets/{ticket['id']}")).json()["status"] == ticket["status"]


async def test_one_active_task_per_ticket_and_type(admin):
    ticket = await _ticket(admin)
    assert (await admin.post(f"/api/tickets/{ticket['id']}/assign-agent", json={"model": "m"})).status_code == 201
    again = await admin.post(f"/api/tickets/{ticket['id']}/assign-agent", json={"model": "m"})
    assert again.status_code == 409
    # another type on the same ticket is fine; the same type again is refused by the index
    pm = await admin.post("/api/agents/spawn", json={"ticket_id": ticket["id"], "task_type": "postmortem",
                                                     "model": "m"})
    assert pm.status_code == 201, pm.text
    dup = await admin.post("/api/agents/spawn", json={"ticket_id": ticket["id"], "task_type": "postmortem",
                                                      "model": "m"})
    assert dup.status_code == 409
    assert "postmortem" in dup.json()["detail"]


async def test_spawn_validation(admin):
    ticket = await _ticket(admin)
    cases = [
        ({"ticket_id": ticket["id"], "model": "m", "harness": "nope"}, "harness"),
        ({"ticket_id": ticket["id"], "model": "m", "task_type": "party"}, "task_type"),
        ({"ticket_id": ticket["id"], "model": "m", "profile_id": "missing"}, "profile_id"),
        ({"ticket_id": ticket["id"]}, "model"),
        ({"ticket_id": ticket["id"], "model": "m", "surprise": 1}, "surprise"),
        ({"model": "m"}, "ticket_id"),
    ]
    for body, field in cases:
        r = await admin.post("/api/agents/spawn", json=body)
        assert r.status_code == 400, (body, r.text)
        assert field in r.text, (body, r.text)
    r = await admin.post("/api/agents/spawn", json={"ticket_id": 999999, "model": "m"})
    assert r.status_code == 404


async def test_runtime_config_round_trip_resolution_and_secret_refusal(admin):
    r = await admin.get("/api/agents/config")
    assert r.status_code == 200 and r.json()["max_concurrent_agents"] == 4 and r.json()["harnesses"] == ["fake"]
    put = await admin.put("/api/agents/config", json={
        "profiles": {"local-only": {"harness": "fake", "model": "profile-model", "timeout_minutes": 7},
                     "soc": {"model": "soc-model", "model_base_url": "http://127.0.0.1:9/v1"}},
        "active_profile": "local-only",
        "route_assignments": {"group:SOC": "soc"},
        "max_concurrent_agents": 2, "default_model": "default-model", "models": ["a", {"id": "b"}]})
    assert put.status_code == 200, put.text
    assert put.json()["version"] == 1 and put.json()["max_concurrent_agents"] == 2
    # a partial PUT keeps the other fields
    put2 = await admin.put("/api/agents/config", json={"default_timeout_minutes": 30})
    assert put2.status_code == 200 and put2.json()["active_profile"] == "local-only"

    t1 = await _ticket(admin)
    spawned = (await admin.post(f"/api/tickets/{t1['id']}/assign-agent", json={})).json()
    assert spawned["agent"]["model"] == "profile-model" and spawned["agent"]["profile_id"] == "local-only"
    assert spawned["task"]["timeout_minutes"] == 7
    t2 = await _ticket(admin, owning_group="SOC")
    routed = (await admin.post(f"/api/tickets/{t2['id']}/assign-agent", json={})).json()
    assert routed["agent"]["model"] == "soc-model" and routed["agent"]["profile_id"] == "soc"
    t3 = await _ticket(admin)
    explicit = (await admin.post(f"/api/tickets/{t3['id']}/assign-agent", json={"model": "explicit"})).json()
    assert explicit["agent"]["model"] == "explicit"

    for body, field in [
        ({"profiles": {"p": {"model": "m", "api_key": "sk-1"}}}, "profiles.p.api_key"),
        ({"AGENT_LLM_API_KEY": "sk-1"}, "AGENT_LLM_API_KEY"),
        ({"oauth_state": "x"}, "oauth_state"),
        ({"client_secret": "x"}, "client_secret"),
        ({"max_concurrent_agents": -1}, "max_concurrent_agents"),
        ({"max_concurrent_agents": "many"}, "max_concurrent_agents"),
        ({"active_profile": "ghost"}, "active_profile"),
        ({"default_harness": "ghost"}, "default_harness"),
        ({"unknown_field": 1}, "unknown_field"),
        ({"route_assignments": {"bogus": "soc"}}, "route_assignments.bogus"),
        ({"profiles": {"p": {"model": "m", "model_base_url": "http://user:pw@127.0.0.1/"}}},
         "profiles.p.model_base_url"),
    ]:
        r = await admin.put("/api/agents/config", json=body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["errors"][0]["field"] == field, (body, r.text)
    models = (await admin.get("/api/agents/models")).json()
    assert {m["id"] for m in models["models"]} >= {"a", "b", "default-model", "profile-model", "soc-model"}
    assert models["harnesses"] == ["fake"] and models["max_concurrent_agents"] == 2
    assert "sk-" not in str(models)


async def test_codex_oauth_repairs_stale_aliases(make_app, make_client, admin_token):
    from opsgate.testing.fake_harness import FakeHarness

    class FakeCodex(FakeHarness):
        name = "codex"

    class Plugin:
        @staticmethod
        @fake_harness.hookimpl
        def opsgate_harnesses():
            return [FakeCodex()]

    app = make_app(plugins=[("fake-codex", Plugin)], env={"CODEX_AUTH_MODE": "oauth", "CODEX_OAUTH_MODEL": "gpt-sub"})
    async with make_client(app, admin_token) as c:
        for alias in ("local/agent-default", "qwen/qwen3.6-27b", "deepseek/deepseek-r1"):
            ticket = await _ticket(c)
            r = await c.post(f"/api/tickets/{ticket['id']}/assign-agent", json={"model": alias, "harness": "codex"})
            assert r.status_code == 201, r.text
            assert r.json()["agent"]["model"] == "gpt-sub" and r.json()["model_repaired_from"] == alias
        ticket = await _ticket(c)
        kept = await c.post(f"/api/tickets/{ticket['id']}/assign-agent", json={"model": "gpt-5", "harness": "codex"})
        assert kept.json()["agent"]["model"] == "gpt-5" and kept.json()["model_repaired_from"] is None


async def test_stop_is_final_and_revokes_tokens(admin, db_url):
    from opsgate.auth.service import mint_agent_token
    from opsgate.db.pool import connect

    ticket = await _ticket(admin)
    spawned = (await admin.post(f"/api/tickets/{ticket['id']}/assign-agent", json={"model": "m"})).json()
    agent_id = spawned["agent"]["id"]
    conn = await connect(db_url)
    try:
        token = await mint_agent_token(conn, agent_id=agent_id, ticket_id=ticket["id"], task_id=spawned["task"]["id"])
    finally:
        await conn.close()
    r = await admin.post(f"/api/agents/{agent_id}/stop", json={"reason": "operator_stop"})
    assert r.status_code == 200, r.text
    assert r.json()["agent"]["status"] == "stopped" and r.json()["tasks"] == [spawned["task"]["id"]]
    assert (await admin.post(f"/api/agents/{agent_id}/stop", json={})).status_code == 409
    assert (await admin.post("/api/agents/999999/stop", json={})).status_code == 404
    tasks = (await admin.get("/api/agents/tasks", params={"agent_id": agent_id})).json()["tasks"]
    assert [t["status"] for t in tasks] == ["stopped"] and tasks[0]["status_reason"] == "operator_stop"
    r = await admin.get(f"/api/tickets/{ticket['id']}", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
    # a stopped agent's ticket accepts a new agent
    again = await admin.post(f"/api/tickets/{ticket['id']}/assign-agent", json={"model": "m"})
    assert again.status_code == 201


async def test_unassign_restart_wake_and_legacy_update(admin, db_url):
    ticket = await _ticket(admin)
    first = (await admin.post(f"/api/tickets/{ticket['id']}/assign-agent",
                              json={"model": "m", "prompt": "fake: print one"})).json()
    agent_id = first["agent"]["id"]
    # restart: terminate and replace with the latest prompt
    r = await admin.post(f"/api/agents/{agent_id}/restart", json={})
    assert r.status_code == 201, r.text
    new = r.json()["replacement"]
    assert r.json()["previous"]["status"] == "terminated"
    assert new["agent"]["replaces_agent_id"] == agent_id and new["task"]["prompt"] == "fake: print one"
    assert (await admin.get(f"/api/tickets/{ticket['id']}")).json()["agent_id"] == new["agent"]["id"]
    # legacy update needs a running task
    upd = await admin.post(f"/api/agents/{new['agent']['id']}/update", json={"status": "blocked"})
    assert upd.status_code == 409
    bad = await admin.post(f"/api/agents/{new['agent']['id']}/update", json={"status": "stopped"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "status"
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("UPDATE agent_tasks SET status = 'running', runner_id = 'gone' WHERE id = $1",
                           new["task"]["id"])
        await conn.execute("UPDATE agents SET status = 'running' WHERE id = $1", new["agent"]["id"])
    finally:
        await conn.close()
    upd = await admin.post(f"/api/agents/{new['agent']['id']}/update",
                           json={"status": "pending_approval", "reason": "needs gate 4", "progress": 30})
    assert upd.status_code == 200, upd.text
    assert upd.json()["agent"]["status"] == "pending_approval" and upd.json()["task"]["progress"] == 30
    # wake a waiting agent: a continuation task is queued for it
    woke = await admin.post(f"/api/agents/{new['agent']['id']}/wake", json={"reason": "gate approved"})
    assert woke.status_code == 200, woke.text
    assert woke.json()["action"] == "continuation_queued" and woke.json()["agent"]["status"] == "queued"
    assert "gate approved" in woke.json()["task"]["prompt"]
    # unassign terminates and clears the ticket's agent
    un = await admin.post(f"/api/tickets/{ticket['id']}/unassign-agent", json={"reason": "human takes over"})
    assert un.status_code == 200, un.text
    assert un.json()["agent"]["status"] == "terminated"
    assert (await admin.get(f"/api/tickets/{ticket['id']}")).json()["agent_id"] is None
    assert (await admin.post(f"/api/tickets/{ticket['id']}/unassign-agent", json={})).status_code == 409
    assert (await admin.post(f"/api/agents/{new['agent']['id']}/wake", json={})).status_code == 409


async def test_create_from_prompt_makes_a_local_ticket_and_an_ad_hoc_agent(admin):
    r = await admin.post("/api/agents/create-from-prompt", json={"prompt": "Rotate the lab TLS certificate\nsoon",
                                                                 "model": "m"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["agent"]["task_type"] == "ad_hoc" and body["task"]["type"] == "ad_hoc"
    ticket = (await admin.get(f"/api/tickets/{body['ticket_id']}")).json()
    assert ticket["title"] == "Rotate the lab TLS certificate" and ticket["provider"] == "local"
    assert (await admin.post("/api/agents/create-from-prompt", json={"prompt": "  "})).status_code == 400
    before = (await admin.get("/api/tickets")).json()["total"]
    bad = await admin.post("/api/agents/create-from-prompt", json={"prompt": "x", "model": "m", "harness": "nope"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "harness"
    assert (await admin.get("/api/tickets")).json()["total"] == before  # no ticket without its agent


async def test_reads_lists_stats_detail_logs(admin):
    ticket = await _ticket(admin)
    spawned = (await admin.post(f"/api/tickets/{ticket['id']}/assign-agent", json={"model": "m"})).json()
    agent_id, task_id = spawned["agent"]["id"], spawned["task"]["id"]
    lst = (await admin.get("/api/agents", params={"status": "queued,running", "ticket_id": ticket["id"]})).json()
    assert [a["id"] for a in lst["agents"]] == [agent_id] and lst["total"] == 1
    assert lst["agents"][0]["latest_task"]["id"] == task_id
    assert (await admin.get("/api/agents", params={"status": "bogus"})).status_code == 400
    assert (await admin.get("/api/agents/tasks", params={"status": "timeout"})).json()["tasks"] == []
    active = (await admin.get("/api/agents/active")).json()
    assert [a["id"] for a in active["agents"]] == [agent_id]
    stats = (await admin.get("/api/agents/stats")).json()
    assert stats["agents"] == {"queued": 1} and stats["queued_tasks"] == 1
    detail = (await admin.get(f"/api/agents/{agent_id}")).json()
    assert detail["latest_task"]["id"] == task_id and detail["audit"][0]["action"] == "agent_spawned"
    logs = (await admin.get(f"/api/agents/{agent_id}/logs")).json()
    assert logs["source"] == "database" and logs["content"] == ""
    assert (await admin.get(f"/api/agents/tasks/{task_id}/logs")).status_code == 200
    assert (await admin.get("/api/agents/tasks/999999/logs")).status_code == 404
    assert (await admin.get("/api/agents/999999")).status_code == 404
    steering = (await admin.get(f"/api/agents/{agent_id}/steering")).json()
    assert steering == {"agent_id": agent_id, "events": [], "pending": 0}
    health = (await admin.get("/api/agents/runner-health")).json()
    assert health["harnesses"]["fake"]["ok"] is True and health["configured_harness"] == "fake"
    assert health["model_api"]["reachable"] is False
    procs = (await admin.get("/api/agents/processes")).json()
    assert procs["tracked"] == [] and procs["runner_id"] is None


async def test_scoping_hides_agents_of_tickets_outside_the_callers_groups(admin, make_client, app, make_token):
    soc = await _ticket(admin, owning_group="SOC")
    net = await _ticket(admin, owning_group="NET")
    a_soc = (await admin.post(f"/api/tickets/{soc['id']}/assign-agent", json={"model": "m"})).json()["agent"]["id"]
    a_net = (await admin.post(f"/api/tickets/{net['id']}/assign-agent", json={"model": "m"})).json()["agent"]["id"]
    token = await make_token("soc-manager", groups=["SOC"])
    async with make_client(app, token) as c:
        ids = [a["id"] for a in (await c.get("/api/agents")).json()["agents"]]
        assert ids == [a_soc]
        assert (await c.get(f"/api/agents/{a_net}")).status_code == 404
        assert (await c.post(f"/api/agents/{a_net}/stop", json={})).status_code == 404
        assert (await c.post(f"/api/tickets/{net['id']}/assign-agent", json={"model": "m"})).status_code == 404
