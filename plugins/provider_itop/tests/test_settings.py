"""ItopSettings loading, secrets hygiene and the hook."""

from __future__ import annotations

import pytest
from opsgate.errors import Invalid
from opsgate.protocols import TicketProvider
from opsgate.settings import Settings, load

from opsgate_provider_itop import PLUGIN_NAME, opsgate_ticket_providers
from opsgate_provider_itop.provider import ItopProvider
from opsgate_provider_itop.settings import ItopSettings


def test_load_reads_itop_variables_and_converts_types():
    env = {
        "ITOP_URL": "https://itop.example/itop", "ITOP_USER": "rest", "ITOP_PASSWORD": "pw",
        "ITOP_DEFAULT_ORG_ID": "3", "ITOP_DEFAULT_CALLER_ID": "7", "ITOP_DEFAULT_TEAM_ID": "2",
        "ITOP_DEFAULT_AGENT_ID": "9", "ITOP_DEFAULT_SERVICE_ID": "4", "ITOP_SYNC_INTERVAL_SECONDS": "15",
        "ITOP_VERIFY_TLS": "false", "ITOP_TIMEOUT_SECONDS": "2.5", "ITOP_API_VERSION": "1.4",
    }
    s = load(ItopSettings, prefix="ITOP_", environ=env)
    assert (s.url, s.user, s.password) == ("https://itop.example/itop", "rest", "pw")
    assert (s.default_org_id, s.default_caller_id, s.default_team_id) == ("3", "7", "2")
    assert (s.default_agent_id, s.default_service_id) == ("9", "4")
    assert s.sync_interval_seconds == 15 and s.verify_tls is False and s.timeout_seconds == 2.5
    assert s.api_version == "1.4"
    assert s.endpoint == "https://itop.example/itop/webservices/rest.php"
    assert s.auth_mode == "form" and s.missing() == []


def test_defaults_follow_the_contract():
    s = load(ItopSettings, prefix="ITOP_", environ={})
    assert s.api_version == "1.3"
    assert s.sync_interval_seconds == 60 and s.verify_tls is True and s.timeout_seconds == 30
    assert s.timezone == "Europe/Paris"
    assert s.missing() == ["ITOP_URL", "ITOP_USER", "ITOP_PASSWORD"]
    assert s.auth_mode == "none"


def test_bad_value_names_the_variable():
    with pytest.raises(Invalid) as err:
        load(ItopSettings, prefix="ITOP_", environ={"ITOP_TIMEOUT_SECONDS": "soon"})
    assert err.value.field == "ITOP_TIMEOUT_SECONDS"


def test_token_replaces_user_and_password():
    s = ItopSettings(url="http://itop.test/", auth_token="tok")
    assert s.auth_mode == "token" and s.missing() == []


def test_unknown_auth_method_is_reported_missing():
    s = ItopSettings(url="http://itop.test/", user="u", password="p", auth_method="ntlm")
    assert "ITOP_AUTH_METHOD" in s.missing()


def test_repr_and_public_view_hide_secrets():
    s = ItopSettings(url="http://itop.test/", user="rest", password="hunter2-password", auth_token="tok-secret-123")
    for text in (repr(s), str(s), str([s]), repr(s.public()), repr(ItopProvider(s))):
        assert "hunter2-password" not in text
        assert "tok-secret-123" not in text
    assert "password='***'" in repr(s)
    assert "rest" in repr(s)


def test_hook_builds_an_unconfigured_provider_without_io():
    providers = opsgate_ticket_providers(settings=Settings.from_env({}))
    assert len(providers) == 1
    provider = providers[0]
    assert isinstance(provider, TicketProvider)
    assert provider.name == PLUGIN_NAME == "itop"
    assert provider.configured() is False
    assert tuple(provider.ticket_classes) == ("UserRequest", "Incident")
    assert provider.capabilities == {"case_log": True, "attachments": False, "pull_sync": True, "close": True}
    assert provider.client._http is None  # nothing opened


def test_hook_reads_settings_env():
    env = {"ITOP_URL": "http://itop.test/", "ITOP_USER": "u", "ITOP_PASSWORD": "p", "ITOP_SYNC_INTERVAL_SECONDS": "5"}
    (provider,) = opsgate_ticket_providers(settings=Settings.from_env(env))
    assert provider.configured() is True
    assert provider.sync_interval_seconds == 5
