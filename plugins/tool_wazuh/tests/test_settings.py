"""`WazuhSettings` / `WazuhIndexerSettings`: loading, defaults, validation, redaction."""

from __future__ import annotations

import pytest

import opsgate.settings
from opsgate.errors import Invalid
from opsgate_tool_wazuh.settings import WazuhIndexerSettings, WazuhSettings, load_settings


def test_defaults_when_unset():
    api, idx = load_settings({})
    assert api.verify_tls is True and api.ca_bundle is None
    assert api.timeout_seconds == 15.0 and api.alerts_index == "wazuh-alerts-4.x-*"
    assert api.missing() == ["WAZUH_API_URL", "WAZUH_API_USER", "WAZUH_API_PASSWORD"]
    assert idx.verify_tls is None and idx.ca_bundle is None
    assert idx.missing() == ["WAZUH_INDEXER_URL", "WAZUH_INDEXER_USER", "WAZUH_INDEXER_PASSWORD"]
    assert api.api_refs == ("env:WAZUH_API", "vault://wazuh/api/manager-read")
    assert idx.refs == ("env:WAZUH_INDEXER", "vault://wazuh/indexer/alerts-read")


def test_load_with_the_core_loader():
    env = {"WAZUH_API_URL": "https://m:55000", "WAZUH_API_USER": "u", "WAZUH_API_PASSWORD": "p",
           "WAZUH_VERIFY_TLS": "0", "WAZUH_CA_BUNDLE": "/etc/ssl/wazuh.pem", "WAZUH_TIMEOUT_SECONDS": "20",
           "WAZUH_ALERTS_INDEX": "wazuh-alerts-*", "WAZUH_INDEXER_URL": "https://i:9200",
           "WAZUH_INDEXER_USER": "iu", "WAZUH_INDEXER_PASSWORD": "ip", "WAZUH_INDEXER_VERIFY_TLS": "true"}
    api = opsgate.settings.load(WazuhSettings, prefix="WAZUH_", environ=env)
    idx = opsgate.settings.load(WazuhIndexerSettings, prefix="WAZUH_INDEXER_", environ=env)
    assert (api.api_url, api.api_user, api.api_password) == ("https://m:55000", "u", "p")
    assert api.verify_tls is False and api.ca_bundle == "/etc/ssl/wazuh.pem" and api.timeout_seconds == 20.0
    assert api.alerts_index == "wazuh-alerts-*"
    assert (idx.url, idx.user, idx.password, idx.verify_tls) == ("https://i:9200", "iu", "ip", True)
    assert not api.missing() and not idx.missing()


def test_secrets_not_in_repr_or_str():
    api = WazuhSettings(api_url="https://m:55000", api_user="u", api_password="s3cret-api")
    idx = WazuhIndexerSettings(url="https://i:9200", user="u", password="s3cret-idx")
    for text in (repr(api), str(api), f"{api!r}", repr(idx), str(idx), repr([api, idx])):
        assert "s3cret" not in text
    assert "api_password=<redacted>" in repr(api)
    assert "password=<unset>" in repr(WazuhIndexerSettings())
    assert "s3cret" not in repr(dict(api.__rich_repr__()))


@pytest.mark.parametrize("url", ["https://user:pw@m:55000", "ftp://m", "m:55000", "https://m:55000/?x=1"])
def test_bad_urls_refused_without_echoing(url):
    with pytest.raises(Invalid) as info:
        load_settings({"WAZUH_API_URL": url})
    assert "pw@" not in str(info.value)


@pytest.mark.parametrize(("var", "value"), [("WAZUH_VERIFY_TLS", "maybe"), ("WAZUH_TIMEOUT_SECONDS", "soon"),
                                            ("WAZUH_TIMEOUT_SECONDS", "0"), ("WAZUH_ALERTS_INDEX", "a b/c"),
                                            ("WAZUH_API_CREDENTIAL_REFS", "no-scheme")])
def test_bad_values_raise_invalid(var, value):
    with pytest.raises(Invalid):
        load_settings({var: value})


def test_ref_clash_between_sets_is_refused():
    with pytest.raises(Invalid) as info:
        load_settings({"WAZUH_API_CREDENTIAL_REFS": "vault:kv/x", "WAZUH_INDEXER_CREDENTIAL_REFS": "vault:kv/x"})
    assert info.value.field == "WAZUH_INDEXER_CREDENTIAL_REFS"


def test_empty_values_count_as_unset():
    api, _ = load_settings({"WAZUH_API_URL": "", "WAZUH_VERIFY_TLS": ""})
    assert api.api_url is None and api.verify_tls is True
