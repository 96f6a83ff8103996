"""The `opsconductor` client commands against a running stack, as a user runs them.

`opsconductor api` and `opsconductor worker` run as real processes on the session's PostgreSQL
and Temporal (the worker serving every queue, with its Prometheus endpoint on), and the
CLI runs as a process too, with its own config directory. The steps run over SSH on the
session's loopback sshd, so `run --follow` has real output lines to stream.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client

from opsconductor.temporal.interceptors import REQUEST_ID_HEADER
from tests.e2e.test_cli import log_entries
from tests.e2e.test_up import user_env
from tests.fixtures.http_receiver import HttpReceiver
from tests.fixtures.ports import free_port
from tests.fixtures.services import create_test_database, drop_test_database
from tests.fixtures.sshd import LoopbackSshd
from tests.identity_helpers import ADMIN_PASSWORD, ADMIN_USERNAME
from tests.process_stack import ProcessStack, process_stack
from tests.run_helpers import TERMINAL
from tests.vault_helpers import key_credential

pytestmark = [pytest.mark.slow, pytest.mark.integration]

EXIT_RUN_FAILED = 3
EXIT_RUN_CANCELLED = 4
REPORT_CHARS = 4000
WEBHOOK_SECRET = "hook-" + secrets.token_hex(12)


@pytest.fixture(scope="module")
async def stack(
    postgres_url: str, temporal_address: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ProcessStack]:
    database_url = await create_test_database(postgres_url)
    try:
        with process_stack(
            tmp_path_factory.mktemp("cli-stack"), database_url, temporal_address
        ) as running:
            yield running
    finally:
        await drop_test_database(postgres_url, database_url)


@dataclass
class Cli:
    """The CLI of one user: its own config directory, no token in the environment."""

    stack: ProcessStack
    home: Path

    def env(self) -> dict[str, str]:
        return user_env(XDG_CONFIG_HOME=str(self.home / "config"))

    def __call__(
        self, *arguments: str, stdin: str = "", timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "opsconductor", *arguments],
            env=self.env(),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            # No terminal: the password prompt reads stdin, and no spinner is drawn.
            start_new_session=True,
            check=False,
        )

    def ok(self, *arguments: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        result = self(*arguments, stdin=stdin)
        assert result.returncode == 0, shown(result, self.stack)
        return result

    def login(self) -> None:
        self.ok(
            "login", "--url", self.stack.url, "--username", ADMIN_USERNAME, "--password",
            ADMIN_PASSWORD,
        )  # fmt: skip

    @property
    def token(self) -> str:
        stored = json.loads(
            (self.home / "config" / "opsconductor" / "credentials.json").read_text()
        )
        return str(stored["token"])

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return httpx.request(
            method, f"{self.stack.url}/api/v1{path}", headers=headers, timeout=30, **kwargs
        )


def shown(result: subprocess.CompletedProcess[str], stack: ProcessStack | None = None) -> str:
    text = (
        f"`{' '.join(map(str, result.args[2:]))}` exited {result.returncode}\n"
        f"--- stdout:\n{result.stdout[-REPORT_CHARS:]}\n"
        f"--- stderr:\n{result.stderr[-REPORT_CHARS:]}"
    )
    return f"{text}\n{stack.report()}" if stack else text


@pytest.fixture
def cli(stack: ProcessStack, tmp_path: Path) -> Cli:
    return Cli(stack, tmp_path)


def job_yaml(name: str, command: str, *, target: str = "loopback") -> str:
    return f"""\
kind: job
name: {name}
description: printed by the CLI tests
parameters:
  who: {{type: string, default: world}}
  times: {{type: integer, default: 2}}
targets:
  names: [{target}]
steps:
  - id: say
    action: ssh.command
    with:
      command: {json.dumps(command)}
