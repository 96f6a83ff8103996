"""ssh.command and ssh.script through the job-run workflow, against the loopback sshd, with
targets and credentials from the inventory."""

import asyncio
import logging
import secrets
import uuid
from pathlib import Path
from typing import Any

import asyncssh
import httpx
import pytest
from asyncssh.logging import SSHLogger
from sqlalchemy import event
from sqlmodel import col, select
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import RawValue
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import ActivityEnvironment

from opsconductor.activities import ssh_chunks, ssh_connect
from opsconductor.activities.ssh_chunks import SshChunks
from opsconductor.config import Settings
from opsconductor.contracts.runs import RunStatus
from opsconductor.contracts.steps import (
    ChunkProgress,
    MemberResult,
    StepResult,
    TargetSnapshot,
)
from opsconductor.jobspec.document import TargetSelector
from opsconductor.models.credential import CredentialAccess
from opsconductor.models.run import RunLogLine
from opsconductor.services.targets import resolve_selector
from opsconductor.services.vault import Revealed
from opsconductor.temporal.client import connect
from opsconductor.worker.registry import WorkerResources
from tests.engine_helpers import (
    chunk_request,
    recorded_steps,
    scheduled_activities,
    second_try,
    start_run,
)
from tests.fixtures.sshd import LoopbackSshd
from tests.identity_helpers import Account
from tests.vault_helpers import key_credential, post_ok, sshd_target

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]


@pytest.fixture
async def temporal(settings: Settings) -> Client:
    return await connect(settings)


@pytest.fixture
async def loopback(
    http: httpx.AsyncClient,
    admin: Account,
    sshd: LoopbackSshd,
    worker_resources: WorkerResources,
) -> list[TargetSnapshot]:
    """The sshd as an inventory target, resolved as a run would resolve it."""
    credential = await post_ok(http, "/credentials", admin.headers, key_credential(sshd))
    await post_ok(http, "/targets", admin.headers, sshd_target(sshd, credential["id"]))
    async with worker_resources.sessionmaker() as session:
        return await resolve_selector(session, TargetSelector(names=["loopback"]))


def job(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"name": f"ssh-{uuid.uuid4().hex[:8]}", "steps": list(steps)}


async def log_lines(resources: WorkerResources, run_id: uuid.UUID) -> list[tuple[str, str]]:
    async with resources.sessionmaker() as session:
        rows = await session.exec(
            select(RunLogLine).where(RunLogLine.run_id == run_id).order_by(col(RunLogLine.id))
        )
        return [(row.stream, row.line) for row in rows]


async def test_a_command_runs_with_its_output_and_expected_exit(
    temporal: Client,
    worker_resources: WorkerResources,
    loopback: list[TargetSnapshot],
    sshd: LoopbackSshd,
) -> None:
    document = job(
        {
            "id": "hello",
            "action": "ssh.command",
            "with": {"command": "echo hello; echo err >&2; exit 3", "expect_exit": [3]},
        },
        {
            "id": "where",
            "needs": ["hello"],
            "action": "ssh.command",
            "with": {
                "command": 'echo "$GREETING from $(pwd) on {{ target.name }}"',
                "env": {"GREETING": "it's me"},
                "workdir": "/tmp",
            },
        },
        {
            "id": "script",
            "needs": ["where"],
            "action": "ssh.script",
            "with": {
                "script": 'echo "args: $1 $2"\necho "user: $(id -un)"\nexit 0\n',
                "args": ["one", "two words"],
            },
        },
    )
    handle = await start_run(temporal, worker_resources.sessionmaker, document, loopback)
    summary = await handle.result()
    assert summary.status is RunStatus.succeeded, summary
    steps = await recorded_steps(worker_resources.sessionmaker, summary.run_id)
    hello = steps[("loopback", "hello")]
    assert (hello.status, hello.exit_code, hello.stdout, hello.stderr) == (
        "succeeded",
        3,
        "hello",
        "err",
    )
    assert hello.outputs == {"exit_code": 3, "stdout": "hello", "stderr": "err"}
    assert steps[("loopback", "where")].stdout == "it's me from /tmp on loopback"
    assert steps[("loopback", "script")].stdout == f"args: one two words\nuser: {sshd.username}"
    lines = await log_lines(worker_resources, summary.run_id)
    assert ("stdout", "hello") in lines
    assert ("stderr", "err") in lines
    assert ("stdout", "args: one two words") in lines


