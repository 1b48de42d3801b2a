"""Settings of the iTop provider, read from `ITOP_*` variables.

Loaded with `opsgate.settings.load(ItopSettings, prefix="ITOP_", environ=settings.env)`;
every field has a default so that loading never fails when nothing is set
(the provider then reports `configured() == False`). The password and the
token never appear in `repr()`.
"""

from __future__ import annotations

import msgspec

#: Fields whose values are secret: kept out of repr and health reports.
SECRET_FIELDS = frozenset({"password", "auth_token"})

#: Accepted values of `ITOP_AUTH_METHOD` (a token, when set, always wins).
AUTH_METHODS = ("form", "basic")


class ItopSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Connection and defaults for one iTop instance.

    Each field `x` comes from the variable `ITOP_X`.
    """

    url: str = ""  # application root, e.g. https://itop.example/ (endpoint: <root>webservices/rest.php)
    user: str = ""  # account with the "REST Services User" profile
    password: str = ""
    auth_token: str = ""  # iTop 3.1+ personal/application token; used instead of user/password
    auth_method: str = "form"  # form (auth_user/auth_pwd body fields) | basic (HTTP Basic)
    api_version: str = "1.3"
    default_org_id: str | None = None  # org_id of created tickets (mandatory in iTop)
    default_caller_id: str | None = None  # caller_id (a Person id) of created tickets
    default_team_id: str | None = None  # team_id used by ev_assign before resolving
    default_agent_id: str | None = None  # agent_id (a Person id) used by ev_assign
    default_service_id: str | None = None  # service_id sent with create and ev_resolve
    timezone: str = "Europe/Paris"  # the iTop server's `timezone` setting (dates on the wire are local)
    sync_interval_seconds: int = 60
    sync_overlap_seconds: int = 120  # pull-sync re-reads this far behind the last seen change
    page_size: int = 100  # objects per core/get page in pull sync
    verify_tls: bool = True
    timeout_seconds: float = 30.0

    def __repr__(self) -> str:
        parts = []
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if name in SECRET_FIELDS and value:
                parts.append(f"{name}='***'")
            else:
                parts.append(f"{name}={value!r}")
        return f"ItopSettings({', '.join(parts)})"

    __str__ = __repr__

    @property
    def app_root(self) -> str:
        """`url` with exactly one trailing slash ("" when unset)."""
        return self.url.rstrip("/") + "/" if self.url else ""

    @property
    def endpoint(self) -> str:
        """The REST endpoint, `<root>webservices/rest.php`."""
        return self.app_root + "webservices/rest.php"

    @property
    def auth_mode(self) -> str:
        """How the client authenticates: token, form or basic ("none" when no credentials)."""
        if self.auth_token:
            return "token"
        if self.user and self.password:
            return self.auth_method if self.auth_method in AUTH_METHODS else "form"
        return "none"

    def missing(self) -> list[str]:
        """The `ITOP_*` variables still needed to talk to iTop at all."""
        missing = []
        if not self.url:
            missing.append("ITOP_URL")
        if not self.auth_token:
            if not self.user:
                missing.append("ITOP_USER")
            if not self.password:
                missing.append("ITOP_PASSWORD")
        if self.auth_method not in AUTH_METHODS:
            missing.append("ITOP_AUTH_METHOD")
        return missing

    def public(self) -> dict[str, object]:
        """A JSON-able view without secrets (for health and diagnostics)."""
        return {
            "url": self.app_root,
            "api_version": self.api_version,
            "auth": self.auth_mode,
            "timezone": self.timezone,
            "verify_tls": self.verify_tls,
        }
