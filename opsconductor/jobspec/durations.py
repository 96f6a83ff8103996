"""Durations as people write them in job documents: `90s`, `5m`, `1h30m`, `250ms`, `2d`."""

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_PART = re.compile(r"(\d+)(ms|s|m|h|d)")
_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
}
DURATION_PATTERN = r"^(\d+(ms|s|m|h|d))+$"
# Far beyond any timeout, window or interval a job needs, and within what timedelta and
# Temporal's durations hold (a larger one used to fail the request with a 500).
MAX_DURATION = timedelta(days=3650)


def parse_duration(text: str) -> timedelta:
    compact = text.strip().replace(" ", "")
    if not re.fullmatch(DURATION_PATTERN, compact):
        raise ValueError(f"{text!r} is not a duration (write e.g. 30s, 5m, 1h30m)")
    try:
        total = sum(
            (int(amount) * _UNITS[unit] for amount, unit in _PART.findall(compact)), timedelta()
        )
    except OverflowError:
        total = MAX_DURATION + timedelta(days=1)
    if total > MAX_DURATION:
        raise ValueError(f"{text!r} is longer than {MAX_DURATION.days}d")
    if total <= timedelta():
        raise ValueError("a duration must be longer than zero")
    return total


def format_duration(value: timedelta) -> str:
    milliseconds = int(value.total_seconds() * 1000)
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        amount, milliseconds = divmod(milliseconds, size)
        if amount:
            parts.append(f"{amount}{unit}")
    if milliseconds:
        parts.append(f"{milliseconds}ms")
    return "".join(parts) or "0s"


def _coerce(value: Any) -> Any:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return parse_duration(f"{int(value)}s")
    return value


Duration = Annotated[
    timedelta,
    BeforeValidator(_coerce),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "examples": ["30s", "5m"]}),
]
