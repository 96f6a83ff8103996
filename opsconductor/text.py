"""Text that any store accepts: the one rule for output, reasons and values bound for PostgreSQL.

Remote output is decoded as UTF-8 with `errors="backslashreplace"` (`OUTPUT_ERRORS`), and every
string written to the database passes through `storable` (JSON values through `storable_json`).
Together they give the rule documented in docs/engine.md ("Output"):

- a byte that is not part of valid UTF-8 is shown as `\\xNN` (two lowercase hex digits), e.g.
  `\\xff`;
- NUL (U+0000), which PostgreSQL refuses in text and in jsonb, is shown as `\\x00`;
- a lone surrogate (which has no UTF-8 encoding): U+DC80..U+DCFF, the form
  `errors="surrogateescape"` gives a raw byte, is shown as that byte `\\xNN`; any other as
  `\\uNNNN`;
- everything else (valid Unicode, tabs, other control characters, backslashes) is unchanged.

The escaped form is for reading: a command that itself prints `\\x00` looks the same.
"""

import re
from collections.abc import Callable
from typing import Any

# The decoding error handler for remote output: undecodable bytes become `\xNN`.
OUTPUT_ERRORS = "backslashreplace"

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code == 0:
        return "\\x00"
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"


def storable(text: str) -> str:
    """`text` with NUL and lone surrogates escaped; anything else is returned unchanged."""
    if text.isascii() and "\x00" not in text:
        return text
    return _UNSTORABLE.sub(_escaped, text)


def storable_json(value: Any, change: Callable[[str], str] = storable) -> Any:
    """A JSON-like value with every string in it (keys too) made `storable`, or given to
    `change` (which must make it storable too)."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, dict):
        return {change(str(key)): storable_json(item, change) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [storable_json(item, change) for item in value]
    return value


def storable_or_none(text: str | None) -> str | None:
    return None if text is None else storable(text)
