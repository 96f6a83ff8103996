"""What a scan may ask for, and the nmap argv built from it: nothing an operator types can
become an nmap option."""

from typing import Any

import pytest
from pydantic import ValidationError

from opsconductor.jobspec.scan import MAX_SCAN_ADDRESSES, ScanOptions, nmap_arguments
from opsconductor.jobspec.validation import validate_document


def _argv(privileged: bool = True, **fields: Any) -> list[str]:
    return nmap_arguments(ScanOptions.model_validate(fields), privileged=privileged)


def _refusal(**fields: Any) -> tuple[str, str]:
    with pytest.raises(ValidationError) as caught:
        ScanOptions.model_validate(fields)
    (error,) = caught.value.errors()
    return ".".join(map(str, error["loc"])), error["msg"]


@pytest.mark.parametrize(
    ("hosts", "canonical", "targets"),
    [
        ("127.0.0.1", ["127.0.0.1"], ["127.0.0.1"]),
        ("10.0.0.7/30", ["10.0.0.4/30"], ["10.0.0.4/30"]),
        ("10.0.0.1-3", ["10.0.0.1-10.0.0.3"], ["10.0.0.1/32", "10.0.0.2/31"]),
        ("10.0.0.255-10.0.1.0", ["10.0.0.255-10.0.1.0"], ["10.0.0.255/32", "10.0.1.0/32"]),
        (["web-1.example.com.", " 10.0.0.9 "], ["web-1.example.com", "10.0.0.9"], None),
        ("db1, db1,db2", ["db1", "db2"], ["db1", "db2"]),
    ],
)
def test_hosts_are_addresses_networks_ranges_or_names(
    hosts: Any, canonical: list[str], targets: list[str] | None
) -> None:
    options = ScanOptions(hosts=hosts)
    assert options.hosts == canonical
    argv = nmap_arguments(options, privileged=True)
    assert argv[argv.index("--") + 1 :] == (targets or canonical)


@pytest.mark.parametrize(
    "hosts",
    [
        "127.0.0.1 -oN /tmp/x",
        "--script=http-title",
        "-iL/etc/passwd",
        ["127.0.0.1", "-oX /tmp/out"],
        "127.0.0.1;id",
        "$(id)",
        "10.0.0.999",
        "fe80::1%eth0",
        "",
        [],
    ],
)
def test_anything_else_is_refused_naming_hosts(hosts: Any) -> None:
    path, _ = _refusal(hosts=hosts)
    assert path == "hosts"


def test_a_scan_covers_at_most_4096_addresses_of_one_family() -> None:
    assert ScanOptions(hosts="10.0.0.0/20").hosts == ["10.0.0.0/20"]
    assert _refusal(hosts="10.0.0.0/19") == (
        "hosts",
        f"Value error, covers 8192 addresses; a scan may cover at most {MAX_SCAN_ADDRESSES}",
    )
    assert _refusal(hosts=["10.0.0.0/21", "10.1.0.0/21", "db"])[0] == "hosts"
    assert (
        _refusal(hosts="10.0.0.1,::1")[1]
        == "Value error, IPv4 and IPv6 cannot be mixed in one scan"
    )
    assert "-6" in _argv(hosts="fe80::1-fe80::3")


def test_ports_timing_and_flags_become_fixed_tokens() -> None:
    argv = _argv(hosts="127.0.0.1", ports=[22, "8000-8100", "22"], timing="T5")
    assert argv == [
        "-oX", "-", "--stats-every", "2s",
        "-T5", "-p", "22,8000-8100", "-sV", "--", "127.0.0.1",
    ]  # fmt: skip
    assert "-sV" not in _argv(hosts="127.0.0.1", service_detection=False)
    assert "-O" in _argv(hosts="127.0.0.1", os_detection=True)
    # Without root nmap refuses -O outright; the scan runs without it (the worker adds a note).
    assert "-O" not in _argv(privileged=False, hosts="127.0.0.1", os_detection=True)
    for ports in ("22;rm", "-p-", "0", "65536", "90-80", ""):
        assert _refusal(hosts="127.0.0.1", ports=ports)[0] == "ports"
    assert _refusal(hosts="127.0.0.1", timing="-T5 --script=x")[0] == "timing"
    assert _refusal(hosts="127.0.0.1", arguments=["--script=x"])[0] == "arguments"


def _scan_job(**with_: Any) -> dict[str, Any]:
    return {
        "name": "nightly-scan",
        "parameters": {"net": {"type": "string", "default": "127.0.0.1"}},
        "steps": [{"id": "scan", "run_once": True, "action": "nmap.scan", "with": with_}],
    }


def test_a_job_checks_plain_scan_fields_on_save_and_templated_ones_on_the_worker() -> None:
    assert validate_document(_scan_job(hosts="{{ params.net }}", ports="22")).valid
    assert validate_document(_scan_job(hosts=["10.0.0.1", "{{ params.net }}"])).valid
    report = validate_document(
        _scan_job(hosts="127.0.0.1 -oN /tmp/x", ports="22;id", arguments=["-sC"])
    )
    assert sorted(problem.path for problem in report.problems) == [
        "steps.0.with.arguments",
        "steps.0.with.hosts",
        "steps.0.with.ports",
    ]
