"""Notification messages: the default title and body, and the context they are rendered in.

Pure functions over plain data, shared by the job-run workflow (which knows the run's status
and duration) and the notify worker (which knows the public URL and renders the message).
"""

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

DEFAULT_TITLE = "{{ job.name }}: {{ run.status | replace('_', ' ') }}"
DEFAULT_BODY = """\
Job {{ job.name }} (version {{ job.version }}), run {{ run.id }}: \
{{ run.status | replace('_', ' ') }}.
{% if run.reason %}Reason: {{ run.reason }}
{% endif %}{% if approval %}Step {{ approval.step }} asks: {{ approval.message }}
{% endif %}Started {{ run.started_at }}, {{ run.duration }} ago.
Targets: {{ run.summary }}
{% if run.failed_targets %}Failed targets: {{ run.failed_targets | join(', ') }}
{% endif %}{{ run.url }}
"""


def format_duration(elapsed: timedelta) -> str:
    """`2h 03m`, `4m 05s`, `12s`: what a person reads in a message."""
    seconds = max(0, int(elapsed.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {seconds:02d}s"
    return f"{seconds}s"


def run_facts(
    context: Mapping[str, Any],
    now: datetime,
    status: str,
    reason: str | None = None,
    approval: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The run context with what a message tells beyond it: status, duration, reason, and the
    approval being waited for."""
    run = dict(context["run"])
    run["status"] = status
    run["reason"] = reason
    run["duration"] = format_duration(now - datetime.fromisoformat(run["started_at"]))
    return {**context, "run": run, "approval": dict(approval) if approval else None}


def run_link(public_url: str, run_id: str) -> str:
    return f"{public_url}/api/v1/runs/{run_id}"
