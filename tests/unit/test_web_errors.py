"""Which request field a Litestar validation item names (opsgate.web.errors._field_of)."""

import pytest

from opsgate.web.errors import _field_of


@pytest.mark.parametrize(("item", "field"), [
    ({"key": "body", "message": "Expected `str`, got `int`", "source": "body"}, "body"),
    ({"key": "body", "message": "Expected `str` of length <= 65536", "source": "body"}, "body"),
    ({"key": "title", "message": "Expected `str`, got `int`", "source": "body"}, "title"),
    ({"key": "details.x", "message": "Expected `str`, got `int`", "source": "body"}, "details.x"),
    ({"key": "data", "message": "Object missing required field `title`", "source": "body"}, "title"),
    ({"key": "data", "message": "Object missing required field `body`", "source": "body"}, "body"),
    ({"key": "data", "message": "Object contains unknown field `surprise`", "source": "body"}, "surprise"),
    ({"key": "data", "message": "Expected `object`, got `array`", "source": "body"}, "body"),
    ({"key": "data", "message": "Expected `int`, got `str` - at `$.limits.max`"}, "limits.max"),
    ({"message": "Expected `object`, got `str`"}, "body"),
    ({"key": "limit", "message": "Expected `int` >= 1", "source": "query"}, "limit"),
])
def test_field_of(item, field):
    assert _field_of(item) == field
