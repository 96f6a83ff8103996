"""Any output is stored, and nothing a step produces fails workflow code: the storable-text rule,
failure details of any shape, and workflow-rendered templates that must be deterministic."""

from typing import Any

import pytest
from temporalio.exceptions import ActivityError, ApplicationError, RetryState, TimeoutType
from temporalio.exceptions import TimeoutError as ActivityTimeoutError

from opsconductor.contracts.steps import StepResult
from opsconductor.jobspec.templates import TemplateProblem, nondeterminism, render_condition
from opsconductor.jobspec.validation import validate_document
from opsconductor.text import OUTPUT_ERRORS, storable, storable_json
from opsconductor.workflows.step_execution import activity_failure_details

# -- the storable-text rule -------------------------------------------------------------------


def test_nul_and_lone_surrogates_are_escaped() -> None:
    assert storable("a\x00b") == "a\\x00b"
    # A byte smuggled by surrogateescape shows as that byte; other lone surrogates by code.
    assert storable("x\udcffy") == "x\\xffy"
    assert storable("\ud800\udfff") == "\\ud800\\udfff"
    assert storable("\x00\x00") == "\\x00\\x00"
    for text in (storable("a\x00\udc80\ud83d"),):
        text.encode("utf-8")  # storable text always encodes


@pytest.mark.parametrize(
    "text", ["", "plain", "tab\there\r\n", "é ü 中文 😀", "C:\\path\\x41", "\x01\x1b[31mred"]
)
def test_valid_text_is_unchanged(text: str) -> None:
    assert storable(text) == text


def test_remote_bytes_decode_per_the_rule() -> None:
    raw = b"a\x00b\xff\n\xe2\x82\xac"
    assert storable(raw.decode("utf-8", OUTPUT_ERRORS)) == "a\\x00b\\xff\n€"


def test_json_values_are_made_storable_keys_included() -> None:
    value: dict[str, Any] = {"k\x00": ["a\x00", {"n": 1, "s": "\ud800"}], "ok": None, "t": True}
    assert storable_json(value) == {
        "k\\x00": ["a\\x00", {"n": 1, "s": "\\ud800"}],
        "ok": None,
        "t": True,
    }


# -- failure details of any shape ---------------------------------------------------------------


def activity_error(cause: BaseException) -> ActivityError:
    error = ActivityError(
        "activity failed",
        scheduled_event_id=1,
        started_event_id=2,
        identity="test",
        activity_type="plugin:odd",
        activity_id="1",
        retry_state=RetryState.NON_RETRYABLE_FAILURE,
    )
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    "details",
    [
        ("just a string",),
        (["a", "list"],),
        ({"attempt": "not a number", "stdout": 5},),
        ({"exit_code": {"nested": True}},),
        (None,),
        (42, "more"),
    ],
)
def test_odd_failure_details_become_the_message_and_an_empty_result(details: tuple[Any]) -> None:
    cause = ApplicationError("the plugin broke", *details, type="PluginError")
    message, result = activity_failure_details(activity_error(cause), attempts=3)
    assert message == "the plugin broke"
    assert result == StepResult()


def test_well_formed_details_are_kept() -> None:
    details = {"attempt": 2, "exit_code": 3, "stdout": "out", "stderr": "err"}
    cause = ApplicationError("exited with 3, expected 0", details, type="StepFailed")
    message, result = activity_failure_details(activity_error(cause), attempts=3)
    assert message == "exited with 3, expected 0"
    assert (result.attempt, result.exit_code, result.stdout) == (2, 3, "out")


def test_no_details_and_timeouts_still_answer() -> None:
    message, _ = activity_failure_details(activity_error(ApplicationError("", type="Boom")), 1)
    assert message == "Boom"
    timeout = ActivityTimeoutError(
        "timed out", type=TimeoutType.START_TO_CLOSE, last_heartbeat_details=[]
    )
    message, result = activity_failure_details(activity_error(timeout), attempts=4)
    assert (message, result.attempt) == ("timed out (start_to_close)", 4)


# -- deterministic workflow templates ----------------------------------------------------------

RANDOM_WHEN = "{{ [true, false] | random }}"


@pytest.mark.parametrize(
    "template",
    [
        RANDOM_WHEN,
        "{{ lipsum(1) }}",
        "{{ [1, 2] | map('random') | list }}",
        "{% filter random %}ab{% endfilter %}",
    ],
)
def test_nondeterministic_templates_are_named(template: str) -> None:
    assert nondeterminism(template) is not None
    with pytest.raises(TemplateProblem, match="another answer on a replay"):
        render_condition(template, {}, deterministic=True)


@pytest.mark.parametrize(
    "template", ["{{ x | default(1) }}", "{{ range(3) | list | length > 2 }}", "random", "x"]
)
def test_deterministic_templates_pass(template: str) -> None:
    assert nondeterminism(template) is None


def sleep_step(step_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "action": "control.sleep", "with": {"duration": "1s"}, **extra}


def test_validation_refuses_randomness_where_the_workflow_renders_it() -> None:
    report = validate_document(
        {
            "name": "dice",
            "strategy": {"concurrency": "{{ [1, 2] | random }}"},
            "steps": [
                sleep_step("a", run_once=True),
                sleep_step("b", run_once=True, when=RANDOM_WHEN),
                {
                    "id": "c",
                    "run_once": True,
                    "action": "control.sleep",
                    "with": {"duration": "{{ ['1s', '2s'] | random }}"},
                },
            ],
        }
    )
    assert not report.valid
    found = {problem.path: problem.type for problem in report.problems}
    assert found == {
        "steps.1.when": "nondeterministic",
        "steps.2.with.duration": "nondeterministic",
        "strategy.concurrency": "nondeterministic",
    }


def test_randomness_in_an_activity_rendered_with_block_is_allowed() -> None:
    report = validate_document(
        {
            "name": "jitter",
            "steps": [
                {
                    "id": "a",
                    "action": "ssh.command",
                    "with": {"command": "sleep {{ [1, 2, 3] | random }}"},
                }
            ],
        }
    )
    assert report.valid, report.problems
