"""A closed-loop HTTP load generator as lean as `wrk`'s: each client holds one kept-alive
connection and sends its next GET as soon as the last answer is read.

B4 runs its clients on the two cores the API and PostgreSQL use. httpx spent about a
millisecond of CPU per request in the benchmark's own process, a third of what an API process
spends answering it, so at 50 clients the load generator took the cores that more API
processes were meant to use (benchmarks/README.md fix 21). This one sends bytes built once and
reads an answer by its `Content-Length`: a few dozen microseconds per request.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


class UnexpectedAnswer(RuntimeError):
    pass


@dataclass
class Load:
    """What the clients measured: each request's latency, and the connections the server
    closed under a request (the request was made again on a new one, timed from the first)."""

    latencies: list[float] = field(default_factory=list)
    reconnects: int = 0
    seconds: float = 0.0


def _request(url: str, headers: dict[str, str]) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None or parts.port is None:
        raise ValueError(f"{url}: only http://host:port/… is supported")
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"GET {target} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return parts.hostname, parts.port, ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _answer(reader: asyncio.StreamReader) -> None:
    """Reads one answer whole; refuses anything but a 200 with a Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = head[9:12]
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length is None:
        raise UnexpectedAnswer(f"an answer without Content-Length: {head[:200]!r}")
    body = await reader.readexactly(length)
    if status != b"200":
        raise UnexpectedAnswer(f"{status.decode()}: {body[:200]!r}")


async def closed_loop(
    url: str, headers: dict[str, str], clients: int, requests_per_client: int
) -> Load:
    """`clients` connections, each making `requests_per_client` GETs of `url` in turn."""
    host, port, request = _request(url, headers)
    load = Load()

    async def client() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for _ in range(requests_per_client):
                started = time.perf_counter()
                try:
                    writer.write(request)
                    await _answer(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    # The server closed the kept-alive connection as it was reused.
                    load.reconnects += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    writer.write(request)
                    await _answer(reader)
                load.latencies.append(time.perf_counter() - started)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    load.seconds = time.perf_counter() - started
    return load
