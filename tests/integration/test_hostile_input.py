"""Hostile input through the API: template and shell injection, oversized bodies, requests for
cloud metadata, and SSH targets that are closed, blackholed or never speak."""

from __future__ import annotations

import secrets
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.sshd import LoopbackSshd
from tests.identity_helpers import PROBLEM, Account, api
from tests.run_helpers import TERMINAL, run_on_target, start_job_run, target_steps, wait_for
from tests.vault_helpers import grant, key_credential, post_ok, shared_credential, sshd_target

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]

MiB = 1024 * 1024


@pytest.mark.parametrize(
    "attack",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ params.who.__class__.__base__.__subclasses__() }}",
        "{{ ('x' * 100000) * 100000 }}",
        "{{ 'x' | center(10 ** 10) }}",
    ],
)
async def test_template_injection_in_a_step_fails_that_step_and_runs_nothing(
    http: httpx.AsyncClient, operator: Account, loopback: str, attack: str
) -> None:
    run = await run_on_target(
        http,
        operator,
        loopback,
        {"id": "inject", "action": "ssh.command", "with": {"command": f"echo {attack}"}},
        parameters={"who": "ops"},
    )
    step = target_steps(run)["inject"]
    assert (run["status"], step["status"]) == ("failed", "failed"), run
    assert step["reason"].startswith("with.command: template failed"), step
    assert step["stdout"] in ("", None)


async def test_parameters_are_data_quote_keeps_them_one_word_and_patterns_refuse_them(
    http: httpx.AsyncClient, operator: Account, loopback: str
) -> None:
    planted = Path(f"/tmp/opsc-injected-{uuid.uuid4().hex}")
    hostile = f"x; touch {planted} $(touch {planted}) `touch {planted}` {{{{ 7 * 7 }}}}"
    document = {
        "name": "quoted",
        "targets": {"names": [loopback]},
        "parameters": {
            "who": {"type": "string"},
            "service": {"type": "string", "default": "nginx", "pattern": "^[a-z0-9-]+$"},
        },
        "steps": [
            {
                "id": "say",
                "action": "ssh.command",
                "with": {"command": "printf '%s\\n' {{ params.who | quote }}"},
            }
        ],
    }
    run_id = await start_job_run(http, operator, document, {"who": hostile})
    run = await wait_for(http, operator, run_id, TERMINAL)
    assert run["status"] == "succeeded", run
    # One argument, printed as given: no command ran, and a parameter is never re-rendered.
    assert target_steps(run)["say"]["stdout"] == hostile
    assert not planted.exists()

    job_id = run["job_id"]
    refused = await http.post(
        api(f"/jobs/{job_id}/runs"),
        json={"parameters": {"who": "x", "service": "nginx; reboot"}},
        headers=operator.headers,
    )
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == PROBLEM
    assert [error["path"] for error in refused.json()["errors"]] == ["body.parameters.service"]


async def test_bodies_over_the_limit_are_refused_with_413_before_they_are_read(
    http: httpx.AsyncClient, operator: Account
) -> None:
    oversized = b'{"name": "' + b"x" * (9 * MiB) + b'"}'
    for headers in (operator.headers, {}):
        answer = await http.post(
            api("/jobs"), content=oversized, headers={**headers, "Content-Type": "application/json"}
        )
        assert answer.status_code == 413, answer.text[:200]
        assert answer.headers["content-type"] == PROBLEM
        assert answer.json()["type"] == "https://opsconductor.dev/problems/content-too-large"

    async def chunks() -> AsyncIterator[bytes]:
        # No Content-Length: the limit counts the bytes as they arrive.
        for _ in range(9):
            yield b"x" * MiB

    streamed = await http.post(
        api("/targets/import"),
        content=chunks(),
        headers={**operator.headers, "Content-Type": "text/csv"},
    )
    assert streamed.status_code == 413, streamed.text[:200]
    assert streamed.headers["content-type"] == PROBLEM


