"""The client side of the CLI that needs no server: files, parameters, the stored login."""

import stat
from pathlib import Path

import pytest

from opsconductor.cli.apply import load_documents
from opsconductor.cli.client import (
    CliError,
    StoredLogin,
    credentials_path,
    normalized_url,
    read_stored_login,
    write_stored_login,
)
from opsconductor.cli.runs import parse_parameters, since_time


def test_a_file_holds_jobs_and_targets_in_order(tmp_path: Path) -> None:
    path = tmp_path / "all.yaml"
    path.write_text(
        "name: first\nsteps: []\n---\nkind: target\nname: web-1\naddress: 10.0.0.1\n"
        "---\nkind: targets\nitems:\n  - {name: web-2, address: 10.0.0.2}\n---\n"
    )
    documents = load_documents(str(path))
    assert [(d.kind, d.source) for d in documents] == [
        ("job", f"{path}#1"),
        ("target", f"{path}#2"),
        ("target", f"{path}#3 items.0"),
    ]
    # `kind` is the CLI's: the API's job document has no such field.
    assert documents[0].body == {"name": "first", "steps": []}
    # `kind: targets` is one document per item, each planned and reported on its own.
    assert documents[2].body == {"name": "web-2", "address": "10.0.0.2"}


def test_unknown_kinds_and_broken_files_are_named(tmp_path: Path) -> None:
    path = tmp_path / "lib.yaml"
    path.write_text("name: a\n---\nkind: playbook\nname: tools\n")
    with pytest.raises(CliError, match=r"lib.yaml#2: unknown kind 'playbook'"):
        load_documents(str(path))
    path.write_text("name: [unclosed\n")
    with pytest.raises(CliError, match="is not valid YAML"):
        load_documents(str(path))
    with pytest.raises(CliError, match="cannot read"):
        load_documents(str(tmp_path / "missing.yaml"))


def test_parameters_take_the_type_the_job_declares() -> None:
    declared = {
        "count": {"type": "integer"},
        "ratio": {"type": "number"},
        "force": {"type": "boolean"},
        "hosts": {"type": "array"},
        "name": {"type": "string"},
    }
    given = ["count=3", "ratio=0.5", "force=yes", "hosts=[a, b]", "name=007", "other=x=y"]
    assert parse_parameters(given, declared) == {
        "count": 3,
        "ratio": 0.5,
        "force": True,
        "hosts": ["a", "b"],
        "name": "007",
        # Not declared: sent as given, and the API names it.
        "other": "x=y",
    }
    with pytest.raises(CliError, match="-p count: 'three' is not a valid integer"):
        parse_parameters(["count=three"], declared)
    with pytest.raises(CliError, match="expected NAME=VALUE"):
        parse_parameters(["count"], declared)


def test_since_takes_a_span_or_a_time() -> None:
    assert since_time("2026-01-02T03:04:05+00:00") == "2026-01-02T03:04:05+00:00"
    assert since_time("7d") < since_time("1h")
    with pytest.raises(CliError, match="--since"):
        since_time("yesterday")


def test_the_stored_login_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    login = StoredLogin(url="http://api:8000", token="oct_secret", token_id="1", username="ann")
    path = write_stored_login(login)
    assert path == credentials_path() == tmp_path / "config" / "opsconductor" / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert read_stored_login() == login
    assert [entry.name for entry in path.parent.iterdir()] == ["credentials.json"]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://127.0.0.1:8000/api/v1", "http://127.0.0.1:8000"),
        ("https://ops.example.com/", "https://ops.example.com"),
    ],
)
def test_urls_as_up_prints_them_are_accepted(given: str, expected: str) -> None:
    assert normalized_url(given) == expected


def test_a_url_without_scheme_is_refused() -> None:
    with pytest.raises(CliError, match="not an http"):
        normalized_url("ops.example.com")
