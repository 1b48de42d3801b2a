"""The core's provider contract suite, run against the local provider."""

import pytest

from opsgate.testing import TicketProviderContract
from opsgate_provider_local import LocalProvider


class TestLocalProvider(TicketProviderContract):
    capabilities = {"remote_records": False, "case_log": False, "close": True, "pull_sync": False}

    @pytest.fixture
    def provider(self):
        return LocalProvider()
