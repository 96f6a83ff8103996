"""What a step activity receives and answers: one step on one target (or once for the run).

Every step activity (core, library body or plugin) takes a `StepRequest` and returns a
`StepResult`; the activity's name comes from the action catalog (jobspec/actions.py), since
plugins add actions at run time.
"""

import json
import uuid
from typing import Any, Literal

from pydantic import BaseModel, Field

from opsconductor.contracts import activity_contract

# The failure type of a step attempt cut off because its worker was stopping (a deploy), not
# because the step failed: the workflow runs the step again on another worker, outside the
# step's retry policy (workflows/step_execution.py, worker/shutdown.py).
WORKER_SHUTDOWN = "WorkerShutdown"

# The two output streams of a step, which some actions' outputs repeat.
Stream = Literal["stdout", "stderr"]


def with_repeats(
    outputs: dict[str, Any], text_outputs: dict[str, Stream], stdout: str, stderr: str
) -> dict[str, Any]:
    """Outputs as the action documents them: those carried once as a stream put back."""
    streams = {"stdout": stdout, "stderr": stderr}
    return {**outputs, **{name: streams[stream] for name, stream in text_outputs.items()}}


def fitted(outputs: dict[str, Any], limit: int) -> dict[str, Any]:
    """`outputs` itself if its JSON fits `limit` characters, else `{"truncated": True}`."""
    if len(json.dumps(outputs, default=str)) > limit:
        return {"truncated": True}
    return outputs


class TargetSnapshot(BaseModel):
    """A target as it was when the run started; later edits do not change a running run."""

    id: uuid.UUID
    name: str
    address: str
    port: int
    protocol: str
    credential_id: uuid.UUID | None = None
    os: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    vars: dict[str, Any] = Field(default_factory=dict)

    def context(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"credential_id"})


class StepRequest(BaseModel):
    """One step on one target (or once for the run), as sent to a protocol activity.

    `with_` is still a template: the activity renders it, so `secret('name')` is resolved on
    the worker and never enters history.
    """

    run_id: uuid.UUID
    step_id: str
    action: str
    with_: dict[str, Any]
    context: dict[str, Any]
    target: TargetSnapshot | None = None
    credential: str | None = None
    # The number of this activity's first attempt: 1, or one more than the attempt a worker
    # shutdown cut off. The run log numbers each line's attempt from it.
    first_attempt: int = Field(default=1, ge=1)

    def attempt(self, activity_attempt: int) -> int:
        """The step's attempt number, counted across shutdown re-runs, of the activity's
        own attempt `activity_attempt` (Temporal's, which starts at 1 in every re-run)."""
        return self.first_attempt + activity_attempt - 1

    # Whether the step's stdout, stderr and outputs return to the workflow: only when a later
    # step's templates read them (or the run's summary does, for a run-once step). Either way
    # the worker stores them on the step's record; history carries the exit code and state.
    # True by default, as for requests scheduled before the flag existed.
    return_output: bool = True
    # Whether the step's worker writes the step's state: `running` when an attempt starts and,
    # when the step succeeds, `succeeded` with its output, in the write that stores the output.
    # The workflow then records neither (two local activities fewer per target and step) and
    # records only what the worker cannot know (failures after the last retry, skips).
    # False in requests scheduled before the flag existed: their workflow records both.
    worker_records_state: bool = False


class StepResult(BaseModel):
    """What a step activity returns, or attaches to its failure so the last attempt's output
    is still shown."""

    attempt: int = 1
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    outputs: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    # Outputs that repeat stdout or stderr (`ssh.command`'s `outputs.stdout`, `http.request`'s
    # `outputs.body`), by output name: the stream they repeat. Such outputs cross history once,
    # as the stream, and templates still read them under both names.
    text_outputs: dict[str, Stream] = Field(default_factory=dict)
    # The worker stored stdout, stderr and outputs on the step's record itself: the workflow's
    # record of the outcome must keep them, whatever this result still carries.
    output_recorded: bool = False
    # The worker also stored the step's final `succeeded` state (`worker_records_state`).
    state_recorded: bool = False

    def without_repeats(self) -> "StepResult":
        """A copy whose outputs no longer repeat stdout or stderr (see `text_outputs`)."""
        repeats = dict(self.text_outputs)
        for name, value in self.outputs.items():
            if isinstance(value, str) and value == self.stdout:
                repeats.setdefault(name, "stdout")
            elif isinstance(value, str) and value == self.stderr:
                repeats.setdefault(name, "stderr")
        return self.model_copy(
            update={
                "outputs": {
                    name: value for name, value in self.outputs.items() if name not in repeats
                },
                "text_outputs": repeats,
            }
        )

    def all_outputs(self) -> dict[str, Any]:
        return with_repeats(self.outputs, self.text_outputs, self.stdout, self.stderr)

    def state_only(self) -> "StepResult":
        """A copy without stdout, stderr and outputs, for a step no later template reads."""
        return self.model_copy(
            update={"stdout": "", "stderr": "", "outputs": {}, "text_outputs": {}}
        )


