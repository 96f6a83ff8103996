"""Serving the API: one process, or several sharing one port (`opsconductor api --workers N`).

Every request handler keeps its state in PostgreSQL (sessions, the login throttle, the
reconcilers' advisory locks, the first admin's lock), so API processes need nothing from each
other; more of them let reads use more cores. With N > 1, uvicorn's supervisor binds the port
and starts N processes, each of which builds the app from the environment (`worker_app`), as
the settings came from there in the first place.

Each serving process settles its collector once its app is built (`settle_for_serving`): the
app factory alone does not, as tests build many apps in one process.
"""

import uvicorn
from fastapi import FastAPI

from opsconductor.api.app import create_app
from opsconductor.config import Settings
from opsconductor.logging import configure_logging
from opsconductor.processes import end_with_parent, settle_for_serving


def serve(settings: Settings, workers: int) -> None:
    common = {
        "host": settings.api_host,
        "port": settings.api_port,
        "log_config": None,
        # "auto", said aloud: httptools (a dependency) parses HTTP when installed, a C parser
        # where h11 is Python on every request (benchmarks/README.md fix 14).
        "http": "auto",
        # "auto" again: uvloop (a dependency, except on Windows) runs this process's event loop
        # when installed, and with it every asyncpg round trip (benchmarks/README.md fix 18).
        # The worker keeps asyncio's loop: the Temporal SDK's own runtime does its network I/O.
        "loop": "auto",
        "server_header": False,
        "timeout_graceful_shutdown": 15,
        # uvicorn believes X-Forwarded-For from loopback by default (or FORWARDED_ALLOW_IPS):
        # only the proxies named in our setting are believed, none by default.
        "proxy_headers": bool(settings.forwarded_allow_ips),
        "forwarded_allow_ips": settings.forwarded_allow_ips or None,
    }
    if workers == 1:
        app = create_app(settings)
        settle_for_serving()
        uvicorn.run(app, **common)  # type: ignore[arg-type]
        return
    uvicorn.run(
        f"{__name__}:worker_app",
        factory=True,
        workers=workers,
        **common,  # type: ignore[arg-type]
    )


def worker_app() -> FastAPI:
    """The app of one of several API processes: a fresh interpreter, so logging is set up
    again; and one that ends with its supervisor, so a supervisor killed outright (SIGKILL,
    the OOM killer) leaves no process holding the port and serving with stale code."""
    end_with_parent()
    settings = Settings()
    configure_logging(settings, service="api")
    app = create_app(settings)
    settle_for_serving()
    return app
