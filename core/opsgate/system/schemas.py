"""Health and plugin listing shapes."""

from __future__ import annotations

import msgspec

from opsgate.plugins import PluginInfo


class Health(msgspec.Struct, frozen=True, kw_only=True):
    status: str
    version: str
    database: str


class PluginList(msgspec.Struct, frozen=True, kw_only=True):
    plugins: list[PluginInfo]