# Actions whose per-target steps a target batch runs in chunks: one activity over up to
# `RunRequest.chunk_size` targets (docs/engine.md, "Scale: chunked steps"). Others keep one
# activity per target (long transfers, WinRM, plugins).
CHUNKED_ACTIONS = frozenset({"ssh.command", "http.request"})
# Targets per chunk activity in runs stored from now on; a batch holds at most 100 by default.
DEFAULT_CHUNK_SIZE = 100
# A step's input (one target's request, or a chunk's) must stay under Temporal's 2 MB payload
# limit, with room for encryption.
MAX_STEP_INPUT = 1_500_000


class ChunkRetry(BaseModel):
    """A step's retry policy, applied per target inside the chunk activity."""

    interval_seconds: float
    backoff: float
    max_interval_seconds: float | None = None

    def delay(self, failed_attempts: int) -> float:
        """The wait after the `failed_attempts`-th failed attempt in a row (1, 2, ...)."""
        delay = self.interval_seconds * self.backoff ** (failed_attempts - 1)
        return delay if self.max_interval_seconds is None else min(delay, self.max_interval_seconds)


class ChunkMember(BaseModel):
    """One target of a chunk: what differs from the chunk's other targets."""

    target: TargetSnapshot
    context: dict[str, Any]
    # The step's attempt number of this member's first attempt (see StepRequest), and how many
    # attempts it may make from there (the step's retries left).
    first_attempt: int = Field(default=1, ge=1)
    attempts: int = Field(default=1, ge=1)


class ChunkRequest(BaseModel):
    """One step over a chunk of targets, as one activity: the shared part once, then each
    target's own. Like `StepRequest.with_`, `with_` is still a template."""

    run_id: uuid.UUID
    step_id: str
    action: str
    with_: dict[str, Any]
    credential: str | None = None
    return_output: bool = False
    retry: ChunkRetry
    # Each attempt on each target is bounded by the step's timeout.
    timeout_seconds: float
    # Targets in flight at once within the chunk.
    concurrency: int = Field(ge=1)
    members: list[ChunkMember]

    def step_request(self, member: ChunkMember, first_attempt: int | None = None) -> StepRequest:
        """The member's step as the single-target path sees it."""
        return StepRequest(
            run_id=self.run_id,
            step_id=self.step_id,
            action=self.action,
            with_=self.with_,
            context=member.context,
            target=member.target,
            credential=self.credential,
            first_attempt=first_attempt or member.first_attempt,
            return_output=self.return_output,
            worker_records_state=True,
        )


class MemberResult(BaseModel):
    """How a chunk member's step ended: `result` (its `attempt` is the step's attempt number),
    and `error` when it failed for good. `cut`: a worker's shutdown stopped it at attempt
    `result.attempt`, which does not count; the workflow runs it again."""

    target: str
    result: StepResult
    error: str | None = None
    cut: bool = False


class ChunkResult(BaseModel):
    members: list[MemberResult]


class ChunkProgress(BaseModel):
    """The chunk activity's heartbeat details: what a retry after a lost worker resumes from.
    `finished`: members done (their results as the workflow gets them); `started`: the attempt
    each other member was on."""

    finished: list[MemberResult] = Field(default_factory=list)
    started: dict[str, int] = Field(default_factory=dict)


@activity_contract
async def ssh_command_chunk(request: ChunkRequest) -> ChunkResult:
    """`ssh.command` over a chunk of targets (activities/ssh_chunks.py), on the ssh queue."""
    raise NotImplementedError("a contract stub: workers register its implementation")


@activity_contract
async def http_request_chunk(request: ChunkRequest) -> ChunkResult:
    """`http.request` over a chunk of targets (activities/http_chunks.py), on the http queue."""
    raise NotImplementedError("a contract stub: workers register its implementation")
