"""Local ticket provider: tickets that live only in opsgate.

The hook implementations land with this plugin's issue; until then it is
discovered and listed but contributes nothing.
"""

from opsgate import hookimpl  # noqa: F401

PLUGIN_NAME = "local"
