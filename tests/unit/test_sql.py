import pytest

from opsgate.db import sql


def test_parse_named_blocks():
    q = sql.parse("-- name: a\nSELECT 1;\n\n-- name: b_two\nSELECT $1::int\n  FROM x\n", "t.sql")
    assert q["a"] == "SELECT 1"
    assert q["b_two"] == "SELECT $1::int\n  FROM x"
    assert len(q) == 2


def test_missing_name_names_the_file():
    q = sql.parse("-- name: a\nSELECT 1", "t.sql")
    with pytest.raises(KeyError, match="t.sql"):
        q["nope"]


def test_duplicate_and_empty_blocks_are_errors():
    with pytest.raises(ValueError, match="twice"):
        sql.parse("-- name: a\nSELECT 1\n-- name: a\nSELECT 2", "t.sql")
    with pytest.raises(ValueError, match="empty"):
        sql.parse("-- name: a\n\n-- name: b\nSELECT 2", "t.sql")
