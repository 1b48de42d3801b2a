import asyncpg

from opsgate.app import undeclared_routes


async def test_health_ok_with_headers(client):
    r = await client.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "version": "0.1.0", "database": "ok"}
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert len(r.headers["x-request-id"]) == 32


async def test_request_id_is_echoed_when_sane(client):
    r = await client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = await client.get("/health", headers={"X-Request-ID": "bad id\nwith newline"})
    assert r.headers["x-request-id"] != "bad id\nwith newline"


async def test_openapi_document_is_public(client):
    r = await client.get("/schema/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.1")
    assert "/health" in doc["paths"] and "/api/plugins" in doc["paths"]


async def test_health_reports_database_down_and_recovers(make_client, db_url, pg_server):
    name = db_url.rsplit("/", 1)[1]
    async with make_client() as c:
        assert (await c.get("/health")).status_code == 200
        admin = await asyncpg.connect(pg_server.admin_url)
        try:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
            r = await c.get("/health")
            assert r.status_code == 503
            assert r.json()["database"] == "unavailable"
        finally:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            await admin.close()
        r = await c.get("/health")
        assert r.status_code == 200 and r.json()["database"] == "ok"


async def test_plugins_listing_requires_auth_and_lists(make_app, make_client, admin_token):
    import types

    from opsgate import hookimpl

    mod = types.ModuleType("fx_inline")

    class Prov:
        name = "inline"
        ticket_classes = ("Incident",)
        capabilities: dict = {}

    mod.opsgate_ticket_providers = hookimpl(lambda: [Prov()])
    app = make_app(plugins=[("inline", mod)])
    async with make_client(app) as anon:
        assert (await anon.get("/api/plugins")).status_code == 401
    async with make_client(app, token=admin_token) as c:
        r = await c.get("/api/plugins")
        assert r.status_code == 200
        plugins = r.json()["plugins"]
        assert [(p["name"], p["kinds"], p["enabled"]) for p in plugins] == [("inline", ["provider"], True)]


async def test_unknown_route_is_404_json(admin_client):
    r = await admin_client.get("/api/nothing-here")
    assert r.status_code == 404
    assert r.json()["status"] == 404


def test_every_route_declares_a_permission(make_app):
    assert undeclared_routes(make_app()) == []
