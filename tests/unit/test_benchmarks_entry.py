"""The benchmarks' entry point parses its flags (the benchmarks themselves never run in CI)."""

from pathlib import Path

import pytest

from benchmarks.run import parse
from benchmarks.stack import cached_bytecode_environment


def test_quick_picks_small_sizes_and_flags_override_them() -> None:
    options = parse(["--quick", "--only", "b1,B3", "--b1-sizes", "5,7"])
    assert options.only == ["B1", "B3"]
    assert options.b1_sizes == [5, 7]
    assert (options.repeats, options.b3_sizes, options.b2_runs) == (1, [1000], 50)
    assert parse(["--api-workers", "2"]).api_workers == 2


def test_the_full_run_is_the_issues_sizes() -> None:
    options = parse([])
    assert options.b1_sizes == [20, 100, 200]
    assert options.b3_sizes == [1000, 10_000]
    assert (options.b4_targets, options.b4_runs, options.b4_clients) == (10_000, 100_000, 50)
    assert options.b5_sizes == [200]


def test_an_unknown_benchmark_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(["--only", "B9"])
    assert "unknown B9" in capsys.readouterr().err


def test_the_stacks_processes_keep_compiled_bytecode_in_the_working_directory(
    tmp_path: Path,
) -> None:
    """As the Docker image ships it: the workflow sandbox's per-run imports read bytecode, not
    source (a compile of job_run.py per workflow run was 15 % of the worker's CPU in B2)."""
    environment = cached_bytecode_environment(
        tmp_path, {"PYTHONDONTWRITEBYTECODE": "1", "PATH": "/bin"}
    )
    assert environment == {"PATH": "/bin", "PYTHONPYCACHEPREFIX": str(tmp_path / "pycache")}
