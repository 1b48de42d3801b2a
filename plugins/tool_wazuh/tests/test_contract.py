"""The core's tool-adapter contract suite, run against the fake Wazuh."""

import pytest

from opsgate.testing import ToolAdapterContract
from opsgate_tool_wazuh.adapter import WazuhAdapter


class TestWazuhAdapter(ToolAdapterContract):
    @pytest.fixture
    async def adapter(self, fake, wazuh_env, clock):
        adapter = WazuhAdapter.from_env(wazuh_env, transport=fake.manager_transport(),
                                        indexer_transport=fake.indexer_transport(), clock=clock)
        yield adapter
        await adapter.aclose()

    @pytest.fixture
    def unconfigured_adapter(self):
        return WazuhAdapter.from_env({})
