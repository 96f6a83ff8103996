"""winrm.cmd and winrm.powershell through the API and the job-run workflow.

No Windows host exists here: the real pypsrp client talks to a protocol-level fake WSMan
endpoint on loopback (tests/fixtures/wsman.py), which records what reached "the host" and
answers with programmed output and exit codes.
"""

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.wsman import TERMINATE, FakeWsman, Reply, self_signed_certificate
from tests.identity_helpers import Account, api
from tests.run_helpers import TERMINAL, run_on_target, start_job_run, target_steps, wait_for
from tests.vault_helpers import planted_secret, post_ok, shared_credential

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]

USERNAME = "Administrator"
PASSWORD = "Winrm-pass-" + uuid.uuid4().hex[:8]
PLAIN_HTTP = {"winrm_allow_unencrypted": True}


@pytest.fixture
def wsman() -> Iterator[FakeWsman]:
    with FakeWsman(USERNAME, PASSWORD) as fake:
        yield fake


async def add_target(
    client: httpx.AsyncClient,
    admin: Account,
    fake: FakeWsman,
    *,
    password: str = PASSWORD,
    verify_tls: bool | None = None,
    vars: dict[str, Any] | None = None,
) -> str:
    name = f"win-{uuid.uuid4().hex[:6]}"
    credential: dict[str, Any] = {
        "name": f"{name}-login",
        "kind": "winrm",
        "username": USERNAME,
        "transport": "basic",
        "secret": {"password": password},
    }
    if verify_tls is not None:
        credential["verify_tls"] = verify_tls
    created = await shared_credential(client, admin.headers, credential)
    target = {
        "name": name,
        "address": fake.host,
        "port": fake.port,
        "protocol": "winrm",
        "credential_id": created["id"],
        "os": "windows",
        "vars": PLAIN_HTTP if vars is None else vars,
    }
    await post_ok(client, "/targets", admin.headers, target)
    return name


async def test_cmd_and_powershell_steps_run_on_the_host(
    http: httpx.AsyncClient, admin: Account, operator: Account, wsman: FakeWsman
) -> None:
    script = "$svc = Get-Service -Name 'Spooler'\nWrite-Output \"spooler: $($svc.Status)\"\n"
    wsman.reply("hostname", Reply(stdout="WIN-FAKE-01\n"))
    wsman.reply("Get-Service", Reply(stdout="spooler: Running\nÜberprüft\n"))
    target = await add_target(http, admin, wsman)

    run = await run_on_target(
        http,
        operator,
        target,
        {"id": "name", "action": "winrm.cmd", "with": {"command": "hostname", "args": ["/a b"]}},
        {"id": "svc", "needs": ["name"], "action": "winrm.powershell", "with": {"script": script}},
    )

    assert run["status"] == "succeeded", run
    steps = target_steps(run)
    assert (steps["name"]["exit_code"], steps["name"]["stdout"]) == (0, "WIN-FAKE-01")
    assert steps["svc"]["outputs"] == {
        "exit_code": 0,
        "stdout": "spooler: Running\nÜberprüft",
        "stderr": "",
    }
    # What reached the host: the cmd line with its argument quoted, and the script verbatim
    # through powershell.exe -EncodedCommand, each in its own UTF-8 shell that was cleaned up.
    cmd, powershell = wsman.commands
    assert cmd.command_line == 'hostname ^"/a b^"'
    assert powershell.executable == "powershell.exe"
    assert powershell.arguments[:3] == ["-NoProfile", "-NonInteractive", "-EncodedCommand"]
    assert powershell.script == script
    assert [command.signals for command in wsman.commands] == [[TERMINATE], [TERMINATE]]
    assert [(shell.codepage, shell.deleted) for shell in wsman.shells.values()] == [
        ("65001", True),
        ("65001", True),
    ]
    logs = (await http.get(api(f"/runs/{run['id']}/logs"), headers=operator.headers)).json()
    assert [(line["step_id"], line["line"]) for line in logs] == [
        ("name", "WIN-FAKE-01"),
        ("svc", "spooler: Running"),
        ("svc", "Überprüft"),
    ]