async def test_secrets_are_masked_everywhere(
    caplog: pytest.LogCaptureFixture,
    http: httpx.AsyncClient,
    admin: Account,
    temporal: Client,
    worker_resources: WorkerResources,
    loopback: list[TargetSnapshot],
) -> None:
    caplog.set_level(logging.DEBUG)
    value = "planted-" + secrets.token_hex(8)
    await post_ok(
        http,
        "/credentials",
        admin.headers,
        {"name": "db-password", "kind": "secret", "secret": {"value": value}},
    )
    document = job(
        {
            "id": "leaky",
            "action": "ssh.command",
            "with": {
                "command": "echo \"pw={{ secret('db-password') }}\"; "
                "echo \"{{ secret('db-password') }}\" >&2; exit 1",
            },
        },
    )
    handle = await start_run(temporal, worker_resources.sessionmaker, document, loopback)
    summary = await handle.result()
    assert summary.status is RunStatus.failed
    step = (await recorded_steps(worker_resources.sessionmaker, summary.run_id))[
        ("loopback", "leaky")
    ]
    assert (step.stdout, step.stderr, step.exit_code) == ("pw=********", "********", 1)
    assert value not in f"{step.stdout} {step.stderr} {step.outputs} {step.reason}"
    lines = await log_lines(worker_resources, summary.run_id)
    assert ("stdout", "pw=********") in lines
    assert value not in str(lines)
    # The worker ran in this process: nothing it (or asyncssh) logged holds the value.
    assert "planted-" not in caplog.text
    history = [event async for event in handle.fetch_history_events()]
    assert value not in str(history)

    async with worker_resources.sessionmaker() as session:
        access = (
            await session.exec(
                select(CredentialAccess).where(CredentialAccess.run_id == summary.run_id)
            )
        ).all()
    assert {(row.credential_name, row.purpose, row.step_id, row.target) for row in access} == {
        ("db-password", "run_step", "leaky", "loopback"),
        ("sshd-key", "run_step", "leaky", "loopback"),
    }


async def test_a_failing_command_is_retried_and_its_attempts_recorded(
    temporal: Client, worker_resources: WorkerResources, loopback: list[TargetSnapshot]
) -> None:
    document = job(
        {
            "id": "flaky",
            "action": "ssh.command",
            "with": {"command": "echo trying; exit 7"},
            "retry": {"attempts": 3, "interval": "100ms", "backoff": 1},
        },
    )
    handle = await start_run(temporal, worker_resources.sessionmaker, document, loopback)
    summary = await handle.result()
    assert summary.status is RunStatus.failed
    step = (await recorded_steps(worker_resources.sessionmaker, summary.run_id))[
        ("loopback", "flaky")
    ]
    assert (step.status, step.attempts, step.exit_code, step.stdout) == ("failed", 3, 7, "trying")
    assert step.reason == "exited with 7, expected 0"
    lines = await log_lines(worker_resources, summary.run_id)
    assert lines.count(("stdout", "trying")) == 3


