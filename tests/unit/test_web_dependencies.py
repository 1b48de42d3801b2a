"""The sequential dependency resolver that replaces Litestar's task-group one."""

import contextvars

from litestar import Litestar, get
from litestar._kwargs.kwargs_model import KwargsModel
from litestar.di import Provide
from litestar.testing import TestClient

from opsgate.web import dependencies

seen: contextvars.ContextVar[str | None] = contextvars.ContextVar("seen", default=None)


def test_installs_on_this_litestar_and_is_idempotent():
    assert dependencies.compatible() is None
    assert dependencies.install() is True
    assert dependencies.install() is True
    assert KwargsModel.resolve_dependencies is dependencies.resolve_sequentially


def _app(events: list[str], fail: bool) -> Litestar:
    async def resource():
        events.append("acquired")
        try:
            yield "conn"
        finally:
            events.append("released")

    async def caller() -> str:
        seen.set("caller")  # set in the request's own task: visible to the handler
        return "alice"

    def settings() -> dict:
        return {"limit": 3}

    async def derived(caller: str, settings: dict, resource: str) -> str:
        if fail:  # on the second level: `resource` is already acquired
            raise PermissionError("no caller")
        return f"{caller}:{settings['limit']}"

    @get("/x")
    async def handler(resource: str, caller: str, settings: dict, derived: str) -> dict:
        events.append("handler")
        return {"resource": resource, "caller": caller, "limit": settings["limit"], "derived": derived,
                "context": seen.get()}

    dependencies.install()
    return Litestar([handler], dependencies={
        "resource": Provide(resource), "caller": Provide(caller), "settings": Provide(settings, sync_to_thread=False),
        "derived": Provide(derived)})


def test_every_level_is_resolved_and_generators_cleaned_up_after_the_handler():
    events: list[str] = []
    with TestClient(_app(events, fail=False)) as client:
        r = client.get("/x")
    assert r.status_code == 200, r.text
    assert r.json() == {"resource": "conn", "caller": "alice", "limit": 3, "derived": "alice:3",
                        "context": "caller"}
    assert events == ["acquired", "handler", "released"]


def test_a_failing_dependency_releases_what_was_already_acquired():
    events: list[str] = []
    with TestClient(_app(events, fail=True)) as client:
        r = client.get("/x")
    assert r.status_code == 500
    # Closed by the resolver itself, not by the event loop's async-generator finalizer.
    assert events[0] == "acquired" and "handler" not in events
    assert events.count("released") == 1