RULE = "OPSCONDUCTOR_HTTP_DENIED_NETWORKS"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (
            "http://169.254.169.254/latest/meta-data/",
            f"with.url: 169.254.169.254 resolves to 169.254.169.254, in the denied network "
            f"169.254.0.0/16 ({RULE})",
        ),
        (
            "http://[::ffff:169.254.169.254]/latest/meta-data/",
            "with.url: ::ffff:169.254.169.254 resolves to ::ffff:a9fe:a9fe (169.254.169.254), in "
            f"the denied network 169.254.0.0/16 ({RULE})",
        ),
        (
            "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
            "with.url: 64:ff9b::a9fe:a9fe resolves to 64:ff9b::a9fe:a9fe (169.254.169.254), in "
            f"the denied network 169.254.0.0/16 ({RULE})",
        ),
        (
            "http://[fd00:ec2::254]/latest/meta-data/",
            "with.url: fd00:ec2::254 resolves to fd00:ec2::254, in the denied network "
            f"fd00:ec2::254/128 ({RULE})",
        ),
        (
            "http://2852039166/computeMetadata/v1/",
            "with.url: 2852039166 resolves to 169.254.169.254, in the denied network "
            f"169.254.0.0/16 ({RULE})",
        ),
        (
            "http://0.0.0.0:22/",
            f"with.url: 0.0.0.0 resolves to 0.0.0.0, in the denied network 0.0.0.0/8 ({RULE})",
        ),
        (
            "http://metadata.google.internal/computeMetadata/v1/",
            "with.url: metadata.google.internal is a cloud metadata service "
            f"({RULE} denies 169.254.169.254)",
        ),
    ],
)
async def test_http_request_refuses_cloud_metadata_addresses(
    http: httpx.AsyncClient, operator: Account, url: str, reason: str
) -> None:
    run_id = await start_job_run(
        http,
        operator,
        {
            "name": f"metadata-{uuid.uuid4().hex[:8]}",
            "steps": [
                {"id": "steal", "run_once": True, "action": "http.request", "with": {"url": url}}
            ],
        },
    )
    run = await wait_for(http, operator, run_id, TERMINAL)
    (step,) = run["steps"]
    assert (run["status"], step["status"], step["reason"]) == ("failed", "failed", reason)
    assert step["attempts"] == 1


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


async def add_ssh_target(
    client: httpx.AsyncClient,
    admin: Account,
    sshd: LoopbackSshd,
    name: str,
    address: str,
    port: int,
) -> None:
    credential = await shared_credential(client, admin.headers, key_credential(sshd, f"{name}-key"))
    target = {**sshd_target(sshd, credential["id"], name), "address": address, "port": port}
    await post_ok(client, "/targets", admin.headers, target)


async def test_closed_blackholed_and_silent_ssh_targets_fail_their_step_within_its_timeout(
    http: httpx.AsyncClient,
    admin: Account,
    operator: Account,
    sshd: LoopbackSshd,
    silent_listener: int,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]  # bound, never listening: connections are refused
        await add_ssh_target(http, admin, sshd, "closed", "127.0.0.1", closed)
        await add_ssh_target(http, admin, sshd, "blackholed", "10.255.255.1", 22)
        await add_ssh_target(http, admin, sshd, "silent", "127.0.0.1", silent_listener)
        started = time.monotonic()
        run_id = await start_job_run(
            http,
            operator,
            {
                "name": "unreachable",
                "targets": {"names": ["closed", "blackholed", "silent"]},
                "steps": [
                    {
                        "id": "hello",
                        "action": "ssh.command",
                        "with": {"command": "echo hello"},
                        "timeout": "4s",
                    }
                ],
            },
        )
        run = await wait_for(http, operator, run_id, TERMINAL)
    elapsed = time.monotonic() - started
    assert run["status"] == "failed", run
    reasons = {target["name"]: target["steps"][0]["reason"] for target in run["targets"]}
    assert reasons["closed"].startswith(
        f"cannot connect to closed (127.0.0.1:{closed}): ConnectionRefusedError"
    ), reasons
    assert reasons["silent"] == (
        f"cannot connect to silent (127.0.0.1:{silent_listener}): TimeoutError: "
        "no SSH handshake within 3 s"
    )
    # What a blackholed address answers depends on the network (a timeout, or a middlebox
    # that drops the connection); the step names the target either way.
    assert reasons["blackholed"].startswith("cannot connect to blackholed (10.255.255.1:22): ")
    assert elapsed < 20, elapsed