async def test_rejections_are_not_retried(
    http: httpx.AsyncClient,
    operator: Account,
    temporal: Client,
    worker_resources: WorkerResources,
    loopback: list[TargetSnapshot],
    sshd: LoopbackSshd,
) -> None:
    retried = {"retry": {"attempts": 3, "interval": "100ms"}}
    document = job(
        {
            "id": "unknown_secret",
            "action": "ssh.command",
            "with": {"command": "echo {{ secret('nope') }}"},
            **retried,
        },
        {
            "id": "unknown_credential",
            "action": "ssh.command",
            "credential": "missing",
            "with": {"command": "true"},
            **retried,
        },
    )
    handle = await start_run(temporal, worker_resources.sessionmaker, document, loopback)
    summary = await handle.result()
    steps = await recorded_steps(worker_resources.sessionmaker, summary.run_id)
    assert steps[("loopback", "unknown_secret")].attempts == 1
    assert steps[("loopback", "unknown_secret")].reason == "no credential named 'nope'"
    assert steps[("loopback", "unknown_credential")].reason == "no credential named 'missing'"

    # Pin a key the sshd does not have: the step is refused, once, with the reason.
    target_id = str(loopback[0].id)
    await http.post(
        f"/api/v1/targets/{target_id}/host-key",
        headers=operator.headers,
        json={"fingerprint": "SHA256:" + "B" * 43},
    )
    document = job(
        {"id": "pinned", "action": "ssh.command", "with": {"command": "true"}, **retried}
    )
    handle = await start_run(temporal, worker_resources.sessionmaker, document, loopback)
    summary = await handle.result()
    step = (await recorded_steps(worker_resources.sessionmaker, summary.run_id))[
        ("loopback", "pinned")
    ]
    assert step.attempts == 1
    assert step.reason == (
        f"host key for loopback changed: expected SHA256:{'B' * 43}, "
        f"got {sshd.host_key_fingerprint}; an operator must accept the new key"
    )


async def remote_processes(marker: str) -> bytes:
    """The host's processes whose command line holds `marker` (the sshd runs on this machine)."""
    process = await asyncio.create_subprocess_exec(
        "pgrep", "-f", marker, stdout=asyncio.subprocess.PIPE
    )
    stdout, _ = await process.communicate()
    return stdout.strip()


async def wait_for_processes(marker: str, present: bool) -> None:
    # Cancellation reaches the activity with its next heartbeat, which the SDK may hold back
    # for up to 80% of the heartbeat timeout; then TERM has a grace before KILL.
    for _ in range(400):
        if bool(await remote_processes(marker)) == present:
            return
        await asyncio.sleep(0.1)
    state = "never started" if present else "is still running"
    pytest.fail(f"a remote process marked {marker} {state}")


def process_tree_step(**extra: Any) -> tuple[dict[str, Any], str]:
    """A step whose command starts children and background jobs, each with a unique mark in
    its argv (`sleep 300.<n>`), so `pgrep` finds exactly this test's processes. The first job
    is started under job control (`set -m`), which moves it into a process group of its own:
    killing the command's process group alone would miss it."""
    mark = f"300.{secrets.randbelow(10**9):09d}"
    command = f"bash -c 'set -m; sleep {mark}1 & sh -c \"sleep {mark}2 & sleep {mark}3\"'"
    step = {"id": "long", "action": "ssh.command", "with": {"command": command}, **extra}
    return step, mark


@pytest.mark.slow
async def test_cancelling_a_run_ends_the_whole_remote_process_tree(
    temporal: Client,
    worker_resources: WorkerResources,
    loopback: list[TargetSnapshot],
) -> None:
    step, mark = process_tree_step()
    handle = await start_run(temporal, worker_resources.sessionmaker, job(step), loopback)
    await wait_for_processes(f"sleep {mark}", present=True)
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    await wait_for_processes(f"sleep {mark}", present=False)
    run_id = uuid.UUID(handle.id.removeprefix("run-"))
    long = (await recorded_steps(worker_resources.sessionmaker, run_id))[("loopback", "long")]
    assert (long.status, long.reason) == ("cancelled", "the run was cancelled")
    assert long.finished_at is not None
    # The process-group announcement is the wrapper's, not the command's output.
    assert await log_lines(worker_resources, run_id) == []


