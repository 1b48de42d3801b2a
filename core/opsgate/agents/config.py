"""The runtime configuration of agents (`GET|PUT /api/agents/config`) and model/harness resolution.

The configuration is one JSON document in `agent_runtime_config`, so every
API replica and runner reads the same values. It never holds a secret: keys
that look like one are refused, and the model proxy token lives only in the
server-side setting `AGENT_LLM_API_KEY`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta

from opsgate.agents.vocab import TASK_TYPES
from opsgate.errors import Invalid
from opsgate.settings import Settings

Name = Annotated[str, Meta(min_length=1, max_length=200)]
Minutes = Annotated[int, Meta(ge=1, le=10080)]

# A key is secret-looking when one of its `_`/`-` separated parts (or the whole
# key) names a credential: api_key, client_secret, password, token, ...
_SECRET_KEY = re.compile(
    r"(^|[_\-.])(api[_\-]?key|apikey|secret|secrets|password|passwd|passphrase|token|access[_\-]?token|"
    r"refresh[_\-]?token|bearer|credential|credentials|private[_\-]?key|oauth|oauth[_\-]?state|cookie|"
    r"session[_\-]?key|auth[_\-]?token|authorization)([_\-.]|$)",
    re.IGNORECASE,
)
ROUTE_KEY = re.compile(r"^(\*|(group|class|type|priority|provider):.{1,200})$")
# Model ids that name a local or third-party provider alias; CODEX_AUTH_MODE=oauth repairs them.
_ALIAS_PREFIXES = ("local", "qwen", "deepseek", "ollama", "lmstudio", "llama", "mistral", "openrouter", "vllm")


class Profile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """A named runtime profile: which harness and model, where the model proxy is."""

    harness: Name | None = None
    model: Name | None = None
    model_base_url: Annotated[str, Meta(max_length=2048)] | None = None
    timeout_minutes: Minutes | None = None
    description: Annotated[str, Meta(max_length=2000)] = ""


class ModelEntry(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    id: Name
    label: Annotated[str, Meta(max_length=200)] | None = None
    harness: Name | None = None


class RuntimeConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The editable runtime configuration; every field has a default."""

    active_profile: Name | None = None
    profiles: dict[str, Profile] = msgspec.field(default_factory=dict)
    # scope -> profile id or inline profile; scopes: group:<owning group>, class:<ticket class>,
    # type:<task type>, priority:<P1-P4>, provider:<name>, or * (any ticket)
    route_assignments: dict[str, str | Profile] = msgspec.field(default_factory=dict)
    max_concurrent_agents: Annotated[int, Meta(ge=0, le=10000)] = 4
    default_timeout_minutes: Minutes = 60
    default_harness: Name | None = None
    default_model: Name | None = None
    models: list[str | ModelEntry] = msgspec.field(default_factory=list)


class Resolved(msgspec.Struct, frozen=True, kw_only=True):
    """What a new task runs with."""

    harness: str
    model: str
    profile_id: str | None
    model_base_url: str | None
    timeout_minutes: int
    repaired_from: str | None = None  # the stale alias CODEX_AUTH_MODE=oauth replaced


def secret_paths(value: Any, path: str = "") -> list[str]:
    """Paths (`profiles.x.api_key`) of every key in `value` that looks like a secret."""
    found: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and _SECRET_KEY.search(key):
                found.append(here)
            found.extend(secret_paths(item, here))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found.extend(secret_paths(item, f"{path}[{i}]"))
    return found


def _field_of(message: str) -> str:
    # "Expected `int`, got `str` - at `$.profiles.x.timeout_minutes`" -> profiles.x.timeout_minutes
    match = re.search(r"at `\$\.?([^`]*)`", message)
    if match and match.group(1):
        return match.group(1)
    match = re.search(r"unknown field `([^`]+)`", message)
    if match:
        return match.group(1)
    match = re.search(r"missing required field `([^`]+)`", message)
    return match.group(1) if match else "body"


def parse(raw: Mapping[str, Any]) -> RuntimeConfig:
    """Convert a stored or submitted document, naming the bad field in `Invalid`."""
    try:
        return msgspec.convert(dict(raw), RuntimeConfig)
    except msgspec.ValidationError as exc:
        raise Invalid(_field_of(str(exc)), str(exc).split(" - at ")[0]) from exc


def _check_url(field: str, url: str | None) -> None:
    if url is None:
        return
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid(field, "must be an http(s) URL")
    if parts.username or parts.password:
        raise Invalid(field, "must not carry credentials; the model proxy token is the server-side AGENT_LLM_API_KEY")


