"""`workflow.patched`, bundled: one patch marker for a new run instead of one per patch.

Every `workflow.patched(id)` a run asks for the first time writes a `core_patch` marker and an
upsert of Temporal's `TemporalChangeVersion` search attribute into its history: two events per
patch, in every new run, though a new run always takes every patch. So the `job-run` and
`job-run-batch` workflows ask one patch, BUNDLE_2 (BUNDLE in histories written before it), as
the first thing each run does (`open_bundle`):

- a new run takes it (one marker, one upsert) and with it every patch in BUNDLED, without
  asking them (no marker, no upsert);
- a history written before the bundle, replayed, has no BUNDLE marker where it is asked, so
  it is refused and each patch is asked as before, exactly where it was asked then.

It is asked at the same point of every run, its first command, so this is replay-safe either
way. A patch added later is asked on its own (`workflow.patched`), until a new bundle takes
it in (docs/engine.md, "Changing workflow code").

The bundle also guards what changed with it (`bundled()`), at no cost of its own: `job-run`
no longer upserts a `RunStatus` the run already shows (the `running` of its first record
write, upserted again in the same workflow task before).
"""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from opsconductor.contracts.runs import (
        CONTINUE_AS_NEW_PATCH,
        FOLD_RUN_RECORDS_PATCH,
        RUN_STATUS_SEARCH_ATTRIBUTE_PATCH,
    )

# The patch ids below, one marker for all (issue #19, benchmarks/README.md "fix 15").
BUNDLE = "patch-bundle-1"
# BUNDLE and what changed after it, one marker for all again (benchmarks/README.md "fix 19"):
# a run whose targets fit in one batch runs that batch in its own workflow, without a
# `job-run-batch` child (`one_batch_inline`). Histories that took BUNDLE ran every batch as a
# child, and replay that way.
BUNDLE_2 = "patch-bundle-2"

# The patches of workflows/step_execution.py. Re-running a step its worker's shutdown cut off:
# histories written before it handled the WorkerShutdown failure as a failed step (a new ssh
# worker under an old orchestration worker produces exactly that), so they replay that way.
RERUN_ON_WORKER_SHUTDOWN = "rerun-step-on-worker-shutdown"
# Letting a step's worker record its `running` and `succeeded` states
# (`StepRequest.worker_records_state`). Histories written before it recorded both from the
# workflow, as local activities, and replay that way.
WORKER_RECORDS_STATE = "worker-records-step-state"
# Running chunked actions' per-target steps in chunk activities (workflows/step_chunks.py).
# Histories written before it ran one activity per target.
CHUNKED_STEPS = "chunked-steps"
# Running `http.request` steps in chunks too. Histories written before it ran one `http-step`
# activity per target; it is asked before CHUNKED_STEPS, so those histories (which may hold
# that marker for their ssh steps) replay as they ran.
CHUNKED_HTTP_STEPS = "chunked-http-steps"
# workflows/step_chunks.py: splitting a step's targets into chunks by the size of their
# requests as well as by count. Histories written before it split by count alone; it is asked
# only where the size ends a chunk early, so other histories carry no marker.
CHUNK_INPUT_SIZE = "chunk-input-size"
# workflows/notifications.py: the run's messages in delivery workflows (see its docstring).
APART_PATCH = "notifications-apart-from-the-run"

BUNDLED = frozenset(
    {
        CONTINUE_AS_NEW_PATCH,
        FOLD_RUN_RECORDS_PATCH,
        RUN_STATUS_SEARCH_ATTRIBUTE_PATCH,
        RERUN_ON_WORKER_SHUTDOWN,
        WORKER_RECORDS_STATE,
        CHUNKED_STEPS,
        CHUNKED_HTTP_STEPS,
        CHUNK_INPUT_SIZE,
        APART_PATCH,
    }
)


def open_bundle() -> None:
    """Asks BUNDLE_2, then (a history written before it) BUNDLE: the first call of a `job-run`
    or `job-run-batch` run, before any command. A new run takes BUNDLE_2 and never asks
    BUNDLE: one marker."""
    bundled()


def bundled() -> bool:
    """Whether this run took a bundle. (The SDK keeps the answers `open_bundle` got: asking
    again writes nothing.)"""
    return workflow.patched(BUNDLE_2) or workflow.patched(BUNDLE)


def one_batch_inline() -> bool:
    """Whether a run whose targets fit in one batch runs it in its own workflow: it took
    BUNDLE_2."""
    return workflow.patched(BUNDLE_2)


def patched(patch_id: str) -> bool:
    """`workflow.patched(patch_id)`, taken as applied without a marker when the run took the
    bundle."""
    if patch_id not in BUNDLED:
        raise ValueError(f"{patch_id!r} is not in the patch bundle: ask workflow.patched")
    return bundled() or workflow.patched(patch_id)
