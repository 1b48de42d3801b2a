"""`POST /api/agents/{agent_id}/deploy/static-site`: publish behind an approved, bound gate.

The README section "The API route" is the specification; in order:

1. The guard checks `deployments:write`. An agent token may deploy only for
   its own `agent_id` (403 otherwise).
2. The body (`forbid_unknown_fields`), the slug and the syntax of `source_dir`
   are checked first: 400 naming the field, nothing read or written.
3. The agent must exist and be visible to the caller (404). Its work dir is
   resolved on the server from its latest task
   (`opsgate.runner.workdir.layout_for(...).root`); no task is a 409, and so
   is a work dir that does not exist yet (checked after the gate). The request
   never names a work dir.
4. One transaction: the gate row is locked (`SELECT ... FOR UPDATE`) and must
   exist (404), be approved and unexpired (409), belong to this agent and the
   agent's ticket, and be bound to `action = "deploy_static_site"`,
   `target = <slug>` (409). The lock is held over the publish, so two deploys
   of one gate serialize and the second gets 409.
5. `StaticSiteTarget.publish` through the core's `call_plugin` (timeout; a
   refused tree is a 400 naming the field and nothing is published; anything
   unexpected is a 502). On any error the transaction rolls back, the gate stays
   approved, and a `static_site_deploy_refused` audit row records the attempt.
6. Still in that transaction: the evidence note on the ticket, the gate's
   completion (with the note as its result and the deployment as its
   evidence), and the `static_site_deployed` audit row plus its event. All
   three commit or none does. A publish cannot be rolled back: if the commit
   fails after it, the site is live while the gate stays approved, and a retry
   republishes the same tree harmlessly and completes the gate.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import msgspec
from asyncpg import Connection
from litestar import post
from litestar.params import Parameter
from msgspec import Meta

from opsgate.agents import repo as agents_repo
from opsgate.agents.service import visible_agent
from opsgate.audit import repo as audit
from opsgate.auth.principal import Principal
from opsgate.changes import repo as changes_repo
from opsgate.changes.service import complete_gate, require_approved_gate
from opsgate.errors import Conflict, Forbidden, Invalid, NotFound, OpsgateError, Unavailable
from opsgate.events import repo as events
from opsgate.events.repo import CHANNEL
from opsgate.plugins import PluginHost, call_plugin
from opsgate.protocols import DeployRequest, DeployResult
from opsgate.runner.workdir import layout_for
from opsgate.settings import Settings
from opsgate_deploy_static_site.rules import check_slug
from opsgate_deploy_static_site.tree import split_source

log = logging.getLogger(__name__)

__all__ = ["ACTION", "DeployResponse", "DeployStaticSite", "Deployment", "deploy_static_site"]

ACTION = "deploy_static_site"
TARGET_NAME = "static-site"
PERMISSION = "deployments:write"
AgentId = Annotated[int, Parameter(ge=1)]


class DeployStaticSite(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The request body of the contract."""

    change_id: Annotated[int, Meta(ge=1)]
    source_dir: Annotated[str, Meta(min_length=1, max_length=1024)]
    slug: Annotated[str, Meta(min_length=1, max_length=63)]
    public_base_url: Annotated[str, Meta(max_length=2048)] | None = None


class Deployment(msgspec.Struct, kw_only=True, frozen=True):
    relative_url: str
    public_url: str | None
    slug: str
    files: int
    bytes: int


class DeployResponse(msgspec.Struct, kw_only=True, frozen=True):
    """`{"status": "deployed", "change_id", "deployment": {"relative_url", "public_url", ...}}` plus ids."""

    status: str
    change_id: int
    deployment: Deployment
    agent_id: int
    ticket_id: int
    note_id: int
    audit_id: int


def _evidence_note(result: DeployResult, *, slug: str, source_dir: str, change_id: int, deployed_by: str) -> str:
    lines = [f"Static site deployed: /published/{slug}/ (change #{change_id}).",
             f"Relative URL: {result.relative_url}"]
    if result.public_url:
        lines.append(f"Public URL: {result.public_url}")
    lines += [f"Source: {source_dir} in the agent's work dir; {result.files} file(s), {result.bytes} bytes.",
              f"Deployed by {deployed_by}."]
    return "\n".join(lines)


async def _locked_gate(conn: Connection, change_id: int, *, agent_id: int, ticket_id: int, slug: str) -> None:
    """Lock the gate row and check it is approved, this agent's and ticket's, and bound to this deploy."""
    row = await changes_repo.lock_change(conn, change_id)
    if row is None:
        raise NotFound(f"change {change_id} not found")
    gate = await require_approved_gate(conn, change_id, agent_id=agent_id, ticket_id=ticket_id, action=ACTION,
                                       target=slug)
    if gate.agent_id != agent_id:  # require_approved_gate tolerates a gate without an agent; a deploy does not
        raise Conflict(f"change {change_id} is not linked to agent {agent_id}")


