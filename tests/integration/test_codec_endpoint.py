"""The codec endpoint the Temporal Web UI calls: authenticated, and under `up` open to the
dev UI over loopback from its origin only."""

from pathlib import Path

import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload

from opsconductor.api.app import create_app
from opsconductor.config import Settings
from tests.conftest import make_settings
from tests.identity_helpers import Account, assert_problem

pytestmark = pytest.mark.integration

UI_ORIGIN = "http://127.0.0.1:8233"


def plain(text: str) -> dict[str, object]:
    return json_format.MessageToDict(
        Payload(metadata={"encoding": b"json/plain"}, data=f'"{text}"'.encode())
    )


async def test_admins_encode_and_readers_decode(
    http: httpx.AsyncClient, admin: Account, operator: Account, viewer: Account
) -> None:
    # A sealed payload is what the workers accept: only admins may have one made.
    refused = await http.post(
        "/codec/encode", json={"payloads": [plain("hello")]}, headers=operator.headers
    )
    assert_problem(refused, 403)
    encoded = await http.post(
        "/codec/encode", json={"payloads": [plain("hello")]}, headers=admin.headers
    )
    assert encoded.status_code == 200, encoded.text
    sealed = encoded.json()["payloads"][0]
    assert "hello" not in str(sealed)
    decoded = await http.post("/codec/decode", json={"payloads": [sealed]}, headers=viewer.headers)
    assert decoded.json() == {"payloads": [plain("hello")]}
    # What the server or a plain-JSON client wrote is shown as it is (workers refuse it).
    shown = await http.post(
        "/codec/decode", json={"payloads": [plain("as-is")]}, headers=viewer.headers
    )
    assert shown.json() == {"payloads": [plain("as-is")]}


async def test_anonymous_calls_are_refused_by_default(http: httpx.AsyncClient) -> None:
    answer = await http.post(
        "/codec/decode", json={"payloads": [plain("x")]}, headers={"Origin": UI_ORIGIN}
    )
    assert_problem(answer, 401)


@pytest.fixture
def dev_settings(tmp_path: Path, database_url: str, temporal_address: str) -> Settings:
    return make_settings(
        tmp_path,
        database_url=database_url,
        temporal_address=temporal_address,
        codec_cors_origins=[UI_ORIGIN],
        codec_trust_loopback_ui=True,
    )


async def test_under_up_the_dev_ui_decodes_over_loopback_from_its_origin(
    dev_settings: Settings,
) -> None:
    app = create_app(dev_settings)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http,
    ):
        body = {"payloads": [plain("x")]}
        from_ui = await http.post("/codec/encode", json=body, headers={"Origin": UI_ORIGIN})
        elsewhere = await http.post(
            "/codec/encode", json=body, headers={"Origin": "http://evil.example"}
        )
        preflight = await http.options(
            "/codec/decode",
            headers={"Origin": UI_ORIGIN, "Access-Control-Request-Method": "POST"},
        )
    assert from_ui.status_code == 200
    assert elsewhere.status_code == 401
    assert preflight.headers["Access-Control-Allow-Origin"] == UI_ORIGIN


async def test_the_dev_ui_is_not_trusted_from_another_machine(dev_settings: Settings) -> None:
    app = create_app(dev_settings)
    transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 50000))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://ops.example") as http,
    ):
        answer = await http.post(
            "/codec/decode", json={"payloads": [plain("x")]}, headers={"Origin": UI_ORIGIN}
        )
    assert answer.status_code == 401


async def test_the_uis_preflight_is_answered_for_the_codec_only(
    tmp_path: Path, database_url: str, temporal_address: str
) -> None:
    """What the Temporal UI's browser sends before a codec call with passAccessToken and
    includeCredentials on; the same preflight to the rest of the API is not answered."""
    settings = make_settings(
        tmp_path,
        database_url=database_url,
        temporal_address=temporal_address,
        codec_cors_origins=[UI_ORIGIN],
        cors_origins=["https://console.example"],
    )
    app = create_app(settings)
    ui_preflight = {
        "Origin": UI_ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
    }
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000"
    ) as http:
        codec = await http.options("/codec/decode", headers=ui_preflight)
        api_preflight = await http.options("/api/v1/runs", headers=ui_preflight)
        console_to_codec = await http.options(
            "/codec/decode",
            headers={**ui_preflight, "Origin": "https://console.example"},
        )
    assert codec.status_code == 200, codec.text
    assert codec.headers["Access-Control-Allow-Origin"] == UI_ORIGIN
    assert codec.headers["Access-Control-Allow-Credentials"] == "true"
    allowed = {
        name.strip().lower() for name in codec.headers["Access-Control-Allow-Headers"].split(",")
    }
    assert {"authorization", "content-type", "x-namespace"} <= allowed
    assert "POST" in codec.headers["Access-Control-Allow-Methods"]
    assert "Access-Control-Allow-Origin" not in api_preflight.headers
    assert "Access-Control-Allow-Origin" not in console_to_codec.headers
