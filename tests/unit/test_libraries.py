"""Library documents, their validation, and their expansion into a job's core steps."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import yaml

from opsconductor.jobspec.document import JobDocument
from opsconductor.jobspec.expansion import (
    InstalledLibrary,
    InstalledVersion,
    JobCheck,
    LibraryPin,
    check_job,
)
from opsconductor.jobspec.library import newest, semver_key, validate_library
from opsconductor.jobspec.plugins import known_actions, plugin_actions
from opsconductor.jobspec.templates import render, render_condition
from opsconductor.jobspec.validation import validate_document
from tests.library_helpers import tools_library
from tests.plugin_helpers import acme_plugin

__all__ = ["acme_plugin"]

BUILTIN = Path(__file__).resolve().parents[2] / "opsconductor" / "libraries"


def installed(*documents: dict[str, Any], disabled: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Libraries as a job save sees them; `disabled` holds `name@version` or `name`."""
    found: dict[str, InstalledLibrary] = {}
    for raw in documents:
        report = validate_library(raw)
        assert report.document is not None
        assert report.valid, report.problems
        name, version = report.document.name, report.document.version
        versions = dict(found[name].versions) if name in found else {}
        versions[version] = InstalledVersion(report.document, f"{name}@{version}" not in disabled)
        found[name] = InstalledLibrary(name, name not in disabled, versions)
    return found