async def test_cmd_metacharacters_in_args_reach_the_host_escaped(
    http: httpx.AsyncClient, admin: Account, operator: Account, wsman: FakeWsman
) -> None:
    target = await add_target(http, admin, wsman)
    args = ["a&calc", "x|y", ">out", "c^d", 'say "hi"', "(p)", "C:\\dir\\"]

    run = await run_on_target(
        http,
        operator,
        target,
        {"id": "e", "action": "winrm.cmd", "with": {"command": "echo", "args": args}},
    )

    assert run["status"] == "succeeded", run
    # cmd.exe removes the carets and acts on nothing; the program reads each one argument.
    (cmd,) = wsman.commands
    assert cmd.command_line == (
        'echo ^"a^&calc^" ^"x^|y^" ^"^>out^" ^"c^^d^" ^"say \\^"hi\\^"^" ^"^(p^)^" ^"C:\\dir\\\\^"'
    )


@pytest.mark.parametrize(
    ("arg", "named"), [("%PATH%", "contains %"), ("a!b", "contains !"), ("a\nb", "line break")]
)
async def test_args_cmd_cannot_be_kept_from_expanding_are_refused_by_position(
    http: httpx.AsyncClient,
    admin: Account,
    operator: Account,
    wsman: FakeWsman,
    arg: str,
    named: str,
) -> None:
    target = await add_target(http, admin, wsman)
    step = {
        "id": "e",
        "action": "winrm.cmd",
        "with": {"command": "echo", "args": ["ok", "{{ params.v }}"]},
    }

    run = await run_on_target(http, operator, target, step, parameters={"v": arg})

    assert run["status"] == "failed", run
    reason = target_steps(run)["e"]["reason"]
    assert reason.startswith("with.args.1: contains"), reason
    assert named in reason
    assert wsman.commands == []


async def test_an_unexpected_exit_code_fails_the_step_with_its_output(
    http: httpx.AsyncClient, admin: Account, operator: Account, wsman: FakeWsman
) -> None:
    clixml = (
        "#< CLIXML\r\n"
        '<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
        '<Obj S="progress" RefId="0"><TN RefId="0"><T>System.Management.Automation.PSCustomObject'
        '</T></TN><MS><I64 N="SourceId">1</I64></MS></Obj>'
        '<S S="Error">Stop-Service : Cannot find any service with service name _x0027_nope_x0027_.'
        "_x000D__x000A_</S></Objs>"
    )
    wsman.reply("exit /b 4", Reply(stdout="tried\n", exit_code=4))
    wsman.reply("Stop-Service", Reply(stderr=clixml, exit_code=1))
    target = await add_target(http, admin, wsman)

    run = await run_on_target(
        http,
        operator,
        target,
        {
            "id": "tolerated",
            "action": "winrm.cmd",
            "with": {"command": "exit /b 4", "expect_exit": [0, 4]},
        },
        {
            "id": "stop",
            "needs": ["tolerated"],
            "action": "winrm.powershell",
            "with": {"script": "Stop-Service -Name nope"},
        },
    )

    assert run["status"] == "failed"
    steps = target_steps(run)
    assert (steps["tolerated"]["status"], steps["tolerated"]["exit_code"]) == ("succeeded", 4)
    stop = steps["stop"]
    assert (stop["status"], stop["exit_code"], stop["reason"]) == (
        "failed",
        1,
        "exited with 1, expected 0",
    )
    # PowerShell's CLIXML error stream is shown as the error text it carries.
    assert stop["stderr"] == "Stop-Service : Cannot find any service with service name 'nope'."


