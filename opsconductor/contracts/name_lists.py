"""Long lists of target names, packed for Temporal payloads.

A run's input names its targets, and its result the targets that succeeded and failed. As JSON,
100,000 names of 25 characters are about 2.8 MB, over Temporal's 2 MB payload limit, so a run
that size could neither start nor end. Past `PACK_ABOVE` names the list is serialized as the
zlib of its JSON, base64-encoded (`{"zlib": "..."}`), a fifth of the size or less for host
names, and read back as the same list: code using the field never sees the difference. Shorter
lists stay plain JSON, which the Web UI shows as it is.
"""

import base64
import json
import zlib
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

PACK_ABOVE = 1_000
_PACKED = "zlib"


def _pack(names: list[str]) -> list[str] | dict[str, str]:
    if len(names) <= PACK_ABOVE:
        return names
    packed = zlib.compress(json.dumps(names, separators=(",", ":")).encode())
    return {_PACKED: base64.b64encode(packed).decode()}


def _unpack(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {_PACKED}:
        return json.loads(zlib.decompress(base64.b64decode(value[_PACKED])))
    return value


NameList = Annotated[list[str], BeforeValidator(_unpack), PlainSerializer(_pack, when_used="json")]
