"""The core's provider contract suite, run against the fake iTop."""

import pytest

from opsgate.testing import TicketProviderContract


class TestItopProvider(TicketProviderContract):
    capabilities = {"remote_records": True, "case_log": True, "close": True, "pull_sync": True}

    @pytest.fixture
    def provider(self, make_provider):
        return make_provider()
