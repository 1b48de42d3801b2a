"""`POST /api/agents/{agent_id}/deploy/static-site` through the app: gate, work dir, publish, evidence.

The agent is created through the API with the runner off (a queued task);
its work dir is the server-side `<OPSGATE_WORK_DIR>/agents/<id>`, created
here the way the runner lays it out. The end-to-end run with a real spawned
agent is `tests/e2e/test_deploy_static_site.py`.
"""

import os
from contextlib import asynccontextmanager

import pytest

import opsgate_deploy_static_site
from opsgate.auth import service as auth
from opsgate.db.pool import connect
from opsgate.testing import audit_rows, fake_harness

SITE = {"index.html": "<!doctype html><title>Hello</title><h1>Hello from the agent</h1>",
        "css/site.css": "h1 { color: teal; }"}


@pytest.fixture
async def db(db_url):
    conn = await connect(db_url)
    yield conn
    await conn.close()


@pytest.fixture
def world(make_app, make_client, make_token, tmp_path, db):
    @asynccontextmanager
    async def open_(make_work_dir=True):
        work = tmp_path / "work"
        app = make_app(plugins=[("fake-harness", fake_harness), ("static-site", opsgate_deploy_static_site)],
                       env={"OPSGATE_WORK_DIR": str(work),
                            "OPSGATE_PUBLISHED_PUBLIC_BASE_URL": "https://ops.example.test:25443"})
        spawner = await make_token("platform-admin")
        async with make_client(app, spawner) as c:
            r = await c.post("/api/tickets", json={"title": "Publish the status page", "sync_provider": False})
            ticket_id = r.json()["id"]
            r = await c.post(f"/api/tickets/{ticket_id}/assign-agent", json={"harness": "fake", "model": "m"})
            assert r.status_code == 201, r.text
            agent_id = r.json()["agent"]["id"]
            root = work.resolve() / "agents" / str(agent_id)
            if make_work_dir:
                root.mkdir(parents=True)
            token = await auth.mint_agent_token(db, agent_id=agent_id, ticket_id=ticket_id, task_id=None)
            yield World(c, ticket_id, agent_id, root, token, await make_token("soc-manager"),
                        await make_token("soc-manager"), await make_token("agent-operator"),
                        tmp_path / "data" / "published")

    return open_


class World:
    def __init__(self, c, ticket_id, agent_id, root, token, approver, requester, operator, published):
        self.c, self.ticket_id, self.agent_id, self.root, self.published = c, ticket_id, agent_id, root, published
        self.agent = {"Authorization": f"Bearer {token}"}
        self.approver = {"Authorization": f"Bearer {approver}"}
        self.requester = {"Authorization": f"Bearer {requester}"}  # a human filing gates
        self.operator = {"Authorization": f"Bearer {operator}"}

    def site(self, folder="site", files=None):
        for rel, text in (files or SITE).items():
            path = self.root / folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)

    async def gate(self, slug="status-page", action="deploy_static_site", approve=True, by_human=False,
                   ticket_id=None, **extra):
        """A gate filed by the agent itself, or by a human (`by_human`, linked to no agent unless `agent_id`)."""
        body = {"ticket_id": ticket_id or self.ticket_id, "action": action, "target": slug, "risk_level": "low",
                "reason": "publish the status page", **extra}
        r = await self.c.post("/api/changes/request", headers=self.requester if by_human else self.agent, json=body)
        assert r.status_code == 201, r.text
        change_id = r.json()["id"]
        if approve:
            r = await self.c.post(f"/api/changes/{change_id}/approve", headers=self.approver,
                                  json={"reason": "looks fine"})
            assert r.status_code == 200, r.text
        return change_id

    async def deploy(self, change_id, slug="status-page", source_dir="site", headers=None, agent_id=None, **extra):
        return await self.c.post(f"/api/agents/{agent_id or self.agent_id}/deploy/static-site",
                                 headers=self.operator if headers is None else headers,
                                 json={"change_id": change_id, "source_dir": source_dir, "slug": slug, **extra})

    async def gate_status(self, change_id):
        return (await self.c.get(f"/api/changes/{change_id}")).json()["status"]


