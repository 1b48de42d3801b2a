"""The OQL subset the fake iTop understands.

    SELECT <Class> [AS <alias>] [WHERE <condition>]

Conditions combine with AND, OR and parentheses; comparisons are
`= != <> < <= > >=`, `[NOT] LIKE` (SQL wildcards `%` and `_`) and
`[NOT] IN (v, ...)`. Operands are attribute codes (optionally `alias.code`),
'quoted' or "quoted" strings (backslash escapes) and numbers. String
comparisons ignore case, as MySQL's default collation does; values that both
look numeric compare as numbers. Anything else is an `OqlError`, which the
fake reports like iTop: code 100 "Query failed to execute".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<num>-?\d+(?:\.\d+)?)
      | (?P<op>!=|<>|>=|<=|=|<|>|\(|\)|,)
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"SELECT", "AS", "WHERE", "AND", "OR", "NOT", "LIKE", "IN"}


class OqlError(Exception):
    """A query the fake cannot parse or evaluate."""


@dataclass(frozen=True)
class Field:
    name: str


@dataclass(frozen=True)
class Compare:
    left: Any
    op: str
    right: Any


@dataclass(frozen=True)
class BoolOp:
    op: str  # AND | OR
    items: tuple[Any, ...]


@dataclass(frozen=True)
class Query:
    cls: str
    alias: str
    where: Any | None


def _tokens(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise OqlError(f"Syntax error near '{text[pos:pos + 20]}'")
        pos = m.end()
        if m.group("str") is not None:
            raw = m.group("str")[1:-1]
            out.append(("lit", re.sub(r"\\(.)", r"\1", raw)))
        elif m.group("num") is not None:
            out.append(("lit", m.group("num")))
        elif m.group("op") is not None:
            out.append(("op", m.group("op")))
        else:
            name = m.group("name")
            out.append(("kw", name.upper()) if name.upper() in _KEYWORDS else ("name", name))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, Any] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, kind: str, value: Any = None) -> Any:
        tok = self.peek()
        if tok is None or tok[0] != kind or (value is not None and tok[1] != value):
            found = "end of query" if tok is None else repr(tok[1])
            raise OqlError(f"Syntax error: expecting {value or kind}, found {found}")
        self.i += 1
        return tok[1]

    def accept(self, kind: str, value: Any = None) -> bool:
        tok = self.peek()
        if tok is not None and tok[0] == kind and (value is None or tok[1] == value):
            self.i += 1
            return True
        return False

    def query(self) -> Query:
        self.take("kw", "SELECT")
        cls = self.take("name")
        alias = cls
        if self.accept("kw", "AS"):
            alias = self.take("name")
        where = None
        if self.accept("kw", "WHERE"):
            where = self.expr()
        if self.peek() is not None:
            raise OqlError(f"Syntax error: unexpected {self.peek()[1]!r}")  # type: ignore[index]
        return Query(cls=cls, alias=alias, where=where)

    def expr(self) -> Any:
        items = [self.conj()]
        while self.accept("kw", "OR"):
            items.append(self.conj())
        return items[0] if len(items) == 1 else BoolOp("OR", tuple(items))

    def conj(self) -> Any:
        items = [self.atom()]
        while self.accept("kw", "AND"):
            items.append(self.atom())
        return items[0] if len(items) == 1 else BoolOp("AND", tuple(items))

    def operand(self) -> Any:
        tok = self.peek()
        if tok is None:
            raise OqlError("Syntax error: unexpected end of query")
        self.i += 1
        if tok[0] == "name":
            return Field(tok[1])
        if tok[0] == "lit":
            return tok[1]
        raise OqlError(f"Syntax error: unexpected {tok[1]!r}")

    def atom(self) -> Any:
        if self.accept("op", "("):
            node = self.expr()
            self.take("op", ")")
            return node
        left = self.operand()
        negate = self.accept("kw", "NOT")
        if self.accept("kw", "LIKE"):
            return Compare(left, "NOT LIKE" if negate else "LIKE", self.operand())
        if self.accept("kw", "IN"):
            self.take("op", "(")
            values = [self.operand()]
            while self.accept("op", ","):
                values.append(self.operand())
            self.take("op", ")")
            return Compare(left, "NOT IN" if negate else "IN", tuple(values))
        if negate:
            raise OqlError("Syntax error: NOT must be followed by LIKE or IN")
        op = self.take("op")
        if op not in ("=", "!=", "<>", "<", "<=", ">", ">="):
            raise OqlError(f"Syntax error: unexpected {op!r}")
        return Compare(left, "!=" if op == "<>" else op, self.operand())


def parse(text: str) -> Query:
    """Parse one SELECT query."""
    return _Parser(text).query()


def _norm(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    text = "" if value is None else str(value)
    try:
        return float(text) if re.fullmatch(r"-?\d+(\.\d+)?", text) else text.casefold()
    except ValueError:
        return text.casefold()


def _cmp(a: Any, op: str, b: Any) -> bool:
    a, b = _norm(a), _norm(b)
    if type(a) is not type(b) and not (isinstance(a, (int, float)) and isinstance(b, (int, float))):
        a, b = str(a), str(b)
    if op == "=":
        return a == b
    if op == "!=":
        return a != b
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    if op == ">":
        return a > b
    return a >= b


def _like(value: Any, pattern: Any) -> bool:
    regex = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in str(pattern))
    return re.fullmatch(regex, "" if value is None else str(value), re.IGNORECASE | re.DOTALL) is not None


def evaluate(node: Any, resolve: Callable[[str], Any]) -> bool:
    """Evaluate a WHERE node; `resolve(code)` returns an attribute's value or raises OqlError."""
    if isinstance(node, BoolOp):
        results = (evaluate(item, resolve) for item in node.items)
        return all(results) if node.op == "AND" else any(results)
    value = (lambda x: resolve(x.name) if isinstance(x, Field) else x)
    left = value(node.left)
    if node.op in ("IN", "NOT IN"):
        hit = any(_cmp(left, "=", value(v)) for v in node.right)
        return hit if node.op == "IN" else not hit
    right = value(node.right)
    if node.op in ("LIKE", "NOT LIKE"):
        hit = _like(left, right)
        return hit if node.op == "LIKE" else not hit
    return _cmp(left, node.op, right)


def fields_of(node: Any) -> set[str]:
    """Every attribute code the condition mentions."""
    if node is None:
        return set()
    if isinstance(node, BoolOp):
        return set().union(*(fields_of(item) for item in node.items))
    found = set()
    for side in (node.left, *(node.right if isinstance(node.right, tuple) else (node.right,))):
        if isinstance(side, Field):
            found.add(side.name)
    return found
