"""HTTP endpoints of tickets, notes, attachments and ticket state changes."""

from __future__ import annotations

from typing import Annotated

from asyncpg import Connection
from litestar import Controller, get, patch, post, put
from litestar.params import Parameter

from opsgate.auth.principal import Principal
from opsgate.plugins import PluginHost
from opsgate.settings import Settings
from opsgate.tickets import service
from opsgate.tickets.schemas import (
    AssignmentChange,
    Attachment,
    AttachmentCreate,
    InfoRequest,
    Note,
    NoteCreate,
    StatusChange,
    TicketChange,
    TicketContext,
    TicketCreate,
    TicketCreated,
    TicketDetail,
    TicketList,
    UserResponse,
)

IdempotencyKey = Annotated[str | None, Parameter(header="Idempotency-Key", required=False)]
TicketId = Annotated[int, Parameter(ge=1)]


class TicketController(Controller):
    path = "/api/tickets"
    tags = ["tickets"]

    @get("/", operation_id="listTickets", opt={"permission": "tickets:read"})
    async def list_tickets(
        self, conn: Connection, principal: Principal, host: PluginHost,
        status: str | None = None,
        priority: str | None = None,
        assignee: Annotated[str | None, Parameter(max_length=200)] = None,
        agent_only: bool = False,
        provider: Annotated[str | None, Parameter(max_length=64)] = None,
        q: str | None = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
        offset: Annotated[int, Parameter(ge=0, le=10_000_000)] = 0,
    ) -> TicketList:
        return await service.list_tickets(conn, principal, host, status=status, priority=priority,
                                          assignee=assignee, agent_only=agent_only, provider=provider, q=q,
                                          limit=limit, offset=offset)

    @post("/", operation_id="createTicket", opt={"permission": "tickets:create"}, status_code=201)
    async def create_ticket(self, data: TicketCreate, conn: Connection, principal: Principal, settings: Settings,
                            host: PluginHost, idempotency_key: IdempotencyKey = None) -> TicketCreated:
        return await service.create_ticket(conn, principal, settings, host, data, idempotency_key)

    @get("/{ticket_id:int}", operation_id="getTicket", opt={"permission": "tickets:read"})
    async def get_ticket(self, ticket_id: TicketId, conn: Connection, principal: Principal,
                         host: PluginHost) -> TicketDetail:
        return await service.get_ticket(conn, principal, host, ticket_id)

    @get("/{ticket_id:int}/context", operation_id="getTicketContext", opt={"permission": "tickets:read"})
    async def context(self, ticket_id: TicketId, conn: Connection, principal: Principal,
                      host: PluginHost) -> TicketContext:
        return await service.context(conn, principal, host, ticket_id)

    @post("/{ticket_id:int}/notes", operation_id="addTicketNote", opt={"permission": "tickets:note"},
          status_code=201)
    async def add_note(self, ticket_id: TicketId, data: NoteCreate, conn: Connection, principal: Principal,
                       settings: Settings, idempotency_key: IdempotencyKey = None) -> Note:
        return await service.add_note(conn, principal, ticket_id, data, idempotency_key,
                                      idempotency_ttl_hours=settings.idempotency_ttl_hours)

    @post("/{ticket_id:int}/attachments", operation_id="addTicketAttachment", opt={"permission": "tickets:note"},
          status_code=201)
    async def add_attachment(self, ticket_id: TicketId, data: AttachmentCreate, conn: Connection,
                             principal: Principal) -> Attachment:
        return await service.add_attachment(conn, principal, ticket_id, data)

    @post("/{ticket_id:int}/status", operation_id="setTicketStatus", opt={"permission": "tickets:status"},
          status_code=200)
    async def set_status(self, ticket_id: TicketId, data: StatusChange, conn: Connection, principal: Principal,
                         host: PluginHost) -> TicketChange:
        return await service.change_status(conn, principal, host, ticket_id, data)

    # Compatibility: the same payload and checks as /status on the resource itself.
    @post("/{ticket_id:int}", operation_id="setTicketStatusCompatPost", opt={"permission": "tickets:status"},
          status_code=200)
    async def set_status_post(self, ticket_id: TicketId, data: StatusChange, conn: Connection,
                              principal: Principal, host: PluginHost) -> TicketChange:
        return await service.change_status(conn, principal, host, ticket_id, data)

    @put("/{ticket_id:int}", operation_id="setTicketStatusCompatPut", opt={"permission": "tickets:status"})
    async def set_status_put(self, ticket_id: TicketId, data: StatusChange, conn: Connection,
                             principal: Principal, host: PluginHost) -> TicketChange:
        return await service.change_status(conn, principal, host, ticket_id, data)

    @patch("/{ticket_id:int}", operation_id="setTicketStatusCompatPatch", opt={"permission": "tickets:status"})
    async def set_status_patch(self, ticket_id: TicketId, data: StatusChange, conn: Connection,
                               principal: Principal, host: PluginHost) -> TicketChange:
        return await service.change_status(conn, principal, host, ticket_id, data)

    @post("/{ticket_id:int}/assignment", operation_id="setTicketAssignment", opt={"permission": "tickets:write"},
          status_code=200)
    async def assignment(self, ticket_id: TicketId, data: AssignmentChange, conn: Connection,
                         principal: Principal, host: PluginHost) -> TicketChange:
        return await service.change_assignment(conn, principal, host, ticket_id, data)

    @post("/{ticket_id:int}/request-info", operation_id="requestTicketInfo",
          opt={"permission": "tickets:request_info"}, status_code=200)
    async def request_info(self, ticket_id: TicketId, data: InfoRequest, conn: Connection, principal: Principal,
                           host: PluginHost) -> TicketChange:
        return await service.request_info(conn, principal, host, ticket_id, data)

    @post("/{ticket_id:int}/user-response", operation_id="recordTicketUserResponse",
          opt={"permission": "tickets:request_info"}, status_code=200)
    async def user_response(self, ticket_id: TicketId, data: UserResponse, conn: Connection, principal: Principal,
                            host: PluginHost) -> TicketChange:
        return await service.user_response(conn, principal, host, ticket_id, data)


ROUTES = [TicketController]
