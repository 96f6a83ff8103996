"""Prometheus metrics of the API: requests by route template and status with their latency,
runs and steps counted from the run records at scrape time (services/run_metrics.py), and the
process's garbage collections.

Each app has its own registry, so several apps in one process (tests) never collide.
"""

import logging
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, GCCollector, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.types import Scope

from opsconductor.contracts.runs import RunStatus
from opsconductor.services.run_metrics import RecordCounter, RecordCounts

logger = logging.getLogger(__name__)

# Requests that matched no route share one label, so scanning random URLs cannot grow the
# number of series.
UNMATCHED_ROUTE = "unmatched"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class RecordCollector(Collector):
    """Serves the counts of the last scrape; the /metrics route refreshes them first."""

    def __init__(self) -> None:
        self.counter = RecordCounter()
        self.counts = RecordCounts(runs={}, steps={})
        self.up = False

    def refreshed(self, counts: RecordCounts | None) -> None:
        self.up = counts is not None
        if counts is not None:
            self.counts = counts

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "opsconductor_records_up", "1 when the run records could be counted at this scrape"
        )
        up.add_metric([], 1 if self.up else 0)
        yield up
        runs = GaugeMetricFamily("opsconductor_runs", "Runs by status", labels=["status"])
        for name in (status.value for status in RunStatus):
            runs.add_metric([name], self.counts.runs.get(name, 0))
        yield runs
        steps = GaugeMetricFamily(
            "opsconductor_steps",
            "Step records by action and outcome (status)",
            labels=["action", "status"],
        )
        for (action, status), number in sorted(self.counts.steps.items()):
            steps.add_metric([action, status], number)
        yield steps

    def describe(self) -> Iterable[Metric]:
        return []


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "opsconductor_http_requests",
            "HTTP requests by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "opsconductor_http_request_duration_seconds",
            "Time to answer an HTTP request (streams: until the stream ends)",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.records = RecordCollector()
        self.registry.register(self.records)
        # The process's garbage collections by generation: a full one (generation 2) holds the
        # event loop for as long as it walks, so their count explains a latency's tail.
        GCCollector(registry=self.registry)

    def observe(self, scope: Scope, status: int, seconds: float) -> None:
        """Counts an answered HTTP request under its route's template."""
        route = route_template(scope)
        self.requests.labels(scope["method"], route, str(status)).inc()
        self.latency.labels(scope["method"], route).observe(seconds)


def route_template(scope: Scope) -> str:
    """The full path template of the route that answered, e.g. `/api/v1/runs/{id}`.

    The router puts the matched route into the scope, but FastAPI keeps included routers
    nested, so its path lacks the prefixes of the routers above it (`/runs/{id}`). Path
    parameters are one segment each, so those prefixes are the leading segments of the URL
    that the route's own template does not cover.
    """
    template = getattr(scope.get("route"), "path", None)
    if not isinstance(template, str):
        return UNMATCHED_ROUTE
    if ":path}" in template:
        return template
    segments = str(scope["path"]).rstrip("/").split("/")
    depth = template.rstrip("/").count("/")
    return "/".join(segments[: max(0, len(segments) - depth)]) + template


async def count_records(
    metrics: ApiMetrics, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """Refreshes the run and step counts; a database that cannot answer sets records_up 0."""
    try:
        async with sessionmaker() as session:
            counts = await metrics.records.counter.count(session)
    except (SQLAlchemyError, OSError) as error:
        logger.warning("metrics: cannot count run records", extra={"error": str(error)})
        counts = None
    metrics.records.refreshed(counts)
