"""How `opsconductor run start --follow` prints a run log line: where it came from, which
stream, and the attempt when a step ran more than once."""

import json

import pytest

from opsconductor.cli.output import OutputFormat
from opsconductor.cli.runs import print_line


def line(attempt: int, stream: str = "stdout") -> dict[str, object]:
    return {
        "id": 7,
        "target": "web-1",
        "step_id": "deploy",
        "attempt": attempt,
        "stream": stream,
        "line": "unpacked",
        "created_at": "2026-11-28T10:00:00Z",
    }


def test_a_first_attempts_line_names_its_target_and_step(capsys: pytest.CaptureFixture[str]):
    print_line(line(1), OutputFormat.table)
    print_line(line(1, "stderr"), OutputFormat.table)

    assert capsys.readouterr().out.splitlines() == [
        "web-1 deploy | unpacked",
        "web-1 deploy ! unpacked",
    ]


def test_a_later_attempts_line_says_which_try(capsys: pytest.CaptureFixture[str]):
    print_line(line(2), OutputFormat.table)
    print_line(line(2), OutputFormat.json)

    table, as_json = capsys.readouterr().out.splitlines()
    assert table == "web-1 deploy (try 2) | unpacked"
    assert json.loads(as_json)["attempt"] == 2
