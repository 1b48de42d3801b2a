"""pytest plugin for opsgate and its plugin authors (fixtures, fakes, contract suites).

Enable it with `pytest_plugins = ["opsgate.testing"]` in a top-level conftest.
"""

from opsgate.testing.capabilities import deselect_unsupported, requires
from opsgate.testing.contracts import HarnessContract
from opsgate.testing.fake_harness import FakeHarness
from opsgate.testing.fixtures import *  # noqa: F401,F403  (pytest collects fixtures by name)
from opsgate.testing.provider_contract import TicketProviderContract
from opsgate.testing.tool_contracts import DeployTargetContract, ToolAdapterContract


def pytest_collection_modifyitems(session, config, items):
    deselect_unsupported(items, config)


__all__ = ["DeployTargetContract", "FakeHarness", "HarnessContract", "TicketProviderContract", "ToolAdapterContract",
           "requires"]
