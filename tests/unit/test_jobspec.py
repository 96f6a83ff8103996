"""Job documents: the examples validate, every problem is named by its path, and the compiler
turns run-once steps into barriers between per-target segments."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from opsconductor.jobspec.actions import CORE_ACTIONS
from opsconductor.jobspec.document import ParameterSpec, ParameterType, job_document_schema
from opsconductor.jobspec.parameters import resolve_parameters
from opsconductor.jobspec.plan import SegmentKind, compile_plan
from opsconductor.jobspec.validation import validate_document

# The example jobs shipped with the repository: <repo>/examples, two levels above this file.
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def job(*steps: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": "demo", "steps": list(steps), **extra}


def command(step_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "action": "ssh.command", "with": {"command": "true"}, **extra}


def problems_of(document: dict[str, Any]) -> dict[str, str]:
    report = validate_document(document)
    assert not report.valid
    return {problem.path: problem.message for problem in report.problems}


def test_the_examples_are_where_the_tests_look() -> None:
    # Without this, a moved examples/ folder would turn the examples' tests into an empty set.
    assert len(list(EXAMPLES.glob("*.yaml"))) >= 2, EXAMPLES


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda path: path.stem)
def test_shipped_examples_validate(path: Path) -> None:
    report = validate_document(yaml.safe_load(path.read_text()))
    assert report.problems == []
    assert report.valid


def test_unknown_action_is_named_at_its_path() -> None:
    found = problems_of(job(command("a"), {"id": "b", "action": "ssh.teleport"}))
    assert "unknown action 'ssh.teleport'" in found["steps.1.action"]


def test_a_with_block_that_breaks_the_action_schema() -> None:
    found = problems_of(
        job(
            {"id": "call", "action": "http.request", "with": {"url": "", "methd": "GET"}},
            {"id": "wait", "action": "control.sleep", "with": {"duration": "soon"}},
        )
    )
    assert "steps.0.with.url" in found
    assert "steps.0.with.methd" in found
    assert any(path.startswith("steps.1.with.duration") for path in found)


def test_winrm_cmd_args_cmd_exe_would_expand_are_refused_on_save() -> None:
    step = {
        "id": "echo",
        "action": "winrm.cmd",
        "with": {"command": "echo", "args": ["fine & dandy", "%PATH%", "{{ params.x }}"]},
    }
    found = problems_of(job(step))
    assert list(found) == ["steps.0.with.args.1"]
    assert "contains %" in found["steps.0.with.args.1"]


def test_unknown_self_and_cyclic_needs() -> None:
    found = problems_of(job(command("a", needs=["a", "ghost"])))
    assert found["steps.0.needs.0"] == "step 'a' cannot need itself"
    assert found["steps.0.needs.1"] == "unknown step 'ghost'"

    cycle = problems_of(
        job(command("a", needs=["c"]), command("b", needs=["a"]), command("c", needs=["b"]))
    )
    assert "cycle" in cycle["steps.0.needs"]


def test_template_syntax_and_unordered_references() -> None:
    found = problems_of(
        job(
            command("a"),
            {"id": "b", "action": "ssh.command", "with": {"command": "echo {{ oops"}},
            {"id": "c", "action": "ssh.command", "with": {"command": "{{ steps.a.stdout }}"}},
        )
    )
    assert "template syntax error" in found["steps.1.with.command"]
    assert "not among the steps this one needs" in found["steps.2.with.command"]


def test_durations_and_duplicates_and_run_once_targets() -> None:
    assert (
        "is not a duration" in problems_of(job(command("a", timeout="forever")))["steps.0.timeout"]
    )
    found = problems_of(job(command("a"), command("a", run_once=True)))
    assert found["steps.1.id"].startswith("duplicate step id 'a'")
    assert "cannot be run_once" in found["steps.1.run_once"]


def test_structure_errors_carry_paths() -> None:
    found = problems_of({"name": "Bad Name!", "steps": [{"id": "x"}], "colour": "red"})
    assert "name" in found
    assert "steps.0.action" in found
    assert "colour" in found


def test_parameter_defaults_must_satisfy_their_declaration() -> None:
    found = problems_of(
        job(
            command("a"),
            parameters={"svc": {"type": "string", "default": "a b", "pattern": "^[a-z]+$"}},
        )
    )
    assert "must match" in found["parameters.svc.default"]


def test_run_parameters_are_checked_and_defaulted() -> None:
    report = validate_document(yaml.safe_load((EXAMPLES / "disk-report.yaml").read_text()))
    assert report.document is not None
    declared = report.document.parameters
    resolved, problems = resolve_parameters(declared, {"threshold": 90})
    assert problems == []
    assert resolved == {"threshold": 90, "webhook": "http://127.0.0.1:9000/hook"}
    _, problems = resolve_parameters(declared, {"threshold": 0, "extra": 1, "webhook": True})
    paths = {problem.path: problem.message for problem in problems}
    assert paths["parameters.threshold"] == "must be at least 1"
    assert paths["parameters.extra"] == "is not a parameter of this job"
    assert paths["parameters.webhook"] == "must be of type string"


def test_a_pattern_that_backtracks_without_end_is_stopped_and_named() -> None:
    declared = {"name": ParameterSpec(type=ParameterType.string, pattern="(a+)+$")}
    _, problems = resolve_parameters(declared, {"name": "a" * 50000 + "!"})
    assert [(problem.path, problem.type) for problem in problems] == [
        ("parameters.name", "pattern_timeout")
    ]
    _, problems = resolve_parameters(declared, {"name": "b"})
    assert [(problem.path, problem.type) for problem in problems] == [
        ("parameters.name", "pattern")
    ]
    assert resolve_parameters(declared, {"name": "aaa"})[1] == []


def test_run_once_steps_split_the_plan_into_barriers() -> None:
    report = validate_document(yaml.safe_load((EXAMPLES / "safe-restart.yaml").read_text()))
    assert report.document is not None
    plan = compile_plan(report.document)
    assert [(segment.kind, segment.step_ids) for segment in plan.segments] == [
        (SegmentKind.per_target, ["precheck"]),
        (SegmentKind.run_once, ["approve"]),
        (SegmentKind.per_target, ["restart", "verify", "rollback"]),
    ]


def test_independent_steps_share_a_segment_in_document_order() -> None:
    report = validate_document(
        job(
            command("b", needs=["a"]),
            command("a"),
            command("c"),
            {"id": "note", "action": "control.sleep", "with": {"duration": "1s"}, "run_once": True},
        )
    )
    assert report.document is not None
    plan = compile_plan(report.document)
    assert [(segment.kind, segment.step_ids) for segment in plan.segments] == [
        (SegmentKind.per_target, ["a", "b", "c"]),
        (SegmentKind.run_once, ["note"]),
    ]


def test_every_action_publishes_a_json_schema_and_the_document_has_one() -> None:
    for spec in CORE_ACTIONS.values():
        schema = spec.with_schema()
        assert schema["type"] == "object"
        assert schema.get("additionalProperties") is False
    http_schema = CORE_ACTIONS["http.request"].with_schema()
    assert "json" in http_schema["properties"]
    document_schema = job_document_schema()
    assert "with" in document_schema["$defs"]["Step"]["properties"]
