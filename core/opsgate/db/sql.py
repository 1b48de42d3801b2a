"""Named SQL statements kept in `queries.sql` files.

Each statement is a block headed `-- name: <snake_name>`; `load(__package__)`
parses the package's `queries.sql` once. Every loaded statement is also kept
in `REGISTRY` so the test suite can prepare each one against the schema.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import resources

_HEADER = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)

REGISTRY: dict[str, str] = {}


class Queries(Mapping[str, str]):
    """Statements of one file; a missing name raises `KeyError` naming the file."""

    def __init__(self, origin: str, statements: dict[str, str]) -> None:
        self._origin = origin
        self._statements = statements

    def __getitem__(self, name: str) -> str:
        try:
            return self._statements[name]
        except KeyError:
            raise KeyError(f"no statement named {name!r} in {self._origin}") from None

    def __iter__(self):
        return iter(self._statements)

    def __len__(self) -> int:
        return len(self._statements)


def parse(text: str, origin: str = "<sql>") -> Queries:
    """Split a queries file into its named statements."""
    statements: dict[str, str] = {}
    matches = list(_HEADER.finditer(text))
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        body = text[match.end():end].strip().rstrip(";").strip()
        name = match.group(1)
        if name in statements:
            raise ValueError(f"{origin}: statement {name!r} defined twice")
        if not body:
            raise ValueError(f"{origin}: statement {name!r} is empty")
        statements[name] = body
    return Queries(origin, statements)


def load(package: str, filename: str = "queries.sql") -> Queries:
    """Parse `<package>/<filename>` and register its statements for the preparation check."""
    origin = f"{package}/{filename}"
    queries = parse(resources.files(package).joinpath(filename).read_text(encoding="utf-8"), origin)
    for name in queries:
        REGISTRY[f"{package}:{name}"] = queries[name]
    return queries
