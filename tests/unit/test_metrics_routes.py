"""Requests are counted under their route's full template, whatever the URL held."""

import pytest

from opsconductor.api.metrics import UNMATCHED_ROUTE, route_template


class Route:
    def __init__(self, path: str):
        self.path = path


@pytest.mark.parametrize(
    ("path", "route", "expected"),
    [
        ("/api/v1/runs/5f0c", "/runs/{id}", "/api/v1/runs/{id}"),
        ("/api/v1/jobs/5f0c/runs", "/jobs/{id}/runs", "/api/v1/jobs/{id}/runs"),
        ("/api/v1/auth/logout", "/auth/logout", "/api/v1/auth/logout"),
        ("/api/v1/jobs", "/jobs", "/api/v1/jobs"),
        ("/health", "/health", "/health"),
        ("/metrics", "/api/v1/metrics", "/api/v1/metrics"),
    ],
)
def test_template_has_every_prefix(path: str, route: str, expected: str) -> None:
    assert route_template({"path": path, "route": Route(route)}) == expected


def test_unmatched_requests_share_one_label() -> None:
    assert route_template({"path": "/wp-admin/../etc/passwd"}) == UNMATCHED_ROUTE
