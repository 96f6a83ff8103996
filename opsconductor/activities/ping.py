"""A trivial activity served on every queue, so a probe can prove each queue has a live worker.

A poller on a queue (what /health sees) only shows that a worker is connected; executing an
activity shows that it also runs work, with our data converter, end to end.
"""

import os
import socket

from pydantic import BaseModel
from temporalio import activity

from opsconductor import __version__


class PingRequest(BaseModel):
    queue: str


class PingReply(BaseModel):
    queue: str
    host: str
    pid: int
    version: str


@activity.defn(name="ping")
async def ping(request: PingRequest) -> PingReply:
    return PingReply(
        queue=activity.info().task_queue,
        host=socket.gethostname(),
        pid=os.getpid(),
        version=__version__,
    )
