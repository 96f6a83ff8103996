"""Target name lists in Temporal payloads: 100,000 names fit well under the 2 MB payload limit
and come back as the same list; short lists stay readable JSON."""

import json
import uuid

from temporalio.contrib.pydantic import pydantic_data_converter

from opsconductor.contracts.runs import RunStatus, RunSummary

PAYLOAD_LIMIT = 2 * 1024 * 1024


def through_temporal(summary: RunSummary) -> tuple[RunSummary, int]:
    converter = pydantic_data_converter.payload_converter
    (payload,) = converter.to_payloads([summary])
    (back,) = converter.from_payloads([payload], [RunSummary])
    return back, len(payload.data)


def test_a_hundred_thousand_names_travel_packed_and_come_back_whole() -> None:
    names = [f"web-{index:06d}.dc{index % 7}.prod.example.com" for index in range(100_000)]
    summary = RunSummary(
        run_id=uuid.uuid4(),
        status=RunStatus.failed,
        succeeded_targets=names[:99_000],
        failed_targets=names[99_000:],
    )
    assert len(json.dumps(names)) > PAYLOAD_LIMIT  # what plain JSON would cost

    back, size = through_temporal(summary)

    assert back == summary
    assert size < PAYLOAD_LIMIT / 4


def test_a_short_list_stays_plain_json() -> None:
    summary = RunSummary(
        run_id=uuid.uuid4(),
        status=RunStatus.succeeded,
        succeeded_targets=["web-1"],
        failed_targets=[],
    )

    back, _ = through_temporal(summary)

    assert back == summary
    assert json.loads(summary.model_dump_json())["succeeded_targets"] == ["web-1"]
