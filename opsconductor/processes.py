"""Processes that end when they should: children with their parent, and a process that must
skip interpreter teardown.

Linux's parent-death signal (prctl PR_SET_PDEATHSIG) is delivered to a process when the thread
that started it exits, however it exits: a SIGKILL, the OOM killer, a crash. Set in a child, it
keeps a worker's nmap, or an API supervisor's serving processes, from outliving their parent.
"""

import ctypes
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
