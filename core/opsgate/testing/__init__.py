"""pytest plugin for opsgate and its plugin authors (fixtures, fakes, contract suites).

Enable it with `pytest_plugins = ["opsgate.testing"]` in a top-level conftest.
"""

from opsgate.testing.fixtures import *  # noqa: F401,F403  (pytest collects fixtures by name)