async def _record_refusal(conn: Connection, principal: Principal, *, agent: dict[str, Any], body: DeployStaticSite,
                          exc: OpsgateError) -> None:
    try:
        await audit.record(conn, actor=principal.actor, actor_kind=principal.actor_kind,
                           action="static_site_deploy_refused", category="deployment", level="warning",
                           target_type="change", target_id=body.change_id, ticket_id=agent["ticket_id"],
                           agent_id=agent["id"], details={"slug": body.slug, "source_dir": body.source_dir,
                                                          "status": exc.status_code, "detail": exc.detail,
                                                          "errors": exc.errors})
    except Exception:  # the refusal itself is what the caller gets; a lost audit row is logged
        log.exception("could not audit a refused static-site deploy", extra={"agent_id": agent["id"]})


@post("/api/agents/{agent_id:int}/deploy/static-site", operation_id="deployStaticSite",
      opt={"permission": PERMISSION}, tags=["deployments"], status_code=200)
async def deploy_static_site(agent_id: AgentId, data: DeployStaticSite, conn: Connection, principal: Principal,
                             settings: Settings, host: PluginHost) -> DeployResponse:
    """Publish `source_dir` of the agent's work dir as `/published/<slug>/` behind an approved gate."""
    if principal.kind == "agent" and principal.agent_id != agent_id:
        raise Forbidden(f"{principal.actor} may only deploy from its own work dir, not agent {agent_id}'s")
    reason = check_slug(data.slug)
    if reason:
        raise Invalid("slug", reason)
    split_source(data.source_dir)  # Invalid("source_dir", ...) for absolute, "..", "%", look-alikes
    target = host.deploy_targets().get(TARGET_NAME)
    if target is None:
        raise Unavailable("the static-site deploy target is not loaded")

    agent = await visible_agent(conn, principal, agent_id)
    ticket_id = agent["ticket_id"]
    if ticket_id is None:
        raise Conflict(f"agent {agent_id} has no ticket; a deploy needs a gate on the agent's ticket")
    task = await agents_repo.latest_task(conn, agent_id)
    if task is None:
        raise Conflict(f"agent {agent_id} has no task, so it has no work dir")
    work_dir: Path = layout_for(settings.work_dir, agent_id, task["id"]).root

    request = DeployRequest(change_id=data.change_id, agent_id=agent_id, ticket_id=ticket_id, work_dir=str(work_dir),
                            source_dir=data.source_dir, slug=data.slug, public_base_url=data.public_base_url or None)
    try:
        async with conn.transaction():
            await _locked_gate(conn, data.change_id, agent_id=agent_id, ticket_id=ticket_id, slug=data.slug)
            if not work_dir.is_dir():
                raise Conflict(f"agent {agent_id}'s work dir does not exist yet (its task has not started)")
            result = await call_plugin(TARGET_NAME, "publish", target.publish(request),
                                       timeout=settings.plugin_call_timeout)
            text = _evidence_note(result, slug=data.slug, source_dir=data.source_dir, change_id=data.change_id,
                                  deployed_by=principal.actor)
            details = {"slug": data.slug, "relative_url": result.relative_url, "public_url": result.public_url,
                       "files": result.files, "bytes": result.bytes, "source_dir": data.source_dir,
                       "change_id": data.change_id, "deployed_by": principal.actor, "evidence": ACTION}
            note_id = await changes_repo.add_gate_note(conn, ticket_id, "change", text, principal.actor,
                                                       principal.agent_id, details, CHANNEL)
            await complete_gate(conn, data.change_id, result=text, completed_by=principal.actor,
                                actor=principal.actor, actor_kind=principal.actor_kind,
                                evidence={**details, "note_id": note_id}, action=ACTION, target=data.slug,
                                agent_id=agent_id, ticket_id=ticket_id)
            audit_id = await audit.record(conn, actor=principal.actor, actor_kind=principal.actor_kind,
                                          action="static_site_deployed", category="deployment",
                                          target_type="change", target_id=data.change_id, ticket_id=ticket_id,
                                          agent_id=agent_id, details={**details, "note_id": note_id})
            await events.emit(conn, "static_site_deployed", actor=principal.actor, ticket_id=ticket_id,
                              agent_id=agent_id, category="deployment",
                              payload={**details, "note_id": note_id, "audit_id": audit_id})
    except OpsgateError as exc:
        await _record_refusal(conn, principal, agent=agent, body=data, exc=exc)
        raise
    log.info("static site deployed", extra={"agent_id": agent_id, "change_id": data.change_id, "slug": data.slug})
    return DeployResponse(status="deployed", change_id=data.change_id, agent_id=agent_id, ticket_id=ticket_id,
                          note_id=note_id, audit_id=audit_id,
                          deployment=Deployment(relative_url=result.relative_url, public_url=result.public_url,
                                                slug=data.slug, files=result.files, bytes=result.bytes))
