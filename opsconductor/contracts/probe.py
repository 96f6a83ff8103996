"""The fleet-probe contract (`opsconductor check`): every task queue is asked to run `ping`, so
each queue is shown to have a live worker that runs work with our data converter."""

from pydantic import BaseModel

from opsconductor.contracts import activity_contract

FLEET_PROBE_WORKFLOW = "fleet-probe"


class PingRequest(BaseModel):
    queue: str


class PingReply(BaseModel):
    queue: str
    host: str
    pid: int
    version: str


class ProbeRequest(BaseModel):
    queues: list[str]
    # How long a queue may go without a worker picking the task up before it counts as down.
    wait_seconds: float = 10.0


class QueueAnswer(BaseModel):
    queue: str
    ok: bool
    reply: PingReply | None = None
    error: str | None = None


class ProbeReport(BaseModel):
    answers: list[QueueAnswer]

    @property
    def all_ok(self) -> bool:
        return all(answer.ok for answer in self.answers)


@activity_contract
async def ping(request: PingRequest) -> PingReply:
    raise NotImplementedError("a contract: every worker registers it (activities/ping.py)")
