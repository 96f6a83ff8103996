"""The app factory: one FastAPI app with its resources opened and closed by the lifespan."""

import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import Depends, FastAPI
from fastapi.routing import APIRoute

from opsconductor import __version__
from opsconductor.api.auth import AUDITED
from opsconductor.api.background import reconcile_runs_forever, reconcile_until_done
from opsconductor.api.deps import API_PREFIX, refuse_unstorable_text
from opsconductor.api.docs import install_docs
from opsconductor.api.metrics import ApiMetrics
from opsconductor.api.middleware import (
    BodyLimitMiddleware,
    RequestContextMiddleware,
    ScopedCorsMiddleware,
)
from opsconductor.api.problems import PROBLEM_RESPONSES, install_problem_handlers
from opsconductor.api.routers import (
    audit,
    auth,
    codec,
    credentials,
    discovery,
    health,
    hooks,
    jobs,
    libraries,
    metrics,
    notification_channels,
    notifications,
    runs,
    schedules,
    steps,
    target_groups,
    targets,
    tokens,
    triggers,
    users,
)
from opsconductor.api.routers import settings as install_settings
from opsconductor.config import Settings
from opsconductor.console import install_console
from opsconductor.db import (
    create_engine,
    create_reading_sessionmaker,
    create_sessionmaker,
    unit_of_work,
)
from opsconductor.security.keys import load_process_keys
from opsconductor.services.principal_cache import IDENTITY_CHANNEL, forget_on_notification
from opsconductor.services.sealing import keyring_from
from opsconductor.services.users import bootstrap_admin
from opsconductor.temporal.client import connect
from opsconductor.temporal.codec import EncryptionCodec

logger = logging.getLogger(__name__)

OPENAPI_URL = "/openapi.json"

__all__ = ["API_PREFIX", "create_app"]


def announce_generated_admin(username: str, password: str) -> None:
    # Printed to the console, never logged: log pipelines keep what they see.
    print(
        f"\n  First admin created: username {username!r}, password {password!r}\n"
        "  It is shown only this once; change it after signing in.\n",
        file=sys.stderr,
        flush=True,
    )


def _route_name(route: APIRoute) -> str:
    return route.name


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        app.state.settings = settings
        app.state.keys = load_process_keys(settings)
        app.state.keyring = keyring_from(app.state.keys)
        app.state.codec = EncryptionCodec(app.state.keys, accept_plain=True)
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine)
        app.state.reading_sessionmaker = create_reading_sessionmaker(engine)
        # The API starts, and /health reports on it, even while Temporal is still coming up.
        app.state.temporal = await connect(settings, lazy=True)
        async with unit_of_work(app.state.sessionmaker) as session:
            password = await bootstrap_admin(session, settings)
        if password is not None:
            announce_generated_admin(settings.admin_username, password)
        # In the background: the API must start (and report its health) while Temporal is away.
        background = [
            asyncio.create_task(reconcile_until_done(app.state.sessionmaker, app.state.temporal)),
            asyncio.create_task(
                reconcile_runs_forever(app.state.sessionmaker, app.state.temporal, settings)
            ),
        ]
        # Changes to users, sessions and API tokens made by other processes (services/
        # principal_cache.py): a connection of its own, held for the app's life.
        identity = await engine.connect()
        listening = (await identity.get_raw_connection()).driver_connection
        assert listening is not None  # an open connection has its asyncpg one
        await listening.add_listener(IDENTITY_CHANNEL, forget_on_notification)
        logger.info("api started", extra={"version": __version__})
        try:
            yield
        finally:
            await identity.close()
            for task in background:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
            await engine.dispose()
            logger.info("api stopped")

    app = FastAPI(
        title="OpsConductor",
        version=__version__,
        summary="Durable automation for operations teams",
        lifespan=lifespan,
        openapi_url=OPENAPI_URL,
        # Served by install_docs from vendored files: FastAPI's own pages load them from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    install_problem_handlers(app)
    install_docs(app, OPENAPI_URL)
    app.add_middleware(
        ScopedCorsMiddleware,
        codec_prefix=codec.router.prefix,
        codec_origins=settings.codec_cors_origins,
        api_origins=settings.cors_origins,
    )
    app.state.metrics = ApiMetrics()
    app.add_middleware(BodyLimitMiddleware, limit=settings.api_max_body_bytes)
    # Added last so it is outermost: every answer, CORS preflights included, gets an id and
    # is counted in the metrics.
    app.add_middleware(RequestContextMiddleware, observers=[app.state.metrics.observe])
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(codec.router, responses=PROBLEM_RESPONSES)
    app.include_router(hooks.router, responses=PROBLEM_RESPONSES)
    # Every route under the prefix leaves an audit row when it changes something, and its
    # name (the audit action, e.g. "user.create") doubles as its OpenAPI operationId. Each
    # router is included into the app itself, not into one prefix router included in turn:
    # FastAPI matches a request against every level of nested routers twice (to choose, then
    # to handle), so one level less is half the route matching on each request
    # (benchmarks/README.md fix 14); the OpenAPI document is the same.
    for module in (
        auth,
        users,
        tokens,
        audit,
        credentials,
        targets,
        target_groups,
        jobs,
        runs,
        schedules,
        triggers,
        steps,
        notification_channels,
        notifications,
        libraries,
        discovery,
        install_settings,
    ):
        app.include_router(
            module.router,
            prefix=API_PREFIX,
            dependencies=[Depends(refuse_unstorable_text), AUDITED],
            generate_unique_id_function=_route_name,
            responses=PROBLEM_RESPONSES,
        )
    install_console(app)
    return app
