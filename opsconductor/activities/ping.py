"""A trivial activity served on every queue, so a probe can prove each queue has a live worker.

A poller on a queue (what /health sees) only shows that a worker is connected; executing an
activity shows that it also runs work, with our data converter, end to end.
"""

import os
import socket

from temporalio import activity

from opsconductor import __version__
from opsconductor.contracts import implements
from opsconductor.contracts import probe as contract
from opsconductor.contracts.probe import PingReply, PingRequest


@implements(contract.ping)
async def ping(request: PingRequest) -> PingReply:
    return PingReply(
        queue=activity.info().task_queue,
        host=socket.gethostname(),
        pid=os.getpid(),
        version=__version__,
    )
