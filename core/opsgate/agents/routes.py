"""HTTP endpoints of agents, tasks, runtime configuration, steering, and the agent WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Annotated, Any

import msgspec
from asyncpg import Connection
from litestar import Controller, WebSocket, get, post, put, websocket
from litestar.datastructures import State
from litestar.exceptions import WebSocketDisconnect
from litestar.params import Parameter

from opsgate.agents import diagnostics, repo, service
from opsgate.agents.schemas import (
    AgentAction,
    AgentDetail,
    AgentList,
    AgentStats,
    AgentUpdate,
    AssignAgent,
    ConfigView,
    CreateFromPrompt,
    ModelsView,
    Processes,
    RestartAgent,
    RestartResult,
    RunnerHealth,
    SpawnAgent,
    SpawnResult,
    SteeringEvent,
    SteeringList,
    StopAgent,
    TaskList,
    TaskLogs,
    UnassignAgent,
    WakeAgent,
)
from opsgate.auth.guard import principal_of
from opsgate.auth.principal import Principal
from opsgate.plugins import PluginHost
from opsgate.settings import Settings

log = logging.getLogger(__name__)

Id = Annotated[int, Parameter(ge=1)]
Limit = Annotated[int, Parameter(ge=1, le=500)]
Offset = Annotated[int, Parameter(ge=0, le=10_000_000)]
LogBytes = Annotated[int, Parameter(ge=1, le=service.LOG_MAX_BYTES)]
StatusFilter = Annotated[str | None, Parameter(max_length=500)]


def _runner(state: State) -> Any | None:
    return getattr(state, "runner", None)


class AgentController(Controller):
    path = "/api/agents"
    tags = ["agents"]

    @get("/", operation_id="listAgents", opt={"permission": "agents:read"})
    async def list_agents(self, conn: Connection, principal: Principal, status: StatusFilter = None,
                          ticket_id: Annotated[int | None, Parameter(ge=1)] = None, limit: Limit = 100,
                          offset: Offset = 0) -> AgentList:
        return await service.list_agents(conn, principal, status=status, ticket_id=ticket_id, limit=limit,
                                         offset=offset)

    @get("/active", operation_id="listActiveAgents", opt={"permission": "agents:read"})
    async def active(self, conn: Connection, principal: Principal, limit: Limit = 200) -> AgentList:
        return await service.active_agents(conn, principal, limit)

    @get("/stats", operation_id="agentStats", opt={"permission": "agents:read"})
    async def stats(self, conn: Connection) -> AgentStats:
        return await service.stats(conn)

    @get("/models", operation_id="agentModels", opt={"permission": "agents:read"})
    async def models(self, conn: Connection, settings: Settings, host: PluginHost) -> ModelsView:
        return await service.models(conn, settings, host)

    @get("/config", operation_id="getAgentConfig", opt={"permission": "settings:read"})
    async def get_config(self, conn: Connection, host: PluginHost) -> ConfigView:
        return await service.get_config(conn, host)

    @put("/config", operation_id="putAgentConfig", opt={"permission": "settings:write"})
    async def put_config(self, data: dict[str, Any], conn: Connection, principal: Principal,
                         host: PluginHost) -> ConfigView:
        return await service.put_config(conn, principal, host, data)

    @get("/runner-health", operation_id="runnerHealth", opt={"permission": "agents:read"})
    async def runner_health(self, conn: Connection, settings: Settings, host: PluginHost,
                            state: State) -> RunnerHealth:
        return await diagnostics.runner_health(conn, settings, host, _runner(state))

    @get("/processes", operation_id="agentProcesses", opt={"permission": "agents:read"})
    async def processes(self, conn: Connection, state: State) -> Processes:
        return await diagnostics.processes(conn, _runner(state))

    @post("/spawn", operation_id="spawnAgent", opt={"permission": "agents:spawn"}, status_code=201)
    async def spawn(self, data: SpawnAgent, conn: Connection, principal: Principal, settings: Settings,
                    host: PluginHost) -> SpawnResult:
        return await service.spawn_agent(conn, principal, settings, host, data)

    @post("/create-from-prompt", operation_id="createAgentFromPrompt", opt={"permission": "agents:spawn"},
          status_code=201)
    async def create_from_prompt(self, data: CreateFromPrompt, conn: Connection, principal: Principal,
                                 settings: Settings, host: PluginHost) -> SpawnResult:
        return await service.create_from_prompt(conn, principal, settings, host, data)

    @get("/tasks", operation_id="listAgentTasks", opt={"permission": "agents:read"})
    async def tasks(self, conn: Connection, principal: Principal, status: StatusFilter = None,
                    agent_id: Annotated[int | None, Parameter(ge=1)] = None,
                    ticket_id: Annotated[int | None, Parameter(ge=1)] = None, limit: Limit = 100,
                    offset: Offset = 0) -> TaskList:
        return await service.list_tasks(conn, principal, status=status, agent_id=agent_id, ticket_id=ticket_id,
                                        limit=limit, offset=offset)

    @get("/tasks/{task_id:int}/logs", operation_id="agentTaskLogs", opt={"permission": "agents:read"})
    async def task_logs(self, task_id: Id, conn: Connection, principal: Principal,
                        bytes: LogBytes = service.LOG_DEFAULT_BYTES) -> TaskLogs:  # noqa: A002
        return await service.task_logs(conn, principal, task_id, bytes)

    @get("/{agent_id:int}", operation_id="getAgent", opt={"permission": "agents:read"})
    async def detail(self, agent_id: Id, conn: Connection, principal: Principal) -> AgentDetail:
        return await service.detail(conn, principal, agent_id)

    @get("/{agent_id:int}/logs", operation_id="agentLogs", opt={"permission": "agents:read"})
    async def logs(self, agent_id: Id, conn: Connection, principal: Principal,
                   bytes: LogBytes = service.LOG_DEFAULT_BYTES) -> TaskLogs:  # noqa: A002
        return await service.agent_logs(conn, principal, agent_id, bytes)

    @post("/{agent_id:int}/wake", operation_id="wakeAgent", opt={"permission": "agents:control"}, status_code=200)
    async def wake(self, agent_id: Id, conn: Connection, principal: Principal,
                   data: WakeAgent | None = None) -> AgentAction:
        return await service.wake(conn, principal, agent_id, data or WakeAgent())

    @post("/{agent_id:int}/restart", operation_id="restartAgent", opt={"permission": "agents:control"},
          status_code=201)
    async def restart(self, agent_id: Id, conn: Connection, principal: Principal, settings: Settings,
                      host: PluginHost, data: RestartAgent | None = None) -> RestartResult:
        return await service.restart(conn, principal, settings, host, agent_id, data or RestartAgent())

    @post("/{agent_id:int}/stop", operation_id="stopAgent", opt={"permission": "agents:control"}, status_code=200)
    async def stop(self, agent_id: Id, conn: Connection, principal: Principal,
                   data: StopAgent | None = None) -> AgentAction:
        return await service.stop_agent(conn, principal, agent_id, (data or StopAgent()).reason)

    @post("/{agent_id:int}/update", operation_id="updateAgent", opt={"permission": "agents:report"},
          status_code=200)
    async def update(self, agent_id: Id, data: AgentUpdate, conn: Connection, principal: Principal) -> AgentAction:
        return await service.update(conn, principal, agent_id, data)

    @get("/{agent_id:int}/steering", operation_id="agentSteering", opt={"permission": "agents:read"})
    async def steering(self, agent_id: Id, conn: Connection, principal: Principal, limit: Limit = 50) -> SteeringList:
        return await service.steering_list(conn, principal, agent_id, limit)

    @post("/{agent_id:int}/steering/{event_id:int}/ack", operation_id="ackAgentSteering",
          opt={"permission": "agents:report"}, status_code=200)
    async def steering_ack(self, agent_id: Id, event_id: Id, conn: Connection, principal: Principal) -> SteeringEvent:
        return await service.steering_ack(conn, principal, agent_id, event_id)


class TicketAgentController(Controller):
    path = "/api/tickets"
    tags = ["agents"]

    @post("/{ticket_id:int}/assign-agent", operation_id="assignTicketAgent", opt={"permission": "agents:spawn"},
          status_code=201)
    async def assign(self, ticket_id: Id, conn: Connection, principal: Principal, settings: Settings,
                     host: PluginHost, data: AssignAgent | None = None) -> SpawnResult:
        return await service.assign_agent(conn, principal, settings, host, ticket_id, data or AssignAgent())

    @post("/{ticket_id:int}/unassign-agent", operation_id="unassignTicketAgent",
          opt={"permission": "agents:control"}, status_code=200)
    async def unassign(self, ticket_id: Id, conn: Connection, principal: Principal,
                       data: UnassignAgent | None = None) -> AgentAction:
        return await service.unassign(conn, principal, ticket_id, (data or UnassignAgent()).reason)


def _visible(principal: Principal, event: Any, tickets: dict[int, tuple[str, str | None] | None]) -> bool:
    if event.ticket_id is None or (principal.groups is None and principal.max_classification == "secret"):
        return True
    info = tickets.get(event.ticket_id)
    if info is None:
        return False
    return principal.can_see(ticket_id=event.ticket_id, classification=info[0], owning_group=info[1])


@websocket("/api/agents/ws", opt={"permission": "agents:read"})
async def agents_ws(socket: WebSocket) -> None:
    """Agent and task events as JSON messages, fed by PostgreSQL NOTIFY (every replica sees every event).

    Optional query filters: `agent_id`, `ticket_id`.
    """
    principal = principal_of(socket)
    listener = getattr(socket.app.state, "events", None)
    await socket.accept()
    if principal is None or listener is None:
        await socket.close(code=1011, reason="event listener not running")
        return
    only_agent = socket.query_params.get("agent_id")
    only_ticket = socket.query_params.get("ticket_id")
    queue = listener.queue()
    scope_cache: dict[int, tuple[str, str | None] | None] = {}
    receiver = asyncio.ensure_future(socket.receive_data(mode="text"))
    try:
        await socket.send_json({"type": "hello", "principal": principal.actor})
        while True:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if receiver in done:
                getter.cancel()
                receiver.result()  # raises on disconnect
                receiver = asyncio.ensure_future(socket.receive_data(mode="text"))
                continue
            event = getter.result()
            if not event.kind.startswith("agent"):
                continue
            if only_agent and str(event.agent_id) != only_agent:
                continue
            if only_ticket and str(event.ticket_id) != only_ticket:
                continue
            if event.ticket_id is not None and event.ticket_id not in scope_cache and not (
                    principal.groups is None and principal.max_classification == "secret"):
                pool = socket.app.state.pool
                async with pool.acquire() as conn:
                    scope_cache[event.ticket_id] = await repo.ticket_scope(conn, event.ticket_id)
            if not _visible(principal, event, scope_cache):
                continue
            await socket.send_json({"type": "event", "event": msgspec.to_builtins(event)})
    except (WebSocketDisconnect, ConnectionError, RuntimeError):
        pass
    finally:
        listener.drop_queue(queue)
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await receiver


ROUTES = [AgentController, TicketAgentController, agents_ws]
