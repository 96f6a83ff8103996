"""Log lines are JSON with service, version and the request/run in scope; readable text on a
terminal when LOG_FORMAT is auto (the default)."""

import io
import json
import logging
import os
from collections.abc import Iterator
from typing import TextIO

import pytest

from opsconductor import __version__
from opsconductor.config import Settings
from opsconductor.logging import configure_logging, request_id_var, run_id_var


@pytest.fixture
def log_stream(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    configure_logging(Settings(log_format="json"), service="api")
    yield stream
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_carries_service_version_and_context(log_stream: io.StringIO) -> None:
    request_token = request_id_var.set("req-1")
    run_token = run_id_var.set("run-9")
    try:
        logging.getLogger("opsconductor.test").info("hello %s", "there", extra={"step": "s1"})
    finally:
        request_id_var.reset(request_token)
        run_id_var.reset(run_token)
    (entry,) = lines(log_stream)
    assert entry["message"] == "hello there"
    assert entry["service"] == "api"
    assert entry["version"] == __version__
    assert entry["request_id"] == "req-1"
    assert entry["run_id"] == "run-9"
    assert entry["step"] == "s1"
    assert entry["level"] == "INFO"


def test_exceptions_are_logged_with_their_stack(log_stream: io.StringIO) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("opsconductor.test").exception("failed")
    (entry,) = lines(log_stream)
    assert "ValueError: boom" in str(entry["exception"])
    assert "request_id" not in entry


def logged_through(stream: TextIO, log_format: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr", stream)
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        configure_logging(Settings(log_format=log_format), service="worker")
        logging.getLogger("opsconductor.test").info("worker started")
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def test_auto_is_readable_text_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    controller, terminal = os.openpty()
    with os.fdopen(terminal, "w") as stream:
        logged_through(stream, "auto", monkeypatch)
    line = os.read(controller, 4096).decode()
    os.close(controller)
    assert " INFO    worker opsconductor.test: worker started" in line
    assert "{" not in line


def test_auto_is_json_when_the_output_is_not_a_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().log_format == "auto"
    piped = io.StringIO()
    logged_through(piped, "auto", monkeypatch)
    (entry,) = lines(piped)
    assert (entry["message"], entry["service"]) == ("worker started", "worker")


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_an_explicit_format_wins_over_the_output(
    log_format: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    controller, terminal = os.openpty()
    with os.fdopen(terminal, "w") as stream:
        logged_through(stream, log_format, monkeypatch)
    line = os.read(controller, 4096).decode()
    os.close(controller)
    assert line.lstrip().startswith("{") == (log_format == "json"), line
