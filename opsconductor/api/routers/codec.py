"""The remote codec for the Temporal Web UI and CLI: they send the encrypted payloads they
show, we answer them decrypted (or encrypt what they send). Outside /api/v1, as Temporal's
tools expect `<endpoint>/encode` and `<endpoint>/decode`."""

from fastapi import APIRouter

from opsconductor.api.deps import CodecDep
from opsconductor.api.permissions import CodecCaller, CodecEncoder
from opsconductor.services import codec
from opsconductor.services.codec import Payloads

router = APIRouter(prefix="/codec", tags=["codec"])


@router.post("/encode", name="codec.encode")
async def encode(body: Payloads, caller: CodecEncoder, keys: CodecDep) -> Payloads:
    return await codec.encode(keys, body)


@router.post("/decode", name="codec.decode")
async def decode(body: Payloads, caller: CodecCaller, keys: CodecDep) -> Payloads:
    return await codec.decode(keys, body)
