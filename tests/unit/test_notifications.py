"""Notification rules in job documents, message defaults, and what an error may say of a URL."""

from datetime import UTC, datetime, timedelta
from typing import Any

import apprise
import yaml

from opsconductor.activities.notify import url_secrets
from opsconductor.jobspec.document import JobDocument, RunEvent
from opsconductor.jobspec.messages import DEFAULT_BODY, DEFAULT_TITLE, format_duration, run_facts
from opsconductor.jobspec.templates import render
from opsconductor.jobspec.validation import validate_document

STEP = {"id": "wait", "action": "control.sleep", "with": {"duration": "1s"}}


def problems_of(document: dict[str, Any]) -> dict[str, str]:
    report = validate_document(document)
    assert not report.valid
    return {problem.path: problem.message for problem in report.problems}


def test_rules_written_in_yaml_keep_their_on_key() -> None:
    # PyYAML reads a bare `on:` as the boolean true; the rule still means what it says.
    document = yaml.safe_load(
        """
        name: demo
        notify:
          - on: [start, failure]
            channel: ops-mail
        steps:
          - {id: wait, action: control.sleep, with: {duration: 1s}}
        """
    )
    report = validate_document(document)
    assert report.valid, report.problems
    assert isinstance(report.document, JobDocument)
    (rule,) = report.document.notify
    assert rule.on == [RunEvent.start, RunEvent.failure]
    assert rule.retry.attempts == 5


def test_an_unknown_event_or_a_broken_template_is_named_by_its_path() -> None:
    problems = problems_of(
        {
            "name": "demo",
            "notify": [
                {"on": ["success"], "channel": "a"},
                {"on": ["start", "finish"], "channel": "b", "title": "{{ job.name"},
            ],
            "steps": [STEP],
        }
    )
    assert set(problems) == {"notify.1.on.1"}
    assert "'start', 'success', 'failure' or 'approval'" in problems["notify.1.on.1"]

    problems = problems_of(
        {
            "name": "demo",
            "notify": [{"on": ["start"], "channel": "b", "body": "{% if %}"}],
            "steps": [STEP],
        }
    )
    assert set(problems) == {"notify.0.body"}
    assert "template syntax error" in problems["notify.0.body"]


def test_notify_send_is_accepted_and_checks_its_with_block() -> None:
    step = {"id": "tell", "action": "notify.send", "run_once": True, "with": {"title": "x"}}
    assert set(problems_of({"name": "demo", "steps": [step]})) == {"steps.0.with.channel"}
    step["with"] = {"channel": "ops", "body": "{{ run.summary }}"}
    assert validate_document({"name": "demo", "steps": [step]}).valid


def test_the_default_message_says_job_run_status_duration_failures_and_link() -> None:
    started = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    context = {
        "job": {"name": "deploy", "version": 3},
        "run": {
            "id": "1234",
            "started_at": started.isoformat(),
            "targets": ["a", "b"],
            "succeeded_targets": ["a"],
            "failed_targets": ["b"],
            "summary": "2 target(s): 1 succeeded, 1 failed (b)",
        },
    }
    facts = run_facts(context, started + timedelta(minutes=4, seconds=5), "failed", "b failed")
    facts["run"]["url"] = "http://ops.example.com/api/v1/runs/1234"
    assert render(DEFAULT_TITLE, facts) == "deploy: failed"
    body = render(DEFAULT_BODY, facts)
    for part in (
        "Job deploy (version 3), run 1234: failed.",
        "Reason: b failed",
        "4m 05s",
        "Failed targets: b",
        "http://ops.example.com/api/v1/runs/1234",
    ):
        assert part in body
    waiting = run_facts(
        context, started, "waiting_approval", approval={"step": "gate", "message": "Go?"}
    )
    waiting["run"]["url"] = ""
    assert render(DEFAULT_TITLE, waiting) == "deploy: waiting approval"
    assert "Step gate asks: Go?" in render(DEFAULT_BODY, waiting)


def test_durations_read_like_a_person_writes_them() -> None:
    assert format_duration(timedelta(seconds=7)) == "7s"
    assert format_duration(timedelta(minutes=2, seconds=3)) == "2m 03s"
    assert format_duration(timedelta(hours=1, minutes=2, seconds=3)) == "1h 02m"


def test_errors_may_not_show_passwords_tokens_or_the_url() -> None:
    cases = {
        "json://hook-user:Planted-Pa55@127.0.0.1:9/hook": {"Planted-Pa55"},
        "slack://TokenAAAAAAAA/TokenBBBBBBBBB/TokenCCCCCCCCCCCCCCCCCCCC/#ops": {
            "TokenAAAAAAAA",
            "TokenBBBBBBBBB",
            "TokenCCCCCCCCCCCCCCCCCCCC",
        },
    }
    for url, secrets in cases.items():
        plugin = apprise.Apprise.instantiate(url)
        assert plugin is not None
        hidden = url_secrets(url, plugin.url(privacy=True))  # type: ignore[no-untyped-call]
        assert url in hidden
        assert secrets <= set(hidden)
        # Host names and the user name stay readable in errors.
        assert "127.0.0.1" not in hidden
        assert "hook-user" not in hidden
