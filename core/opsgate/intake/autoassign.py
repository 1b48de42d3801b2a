"""RACI auto-assignment: spawn one agent for a new ticket when, and only when, a rule allows it.

The decision is made in one transaction that holds the ticket's row lock (so
two callers for the same ticket serialize and the second sees the first's
agent) and the rule's row lock (so the per-rule cap is counted exactly).
An agent is spawned only when every condition holds:

1. auto-assignment was requested, and the ticket is not being created by a
   provider's catch-up sync (``catch_up_sync=True`` always skips: historical
   tickets pulled from an ITSM never get agents);
2. the ticket is ``new`` or ``assigned`` and has no live agent;
3. a rule really matched (never the ``general`` fallback, a tie or a low score;
   see `opsgate.intake.classifier`), the rule has ``auto_assign_agent=true``,
   is enabled and is for the ticket's class;
4. fewer than ``OPSGATE_INTAKE_AUTO_ASSIGN_CAP`` agents were auto-assigned by
   that rule in the last ``OPSGATE_INTAKE_AUTO_ASSIGN_WINDOW_SECONDS``.

Then the agent and its queued task are inserted by `opsgate.agents.service.spawn`
in the same transaction. Every decision, assigned or skipped, is returned, kept
in ``intake_auto_assignments`` and written as a ticket note with an audit row
and an event. A unique index allows one auto-assigned agent per ticket, ever.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from asyncpg import Connection

from opsgate.audit import repo as audit
from opsgate.auth.principal import Principal
from opsgate.errors import Conflict, Invalid, NotFound
from opsgate.events import repo as events
from opsgate.intake import classifier, repo
from opsgate.intake.schemas import AutoAssignDecision
from opsgate.plugins import PluginHost
from opsgate.settings import Settings
from opsgate.tickets import service as tickets
from opsgate.tickets.schemas import AutoAssignment

log = logging.getLogger(__name__)

ASSIGNABLE_STATUSES = ("new", "assigned")


def not_requested() -> AutoAssignDecision:
    """The decision when the caller did not ask for auto-assignment (no note is written)."""
    return AutoAssignDecision(requested=False, decision="not_requested", reason_code="not_requested",
                              reason="auto_assign not requested")


def as_ticket_auto_assignment(decision: AutoAssignDecision) -> AutoAssignment:
    """The compact shape `POST /api/tickets` answers with."""
    return AutoAssignment(requested=decision.requested, matched=decision.matched, rule_id=decision.rule_id,
                          agent_id=decision.agent_id, reason=decision.reason)


async def recorded_auto_assignment(conn: Connection, ticket_id: int) -> AutoAssignment | None:
    """The first decision recorded for a ticket (what an idempotent replay of its create answers), or None."""
    rows = await repo.auto_assignments_of_ticket(conn, ticket_id)
    if not rows:
        return None
    first = rows[0]
    return AutoAssignment(requested=True, matched=first["rule_id"] is not None, rule_id=first["rule_id"],
                          agent_id=first["agent_id"], reason=first["reason"])


async def auto_assign_created_ticket(conn: Connection, principal: Principal, settings: Settings,
                                     host: PluginHost, ticket_id: int, *, requested: bool = True,
                                     catch_up_sync: bool = False) -> AutoAssignment:
    """Entry point for the ticket create path (`POST /api/tickets` with ``auto_assign: true``).

    The ticket is classified against the enabled RACI rules; a provider's
    catch-up sync passes ``catch_up_sync=True`` and never gets an agent.
    """
    decision = await auto_assign(conn, principal, settings, host, ticket_id, requested=requested,
                                 catch_up_sync=catch_up_sync)
    return as_ticket_auto_assignment(decision)


async def _routing(conn: Connection, ticket: dict[str, Any], settings: Settings) -> tuple[classifier.Outcome, dict]:
    from opsgate.intake.service import load_routing  # the rule loader lives with the rest of intake

    rules, fallback = await load_routing(conn)
    outcome = classifier.classify([r.view for r in rules], fallback.view, ticket["title"], ticket["description"],
                                  min_score=settings.intake_min_score)
    by_id = {r.row["id"]: r.row for r in rules}
    return outcome, by_id.get(outcome.rule_id) or fallback.row


async def _live_agent(conn: Connection, agent_id: int | None) -> dict[str, Any] | None:
    if agent_id is None:
        return None
    from opsgate.agents import repo as agents_repo
    from opsgate.agents import vocab as agents_vocab

    agent = await agents_repo.get_agent(conn, agent_id)
    if agent is None or agent["status"] in agents_vocab.FINAL_AGENT_STATUSES:
        return None
    return agent


def _prompt(rule: dict[str, Any], ticket: dict[str, Any]) -> str | None:
    if not rule.get("auto_agent_prompt"):
        return None
    from opsgate.agents.service import default_prompt

    return (default_prompt("ticket_resolution", ticket) + f"\n\nInstructions of RACI rule {rule['name']!r} "
            f"({rule['assignment_group']}):\n{rule['auto_agent_prompt']}")


async def auto_assign(conn: Connection, principal: Principal, settings: Settings, host: PluginHost,
                      ticket_id: int, *, requested: bool = True, catch_up_sync: bool = False,
                      outcome: classifier.Outcome | None = None) -> AutoAssignDecision:
    """Decide, and when allowed spawn, the auto-assigned agent of one ticket (see the module docstring).

    `outcome` is the intake classification of the request when the caller has
    one (intake submit); otherwise the ticket's title and description are
    classified here. Raises NotFound when the ticket does not exist or is
    outside the principal's scope.
    """
    if not requested:
        return not_requested()
    async with conn.transaction():
        ticket = await tickets.visible_ticket(conn, principal, ticket_id, lock=True)
        rule: dict[str, Any] | None = None
        if outcome is None and not catch_up_sync:
            outcome, rule = await _routing(conn, ticket, settings)
        elif outcome is not None:
            rule = await repo.get_rule(conn, outcome.rule_id)
        matched = bool(outcome and outcome.matched)

        def skip(code: str, reason: str) -> tuple[str, str, str]:
            return "skipped", code, reason

        verdict: tuple[str, str, str] | None = None
        live = await _live_agent(conn, ticket["agent_id"])
        if catch_up_sync:
            verdict = skip("catch_up_sync", "provider catch-up sync never auto-assigns agents")
        elif ticket["status"] not in ASSIGNABLE_STATUSES:
            verdict = skip("ticket_status", f"ticket is {ticket['status']}; only new or assigned tickets are "
                                            "auto-assigned")
        elif live is not None:
            verdict = skip("active_agent", f"ticket already has agent {live['id']} ({live['status']})")
        elif outcome is None or rule is None or not matched:
            verdict = skip("no_match", "no RACI rule matched"
                           + (f": {outcome.reason}" if outcome is not None else ""))
        if verdict is None and rule is not None:
            rule = await repo.get_rule(conn, rule["id"], lock=True)  # serializes the cap count per rule
            if rule is None or not rule["enabled"]:
                verdict = skip("rule_disabled", "the matched rule is disabled")
            elif not rule["auto_assign_agent"]:
                verdict = skip("manual_rule", f"rule {rule['name']} routes to {rule['assignment_group']} for "
                                              "manual handling (auto_assign_agent is false)")
            elif rule["ticket_class"] != ticket["ticket_class"]:
                verdict = skip("class_mismatch", f"rule {rule['name']} is for {rule['ticket_class']} tickets, "
                                                 f"this ticket is {ticket['ticket_class']}")
            else:
                cap = settings.intake_auto_assign_cap
                window = settings.intake_auto_assign_window_seconds
                used = await repo.count_rule_assignments(conn, rule["id"], window)
                if used >= cap:
                    verdict = skip("over_cap", f"rule {rule['name']} already auto-assigned {used} agent(s) in the "
                                               f"last {window} s (cap {cap}, OPSGATE_INTAKE_AUTO_ASSIGN_CAP)")
        agent_id = task_id = None
        if verdict is None and rule is not None:
            from opsgate.agents import service as agents

            try:
                async with conn.transaction():  # a savepoint: a refused spawn leaves our decision intact
                    spawned = await agents.spawn(conn, principal, settings, host, ticket_id=ticket_id,
                                                 model=rule["auto_agent_model"], prompt=_prompt(rule, ticket))
            except (Conflict, Invalid, NotFound) as exc:
                verdict = skip("spawn_refused", f"the agent runner refused the spawn: {exc.detail}")
            else:
                agent_id, task_id = spawned.agent.id, spawned.task.id
                verdict = ("assigned", "assigned",
                           f"rule {rule['name']} matched ({', '.join(outcome.matched_keywords)}); "
                           f"agent {agent_id} queued")
        assert verdict is not None
        decision, code, reason = verdict
        rule_id = rule["id"] if rule is not None and matched else None
        rule_name = rule["name"] if rule is not None and matched else None
        body = (f"Auto-assignment: {decision}. {reason}."
                if decision == "skipped" else f"Auto-assignment: agent {agent_id} assigned. {reason}.")
        details = {"decision": decision, "reason_code": code, "reason": reason, "rule_id": rule_id,
                   "rule_name": rule_name, "agent_id": agent_id, "task_id": task_id, "catch_up_sync": catch_up_sync,
                   "confidence": outcome.confidence if outcome is not None else None}
        note_id = await repo.add_intake_note(conn, ticket_id, "agent", body, principal.actor, details)
        await repo.insert_auto_assignment(conn, ticket_id, rule_id, decision, code, reason, agent_id, task_id,
                                          note_id, catch_up_sync, principal.actor)
        action = "ticket_auto_assigned" if decision == "assigned" else "ticket_auto_assign_skipped"
        await audit.record(conn, actor=principal.actor, actor_kind=principal.actor_kind, action=action,
                           category="intake", target_type="ticket", target_id=ticket_id, ticket_id=ticket_id,
                           agent_id=agent_id, details={**details, "note_id": note_id})
        await events.emit(conn, action, actor=principal.actor, ticket_id=ticket_id, agent_id=agent_id,
                          category="intake", payload={**details, "ticket_id": ticket_id, "note_id": note_id})
    log.info("auto-assignment %s", decision, extra={"ticket_id": ticket_id, "reason_code": code,
                                                     "agent_id": agent_id})
    return AutoAssignDecision(requested=True, decision=decision, reason_code=code, reason=reason, matched=matched,
                              rule_id=rule_id, rule_name=rule_name, agent_id=agent_id, task_id=task_id,
                              note_id=note_id)


def decision_dict(decision: AutoAssignDecision) -> dict[str, Any]:
    """The decision as stored on the intake session."""
    return msgspec.to_builtins(decision)
