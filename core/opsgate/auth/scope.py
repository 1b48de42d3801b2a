"""Row-level ticket scoping as SQL fragments.

Lists and searches append the fragment to their WHERE clause; the values go in
as parameters, never into the text.
"""

from __future__ import annotations

from typing import Any

from opsgate.auth.principal import CLASSIFICATIONS, Principal


def ticket_scope(principal: Principal, alias: str, next_param: int) -> tuple[str, list[Any]]:
    """(`sql`, `params`) limiting `alias` (a tickets row) to what the principal may see.

    `next_param` is the number of the first `$n` placeholder to use. The
    fragment is empty when the principal sees every ticket.
    """
    if principal.kind == "agent":
        return f"{alias}.id = ${next_param}::bigint", [principal.ticket_id or -1]
    parts: list[str] = []
    params: list[Any] = []
    n = next_param
    if principal.max_classification != CLASSIFICATIONS[-1]:
        parts.append(f"{alias}.security_classification = ANY(${n}::text[])")
        params.append(principal.allowed_classifications())
        n += 1
    if principal.groups is not None:
        parts.append(f"({alias}.owning_group IS NULL OR {alias}.owning_group = ANY(${n}::text[]))")
        params.append(list(principal.groups))
        n += 1
    return " AND ".join(parts), params
