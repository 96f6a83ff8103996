"""The loopback service fixtures behave like the real services they stand in for."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import EmailMessage
from typing import Any

import asyncssh
import httpx
import pytest

from tests.fixtures.http_receiver import HttpReceiver
from tests.fixtures.smtp_sink import SmtpSink
from tests.fixtures.sshd import LoopbackSshd

pytestmark = pytest.mark.integration


@asynccontextmanager
async def connect(
    sshd: LoopbackSshd, **options: Any
) -> AsyncIterator[asyncssh.SSHClientConnection]:
    known_hosts = asyncssh.import_known_hosts(
        f"[{sshd.host}]:{sshd.port} {sshd.host_public_key_text}\n"
    )
    # No agent and no ~/.ssh keys, so only the credentials under test are tried.
    defaults: dict[str, Any] = {
        "port": sshd.port,
        "username": sshd.username,
        "known_hosts": known_hosts,
        "agent_path": None,
        "client_keys": [],
    }
    async with asyncssh.connect(sshd.host, **(defaults | options)) as conn:
        yield conn


async def test_sshd_key_login_runs_command(sshd: LoopbackSshd) -> None:
    async with connect(sshd, client_keys=[sshd.client_key_path]) as conn:
        result = await conn.run("echo hello", check=True)
        server_key = conn.get_server_host_key()
    assert result.stdout == "hello\n"
    assert server_key is not None
    assert server_key.get_fingerprint("sha256") == sshd.host_key_fingerprint


async def test_sshd_key_text_login(sshd: LoopbackSshd) -> None:
    key = asyncssh.import_private_key(sshd.client_key_text)
    async with connect(sshd, client_keys=[key]) as conn:
        result = await conn.run("whoami", check=True)
    assert result.stdout == f"{sshd.username}\n"


async def test_sshd_password_login(sshd: LoopbackSshd) -> None:
    async with connect(sshd, password=sshd.password) as conn:
        result = await conn.run("echo hello", check=True)
    assert result.stdout == "hello\n"


async def test_sshd_rejects_wrong_password(sshd: LoopbackSshd) -> None:
    with pytest.raises(asyncssh.PermissionDenied):
        async with connect(sshd, password=sshd.password + "x"):
            pass


async def test_sshd_rejects_unknown_host_key(sshd: LoopbackSshd) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    known_hosts = asyncssh.import_known_hosts(f"[{sshd.host}]:{sshd.port} {other}")
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        async with connect(sshd, password=sshd.password, known_hosts=known_hosts):
            pass


async def test_sshd_encrypted_key_with_passphrase(sshd: LoopbackSshd) -> None:
    async with connect(
        sshd,
        client_keys=[sshd.encrypted_key_path],
        passphrase=sshd.encrypted_key_passphrase,
    ) as conn:
        result = await conn.run("echo hello", check=True)
    assert result.stdout == "hello\n"


async def test_sshd_encrypted_key_wrong_passphrase(sshd: LoopbackSshd) -> None:
    with pytest.raises(asyncssh.KeyImportError):
        async with connect(sshd, client_keys=[sshd.encrypted_key_path], passphrase="wrong"):
            pass


async def test_sshd_handles_concurrent_connections(sshd: LoopbackSshd) -> None:
    async def run_one(i: int) -> str:
        async with connect(sshd, client_keys=[sshd.client_key_path]) as conn:
            result = await conn.run(f"echo {i}", check=True)
        return str(result.stdout).strip()

    outputs = await asyncio.gather(*(run_one(i) for i in range(40)))
    assert outputs == [str(i) for i in range(40)]


async def test_http_receiver_records_json_post(http_receiver: HttpReceiver) -> None:
    before = len(http_receiver.requests)
    async with httpx.AsyncClient(base_url=http_receiver.url) as client:
        response = await client.post("/hooks/a?x=1", json={"event": "done"})
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    request = http_receiver.wait_for(before + 1, timeout=5)[-1]
    assert (request.method, request.path, request.query) == ("POST", "/hooks/a", {"x": ["1"]})
    assert request.json == {"event": "done"}
    assert request.headers["Content-Type"] == "application/json"


async def test_http_receiver_programmed_response(http_receiver: HttpReceiver) -> None:
    http_receiver.respond("/fail", status=500, json={"error": "boom"})
    async with httpx.AsyncClient(base_url=http_receiver.url) as client:
        response = await client.get("/fail")
    assert response.status_code == 500
    assert response.json() == {"error": "boom"}


def test_smtp_sink_receives_authenticated_mail(smtp_sink: SmtpSink) -> None:
    message = EmailMessage()
    message["From"] = "ops@example.test"
    message["To"] = "oncall@example.test"
    message["Subject"] = "Job finished"
    message.set_content("All steps succeeded.")
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=10) as client:
        client.login("mailer", "mail-password")
        client.send_message(message)

    mail = smtp_sink.wait_for(1, timeout=5)[-1]
    assert mail.mail_from == "ops@example.test"
    assert mail.rcpt_tos == ["oncall@example.test"]
    assert mail.subject == "Job finished"
    assert mail.body.strip() == "All steps succeeded."
    assert mail.auth_login == "mailer"


def test_smtp_sink_rejects_bad_credentials(smtp_sink: SmtpSink) -> None:
    with (
        smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=10) as client,
        pytest.raises(smtplib.SMTPAuthenticationError),
    ):
        client.login("mailer", "nope")
