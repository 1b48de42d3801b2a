"""Pure rules of provider sync: reconcile decisions, sync-all bodies, retry hints, note text identity."""

import pytest

from opsgate.errors import Conflict, Invalid, ProviderError
from opsgate.providers import registry
from opsgate.providers.reconcile import decide
from opsgate.providers.service import provider_from_body


@pytest.mark.parametrize("local, remote, agent, pending, action", [
    ("new", "assigned", False, False, "apply"),
    ("assigned", "resolved", False, False, "apply"),
    ("in_progress", "awaiting_user_response", False, False, "apply"),
    ("resolved", "closed", False, False, "apply"),
    ("in_progress", "new", False, False, "conflict"),          # backwards
    ("resolved", "assigned", False, False, "conflict"),        # resolved locally stays
    ("awaiting_user_response", "resolved", False, False, "conflict"),  # a local wait
    ("pending_approval", "new", False, False, "conflict"),
    ("in_progress", "resolved", True, False, "conflict"),      # an active agent
    ("closed", "assigned", False, False, "conflict"),          # a local terminal state
    ("cancelled", "resolved", False, True, "conflict"),
    ("in_progress", "resolved", False, True, "defer"),         # opsgate is ahead
    ("new", "new", False, False, "none"),
    ("new", None, False, False, "none"),
])
def test_reconcile(local, remote, agent, pending, action):
    assert decide(local, remote, agent_active=agent, outbound_pending=pending).action == action


@pytest.mark.parametrize("raw, expected", [
    (b"", None), (b"  ", None), (b"null", None), (b"{}", None), (b'{"provider": null}', None),
    (b"itop", "itop"), (b'"itop"', "itop"), (b'{"provider": "iTop"}', "itop"), (b" ServiceNow\n", "servicenow"),
])
def test_sync_all_body(raw, expected):
    assert provider_from_body(raw) == expected


@pytest.mark.parametrize("raw, field", [
    (b"[1]", "body"), (b"42", "body"), (b'{"provider": 3}', "provider"), (b'{"prov": "itop"}', "prov"),
    (b"not a name!", "provider"),
])
def test_sync_all_body_errors_name_the_field(raw, field):
    with pytest.raises(Invalid) as exc:
        provider_from_body(raw)
    assert exc.value.field == field


def test_retry_hints():
    class Permanent(ProviderError):
        retryable = False

    assert registry.is_retryable(ProviderError("itop", "create", "down"))
    assert registry.is_retryable(RuntimeError("boom"))
    assert not registry.is_retryable(Permanent("itop", "create"))
    assert not registry.is_retryable(Conflict("no"))


def test_note_text_identity_ignores_html_and_whitespace():
    assert registry.text_hash("<p>Hello&nbsp;<b>world</b></p>") == registry.text_hash("Hello  world\n")
    assert registry.text_hash("a") != registry.text_hash("b")
    assert registry.plain_text("<p>Line 1<br>Line 2</p><script>x</script>") == "Line 1\nLine 2"
    assert registry.log_of("user") == registry.log_of("public") == "public"
    assert registry.log_of("internal") == "private"
