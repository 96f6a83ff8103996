"""The worker says so when the workflow sandbox would compile the workflow modules from source
for every workflow run (docs/engine.md, "A run's round trips")."""

import py_compile
import sys
from importlib.util import cache_from_source
from pathlib import Path

import pytest

from opsconductor.contracts.queues import TaskQueue
from opsconductor.worker.main import uncompiled_workflow_modules


def test_workflow_modules_without_bytecode_are_named_until_they_are_compiled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An empty bytecode cache: what a checkout run with PYTHONDONTWRITEBYTECODE looks like.
    monkeypatch.setattr(sys, "pycache_prefix", str(tmp_path))
    missing = uncompiled_workflow_modules([TaskQueue.orchestration])
    assert "opsconductor.workflows.job_run" in missing
    # A worker on a protocol queue runs no workflow, so it has nothing to compile.
    assert uncompiled_workflow_modules([TaskQueue.ssh]) == []

    for name in missing:
        source = sys.modules[name].__file__
        assert source is not None
        py_compile.compile(source, cfile=cache_from_source(source), doraise=True)
    assert uncompiled_workflow_modules([TaskQueue.orchestration]) == []