@pytest.mark.slow
async def test_a_step_timeout_ends_the_whole_remote_process_tree(
    temporal: Client,
    worker_resources: WorkerResources,
    loopback: list[TargetSnapshot],
) -> None:
    step, mark = process_tree_step(timeout="3s")
    handle = await start_run(temporal, worker_resources.sessionmaker, job(step), loopback)
    await wait_for_processes(f"sleep {mark}", present=True)
    summary = await handle.result()
    assert summary.status == RunStatus.failed
    await wait_for_processes(f"sleep {mark}", present=False)
    long = (await recorded_steps(worker_resources.sessionmaker, summary.run_id))[
        ("loopback", "long")
    ]
    assert (long.status, long.reason) == ("failed", "timed out (start_to_close)")


async def sshd_targets(
    http: httpx.AsyncClient,
    admin: Account,
    sshd: LoopbackSshd,
    resources: WorkerResources,
    prefix: str,
    count: int,
    target_vars: dict[str, Any] | None = None,
) -> tuple[list[str], list[TargetSnapshot]]:
    """`count` inventory targets on the loopback sshd, named `<prefix>-…-t<n>`, with
    `target_vars`, and their snapshots as a run resolves them (in the inventory's order, not
    the names')."""
    credential = await post_ok(http, "/credentials", admin.headers, key_credential(sshd))
    unique = f"{prefix}-{uuid.uuid4().hex[:6]}"
    names = [f"{unique}-t{n}" for n in range(count)]
    for name in names:
        target = sshd_target(sshd, credential["id"], name) | {"vars": target_vars or {}}
        await post_ok(http, "/targets", admin.headers, target)
    async with resources.sessionmaker() as session:
        return names, await resolve_selector(session, TargetSelector(names=names))


async def test_a_batch_runs_each_ssh_step_as_one_chunk_with_per_target_results_and_retries(
    http: httpx.AsyncClient,
    admin: Account,
    sshd: LoopbackSshd,
    temporal: Client,
    worker_resources: WorkerResources,
) -> None:
    """Three `ssh.command` steps over four targets in one batch are three activities, not
    twelve (docs/engine.md, "Scale: chunked steps"), and each target keeps its own result and
    retries: in the first step's one chunk, t1 fails then succeeds on its retry, t2 fails for
    good (its later steps are skipped), t0 and t3 succeed at once."""
    names, targets = await sshd_targets(http, admin, sshd, worker_resources, "chunk", 4)
    flag = f"/tmp/opsc-chunk-{uuid.uuid4().hex}"
    document = job(
        {
            "id": "first",
            "action": "ssh.command",
            "with": {
                "command": "case {{ target.name }} in "
                f"*-t1) if [ -e {flag} ]; then echo again; else touch {flag}; exit 1; fi;; "
                "*-t2) echo broken; exit 7;; *) echo ok;; esac"
            },
            "retry": {"attempts": 2, "interval": "10ms"},
        },
        {"id": "second", "needs": ["first"], "action": "ssh.command", "with": {"command": "true"}},
        {"id": "third", "needs": ["second"], "action": "ssh.command", "with": {"command": "true"}},
    )
    document["strategy"] = {"concurrency": 4}  # one batch, all four in flight
    handle = await start_run(
        temporal, worker_resources.sessionmaker, document, targets, batch_size=4
    )
    summary = await handle.result()
    assert summary.status is RunStatus.failed
    steps = await recorded_steps(worker_resources.sessionmaker, summary.run_id)
    t0, t1, t2, t3 = names
    for name in (t0, t3):
        first = steps[(name, "first")]
        assert (first.status, first.attempts, first.stdout) == ("succeeded", 1, "ok")
        assert steps[(name, "third")].status == "succeeded"
    retried = steps[(t1, "first")]
    assert (retried.status, retried.attempts, retried.stdout) == ("succeeded", 2, "again")
    assert steps[(t1, "third")].status == "succeeded"
    broken = steps[(t2, "first")]
    assert (broken.status, broken.attempts, broken.exit_code, broken.stdout) == (
        "failed",
        2,
        7,
        "broken",
    )
    assert broken.reason == "exited with 7, expected 0"
    assert [
        (steps[(t2, step)].status, steps[(t2, step)].reason) for step in ("second", "third")
    ] == [
        ("skipped", "upstream_failed"),
        ("skipped", "upstream_failed"),
    ]
    scheduled = await scheduled_activities(temporal, summary.run_id)
    # A chunk's progress reaches Temporal at most 8 s apart (80 % of its heartbeat timeout).
    assert [(event.activity_type.name, event.heartbeat_timeout.seconds) for event in scheduled] == [
        ("ssh-command-chunk", 10)
    ] * 3
    # One vault read per chunk, and on the access log a row for each target it served.
    async with worker_resources.sessionmaker() as session:
        access = (
            await session.exec(
                select(CredentialAccess).where(CredentialAccess.run_id == summary.run_id)
            )
        ).all()
    assert sorted((row.step_id, row.target, row.outcome) for row in access) == sorted(
        [("first", name, "revealed") for name in names]
        + [(step, name, "revealed") for step in ("second", "third") for name in (t0, t1, t3)]
    )
    assert len({row.accessed_at for row in access if row.step_id == "first"}) == 1


