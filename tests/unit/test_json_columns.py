"""JSON and JSONB columns are read by pydantic-core's parser (opsconductor/db.py `json_value`):
the values must be the ones `json.loads` made before, whatever PostgreSQL can store."""

import json

import pytest

from opsconductor.db import json_value

STORED = [
    '{"fleet": "b4", "env": "prod"}',
    "{}",
    '{"a": 1, "a": 2}',  # duplicate keys: the last wins, as before
    "123456789012345678901234567890",
    "-9223372036854775809",
    "[1.0, 2.50, 3e0, 1.5e3, 123.000, -0.0]",
    "0.1000000000000000055511151231257827",
    "1.7976931348623157e308",
    "5e-324",
    "1e400",  # a numeric PostgreSQL keeps; a float cannot: infinity, as json.loads made it
    '"\\ud83d\\ude00 caf\\u00e9"',
    '{"nested": {"list": [null, true, false, "x"]}}',
    # Deeper than pydantic-core parses (200 levels): json.loads reads it.
    "[" * 300 + "]" * 300,
]


@pytest.mark.parametrize("text", STORED)
def test_a_column_reads_as_json_loads_read_it(text: str) -> None:
    value = json_value(text)
    assert value == json.loads(text)
    assert repr(value) == repr(json.loads(text))  # types too: int stays int, -0.0 stays -0.0
