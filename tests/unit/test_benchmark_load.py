"""B4's load generator counts only whole 200 answers: a client that took a 401 or an error
page for an answer would time the API refusing requests, not serving them."""

import pytest

from benchmarks.load import UnexpectedAnswer, closed_loop
from tests.fixtures.http_receiver import HttpReceiver


async def test_every_request_is_sent_with_its_headers_and_answered_whole() -> None:
    with HttpReceiver() as receiver:
        receiver.respond("/page", json={"items": ["x" * 10_000]})
        load = await closed_loop(f"{receiver.url}/page", {"Authorization": "Bearer t"}, 3, 4)
        requests = receiver.wait_for(12)
    assert len(load.latencies) == 12
    assert load.reconnects == 0
    assert {request.headers["Authorization"] for request in requests} == {"Bearer t"}


async def test_an_answer_other_than_200_stops_the_measurement() -> None:
    with HttpReceiver() as receiver:
        receiver.respond("/page", status=401, json={"detail": "signed out"})
        with pytest.raises(UnexpectedAnswer, match="401"):
            await closed_loop(f"{receiver.url}/page", {}, 1, 1)