def validate_update(current: RuntimeConfig, submitted: Mapping[str, Any], harnesses: Sequence[str]) -> RuntimeConfig:
    """The configuration after a PUT: top-level fields given replace the stored ones."""
    secrets = secret_paths(submitted)
    if secrets:
        raise Invalid(secrets[0], "looks like a secret; provider tokens, OAuth state and API keys are never "
                                  "accepted here (the model proxy token is the server-side AGENT_LLM_API_KEY)")
    merged = msgspec.to_builtins(current)
    merged.update(submitted)
    config = parse(merged)
    known = set(harnesses)

    def check_harness(field: str, name: str | None) -> None:
        if name is not None and name not in known:
            raise Invalid(field, f"unknown harness {name!r}; available: {', '.join(sorted(known)) or 'none'}")

    for pid, profile in config.profiles.items():
        if not pid.strip() or len(pid) > 200:
            raise Invalid(f"profiles.{pid}", "profile ids must be 1 to 200 characters")
        check_harness(f"profiles.{pid}.harness", profile.harness)
        _check_url(f"profiles.{pid}.model_base_url", profile.model_base_url)
    if config.active_profile is not None and config.active_profile not in config.profiles:
        raise Invalid("active_profile", f"no profile named {config.active_profile!r}")
    for scope, target in config.route_assignments.items():
        if not ROUTE_KEY.match(scope):
            raise Invalid(f"route_assignments.{scope}",
                          "scope must be *, group:<name>, class:<ticket class>, type:<task type>, "
                          "priority:<P1-P4> or provider:<name>")
        if scope.startswith("type:") and scope[5:] not in TASK_TYPES:
            raise Invalid(f"route_assignments.{scope}", f"unknown task type; must be one of {', '.join(TASK_TYPES)}")
        if isinstance(target, str):
            if target not in config.profiles:
                raise Invalid(f"route_assignments.{scope}", f"no profile named {target!r}")
        else:
            check_harness(f"route_assignments.{scope}.harness", target.harness)
            _check_url(f"route_assignments.{scope}.model_base_url", target.model_base_url)
    check_harness("default_harness", config.default_harness)
    for i, entry in enumerate(config.models):
        if isinstance(entry, ModelEntry):
            check_harness(f"models[{i}].harness", entry.harness)
    return config


def _route_profile(config: RuntimeConfig, ticket: Mapping[str, Any] | None,
                   task_type: str) -> tuple[str | None, Profile | None]:
    scopes: list[str] = []
    if ticket is not None:
        if ticket.get("owning_group"):
            scopes.append(f"group:{ticket['owning_group']}")
        scopes.append(f"class:{ticket.get('ticket_class')}")
    scopes.append(f"type:{task_type}")
    if ticket is not None:
        scopes.append(f"priority:{ticket.get('priority')}")
        scopes.append(f"provider:{ticket.get('provider')}")
    scopes.append("*")
    for scope in scopes:
        target = config.route_assignments.get(scope)
        if target is None:
            continue
        if isinstance(target, str):
            return target, config.profiles.get(target)
        return None, target
    return None, None


def is_stale_alias(model: str) -> bool:
    """A local or third-party provider alias (`local/agent-default`, `qwen/...`) rather than a Codex model."""
    low = model.strip().lower()
    return "/" in low or low.split("-", 1)[0] in _ALIAS_PREFIXES or low.split(":", 1)[0] in _ALIAS_PREFIXES


def resolve(config: RuntimeConfig, settings: Settings, harnesses: Sequence[str], *, harness: str | None,
            model: str | None, profile_id: str | None, ticket: Mapping[str, Any] | None,
            task_type: str) -> Resolved:
    """Harness and model of a new task: explicit value, then the route assignment for the
    ticket's scope, then the active profile, then the configured defaults."""
    profile: Profile | None = None
    chosen_id: str | None = None
    if profile_id is not None:
        profile_id = profile_id.strip()
        if profile_id not in config.profiles:
            raise Invalid("profile_id", f"no profile named {profile_id!r}")
        chosen_id, profile = profile_id, config.profiles[profile_id]
    else:
        chosen_id, profile = _route_profile(config, ticket, task_type)
        if profile is None and config.active_profile is not None:
            chosen_id, profile = config.active_profile, config.profiles.get(config.active_profile)
    known = sorted(harnesses)
    name = (harness or "").strip() or (profile.harness if profile else None) or config.default_harness
    if name is None and len(known) == 1:
        name = known[0]
    if name is None:
        raise Invalid("harness", "no harness given and no default_harness or profile configured; "
                                 f"available: {', '.join(known) or 'none'}")
    if name not in known:
        raise Invalid("harness", f"unknown harness {name!r}; available: {', '.join(known) or 'none'}")
    chosen_model = (model or "").strip() or (profile.model if profile else None) or config.default_model
    if not chosen_model:
        raise Invalid("model", "no model given and no default_model or profile model configured")
    repaired = None
    if name == "codex" and settings.codex_auth_mode == "oauth" and is_stale_alias(chosen_model):
        repaired, chosen_model = chosen_model, settings.codex_oauth_model
    return Resolved(
        harness=name, model=chosen_model, profile_id=chosen_id,
        model_base_url=profile.model_base_url if profile else None,
        timeout_minutes=(profile.timeout_minutes if profile and profile.timeout_minutes else
                         config.default_timeout_minutes),
        repaired_from=repaired,
    )


def model_list(config: RuntimeConfig) -> list[dict[str, Any]]:
    """Every model the configuration names, once each, with where it comes from."""
    seen: dict[str, dict[str, Any]] = {}
    for entry in config.models:
        item = {"id": entry} if isinstance(entry, str) else msgspec.to_builtins(entry)
        seen.setdefault(item["id"], {**item, "source": "models"})
    if config.default_model:
        seen.setdefault(config.default_model, {"id": config.default_model, "source": "default_model"})
    for pid, profile in config.profiles.items():
        if profile.model:
            seen.setdefault(profile.model, {"id": profile.model, "harness": profile.harness,
                                            "source": f"profile:{pid}"})
    return list(seen.values())
