"""Wazuh tool adapter: manager and indexer queries behind scoped credential leases.

The hook implementations land with this plugin's issue; until then it is
discovered and listed but contributes nothing.
"""

from opsgate import hookimpl  # noqa: F401

PLUGIN_NAME = "wazuh"