"""


def prepare_inventory(cli: Cli, sshd: LoopbackSshd, tmp_path: Path) -> None:
    """A key credential (through the API: the CLI does not create credentials) and a target
    imported with `targets import`, naming the credential."""
    answer = cli.api("POST", "/credentials", json=key_credential(sshd))
    # The stack lives for the module: an earlier test may have made it already.
    assert answer.status_code in (201, 409), answer.text
    targets = tmp_path / "targets.yaml"
    targets.write_text(
        "kind: targets\nitems:\n"
        f"  - {{name: loopback, address: {sshd.host}, port: {sshd.port}, protocol: ssh, "
        f"credential: sshd-key, tags: {{env: test}}}}\n"
    )
    imported = cli.ok("targets", "import", str(targets), "-o", "json")
    assert [row["result"] for row in json.loads(imported.stdout)] in (["created"], ["updated"])


@pytest.fixture
def operator_cli(cli: Cli, sshd: LoopbackSshd, tmp_path: Path) -> Cli:
    """Signed in, with the loopback sshd in the inventory as target `loopback`."""
    cli.login()
    prepare_inventory(cli, sshd, tmp_path)
    return cli


def test_login_keeps_a_private_token_and_logout_revokes_it(cli: Cli) -> None:
    signed_in = cli.ok(
        "login", "--url", f"{cli.stack.url}/api/v1", "--username", ADMIN_USERNAME,
        stdin=f"{ADMIN_PASSWORD}\n",
    )  # fmt: skip
    assert "signed in" in signed_in.stdout
    directory = cli.home / "config" / "opsconductor"
    credentials = directory / "credentials.json"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert ADMIN_PASSWORD not in credentials.read_text()
    token = cli.token
    assert cli.api("GET", "/auth/me").json()["username"] == ADMIN_USERNAME

    listed = cli.ok("runs", "-o", "json")
    assert json.loads(listed.stdout)["items"] == []

    out = cli.ok("logout")
    assert "signed out" in out.stdout
    assert not credentials.exists()
    gone = httpx.get(
        f"{cli.stack.url}/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}
    )
    assert gone.status_code == 401

    refused = cli("runs")
    assert refused.returncode == 1, shown(refused)
    assert "opsconductor login" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_wrong_password_and_unreachable_server_read_clearly(cli: Cli) -> None:
    wrong = cli("login", "--url", cli.stack.url, "-u", ADMIN_USERNAME, "--password", "nope")
    assert wrong.returncode == 1, shown(wrong)
    assert "error: Not authenticated (401)" in wrong.stderr, shown(wrong)
    assert "Traceback" not in wrong.stderr

    closed = f"http://127.0.0.1:{free_port()}"
    refused = cli("login", "--url", closed, "-u", ADMIN_USERNAME, "--password", "x")
    assert refused.returncode == 1, shown(refused)
    assert f"cannot connect to the OpsConductor API at {closed}" in refused.stderr, shown(refused)
    assert "Traceback" not in refused.stderr


def test_apply_is_idempotent_and_run_follow_streams_and_exits_with_the_outcome(
    operator_cli: Cli, tmp_path: Path
) -> None:
    cli = operator_cli
    job = tmp_path / "greet.yaml"
    job.write_text(
        job_yaml(
            "greet",
            'for i in $(seq {{ params.times }}); do echo "line $i for {{ params.who }}"; done',
        )
    )

    first = cli.ok("apply", "-f", str(job), "-o", "json")
    documents = json.loads(first.stdout)["documents"]
    assert [(row["name"], row["result"]) for row in documents] == [("greet", "create")]
    again = cli.ok("apply", "-f", str(job))
    assert "unchanged" in again.stdout, shown(again)
    job_id = cli.api("GET", "/jobs", params={"q": "greet"}).json()["items"][0]["id"]
    assert cli.api("GET", f"/jobs/{job_id}/versions").json()["total"] == 1

    followed = cli("run", "greet", "-p", "who=cli", "-p", "times=3", "--follow")
    assert followed.returncode == 0, shown(followed, cli.stack)
    lines = [line for line in followed.stdout.splitlines() if "|" in line]
    assert lines == [f"loopback say | line {i} for cli" for i in (1, 2, 3)], shown(followed)
    assert "succeeded" in followed.stdout, shown(followed)

    # A failing run: the exit code follows it.
    job.write_text(job_yaml("greet", "echo about to fail; exit 7"))
    changed = cli.ok("apply", "-f", str(job), "-o", "json")
    assert json.loads(changed.stdout)["documents"][0]["result"] == "update"
    assert cli.api("GET", f"/jobs/{job_id}").json()["version"] == 2
    failing = cli("run", "greet", "--follow", "-o", "json")
    assert failing.returncode == EXIT_RUN_FAILED, shown(failing, cli.stack)
    events = [json.loads(line) for line in failing.stdout.splitlines()]
    assert [event["line"] for event in events if event["event"] == "line"] == ["about to fail"]
    final = events[-1]["run"]
    assert final["status"] == "failed"
    assert final["summary"]["steps"] == [{"id": "say", "by_status": {"failed": 1}}]

    listed = json.loads(cli.ok("runs", "--job", "greet", "-o", "json").stdout)
    assert [run["status"] for run in listed["items"]] == ["failed", "succeeded"]
    failed_only = cli.ok("runs", "--status", "failed")
    assert "greet v2" in failed_only.stdout
    assert "succeeded" not in failed_only.stdout
    shown_run = cli.ok("run", "show", final["id"])
    assert "greet v2  failed" in shown_run.stdout, shown(shown_run)
    assert "targets: 1  failed 1" in shown_run.stdout, shown(shown_run)
    assert "loopback" not in shown_run.stdout, shown(shown_run)
    failed_targets = cli.ok("run", "show", final["id"], "--failed", "--step", "say")
    step_row = next(line for line in failed_targets.stdout.splitlines() if "loopback" in line)
    assert step_row.split()[:3] == ["loopback", "say", "failed"], shown(failed_targets)
    assert " 7 " in step_row, shown(failed_targets)
    grid = json.loads(cli.ok("run", "show", final["id"], "--targets", "-o", "json").stdout)
    assert grid["targets"][0]["steps"][0]["exit_code"] == 7

    bad_parameter = cli("run", "greet", "-p", "times=many")
    assert bad_parameter.returncode == 1, shown(bad_parameter)
    assert "times" in bad_parameter.stderr


def test_apply_reports_problems_by_path_and_refuses_unknown_kinds(cli: Cli, tmp_path: Path) -> None:
    cli.login()
    invalid = tmp_path / "invalid.yaml"
    invalid.write_text("name: broken\ntargets: {}\nsteps:\n  - id: a\n    action: no.such.action\n")
    result = cli("apply", "-f", str(invalid))
    assert result.returncode == 1, shown(result)
    assert "steps.0.action" in result.stderr, shown(result)

    # A broken job in the same files as a good one: nothing of either is saved.
    mixed = tmp_path / "mixed.yaml"
    mixed.write_text(
        "kind: group\nname: tools\n---\n" + invalid.read_text() + "---\nkind: playbook\n"
    )
    refused = cli("apply", "-f", str(mixed))
    assert refused.returncode == 1, shown(refused)
    assert "unknown kind 'playbook'" in refused.stderr, shown(refused)
    mixed.write_text("kind: group\nname: tools\n---\n" + invalid.read_text())
    refused = cli("apply", "-f", str(mixed))
    assert refused.returncode == 1, shown(refused)
    assert cli.api("GET", "/target-groups").json()["total"] == 0
    for name in ("broken", "tools"):
        assert cli.api("GET", "/jobs", params={"q": name}).json()["total"] == 0


def test_cancel_ends_a_followed_run_with_the_cancelled_exit_code(
    operator_cli: Cli, tmp_path: Path
) -> None:
    cli = operator_cli
    job = tmp_path / "slow.yaml"
    job.write_text(job_yaml("slow", "echo started; sleep 60; echo never"))
    cli.ok("apply", "-f", str(job))

    with (tmp_path / "follow.out").open("w") as out, (tmp_path / "follow.err").open("w") as err:
        follower = subprocess.Popen(
            [sys.executable, "-m", "opsconductor", "run", "slow", "--follow"],
            env=cli.env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while "started" not in (tmp_path / "follow.out").read_text():
            assert follower.poll() is None, (tmp_path / "follow.err").read_text()
            assert time.monotonic() < deadline, "no output line within 60 s"
            time.sleep(0.2)
        run_id = (tmp_path / "follow.err").read_text().split()[1]
        cancelled = cli.ok("run", "cancel", run_id)
        assert "cancelling" in cancelled.stdout
        code = follower.wait(60)
    finally:
        if follower.poll() is None:
            os.killpg(follower.pid, signal.SIGKILL)
    output = (tmp_path / "follow.out").read_text() + (tmp_path / "follow.err").read_text()
    assert code == EXIT_RUN_CANCELLED, output
    assert "never" not in output
    assert f"run {run_id} cancelled" in output

    again = cli("run", "cancel", run_id)
    assert again.returncode == 1, shown(again)
    assert "already ended" in again.stderr


# Each a `GET /runs` and a `GET /targets` (the test's own API process).
LIST_REQUESTS = 150


def metric_samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_the_api_process_rarely_collects_garbage(cli: Cli) -> None:
    """A served API process has frozen what it built and raised the collector's thresholds
    (`settle_for_serving`): list requests trigger no full collection, whose walk held the event
    loop for 70 to 120 ms (benchmarks/README.md fix 21), and few young ones. The default
    thresholds gave about one young collection per two list requests."""
    cli.login()
    with httpx.Client(
        base_url=f"{cli.stack.url}/api/v1",
        headers={"Authorization": f"Bearer {cli.token}"},
        timeout=30,
    ) as http:
        before = metric_samples(httpx.get(f"{cli.stack.url}/metrics").text)
        for _ in range(LIST_REQUESTS):
            http.get("/runs").raise_for_status()
            http.get("/targets").raise_for_status()
        after = metric_samples(httpx.get(f"{cli.stack.url}/metrics").text)

    def collections(generation: str) -> float:
        name = "python_gc_collections_total"
        return sample(after, name, generation=generation) - sample(
            before, name, generation=generation
        )

    assert sample(after, "python_gc_collections_total", generation="0") > 0  # exported at all
    assert collections("2") == 0
    assert collections("0") <= LIST_REQUESTS * 2 / 50


async def test_metrics_move_and_the_request_id_reaches_the_worker_logs(
    operator_cli: Cli, tmp_path: Path
) -> None:
    cli = operator_cli
    job = tmp_path / "metered.yaml"
    job.write_text(job_yaml("metered", "echo metered"))
    job_id = json.loads(cli.ok("apply", "-f", str(job), "-o", "json").stdout)["documents"][0]["id"]

    before = metric_samples(httpx.get(f"{cli.stack.url}/metrics").text)
    request_id = f"e2e-{secrets.token_hex(8)}"
    started = cli.api("POST", f"/jobs/{job_id}/runs", json={}, headers={"X-Request-ID": request_id})
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]
    finished = cli.ok("run", "show", run_id, "-o", "json")
    deadline = time.monotonic() + 60
    while json.loads(finished.stdout)["status"] not in {"succeeded", "failed"}:
        assert time.monotonic() < deadline, finished.stdout
        time.sleep(0.3)
        finished = cli.ok("run", "show", run_id, "-o", "json")
    assert json.loads(finished.stdout)["status"] == "succeeded", finished.stdout

    after = metric_samples(httpx.get(f"{cli.stack.url}/metrics").text)
    start_route = {"method": "POST", "route": "/api/v1/jobs/{id}/runs", "status": "202"}
    assert sample(after, "opsconductor_http_requests_total", **start_route) == (
        sample(before, "opsconductor_http_requests_total", **start_route) + 1
    )
    assert sample(
        after, "opsconductor_http_request_duration_seconds_count",
        method="POST", route="/api/v1/jobs/{id}/runs",
    ) >= 1  # fmt: skip
    # Route templates, never raw URLs: the run's id is in no label.
    assert not any(run_id in str(labels) for _, labels in after)
    assert sample(after, "opsconductor_runs", status="succeeded") == (
        sample(before, "opsconductor_runs", status="succeeded") + 1
    )
    assert sample(after, "opsconductor_steps", action="ssh.command", status="succeeded") == (
        sample(before, "opsconductor_steps", action="ssh.command", status="succeeded") + 1
    )
    assert sample(after, "opsconductor_records_up") == 1

    worker_metrics = httpx.get(cli.stack.worker_metrics, timeout=10).text
    activity_series = [
        labels
        for (name, labels) in metric_samples(worker_metrics)
        if name.startswith("temporal_activity_execution") and ("task_queue", "ssh") in labels
    ]
    assert activity_series, worker_metrics[:REPORT_CHARS]

    # The worker's log lines for this run carry the id of the request that started it.
    def lines_of_run() -> list[dict[str, Any]]:
        return [
            entry
            for entry in log_entries(cli.stack.worker.stderr)
            if entry.get("request_id") == request_id
        ]

    cli.stack.worker.wait_until(
        lambda: any(entry.get("activity") == "ssh-command-chunk" for entry in lines_of_run()),
        30,
        "logging the ssh-command-chunk activity with the request id",
    )
    entries = lines_of_run()
    # The step's activity (an `ssh.command` step runs in a chunk of its batch's targets), and
    # the workflow's local activities (a succeeded step's records are its worker's, so no
    # record-step here).
    assert {entry["activity"] for entry in entries if "activity" in entry} >= {
        "ssh-command-chunk",
        "load-target-batch",
        "record-run-status",
    }
    assert any(entry["message"].startswith("workflow started") for entry in entries), entries
    # The run's own workflow and its target batches (`run-<id>-s<n>-b<offset>`), nobody else's.
    workflows = {entry["workflow_id"] for entry in entries if "workflow_id" in entry}
    assert f"run-{run_id}" in workflows
    assert all(workflow.startswith(f"run-{run_id}") for workflow in workflows), workflows

    # In history the header is sealed by our codec like every other payload.
    raw = await Client.connect(cli.stack.temporal_address)
    history = await raw.get_workflow_handle(f"run-{run_id}").fetch_history()
    headers = [
        event.workflow_execution_started_event_attributes.header.fields.get(REQUEST_ID_HEADER)
        for event in history.events
        if event.HasField("workflow_execution_started_event_attributes")
    ]
    assert len(headers) == 1
    assert headers[0] is not None
    assert headers[0].metadata["encoding"] == b"binary/encrypted"
    assert request_id.encode() not in history.to_json().encode()


def test_schedules_are_listed_paused_resumed_and_triggered(
    operator_cli: Cli, tmp_path: Path
) -> None:
    cli = operator_cli
    job = tmp_path / "nightly.yaml"
    job.write_text(job_yaml("nightly", "echo nightly"))
    applied = json.loads(cli.ok("apply", "-f", str(job), "-o", "json").stdout)["documents"]
    created = cli.api(
        "POST",
        "/schedules",
        json={"job_id": applied[0]["id"], "name": "nightly", "cron": "30 2 * * *"},
    )
    assert created.status_code == 201, created.text

    listed = json.loads(cli.ok("schedules", "list", "-o", "json").stdout)["items"]
    (nightly,) = [item for item in listed if item["name"] == "nightly"]
    assert len(nightly["next_runs"]) == 5
    assert "nightly" in cli.ok("schedules", "list").stdout

    paused = json.loads(
        cli.ok("schedules", "pause", "nightly", "--note", "freeze", "-o", "json").stdout
    )
    assert (paused["paused"], paused["note"]) == (True, "freeze")
    assert "freeze" in cli.ok("schedules", "list").stdout
    resumed = json.loads(cli.ok("schedules", "resume", "nightly", "-o", "json").stdout)
    assert resumed["paused"] is False

    cli.ok("schedules", "trigger", "nightly")
    for _ in range(100):
        shown_schedule = cli.api("GET", f"/schedules/{nightly['id']}").json()
        if shown_schedule["recent_runs"]:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the triggered run never appeared among the schedule's recent runs")
    missing = cli("schedules", "pause", "no-such-schedule")
    assert missing.returncode == 1, shown(missing)
    assert "no schedule named 'no-such-schedule'" in missing.stderr


def test_credentials_grant_list_and_revoke(operator_cli: Cli) -> None:
    created = operator_cli.api(
        "POST",
        "/users",
        json={
            "username": "grace",
            "email": "grace@example.com",
            "role": "operator",
            "password": "grace-password-long",
        },
    )
    assert created.status_code in (201, 409), created.text
    granted = operator_cli.ok("credentials", "grant", "sshd-key", "--user", "grace")
    assert granted.stdout.strip() == "credential sshd-key: usable by user:grace"
    operator_cli.ok("credentials", "grant", "sshd-key", "--role", "operator")
    listed = operator_cli.ok("credentials", "list").stdout
    assert "user:grace, role:operator" in listed
    operator_cli.ok("credentials", "revoke", "sshd-key", "--user", "grace")
    revoked = operator_cli.ok("credentials", "revoke", "sshd-key", "--role", "operator")
    assert revoked.stdout.strip() == "credential sshd-key: usable by admins only"
    refused = operator_cli("credentials", "grant", "sshd-key", "--role", "admin")
    assert refused.returncode != 0
    assert "admins use every credential" in shown(refused)
    audit = operator_cli.api(
        "GET", "/audit", params={"action": "credential.grants.update", "limit": 10}
    ).json()
    assert len(audit["items"]) >= 4


def test_operations_commands_rotate_scan_import_test_and_revoke(
    operator_cli: Cli, sshd: LoopbackSshd, http_receiver: HttpReceiver, tmp_path: Path
) -> None:
    """`credentials rotate`, `discovery`, `groups`, `channels`, `tokens` and `users` as a user
    types them: each read on its table and on `-o json`."""
    cli = operator_cli
    key_file = tmp_path / "new_key"
    key_file.write_text(sshd.client_key_text)  # the same key: other tests still reach sshd
    rotated = cli.ok("credentials", "rotate", "sshd-key", "-s", f"private_key=file:{key_file}")
    assert rotated.stdout.strip() == "credential sshd-key: secret rotated"
    again = json.loads(
        cli.ok(
            "credentials", "rotate", "sshd-key", "-s", f"private_key=file:{key_file}", "-o", "json"
        ).stdout
    )
    assert (again["name"], again["rotated_at"] is not None) == ("sshd-key", True)
    wrong_field = cli("credentials", "rotate", "sshd-key", "-s", f"password=file:{key_file}")
    assert wrong_field.returncode == 1, shown(wrong_field)
    assert "has no secret field 'password'" in wrong_field.stderr
    key_line = sshd.client_key_text.strip().splitlines()[1]
    assert key_line not in rotated.stdout + rotated.stderr + wrong_field.stderr

    scan_answer = cli.ok(
        "discovery", "scan", "127.0.0.1", "--ports", str(sshd.port), "--name", "loopback-scan"
    )
    scan_id = scan_answer.stdout.split()[1]
    assert scan_answer.stdout.strip() == f"scan {scan_id} started (queued)"
    # Polled through the API (a CLI process per poll would cost a second each).
    for _ in range(300):
        if cli.api("GET", f"/discovery/scans/{scan_id}").json()["status"] in TERMINAL:
            break
        time.sleep(0.2)
    scan = json.loads(cli.ok("discovery", "show", scan_id, "-o", "json").stdout)
    assert scan["status"] == "succeeded", scan
    assert [port["port"] for port in scan["hosts"][0]["open_ports"]] == [sshd.port]
    hosts = cli.ok("discovery", "show", scan_id).stdout
    assert ["127.0.0.1", "localhost"] in [row.split()[:2] for row in hosts.splitlines()], hosts
    listed_scans = cli.ok("discovery", "show").stdout.splitlines()
    assert [scan_id, "loopback-scan", "succeeded", "1"] in [row.split() for row in listed_scans]
    # The scan found the host of target `loopback`: import reports it, creates nothing.
    imported = cli.ok("discovery", "import", scan_id, "--credential", "sshd-key", "-o", "json")
    assert json.loads(imported.stdout) == {
        "created": [],
        "existing": [{"address": "127.0.0.1", "target": "loopback"}],
        "skipped": [],
    }
    reimported = cli.ok("discovery", "import", scan_id, "-a", "127.0.0.1")
    assert reimported.stdout.strip() == "0 created, 1 existing, 0 skipped"

    (group_file := tmp_path / "group.yaml").write_text(
        "kind: group\nname: found\n---\nkind: targets\nitems:\n"
        f"  - {{name: loopback, address: {sshd.host}, port: {sshd.port}, credential: sshd-key, "
        "groups: [found], tags: {env: test}}\n"
    )
    cli.ok("apply", "-f", str(group_file))
    assert "found" in cli.ok("groups", "list").stdout
    group = cli.ok("groups", "show", "found")
    assert group.stdout.splitlines()[0] == "group found: 1 member(s)"
    assert group.stdout.splitlines()[-1].split() == ["loopback", sshd.host, "ssh"]
    members = json.loads(cli.ok("groups", "show", "found", "-o", "json").stdout)["members"]
    assert [(member["name"], member["port"]) for member in members] == [("loopback", sshd.port)]

    for name, port in (("hook", http_receiver.port), ("dead-hook", free_port())):
        created = cli.api(
            "POST",
            "/notification-channels",
            json={"name": name, "url": f"json://hook:{WEBHOOK_SECRET}@127.0.0.1:{port}/cli"},
        )
        assert created.status_code == 201, created.text
    channels = cli.ok("channels", "list")
    assert "json://…" in channels.stdout
    delivered = cli.ok("channels", "test", "hook")
    assert delivered.stdout.startswith("channel hook: delivered"), shown(delivered)
    assert json.loads(cli.ok("channels", "test", "hook", "-o", "json").stdout)["ok"] is True
    assert [request.path for request in http_receiver.wait_for(2)] == ["/cli", "/cli"]
    undelivered = cli("channels", "test", "dead-hook", "-o", "json")
    assert undelivered.returncode == 1, shown(undelivered)
    assert json.loads(undelivered.stdout)["status"] == "failed"
    channel_output = channels.stdout + delivered.stdout + undelivered.stdout + undelivered.stderr
    assert WEBHOOK_SECRET not in channel_output

    made, twin = (
        cli.api("POST", "/tokens", json={"name": "ci-token", "expires_in_days": 1})
        for _ in range(2)
    )
    assert (made.status_code, twin.status_code) == (201, 201), made.text
    tokens = cli.ok("tokens", "list").stdout
    assert "ci-token" in tokens
    assert made.json()["token"] not in tokens
    ambiguous = cli("tokens", "revoke", "ci-token")
    assert ambiguous.returncode == 1, shown(ambiguous)
    assert "2 tokens are named 'ci-token'; revoke one by id" in ambiguous.stderr
    assert twin.json()["id"] in ambiguous.stderr
    cli.ok("tokens", "revoke", twin.json()["id"])
    assert cli.ok("tokens", "revoke", "ci-token").stdout.strip() == "token ci-token revoked"
    # Revoked tokens leave the list; the logins of the CLI (this test's and earlier ones) stay.
    listed_tokens = json.loads(cli.ok("tokens", "list", "-o", "json").stdout)["items"]
    assert {token["name"].split()[0] for token in listed_tokens} == {"cli"}
    refused = httpx.get(
        f"{cli.stack.url}/api/v1/auth/me",
        headers={"Authorization": f"Bearer {made.json()['token']}"},
    )
    assert refused.status_code == 401

    users = cli.ok("users", "list").stdout.splitlines()
    assert users[0].split()[:3] == ["USERNAME", "EMAIL", "ROLE"]
    assert any(line.split()[0] == ADMIN_USERNAME for line in users[1:])
    roles = {user["username"]: user["role"] for user in json.loads(
        cli.ok("users", "list", "-o", "json").stdout
    )["items"]}  # fmt: skip
    assert roles[ADMIN_USERNAME] == "admin"