async def test_offsets_past_bigint_and_text_postgres_cannot_store_are_refused_by_field(
    http: httpx.AsyncClient, admin: Account
) -> None:
    # Each of these was a 500 found by schemathesis.
    offset = await http.get(
        api("/users"), params={"offset": 9930183222089251553280}, headers=admin.headers
    )
    nul_body = await http.post(
        api("/target-groups"),
        json={"name": "fuzzed", "description": "a\u0000b", "vars": {"k\u0000": "v"}},
        headers=admin.headers,
    )
    nul_query = await http.get(api("/targets"), params={"q": "a\u0000"}, headers=admin.headers)
    surrogate = await http.post(
        api("/targets"),
        content=b'{"name": "x", "address": "h", "description": "\\ud909"}',
        headers={**admin.headers, "Content-Type": "application/json"},
    )
    for answer, paths in (
        (offset, ["query.offset"]),
        (nul_body, ["body.description", "body.vars.k?"]),
        (nul_query, ["query.q"]),
        (surrogate, ["body.description"]),
    ):
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"] == PROBLEM
        assert [error["path"] for error in answer.json()["errors"]] == paths, answer.text
    groups = await http.get(api("/target-groups"), headers=admin.headers)
    assert groups.json()["total"] == 0


async def test_a_flood_of_output_is_capped_on_the_record_and_kept_in_the_log(
    http: httpx.AsyncClient, operator: Account, loopback: str
) -> None:
    run = await run_on_target(
        http,
        operator,
        loopback,
        {
            "id": "flood",
            "action": "ssh.command",
            "with": {"command": "for i in $(seq 6000); do echo line-$i-xxxxxxxxxx; done"},
        },
    )
    stdout = target_steps(run)["flood"]["stdout"]
    assert run["status"] == "succeeded"
    kept, note = stdout.rsplit("\n", 1)
    assert len(kept) <= 64 * 1024
    assert kept.endswith("line-6000-xxxxxxxxxx")
    assert note.startswith("[… ")
    assert note.endswith(" earlier characters in the run log]")
    # Every line reaches the log. Before: thousands of lines between two flushes went in one
    # insert past PostgreSQL's parameter limit, and lines a flush held when the step ended
    # were dropped; the log kept none or a tail of them.
    lines: list[str] = []
    while len(lines) < 10000:
        page = await http.get(
            api(f"/runs/{run['id']}/logs"),
            params={"after": len(lines)},
            headers=operator.headers,
        )
        if not page.json():
            break
        lines += [entry["line"] for entry in page.json()]
    assert sorted(lines) == sorted(f"line-{i}-xxxxxxxxxx" for i in range(1, 6001)), lines[:3]


async def test_a_line_without_end_is_logged_by_its_start_with_no_secret_cut_in_half(
    http: httpx.AsyncClient, admin: Account, operator: Account, loopback: str
) -> None:
    # A secret longer than what is masked of a cut line's start: if the cut kept part of it,
    # that part would reach the log unmasked.
    value = secrets.token_hex(500)
    credential = await post_ok(
        http,
        "/credentials",
        admin.headers,
        {"name": f"long-{uuid.uuid4().hex[:6]}", "kind": "secret", "secret": {"value": value}},
    )
    await grant(http, admin.headers, credential["id"], roles=["operator"])
    run = await run_on_target(
        http,
        operator,
        loopback,
        {
            "id": "zeros",
            "action": "ssh.command",
            "with": {"command": "head -c 134217728 /dev/zero | tr '\\0' x; echo; echo after"},
        },
        {
            "id": "secret",
            "action": "ssh.command",
            "with": {
                "command": f"s='{{{{ secret(\"{credential['name']}\") }}}}'; i=0; "
                'while [ $i -lt 70 ]; do printf %s "$s"; i=$((i+1)); done; echo; echo after'
            },
        },
    )
    # Before, the worker joined each piece of a line to all of it before: 128 MiB without a
    # newline held the worker's loop for minutes (and its memory grew with the line).
    assert run["status"] == "succeeded", run
    answer = await http.get(api(f"/runs/{run['id']}/logs"), headers=operator.headers)
    logged: dict[str, list[str]] = {"zeros": [], "secret": []}
    for entry in answer.json():
        logged[entry["step_id"]].append(entry["line"])
    assert logged["zeros"] == ["x" * 8192, "after"]
    # The cut line keeps what is left of its start once masked, less the longest secret's
    # length: here nothing, where a plain mask would have kept 536 characters of the secret.
    assert logged["secret"] == ["", "after"]
    assert value[:32] not in answer.text


