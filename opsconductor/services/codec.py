"""The remote codec of Temporal's Web UI and CLI: payloads in their JSON form, encrypted or
decrypted with the process keys (temporal/codec.py)."""

from typing import Any

from google.protobuf import json_format
from google.protobuf.json_format import ParseError
from pydantic import BaseModel
from temporalio.api.common.v1 import Payload

from opsconductor.errors import FieldProblem, InputInvalid
from opsconductor.temporal.codec import EncryptionCodec, PayloadDecryptionError

MAX_PAYLOADS = 1000


class Payloads(BaseModel):
    payloads: list[dict[str, Any]]


def _parse(body: Payloads) -> list[Payload]:
    if len(body.payloads) > MAX_PAYLOADS:
        raise InputInvalid(
            "too many payloads",
            [FieldProblem("body.payloads", f"at most {MAX_PAYLOADS}", "too_long")],
        )
    parsed = []
    for index, item in enumerate(body.payloads):
        try:
            parsed.append(json_format.ParseDict(item, Payload()))
        except ParseError as error:
            raise InputInvalid(
                "a payload is not valid", [FieldProblem(f"body.payloads.{index}", str(error))]
            ) from None
    return parsed


def _answer(payloads: list[Payload]) -> Payloads:
    return Payloads(payloads=[json_format.MessageToDict(payload) for payload in payloads])


async def encode(codec: EncryptionCodec, body: Payloads) -> Payloads:
    return _answer(await codec.encode(_parse(body)))


async def decode(codec: EncryptionCodec, body: Payloads) -> Payloads:
    try:
        return _answer(await codec.decode(_parse(body)))
    except PayloadDecryptionError as error:
        raise InputInvalid(str(error), [FieldProblem("body.payloads", str(error))]) from None
