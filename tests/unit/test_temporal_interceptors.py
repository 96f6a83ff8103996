"""Which interceptors every Temporal client gets, and the request-id header they carry."""

from pathlib import Path

from temporalio.api.common.v1 import Payload
from temporalio.contrib.opentelemetry import TracingInterceptor

from opsconductor.temporal.client import interceptors
from opsconductor.temporal.interceptors import (
    REQUEST_ID_HEADER,
    RequestIdInterceptor,
    request_id_from,
    with_request_id,
)
from tests.conftest import make_settings


def test_tracing_is_off_unless_switched_on(tmp_path: Path) -> None:
    default = interceptors(make_settings(tmp_path))
    assert [type(item) for item in default] == [RequestIdInterceptor]
    traced = interceptors(make_settings(tmp_path, tracing_enabled=True))
    assert [type(item) for item in traced] == [RequestIdInterceptor, TracingInterceptor]


def test_the_request_id_travels_in_a_header_and_others_are_kept() -> None:
    other = Payload(data=b"trace")
    headers = with_request_id({"_tracer-data": other}, "req-42")
    assert set(headers) == {"_tracer-data", REQUEST_ID_HEADER}
    assert request_id_from(headers) == "req-42"
    assert with_request_id({}, None) == {}


def test_a_missing_or_unreadable_header_is_no_request_id() -> None:
    assert request_id_from({}) is None
    sealed = Payload(metadata={"encoding": b"binary/encrypted"}, data=b"\x00\x01")
    assert request_id_from({REQUEST_ID_HEADER: sealed}) is None
