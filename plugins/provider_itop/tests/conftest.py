"""Fixtures for the iTop provider tests (fixtures only)."""

from __future__ import annotations

import pytest

from opsgate_provider_itop.client import ItopClient
from opsgate_provider_itop.fake import FakeItop
from opsgate_provider_itop.provider import ItopProvider


@pytest.fixture
def fake() -> FakeItop:
    """A fresh fake iTop with demo data and a frozen clock (Europe/Paris local time)."""
    itop = FakeItop()
    itop.set_time("2024-05-02 10:00:00")
    return itop


@pytest.fixture
async def client(fake: FakeItop):
    """An ItopClient talking to the fake through httpx.MockTransport."""
    c = ItopClient(fake.settings(), transport=fake.transport())
    yield c
    await c.aclose()


@pytest.fixture
async def make_provider(fake: FakeItop):
    """Build an ItopProvider on the fake with settings overrides."""
    made: list[ItopProvider] = []

    def build(**overrides) -> ItopProvider:
        provider = ItopProvider(fake.settings(**overrides), transport=fake.transport())
        made.append(provider)
        return provider

    yield build
    for provider in made:
        await provider.aclose()


@pytest.fixture
def provider(make_provider) -> ItopProvider:
    """An ItopProvider on the fake with every default configured."""
    return make_provider()
