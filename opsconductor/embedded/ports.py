"""Port checks, so a taken port is reported by name before anything starts."""

import socket
import time
from collections.abc import Callable


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as candidate:
        candidate.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            candidate.bind((host, port))
        except OSError:
            return False
    return True


def wait_for_port(
    host: str, port: int, timeout: float, alive: Callable[[], bool] = lambda: True
) -> bool:
    """Wait until something accepts connections on host:port, giving up early if not alive."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.2)
    return False