async def test_deploy_publishes_notes_completes_and_audits(world, db):
    async with world() as w:
        w.site()
        change_id = await w.gate()
        r = await w.deploy(change_id)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "deployed" and body["change_id"] == change_id
        assert body["deployment"]["relative_url"] == "/published/status-page/"
        assert body["deployment"]["public_url"] == "https://ops.example.test:25443/published/status-page/"
        assert body["deployment"]["files"] == 2 and body["agent_id"] == w.agent_id

        page = await w.c.get("/published/status-page/")
        assert page.status_code == 200 and "Hello from the agent" in page.text
        assert (await w.c.get("/published/status-page/css/site.css")).text == SITE["css/site.css"]

        gate = (await w.c.get(f"/api/changes/{change_id}")).json()
        assert gate["status"] == "completed" and gate["completed_by"].startswith("test-agent-operator")
        assert gate["evidence"]["relative_url"] == "/published/status-page/"
        assert gate["evidence"]["note_id"] == body["note_id"]

        notes = (await w.c.get(f"/api/tickets/{w.ticket_id}/context")).json()["notes"]
        change_notes = [n for n in notes if n["kind"] == "change"]
        assert [n["body"].split(" ")[0:3] for n in change_notes] == [
            ["Approval", "requested", "by"], ["Change", f"#{change_id}", "approved"],
            ["Static", "site", "deployed:"], ["Change", f"#{change_id}", "completed"]]
        assert "Public URL: https://ops.example.test:25443/published/status-page/" in change_notes[2]["body"]

        deployed = await audit_rows(db, "static_site_deployed")
        assert len(deployed) == 1
        row = deployed[0]
        assert (row["target_type"], row["target_id"], row["ticket_id"], row["agent_id"]) == (
            "change", str(change_id), w.ticket_id, w.agent_id)
        assert {"slug", "relative_url", "public_url", "files", "bytes", "source_dir"} <= set(row["details"])
        events = [r["kind"] for r in await db.fetch("SELECT kind FROM event_log WHERE ticket_id = $1 ORDER BY id",
                                                    w.ticket_id)]
        assert events.index("change_approved") < events.index("static_site_deployed")
        assert "change_completed" in events

        # the gate is spent: a second deploy of it is a conflict and changes nothing
        r = await w.deploy(change_id)
        assert r.status_code == 409, r.text


async def test_redeploy_of_the_same_slug_needs_a_new_gate_and_replaces_the_site(world):
    async with world() as w:
        w.site()
        assert (await w.deploy(await w.gate())).status_code == 200
        w.site(files={"index.html": "<p>version two</p>"})
        assert (await w.deploy(await w.gate())).status_code == 200
        assert "version two" in (await w.c.get("/published/status-page/")).text


@pytest.mark.parametrize("body, field", [
    ({"slug": "Bad_Slug"}, "slug"), ({"slug": "-x"}, "slug"), ({"slug": "a" * 64}, "slug"),
    ({"source_dir": "../site"}, "source_dir"), ({"source_dir": "/etc"}, "source_dir"),
    ({"source_dir": "%2e%2e/site"}, "source_dir"), ({"source_dir": "site/../../x"}, "source_dir"),
    ({"source_dir": "ｓite"}, "source_dir"), ({"source_dir": ""}, "source_dir"),
    ({"public_base_url": "javascript:alert(1)"}, "public_base_url"), ({"work_dir": "/tmp"}, "work_dir"),
])
async def test_bad_input_is_400_naming_the_field_and_publishes_nothing(world, body, field):
    async with world() as w:
        w.site()
        change_id = await w.gate()
        r = await w.c.post(f"/api/agents/{w.agent_id}/deploy/static-site", headers=w.operator,
                           json={"change_id": change_id, "source_dir": "site", "slug": "status-page", **body})
        assert r.status_code == 400, r.text
        assert field in [e["field"] for e in r.json()["errors"]], r.json()
        assert not (w.published / "status-page").exists()
        assert await w.gate_status(change_id) == "approved"