async def test_secrets_reach_the_host_but_never_the_run(
    caplog: pytest.LogCaptureFixture,
    http: httpx.AsyncClient,
    admin: Account,
    operator: Account,
    wsman: FakeWsman,
) -> None:
    caplog.set_level(logging.DEBUG)
    value = await planted_secret(http, admin.headers, "svc-password", granted_to=["operator"])
    wsman.reply("net user", Reply(stdout=f"set password {value}\n", stderr=f"{PASSWORD}\n"))
    target = await add_target(http, admin, wsman)

    run = await run_on_target(
        http,
        operator,
        target,
        {
            "id": "rotate",
            "action": "winrm.cmd",
            "with": {"command": "net user svc {{ secret('svc-password') }}"},
        },
    )

    assert wsman.commands[0].command_line == f"net user svc {value}"
    step = target_steps(run)["rotate"]
    assert (step["stdout"], step["stderr"]) == ("set password ********", "********")
    logs = (await http.get(api(f"/runs/{run['id']}/logs"), headers=operator.headers)).text
    assert value not in str(run) + logs
    assert PASSWORD not in str(run) + logs
    # The worker ran in this process: nothing it (or pypsrp) logged holds either.
    assert value not in caplog.text
    assert PASSWORD not in caplog.text


async def test_a_wrong_password_fails_clearly_without_retries(
    http: httpx.AsyncClient, admin: Account, operator: Account, wsman: FakeWsman
) -> None:
    wrong = "Wrong-" + uuid.uuid4().hex[:8]
    target = await add_target(http, admin, wsman, password=wrong)

    run = await run_on_target(
        http,
        operator,
        target,
        {
            "id": "who",
            "action": "winrm.cmd",
            "with": {"command": "whoami"},
            "retry": {"attempts": 3, "interval": "100ms"},
        },
    )

    assert run["status"] == "failed"
    step = target_steps(run)["who"]
    assert step["attempts"] == 1
    assert step["reason"] == (
        f"authentication as {USERNAME!r} on {target} ({wsman.url}) failed "
        f"(credential '{target}-login', transport basic)"
    )
    assert wrong not in str(run)
    assert wsman.refused_logins == 1
    assert wsman.commands == []


async def test_basic_over_plain_http_needs_an_explicit_opt_in(
    http: httpx.AsyncClient, admin: Account, operator: Account, wsman: FakeWsman
) -> None:
    target = await add_target(http, admin, wsman, vars={})

    run = await run_on_target(
        http, operator, target, {"id": "who", "action": "winrm.cmd", "with": {"command": "x"}}
    )

    reason = target_steps(run)["who"]["reason"]
    assert reason.startswith(
        f"basic authentication over HTTP would send the password of credential '{target}-login'"
    )
    assert "vars.winrm_allow_unencrypted: true" in reason
    assert wsman.refused_logins == 0
    assert wsman.commands == []


async def test_certificates_are_checked_unless_the_credential_says_not_to(
    http: httpx.AsyncClient, admin: Account, operator: Account, tmp_path: Path
) -> None:
    with FakeWsman(USERNAME, PASSWORD, tls=self_signed_certificate(tmp_path)) as https:
        checked = await add_target(http, admin, https, vars={"winrm_ssl": True})
        step = {"id": "who", "action": "winrm.cmd", "with": {"command": "whoami"}}

        refused = await run_on_target(http, operator, checked, step)

        assert refused["status"] == "failed"
        assert target_steps(refused)["who"]["reason"] == (
            f"the TLS certificate of {checked} ({https.url}) is not trusted "
            "(self-signed certificate); give the worker its CA (REQUESTS_CA_BUNDLE), or set "
            f"verify_tls: false on credential '{checked}-login' to skip the check"
        )
        assert https.commands == []

        https.reply("whoami", Reply(stdout="fake\\administrator\n"))
        unchecked = await add_target(http, admin, https, verify_tls=False, vars={"winrm_ssl": True})
        accepted = await run_on_target(http, operator, unchecked, step)

        assert accepted["status"] == "succeeded", accepted
        assert target_steps(accepted)["who"]["stdout"] == "fake\\administrator"