def job(*steps: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": "uses-tools", "steps": list(steps), **extra}


def expanded(checked: JobCheck) -> JobDocument:
    assert checked.report.valid, checked.report.problems
    assert checked.report.document is not None
    return checked.report.document


def paths(problems: list[Any]) -> set[str]:
    return {problem.path for problem in problems}


@pytest.mark.parametrize("path", sorted(BUILTIN.glob("*.yaml")), ids=lambda path: path.stem)
def test_the_builtin_libraries_are_valid(path: Path) -> None:
    report = validate_library(yaml.safe_load(path.read_text()))
    assert report.valid, report.problems


def test_every_problem_of_a_library_is_named_by_its_path() -> None:
    document = tools_library()
    document["version"] = "1.0"
    steps = document["steps"]
    steps["greet"]["parameters"]["who"]["type"] = "str"
    steps["count"]["body"][0]["action"] = "ssh.teleport"
    steps["count"]["body"][1]["with"]["command"] = "echo {{ params.times "
    report = validate_library(document)
    assert paths(report.problems) == {"version", "steps.greet.parameters.who.type"}

    document = tools_library()
    steps = document["steps"]
    steps["count"]["body"][0]["action"] = "ssh.teleport"
    steps["count"]["body"][1]["with"]["command"] = "echo {{ params.times "
    steps["count"]["outputs"] = {"rows": {}}
    steps["greet"]["body"][0]["with"]["command"] = "echo {{ params.whom }}"
    steps["greet"]["body"].append(
        {"id": "copy", "action": "ssh.upload", "with": {"file": "missing.sh", "dest": "/tmp/x"}}
    )
    steps["greet"]["parameters"]["who"]["default"] = 3
    report = validate_library(document)
    by_path = {problem.path: problem.message for problem in report.problems}
    assert set(by_path) == {
        "steps.greet.parameters.who.default",
        "steps.greet.body.0.with.command",
        "steps.greet.body.1.with.file",
        "steps.greet.body",
        "steps.count.body.0.action",
        "steps.count.body.1.with.command",
        "steps.count.outputs.rows",
    }
    assert "params.whom" in by_path["steps.greet.body.0.with.command"]
    assert "ends in: say, copy" in by_path["steps.greet.body"]
    assert "unknown action 'ssh.teleport'; core actions:" in by_path["steps.count.body.0.action"]
    assert "template syntax error" in by_path["steps.count.body.1.with.command"]


def test_actions_not_executable_yet_may_be_used_with_valid_with_blocks() -> None:
    document = tools_library()
    document["steps"]["greet"]["body"][0] = {
        "id": "say",
        "action": "winrm.powershell",
        "with": {"script": "Write-Output hi", "shell": "cmd"},
    }
    report = validate_library(document)
    assert [(item.path, item.type) for item in report.problems] == [
        ("steps.greet.body.0.with.shell", "extra_forbidden")
    ]


def test_newest_follows_semantic_version_precedence() -> None:
    versions = ["1.2.0", "1.10.0", "1.10.0-rc.2", "1.10.0-rc.10", "1.10.0-beta", "1.9.9"]
    assert sorted(versions, key=semver_key) == [
        "1.2.0",
        "1.9.9",
        "1.10.0-beta",
        "1.10.0-rc.2",
        "1.10.0-rc.10",
        "1.10.0",
    ]
    assert newest(versions) == "1.10.0"
    assert newest([]) is None


def test_a_library_step_expands_into_core_steps_that_keep_the_job_shape() -> None:
    raw = job(
        {"id": "first", "action": "ssh.command", "with": {"command": "true"}},
        {
            "id": "tally",
            "needs": ["first"],
            "action": "tools/count",
            "with": {"word": "{{ params.word }}", "times": 3},
            "retry": {"attempts": 2},
        },
        {
            "id": "after",
            "needs": ["tally"],
            "action": "ssh.command",
            "with": {"command": "echo {{ steps.tally.outputs.stdout }}"},
        },
        parameters={"word": {"default": "hi"}},
    )
    checked = check_job(raw, installed(tools_library()))
    steps = {step.id: step for step in expanded(checked).steps}
    assert checked.pins == [LibraryPin(library="tools", version="1.0.0", steps=["tally"])]
    assert checked.source == raw
    assert list(steps) == ["first", "tally__echo", "tally", "after"]
    assert steps["tally__echo"].needs == ["first"]
    assert steps["tally"].needs == ["tally__echo"]
    assert steps["tally"].retry.attempts == steps["tally__echo"].retry.attempts == 2
    assert steps["tally"].name == "tools/count"
    assert steps["tally__echo"].name == "tools/count: echo"

    # The job's params feed the library's through the template; literals keep their type.
    context = {
        "params": {"word": "hi"},
        "target": {"name": "web-1"},
        "steps": {"tally__echo": {"stdout": "hi-web-1"}},
    }
    assert render(steps["tally__echo"].with_["command"], context) == "echo hi-web-1"
    assert render(steps["tally"].with_["command"], context) == "echo hi-web-1 6"


def test_arguments_of_every_kind_reach_the_body_as_written() -> None:
    tricky = 'it\'s "quoted" %} }} \\ é 😀'
    checked = check_job(
        job(
            {"id": "a", "action": "tools/greet", "with": {"who": tricky}},
            {"id": "b", "action": "tools/greet", "with": {"who": "{{ params.n }} and more"}},
            {"id": "c", "action": "tools/greet"},
            parameters={"n": {"type": "integer", "default": 5}},
        ),
        installed(tools_library()),
    )
    command = {step.id: step.with_["command"] for step in expanded(checked).steps}
    context = {"params": {"n": 5}}
    assert (
        render(command["a"], context) == "echo hello " + "'" + tricky.replace("'", "'\"'\"'") + "'"
    )
    assert render(command["b"], context) == "echo hello '5 and more'"
    assert render(command["c"], context) == "echo hello world"


def test_when_and_continue_carry_over_onto_the_body() -> None:
    checked = check_job(
        job(
            {"id": "a", "action": "tools/greet", "when": "{{ params.go }}"},
            {"id": "b", "action": "tools/count", "with": {"word": "x"}, "on_error": "continue"},
            parameters={"go": {"type": "boolean", "default": False}},
        ),
        installed(tools_library()),
    )
    steps = {step.id: step for step in expanded(checked).steps}
    assert steps["a"].when == "{{ params.go }}"
    assert {steps["b__echo"].on_error.value, steps["b"].on_error.value} == {"continue"}
    # With `continue`, a tolerated failure still ends the body, as it would a single action.
    assert steps["b"].when is not None
    failed = {"steps": {"b__echo": {"failed": True}}}
    assert render_condition(steps["b"].when, failed) is False
    assert render_condition(steps["b"].when, {"steps": {"b__echo": {"failed": False}}}) is True


def test_a_job_names_the_path_of_each_library_problem() -> None:
    libraries = installed(
        tools_library(),
        tools_library("1.1.0"),
        {**tools_library("0.1.0"), "name": "old"},
        disabled=frozenset({"tools@1.1.0", "old"}),
    )
    checked = check_job(
        job(
            {"id": "a", "action": "nothing/here"},
            {"id": "b", "action": "tools/greet@9.9.9"},
            {"id": "c", "action": "tools/greet@1.1.0"},
            {"id": "d", "action": "old/greet"},
            {"id": "e", "action": "tools/nope"},
            {"id": "f", "action": "tools/greet", "with": {"who": "{{ x ", "whom": 1}},
            {"id": "g", "action": "tools/count", "with": {"times": 0}, "when": "{{ true }}"},
            {"id": "h", "needs": ["a", "zzz"], "action": "tools/greet"},
            {"id": "i", "action": "tools/greet", "with": {"who": "{{ steps.h.stdout }}"}},
        ),
        libraries,
    )
    messages = {problem.path: problem.message for problem in checked.report.problems}
    assert messages == {
        "steps.0.action": "no library 'nothing' is installed",
        "steps.1.action": "tools has no version 9.9.9 (versions: 1.0.0, 1.1.0)",
        "steps.2.action": "tools@1.1.0 is disabled",
        "steps.3.action": "the library 'old' is disabled",
        "steps.4.action": "tools@1.0.0 has no step 'nope' (steps: count, greet)",
        "steps.5.with.who": messages["steps.5.with.who"],
        "steps.5.with.whom": "is not a parameter of tools/greet@1.0.0",
        "steps.6.with.word": "is required",
        "steps.6.with.times": "must be at least 1",
        "steps.6.when": messages["steps.6.when"],
        "steps.7.needs.1": "unknown step 'zzz'",
        "steps.8.with": "tools/greet@1.0.0 body step say, with.command: reads steps.h, which "
        "is not among the steps this one needs (directly or through its needs), so it may not "
        "have run yet",
    }
    assert "template syntax error" in messages["steps.5.with.who"]
    assert "cannot share one `when`" in messages["steps.6.when"]


def test_without_a_version_the_newest_enabled_one_is_pinned() -> None:
    raw = job({"id": "a", "action": "tools/greet"})
    both = [tools_library(), tools_library("1.1.0", greeting="hi")]
    assert check_job(raw, installed(*both)).pins[0].version == "1.1.0"
    pinned = check_job(raw, installed(*both, disabled=frozenset({"tools@1.1.0"})))
    assert pinned.pins[0].version == "1.0.0"
    assert pinned.report.document is not None
    assert (
        pinned.report.document.steps[0]
        .with_["command"]
        .endswith("echo hello {{ params.who | quote }}")
    )


def test_a_job_without_library_steps_is_stored_as_written() -> None:
    checked = check_job(job({"id": "a", "action": "control.sleep", "with": {"duration": "1s"}}), {})
    assert checked.report.valid
    assert (checked.pins, checked.source) == ([], None)


@pytest.mark.usefixtures("acme_plugin")
def test_plugin_actions_load_from_their_entry_point_and_validate(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR):
        assert list(plugin_actions()) == ["acme.ping", "acme.emit"]
    assert "is not an opsconductor PluginAction" in caplog.text
    spec = known_actions()["acme.ping"]
    assert (spec.queue, spec.activity_name, spec.outputs) == (
        spec.queue.http if spec.queue else None,
        "plugin:acme.ping",
        ("reachable",),
    )
    good = {"id": "p", "action": "acme.ping", "with": {"host": "db-1"}}
    assert validate_document(job(good)).valid
    bad = {"id": "p", "action": "acme.ping", "with": {"host": "db-1", "count": 99}}
    assert paths(validate_document(job(bad)).problems) == {"steps.0.with.count"}