@pytest.mark.parametrize("case", ["no_index", "symlink_to_passwd", "symlinked_folder", "hidden_file",
                                  "bad_type", "missing"])
async def test_a_refused_tree_is_400_the_gate_stays_approved_and_the_attempt_is_audited(world, db, case):
    async with world() as w:
        site = w.root / "site"
        if case == "no_index":
            w.site(files={"about.html": "<p>no index</p>"})
        elif case == "symlink_to_passwd":
            w.site()
            os.symlink("/etc/passwd", site / "passwd.txt")
        elif case == "symlinked_folder":
            w.site(folder="real")
            os.symlink(w.root / "real", site)
        elif case == "hidden_file":
            w.site(files={**SITE, ".env": "TOKEN=x"})
        elif case == "bad_type":
            w.site(files={**SITE, "shell.php": "<?php ?>"})
        change_id = await w.gate()
        r = await w.deploy(change_id)
        assert r.status_code == 400, r.text
        assert r.json()["errors"][0]["field"] == "source_dir"
        assert not (w.published / "status-page").exists()
        assert (await w.c.get("/published/status-page/")).status_code == 404
        assert await w.gate_status(change_id) == "approved"
        refused = await audit_rows(db, "static_site_deploy_refused")
        assert len(refused) == 1 and refused[0]["details"]["status"] == 400
        assert await audit_rows(db, "static_site_deployed") == []
        notes = (await w.c.get(f"/api/tickets/{w.ticket_id}/context")).json()["notes"]
        assert not any(n["body"].startswith("Static site deployed") for n in notes)


async def test_gate_conflicts_are_409_and_publish_nothing(world):
    async with world() as w:
        w.site()
        pending = await w.gate(approve=False)
        assert (await w.deploy(pending)).status_code == 409
        other_slug = await w.gate(slug="other-page")
        r = await w.deploy(other_slug)
        assert r.status_code == 409 and "target" in r.json()["detail"]
        other_action = await w.gate(action="restart_service")
        r = await w.deploy(other_action)
        assert r.status_code == 409 and "action" in r.json()["detail"]
        unlinked = await w.gate(by_human=True)
        r = await w.deploy(unlinked)
        assert r.status_code == 409 and "not linked" in r.json()["detail"]
        rejected = await w.gate(approve=False)
        await w.c.post(f"/api/changes/{rejected}/reject", headers=w.approver, json={"reason": "no"})
        assert (await w.deploy(rejected)).status_code == 409
        assert not (w.published / "status-page").exists()
        for change_id in (other_slug, other_action, unlinked):
            assert await w.gate_status(change_id) == "approved"


async def test_missing_agent_gate_or_work_dir(world):
    async with world(make_work_dir=False) as w:
        assert (await w.deploy(1, agent_id=987654)).status_code == 404
        assert (await w.deploy(987654)).status_code == 404
        change_id = await w.gate()
        r = await w.deploy(change_id)
        assert r.status_code == 409 and "work dir" in r.json()["detail"]


async def test_agent_tokens_lack_deployments_write(world):
    async with world() as w:
        w.site()
        change_id = await w.gate()
        r = await w.deploy(change_id, headers=w.agent)
        assert r.status_code == 403 and r.json()["required_permission"] == "deployments:write"
        assert await w.gate_status(change_id) == "approved"


async def test_a_gate_on_another_ticket_is_refused(world):
    async with world() as w:
        w.site()
        r = await w.c.post("/api/tickets", json={"title": "Another ticket", "sync_provider": False})
        change_id = await w.gate(by_human=True, ticket_id=r.json()["id"], agent_id=w.agent_id)
        r = await w.deploy(change_id)
        assert r.status_code == 409 and "ticket" in r.json()["detail"]
