"""Processes that end when they should (children with their parent, a process that must skip
interpreter teardown), and a serving process's garbage collector set for serving.

Linux's parent-death signal (prctl PR_SET_PDEATHSIG) is delivered to a process when the thread
that started it exits, however it exits: a SIGKILL, the OOM killer, a crash. Set in a child, it
keeps a worker's nmap, or an API supervisor's serving processes, from outliving their parent.
"""

import ctypes
import gc
import logging
import os
import signal
import sys
from typing import NoReturn

# <linux/prctl.h>
_PR_SET_PDEATHSIG = 1
# The symbols of the running program, libc's among them; loaded here, in the parent, so that a
# forked child (`preexec_fn`) only makes the call.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


def end_with_parent(signal_number: int = signal.SIGTERM) -> None:
    """In the child: receive `signal_number` when the parent dies (Linux; elsewhere nothing)."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal_number)


# The collector's thresholds once a process serves (CPython's default: 700, 10, 10). A request
# or a step allocates thousands of objects and reference counting frees nearly all of them, so
# the default ran a young collection every few hundred net allocations, several per request,
# and every few hundred requests a full one. 10,000 new container objects before a young
# collection, then 20 young collections before the middle one: a full collection comes a
# hundred times less often (benchmarks/README.md fix 21). Cyclic garbage waits longer for its
# collection: a few MiB at most, counted by what triggers the next one.
SERVING_GC_THRESHOLDS = (10_000, 20, 10)


def settle_for_serving() -> None:
    """Called once a serving process has imported and built what it keeps for its life.

    What it built (modules, the app or the workers, the SDK's sandbox) moves to the collector's
    permanent generation, so a full collection walks only what was allocated since; and the
    collector runs less often (SERVING_GC_THRESHOLDS). Without it, a full collection in the API
    walked its ~260,000 startup objects, 70 to 120 ms each with the event loop held: the p99 of
    every list endpoint.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*SERVING_GC_THRESHOLDS)


def exit_now(code: int) -> NoReturn:
    """Ends a process that has used a Temporal client, skipping interpreter teardown.

    The SDK's runtime threads can outlive the event loop and abort the interpreter while it
    shuts down (temporalio/sdk-python#300), turning a clean exit into a crash; the work is
    done and flushed by then, so there is nothing left for teardown to do.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)
