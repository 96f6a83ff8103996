"""A throwaway plugin distribution: a module and its dist-info on sys.path, no install."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsconductor.jobspec.plugins import plugin_actions

PLUGIN_SOURCE = """
from pydantic import BaseModel, ConfigDict, Field
from temporalio.exceptions import ApplicationError

from opsconductor.jobspec.plugins import PluginAction
from opsconductor.contracts.steps import StepRequest, StepResult
from opsconductor.contracts.queues import TaskQueue


class PingWith(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str = Field(min_length=1)
    count: int = Field(default=1, ge=1, le=10)


async def ping(request: StepRequest) -> StepResult:
    return StepResult(outputs={"reachable": True})


LOUD = "".join(f"line {number}\\n" for number in range(400_000))  # 5.3 MB


class EmitWith(BaseModel):
    what: str


RESULTS = {
    "loud": StepResult(stdout=LOUD, stderr="warn " + LOUD, outputs={"report": LOUD, "n": 1}),
    "wide": StepResult(outputs={f"k{number}": "x" * 1000 for number in range(3000)}),
    "odd": StepResult(
        stdout="a\\x00b \\udcff c\\ud800",
        stderr="\\x00",
        outputs={"k\\x00": ["\\x00", {"s": "\\udc80"}], "n": 1},
    ),
    "exit": StepResult(exit_code=2**40),
}


async def emit(request: StepRequest) -> StepResult:
    if request.with_["what"] == "fail_loud":
        raise ApplicationError("it broke: " + LOUD + "\\udcff", type="Loud", non_retryable=True)
    if request.with_["what"] == "crash":
        raise ValueError("no \\udcff such thing")
    if request.with_["what"].startswith("fail"):
        # A failure showing its (last) attempt's result.
        exit_code = 2**40 if request.with_["what"] == "fail_exit" else 3
        failed = StepResult(stdout=LOUD + "\\udcff", exit_code=exit_code)
        raise ApplicationError("it broke", failed, type="StepFailed", non_retryable=True)
    return RESULTS[request.with_["what"]]


ACTIONS = [
    PluginAction(
        name="acme.ping",
        description="Ping a host the ACME way",
        input_model=PingWith,
        queue=TaskQueue.http,
        run=ping,
        outputs=("reachable",),
    ),
    # Returns the edge case its `with.what` names (tests/integration/test_plugin_results.py).
    PluginAction("acme.emit", "Return an edge-case result", EmitWith, TaskQueue.http, emit),
]
NOT_AN_ACTION = object()
"""


@pytest.fixture
def acme_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Installs `acme-ops` for one test: `acme.ping` and `acme.emit` (good) and `broken` (breaks
    the contract)."""
    root = tmp_path / "site"
    root.mkdir()
    (root / "acme_ops.py").write_text(PLUGIN_SOURCE)
    dist_info = root / "acme_ops-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-ops\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        "[opsconductor.actions]\nacme = acme_ops:ACTIONS\nbroken = acme_ops:NOT_AN_ACTION\n"
    )
    monkeypatch.syspath_prepend(str(root))
    plugin_actions.cache_clear()
    yield
    plugin_actions.cache_clear()
    sys.modules.pop("acme_ops", None)
