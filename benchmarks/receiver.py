"""The HTTP receiver of the tests in a process of its own, so that its threads do not share the
benchmark driver's interpreter; writes its URL to the file named by its argument."""

import signal
import sys
import threading
from pathlib import Path

from tests.fixtures.http_receiver import HttpReceiver


def main() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with HttpReceiver() as receiver:
        Path(sys.argv[1]).write_text(receiver.url)
        stop.wait()


if __name__ == "__main__":
    main()