@pytest.mark.slow
async def test_cancelling_a_run_terminates_the_command_and_closes_the_shell(
    http: httpx.AsyncClient, admin: Account, operator: Account, wsman: FakeWsman
) -> None:
    wsman.reply("Start-Sleep", Reply(stdout="started\n", hang=True))
    target = await add_target(http, admin, wsman)
    document = {
        "name": "winrm-long",
        "targets": {"names": [target]},
        "steps": [
            {
                "id": "long",
                "action": "winrm.powershell",
                "with": {"script": "Write-Output started; Start-Sleep -Seconds 600"},
            }
        ],
    }
    run_id = await start_job_run(http, operator, document)
    await eventually(lambda: bool(wsman.commands))

    cancelled = await http.post(api(f"/runs/{run_id}/cancel"), headers=operator.headers)
    assert cancelled.status_code == 202, cancelled.text
    finished = await wait_for(http, operator, run_id, TERMINAL)

    assert finished["status"] == "cancelled"
    # Cancellation reaches the activity with a heartbeat, which the SDK may hold back for up
    # to 80% of the heartbeat timeout; then the thread stops at its next Receive.
    await eventually(lambda: all(shell.deleted for shell in wsman.shells.values()))
    assert wsman.commands[0].signals == [TERMINATE]
    step = target_steps(finished)["long"]
    assert "cancel" in (step["reason"] or "").lower()


async def eventually(condition: Callable[[], bool], seconds: float = 30) -> None:
    for _ in range(int(seconds * 10)):
        if condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the fake host never saw it")


async def connection_test(
    client: httpx.AsyncClient, who: Account, target_name: str
) -> dict[str, Any]:
    targets = (await client.get(api("/targets"), headers=who.headers)).json()["items"]
    (target,) = [target for target in targets if target["name"] == target_name]
    answer = await client.post(api(f"/targets/{target['id']}/test"), headers=who.headers)
    assert answer.status_code == 200, answer.text
    tested: dict[str, Any] = answer.json()
    return tested


async def test_a_connection_test_logs_in_and_runs_a_command_in_a_shell(
    http: httpx.AsyncClient, admin: Account, operator: Account, wsman: FakeWsman
) -> None:
    target = await add_target(http, admin, wsman)

    answer = await connection_test(http, operator, target)

    assert answer["ok"] is True, answer
    assert answer["detail"] == f"logged in as {USERNAME!r} and ran `hostname`"
    assert answer["latency_ms"] > 0
    # It reached the host: a shell, `hostname` in it, the shell deleted afterwards.
    assert [command.command_line for command in wsman.commands] == ["hostname"]
    assert [shell.deleted for shell in wsman.shells.values()] == [True]
    assert PASSWORD not in str(answer)


async def test_a_connection_test_names_what_failed(
    http: httpx.AsyncClient, admin: Account, operator: Account, wsman: FakeWsman
) -> None:
    wrong = await add_target(http, admin, wsman, password="Wrong-" + uuid.uuid4().hex[:8])
    refused = await connection_test(http, operator, wrong)
    assert refused["ok"] is False
    assert refused["detail"] == (
        f"authentication as {USERNAME!r} on {wrong} ({wsman.url}) failed "
        f"(credential '{wrong}-login', transport basic)"
    )
    assert wsman.refused_logins == 1

    failing = await add_target(http, admin, wsman)
    wsman.reply("hostname", Reply(exit_code=3))
    assert (await connection_test(http, operator, failing))["detail"] == (
        "logged in, but `hostname` exited with 3"
    )

    unsafe = await add_target(http, admin, wsman, vars={})
    detail = (await connection_test(http, operator, unsafe))["detail"]
    assert detail.startswith("basic authentication over HTTP would send the password")

    closed = await add_target(http, admin, wsman)
    wsman.__exit__(None, None, None)
    detail = (await connection_test(http, operator, closed))["detail"]
    assert detail.startswith(f"cannot connect to {closed} ({wsman.url})"), detail
