"""Fixtures for the Wazuh adapter tests: a fake manager + indexer and clients wired to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from opsgate_tool_wazuh.adapter import WazuhAdapter
from opsgate_tool_wazuh.client import WazuhApiClient, WazuhIndexerClient
from opsgate_tool_wazuh.fake import FakeClock, FakeWazuh

API_URL = "https://wazuh-manager.test:55000"
INDEXER_URL = "https://wazuh-indexer.test:9200"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1_772_460_000.0)


@pytest.fixture
def fake(clock: FakeClock) -> Iterator[FakeWazuh]:
    """The fake; after each test, checks that nobody ever logged out."""
    fake = FakeWazuh(clock=clock)
    yield fake
    assert fake.logouts == 0
    assert fake.count(path="/security/user/authenticate", method="DELETE") == 0


@pytest.fixture
def wazuh_env() -> dict[str, str]:
    return {
        "WAZUH_API_URL": API_URL,
        "WAZUH_API_USER": "wazuh-reader",
        "WAZUH_API_PASSWORD": "fake-api-password",
        "WAZUH_INDEXER_URL": INDEXER_URL,
        "WAZUH_INDEXER_USER": "alerts-reader",
        "WAZUH_INDEXER_PASSWORD": "fake-indexer-password",
    }


@pytest.fixture
async def adapter(fake: FakeWazuh, wazuh_env: dict[str, str], clock: FakeClock) -> AsyncIterator[WazuhAdapter]:
    adapter = WazuhAdapter.from_env(wazuh_env, transport=fake.manager_transport(),
                                    indexer_transport=fake.indexer_transport(), clock=clock)
    yield adapter
    await adapter.aclose()


@pytest.fixture
async def api(fake: FakeWazuh, clock: FakeClock) -> AsyncIterator[WazuhApiClient]:
    client = WazuhApiClient(API_URL, "wazuh-reader", "fake-api-password", transport=fake.manager_transport(),
                            clock=clock)
    yield client
    await client.aclose()


@pytest.fixture
async def indexer(fake: FakeWazuh) -> AsyncIterator[WazuhIndexerClient]:
    client = WazuhIndexerClient(INDEXER_URL, "alerts-reader", "fake-indexer-password",
                                transport=fake.indexer_transport())
    yield client
    await client.aclose()
