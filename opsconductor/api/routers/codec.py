"""The remote codec for the Temporal Web UI and CLI: they send the encrypted payloads they
show, we answer them decrypted (or encrypt what they send). Outside /api/v1, as Temporal's
tools expect `<endpoint>/encode` and `<endpoint>/decode`."""

from typing import Any

from fastapi import APIRouter, Request
from google.protobuf import json_format
from google.protobuf.json_format import ParseError
from pydantic import BaseModel
from temporalio.api.common.v1 import Payload

from opsconductor.api.permissions import CodecCaller
from opsconductor.errors import FieldProblem, InputInvalid
from opsconductor.temporal.codec import EncryptionCodec, PayloadDecryptionError

router = APIRouter(prefix="/codec", tags=["codec"])

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


def _codec(request: Request) -> EncryptionCodec:
    codec: EncryptionCodec = request.app.state.codec
    return codec


@router.post("/encode", name="codec.encode", response_model=Payloads)
async def encode(body: Payloads, caller: CodecCaller, request: Request) -> Payloads:
    return _answer(await _codec(request).encode(_parse(body)))


@router.post("/decode", name="codec.decode", response_model=Payloads)
async def decode(body: Payloads, caller: CodecCaller, request: Request) -> Payloads:
    try:
        return _answer(await _codec(request).decode(_parse(body)))
    except PayloadDecryptionError as error:
        raise InputInvalid(str(error), [FieldProblem("body.payloads", str(error))]) from None
