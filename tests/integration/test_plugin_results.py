"""A plugin action's result reaches the run's record as safely as a core action's output
(docs/libraries.md, "What a plugin's result becomes"), through a real run: bounded, storable,
and failing the step (never the run's records) when it cannot be stored."""

from __future__ import annotations

import httpx
import pytest

from opsconductor.activities.steps import MAX_OUTPUT_CHARACTERS
from tests.identity_helpers import Account
from tests.plugin_helpers import acme_plugin
from tests.run_helpers import TERMINAL, start_job_run, wait_for

__all__ = ["acme_plugin"]

pytestmark = pytest.mark.integration


@pytest.mark.usefixtures("acme_plugin", "workers")
async def test_a_plugin_result_is_bounded_cleaned_and_checked_on_the_record(
    http: httpx.AsyncClient, operator: Account
) -> None:
    # Run-once steps: their output goes back to the workflow, so into Temporal's history.
    document = {
        "name": "emitter",
        "steps": [
            {"id": what, "run_once": True, "action": "acme.emit", "with": {"what": what}}
            for what in ("loud", "wide", "odd", "fail", "exit", "fail_exit", "fail_loud", "crash")
        ],
    }
    run_id = await start_job_run(http, operator, document)
    run = await wait_for(http, operator, run_id, TERMINAL)
    steps = {step["id"]: step for step in run["steps"]}
    assert run["status"] == "failed"  # the `exit` step, not the others

    # 5.3 MB of stdout, stderr and an output: each its last 64 KiB, with a true note.
    loud = steps["loud"]
    assert loud["status"] == "succeeded", loud["reason"]
    kept, note = loud["stdout"].rsplit("\n[… ", 1)
    assert len(kept) == MAX_OUTPUT_CHARACTERS
    assert kept.endswith("line 399999\n")
    assert note.endswith(" earlier characters not kept]")
    assert loud["stderr"].endswith(" earlier characters not kept]")
    assert loud["outputs"] == {"report": loud["stdout"], "n": 1}

    # 3 MB of outputs in small values (over MAX_PLUGIN_OUTPUTS): replaced whole, as at a
    # workflow boundary.
    wide = steps["wide"]
    assert (wide["status"], wide["outputs"]) == ("succeeded", {"truncated": True})

    # NUL and lone surrogates: escaped as in any output (opsconductor.text).
    odd = steps["odd"]
    assert odd["status"] == "succeeded", odd["reason"]
    assert (odd["stdout"], odd["stderr"]) == ("a\\x00b \\xff c\\ud800", "\\x00")
    assert odd["outputs"] == {"k\\x00": ["\\x00", {"s": "\\x80"}], "n": 1}

    # The result a failure carries: made as safe, shown on the failed step.
    fail = steps["fail"]
    assert (fail["status"], fail["reason"], fail["exit_code"]) == ("failed", "it broke", 3)
    assert "line 399999\n\\xff\n[… " in fail["stdout"]
    assert fail["stdout"].endswith(" earlier characters not kept]")

    # A failure's message is made as safe too: an ApplicationError's, and any other error's
    # (failed under its type's name).
    fail_loud = steps["fail_loud"]
    assert fail_loud["status"] == "failed"
    assert "line 399999\n\\xff\n[… " in fail_loud["reason"]
    assert fail_loud["reason"].endswith(" earlier characters not kept]")
    crash = steps["crash"]
    assert (crash["status"], crash["reason"]) == ("failed", "no \\xff such thing")

    # An exit code the record cannot hold fails the step, at once, instead of its record.
    # Returned, or carried by a failure.
    for exit_step in (steps["exit"], steps["fail_exit"]):
        assert (exit_step["status"], exit_step["attempts"]) == ("failed", 1)
        assert exit_step["reason"] == (
            "plugin action acme.emit returned exit_code 1099511627776, out of range"
        )
