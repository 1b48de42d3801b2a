"""iTop ticket provider: two-way sync of canonical tickets with Combodo iTop over its REST/JSON API.

The hook implementations land with this plugin's issue; until then it is
discovered and listed but contributes nothing.
"""

from opsgate import hookimpl  # noqa: F401

PLUGIN_NAME = "itop"