async def test_a_chunk_logs_in_with_options_built_once_and_nothing_of_the_workers_user(
    http: httpx.AsyncClient,
    admin: Account,
    sshd: LoopbackSshd,
    temporal: Client,
    worker_resources: WorkerResources,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """A chunk parses its credential's key and builds its connection options once, and every
    target's connection reuses them (docs/engine.md, "The worker's per-target cost"); and the
    worker's user's ssh config, known_hosts and agent are never consulted (docs/vault.md,
    "Host keys"): here a config that sends every host to port 1, a known_hosts entry with a
    wrong key for the sshd, and an agent socket that counts its callers."""
    names, targets = await sshd_targets(http, admin, sshd, worker_resources, "options", 3)
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text("Host *\n  Port 1\n  User nobody\n")
    other_key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    (home / ".ssh" / "known_hosts").write_text(f"[{sshd.host}]:{sshd.port} {other_key}")
    agent_callers = 0

    def count_caller(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal agent_callers
        agent_callers += 1
        writer.close()

    agent = await asyncio.start_unix_server(count_caller, tmp_path / "agent.sock")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("SSH_AUTH_SOCK", str(tmp_path / "agent.sock"))
    built: list[asyncssh.SSHClientConnectionOptions] = []
    used: list[object] = []

    def counted_login_options(credential: Revealed) -> asyncssh.SSHClientConnectionOptions:
        built.append(ssh_connect.login_options(credential))
        return built[-1]

    real_connect = asyncssh.connect

    def recorded_connect(*args: Any, **kwargs: Any) -> Any:
        used.append(kwargs.get("options"))
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(ssh_chunks, "login_options", counted_login_options)
    monkeypatch.setattr(asyncssh, "connect", recorded_connect)
    # asyncssh's records below WARNING are dropped before their arguments are made text.
    logged: list[int] = []
    formatted: list[int] = []

    def counted_log(self: SSHLogger, level: int, msg: object, *args: object, **kw: Any) -> None:
        logged.append(level)
        ssh_connect._log_if_enabled(self, level, msg, *args, **kw)

    def counted_format(self: SSHLogger, level: int, msg: object, *args: object, **kw: Any) -> None:
        formatted.append(level)

    monkeypatch.setattr(SSHLogger, "log", counted_log)
    monkeypatch.setattr(ssh_connect, "_format_and_log", counted_format)
    document = job({"id": "who", "action": "ssh.command", "with": {"command": "id -un"}})
    document["strategy"] = {"concurrency": 3}
    async with agent:
        handle = await start_run(
            temporal, worker_resources.sessionmaker, document, targets, batch_size=3
        )
        summary = await handle.result()
    assert summary.status is RunStatus.succeeded
    steps = await recorded_steps(worker_resources.sessionmaker, summary.run_id)
    assert [steps[(name, "who")].stdout for name in names] == [sshd.username] * 3
    assert len(built) == 1
    assert len(used) == 3
    assert all(options is built[0] for options in used)
    assert agent_callers == 0
    # Nor an X.509 CA bundle, a Kerberos ticket (GSS) or a PKCS#11 token: no `gssapi` or
    # token here to show it by behaviour, so the options say it.
    login = built[0]
    assert (login.x509_trusted_certs, login.gss_host, login.pkcs11_provider) == (None, None, None)
    assert len([level for level in logged if level < logging.WARNING]) >= 3 * 10
    assert all(level >= logging.WARNING for level in formatted)


async def test_targets_whose_requests_together_pass_the_payload_limit_split_into_chunks(
    http: httpx.AsyncClient,
    admin: Account,
    sshd: LoopbackSshd,
    temporal: Client,
    worker_resources: WorkerResources,
) -> None:
    """Four targets with 300 kB of vars each (carried twice per target: its snapshot and its
    template context) are each under the 1.5 MB a step may carry, together well over
    Temporal's 2 MB payload limit: the batch runs the step as two chunks of two, and every
    target succeeds."""
    names, targets = await sshd_targets(
        http, admin, sshd, worker_resources, "large", 4, {"blob": "x" * 300_000}
    )
    document = job({"id": "large", "action": "ssh.command", "with": {"command": "echo ok"}})
    document["strategy"] = {"concurrency": 4}
    handle = await start_run(
        temporal, worker_resources.sessionmaker, document, targets, batch_size=4
    )
    summary = await handle.result()
    assert summary.status is RunStatus.succeeded
    steps = await recorded_steps(worker_resources.sessionmaker, summary.run_id)
    assert [(steps[(name, "large")].status, steps[(name, "large")].stdout) for name in names] == [
        ("succeeded", "ok")
    ] * 4
    scheduled = await scheduled_activities(temporal, summary.run_id)
    assert [event.activity_type.name for event in scheduled] == ["ssh-command-chunk"] * 2


async def test_a_chunk_retried_after_its_worker_was_lost_runs_only_its_unfinished_targets(
    http: httpx.AsyncClient,
    admin: Account,
    sshd: LoopbackSshd,
    temporal: Client,
    worker_resources: WorkerResources,
) -> None:
    """The chunk activity's second try, given the first try's last heartbeat (t0 finished, t1
    on its first attempt), answers t0's result from it and runs only t1, from attempt 2. Its
    own heartbeats carry the same progress as JSON joined from each finished member's, which
    the worker's converter sends as it is: no beat encodes the finished members again
    (benchmarks/README.md, "fix 20")."""
    names, targets = await sshd_targets(http, admin, sshd, worker_resources, "resume", 2)
    quick = job({"id": "quick", "action": "ssh.command", "with": {"command": "true"}})
    handle = await start_run(temporal, worker_resources.sessionmaker, quick, targets)
    run_id = (await handle.result()).run_id
    tally = f"/tmp/opsc-resume-{uuid.uuid4().hex}"
    request = chunk_request(
        run_id,
        "resumed",
        "ssh.command",
        {"command": f"echo {{{{ target.name }}}} >> {tally}; echo ran"},
        targets,
    )
    t0, t1 = names
    done = MemberResult(target=t0, result=StepResult(exit_code=0, output_recorded=True))
    environment = second_try(done, {t1: 1})
    beats: list[tuple[Any, ...]] = []
    environment.on_heartbeat = lambda *details: beats.append(details)
    chunks = SshChunks(worker_resources.sessionmaker, worker_resources.keyring)
    try:
        result = await environment.run(chunks.run_chunk, request)
        ran = Path(tally).read_text().split()
    finally:
        Path(tally).unlink(missing_ok=True)
    assert ran == [t1]
    (first_beat,) = beats[0]
    assert isinstance(first_beat, RawValue)
    converter = pydantic_data_converter.payload_converter
    assert converter.to_payloads([first_beat]) == [first_beat.payload]
    (progress,) = converter.from_payloads([first_beat.payload])
    assert ChunkProgress.model_validate(progress) == ChunkProgress(finished=[done], started={t1: 2})
    members = {member.target: member for member in result.members}
    assert members[t0] == done
    assert (members[t1].error, members[t1].result.attempt) == (None, 2)
    steps = await recorded_steps(worker_resources.sessionmaker, run_id)
    assert (steps[(t1, "resumed")].status, steps[(t1, "resumed")].attempts) == ("succeeded", 2)
    assert (t0, "resumed") not in steps
    assert await log_lines(worker_resources, run_id) == [("stdout", "ran")]


async def test_a_chunk_answers_with_every_record_and_log_line_written_one_statement_each(
    http: httpx.AsyncClient,
    admin: Account,
    sshd: LoopbackSshd,
    temporal: Client,
    worker_resources: WorkerResources,
) -> None:
    """When a chunk activity answers, each target's output lines are in the run log, the last
    ones included, and its record is written (t1 fails twice: its end is the workflow's to
    record). The chunk's reads and writes for all its targets are one statement each: the
    pinned host keys, the vault's access rows, the `running` records, written before any
    later record of theirs (benchmarks/README.md, fix 16)."""
    names, targets = await sshd_targets(http, admin, sshd, worker_resources, "ends", 3)
    quick = job({"id": "quick", "action": "ssh.command", "with": {"command": "true"}})
    handle = await start_run(temporal, worker_resources.sessionmaker, quick, targets)
    run_id = (await handle.result()).run_id
    command = (
        "echo first; echo last of {{ target.name }}; case {{ target.name }} in *-t1) exit 1;; esac"
    )
    request = chunk_request(run_id, "ends", "ssh.command", {"command": command}, targets)
    request.members[1] = request.members[1].model_copy(update={"attempts": 2})
    statements: list[tuple[str, int]] = []

    def note(*args: Any) -> None:
        statement, parameters, executemany = args[2], args[3], args[5]
        statements.append((statement, len(parameters) if executemany else 1))

    engine = worker_resources.sessionmaker.kw["bind"].sync_engine
    chunks = SshChunks(worker_resources.sessionmaker, worker_resources.keyring)
    event.listen(engine, "before_cursor_execute", note)
    try:
        result = await ActivityEnvironment().run(chunks.run_chunk, request)
    finally:
        event.remove(engine, "before_cursor_execute", note)

    t0, t1, t2 = names
    assert [(member.target, member.error) for member in result.members] == [
        (t0, None),
        (t1, "exited with 1, expected 0"),
        (t2, None),
    ]
    lines = [line for stream, line in await log_lines(worker_resources, run_id)]
    assert sorted(lines) == sorted(
        line for name in (t0, t1, t1, t2) for line in ("first", f"last of {name}")
    )
    steps = await recorded_steps(worker_resources.sessionmaker, run_id)
    # t1's failure is the workflow's to record, from the chunk's answer; its output is stored.
    assert [(steps[(name, "ends")].status, steps[(name, "ends")].stdout) for name in names] == [
        ("succeeded", f"first\nlast of {t0}"),
        ("running", f"first\nlast of {t1}"),
        ("succeeded", f"first\nlast of {t2}"),
    ]

    def rows_written(prefix: str) -> list[int]:
        return [rows for statement, rows in statements if statement.startswith(prefix)]

    assert rows_written("SELECT targets.id, targets.host_key_fingerprint") == [1]
    assert rows_written("INSERT INTO credential_access") == [3]
    # The `running` records first (every later write waits for them), all three at once.
    first_record = next(st for st, _ in statements if st.startswith("INSERT INTO run_steps"))
    assert "started_at" in first_record
    assert "finished_at" not in first_record
    assert rows_written("INSERT INTO run_steps")[0] == 3
    # The grant check reads who the run acts for, not the run's target snapshots.
    assert not any("runs.targets" in statement for statement, _ in statements)
