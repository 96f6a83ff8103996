"""http.request's egress policy through the API and a real worker: one DNS lookup per
connection, every address checked, the connection made to the checked address (no DNS
rebinding), denied networks refused with a reason naming the address and the rule."""

from collections.abc import Iterator

import httpx
import pytest

from tests.fixtures.dns_server import RebindingDns
from tests.fixtures.http_receiver import HttpReceiver
from tests.identity_helpers import Account
from tests.run_helpers import TERMINAL, start_job_run, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]

RULE = "OPSCONDUCTOR_HTTP_DENIED_NETWORKS"


@pytest.fixture
def rebinding_dns() -> Iterator[RebindingDns]:
    with RebindingDns() as server:
        yield server


@pytest.fixture
def settings_overrides(rebinding_dns: RebindingDns) -> dict[str, object]:
    return {"http_dns_servers": rebinding_dns.address}


def get(step_id: str, url: str) -> dict[str, object]:
    return {"id": step_id, "run_once": True, "action": "http.request", "with": {"url": url}}


async def run_steps(
    http: httpx.AsyncClient, operator: Account, name: str, *steps: dict[str, object]
) -> list[dict[str, object]]:
    run_id = await start_job_run(http, operator, {"name": name, "steps": list(steps)})
    run = await wait_for(http, operator, run_id, TERMINAL)
    records: list[dict[str, object]] = run["steps"]
    return records


async def test_a_name_rebinding_from_an_allowed_to_a_link_local_address_never_reaches_it(
    http: httpx.AsyncClient,
    operator: Account,
    http_receiver: HttpReceiver,
    rebinding_dns: RebindingDns,
) -> None:
    # The attacker's DNS answers the receiver's address, then the metadata address. The
    # receiver closes each connection, so the second step opens (and resolves) a new one.
    rebinding_dns.answer("rebind.test", ["127.0.0.1"], ["169.254.169.254"])
    http_receiver.respond("/hello", headers={"Connection": "close"})
    url = f"http://rebind.test:{http_receiver.port}/hello"

    # The second needs the first: side by side, either could ask the name first.
    first, second = await run_steps(
        http, operator, "rebinding", get("first", url), {**get("second", url), "needs": ["first"]}
    )

    assert (first["status"], first["outputs"]["status"]) == ("succeeded", 200)  # type: ignore[index]
    (request,) = http_receiver.requests
    # Connected to the checked address, asking for the name (Host header, and SNI for https).
    assert request.headers["Host"] == f"rebind.test:{http_receiver.port}"
    assert (second["status"], second["reason"], second["attempts"]) == (
        "failed",
        f"with.url: rebind.test resolves to 169.254.169.254, in the denied network "
        f"169.254.0.0/16 ({RULE})",
        1,
    )
    # One question per connection: the address checked is the address connected to.
    assert rebinding_dns.asked("rebind.test") == 2
    assert len(http_receiver.requests) == 1


async def test_a_name_answering_a_public_and_a_link_local_address_is_refused(
    http: httpx.AsyncClient, operator: Account, rebinding_dns: RebindingDns
) -> None:
    rebinding_dns.answer("mixed.test", ["93.184.216.34", "169.254.169.254"])

    (step,) = await run_steps(http, operator, "mixed", get("steal", "http://mixed.test/latest/"))

    assert (step["status"], step["reason"], step["attempts"]) == (
        "failed",
        f"with.url: mixed.test resolves to 169.254.169.254, in the denied network "
        f"169.254.0.0/16 ({RULE})",
        1,
    )
    assert rebinding_dns.asked("mixed.test") == 1


@pytest.mark.parametrize(
    "settings_overrides", [{"http_denied_networks": "169.254.0.0/16,127.0.0.0/8,::1/128"}]
)
async def test_a_network_an_operator_denies_is_refused_and_its_service_sees_nothing(
    http: httpx.AsyncClient, operator: Account, http_receiver: HttpReceiver
) -> None:
    (by_address, by_name) = await run_steps(
        http,
        operator,
        "loopback-denied",
        {**get("by_address", f"{http_receiver.url}/x"), "on_error": "continue"},
        get("by_name", f"http://localhost:{http_receiver.port}/x"),
    )

    assert (by_address["status"], by_address["reason"], by_address["attempts"]) == (
        "failed",
        f"with.url: 127.0.0.1 resolves to 127.0.0.1, in the denied network 127.0.0.0/8 ({RULE})",
        1,
    )
    assert by_name["status"] == "failed"
    assert str(by_name["reason"]).startswith("with.url: localhost resolves to ")
    assert http_receiver.requests == []


async def test_a_slow_host_gets_every_parallel_request_at_once(
    http: httpx.AsyncClient, operator: Account, http_receiver: HttpReceiver
) -> None:
    """15 side-by-side steps to a host that answers after 2 s are all in its hands at once:
    the worker's connections are not capped at 10 (httpcore's default for a pool built by
    hand, which made the others wait and could time them out)."""
    http_receiver.respond("/slow", delay=2.0)
    url = f"{http_receiver.url}/slow"
    records = await run_steps(
        http, operator, "slow-host", *(get(f"s{index}", url) for index in range(15))
    )
    assert [record["status"] for record in records] == ["succeeded"] * 15
    assert http_receiver.most_in_hand == 15
