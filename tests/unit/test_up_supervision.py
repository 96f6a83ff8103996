"""`opsconductor up` starts again a child that asks to be restarted, and stops the stack when
one exits any other way (docs/reliability.md, "A worker that cannot give a run back")."""

import subprocess
import sys
from pathlib import Path

import pytest

from opsconductor.cli.up import Child, keep_children_running
from opsconductor.worker.health import RESTART_EXIT_CODE


def exiting_with(code: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-c", f"raise SystemExit({code})"])
    process.wait()
    return process


def lasting() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_a_child_asking_to_restart_is_started_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    worker = Child("worker", exiting_with(RESTART_EXIT_CODE), tmp_path / "worker.log", lasting)
    try:
        assert keep_children_running([worker])
        assert worker.process.poll() is None
        assert "worker asked to be restarted" in capsys.readouterr().err
    finally:
        worker.process.kill()
        worker.process.wait()


def test_a_child_exiting_otherwise_stops_the_stack(tmp_path: Path) -> None:
    api = Child("api", exiting_with(1), tmp_path / "api.log", lasting)
    assert not keep_children_running([api])
    assert api.process.returncode == 1