async def test_a_duration_too_large_for_any_clock_is_refused_by_field(
    http: httpx.AsyncClient, operator: Account
) -> None:
    # A 500 found by schemathesis (an OverflowError in the duration parser).
    answer = await http.post(
        api("/jobs"),
        json={
            "name": "forever",
            "steps": [
                {
                    "id": "wait",
                    "run_once": True,
                    "action": "control.sleep",
                    "with": {"duration": "1s"},
                    "timeout": "99999999999999999999d",
                }
            ],
        },
        headers=operator.headers,
    )
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == PROBLEM
    assert [error["path"] for error in answer.json()["errors"]] == ["steps.0.timeout"]


async def test_a_backtracking_pattern_is_answered_at_once_with_the_parameter_named(
    http: httpx.AsyncClient, operator: Account
) -> None:
    document = {
        "name": "regex-bomb",
        "parameters": {"name": {"type": "string", "pattern": "(a+)+$"}},
        "steps": [
            {"id": "wait", "run_once": True, "action": "control.sleep", "with": {"duration": "1s"}}
        ],
    }
    job = await post_ok(http, "/jobs", operator.headers, document)
    # Unbounded backtracking would hold the event loop for far longer than this client waits.
    answer = await http.post(
        api(f"/jobs/{job['id']}/runs"),
        json={"parameters": {"name": "a" * 50000 + "!"}},
        headers=operator.headers,
        timeout=5,
    )
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM)
    (problem,) = answer.json()["errors"]
    assert problem["path"] == "body.parameters.name"
    assert problem["type"] == "pattern_timeout"


class EndlessBody:
    """An HTTP server answering every request with a chunked body that never ends; counts
    what it managed to send before the client hung up."""

    def __init__(self) -> None:
        self.sent = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/stream"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        connection, _ = self._listener.accept()
        with connection:
            request = b""
            while b"\r\n\r\n" not in request:
                request += connection.recv(4096)
            connection.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            piece = b"%x\r\n%s\r\n" % (64 * 1024, b"y" * 64 * 1024)
            try:
                while True:
                    connection.sendall(piece)
                    self.sent += len(piece)
            except OSError:
                return

    def close(self) -> None:
        self._listener.close()


async def test_an_answer_that_never_ends_is_cut_at_1_mib_and_the_step_ends(
    http: httpx.AsyncClient, operator: Account
) -> None:
    server = EndlessBody()
    try:
        run_id = await start_job_run(
            http,
            operator,
            {
                "name": f"endless-{uuid.uuid4().hex[:8]}",
                "steps": [
                    {
                        "id": "fetch",
                        "run_once": True,
                        "action": "http.request",
                        "with": {"url": server.url},
                    }
                ],
            },
        )
        # Before, the worker read the whole body: the step ran (and its memory grew) until the
        # step's own 10-minute timeout.
        run = await wait_for(http, operator, run_id, TERMINAL, polls=300)
    finally:
        server.close()
    (step,) = run["steps"]
    assert (run["status"], step["status"]) == ("succeeded", "succeeded"), run
    # The record keeps the last 64 KiB of the 1 MiB read, and says the body went on.
    kept, cut, bounded = step["stdout"].rsplit("\n", 2)
    assert set(kept) == {"y"}
    assert cut == "[… the body went on past 1 MiB; the rest was not read]"
    assert bounded.endswith(" earlier characters in the run log]")
    # The worker stopped reading and hung up: what the server got out is what fits in the
    # sockets' buffers past the 1 MiB kept, not an endless stream.
    assert server.sent < 32 * MiB
