"""Everything as code: a populated installation exported with `opsconductor export`, applied
with `--dry-run` and then for real to a second, empty installation (its own database), whose
job then runs over SSH on the loopback sshd; secrets come from files and variables and never
show in the CLI's output or the processes' logs."""

from __future__ import annotations

import hmac
import json
import secrets
import shlex
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_cli_client import Cli, shown
from tests.fixtures.services import (
    SECOND_INSTALL_NAMESPACE,
    create_test_database,
    drop_test_database,
)
from tests.fixtures.sshd import LoopbackSshd
from tests.process_stack import ProcessStack, process_stack

pytestmark = [pytest.mark.slow, pytest.mark.integration]

WEBHOOK_TOKEN = "hook-" + secrets.token_hex(12)
DB_PASSWORD = "pw-" + secrets.token_hex(12)
HOOK_SECRET = "hook-secret-" + secrets.token_hex(12)


@pytest.fixture(scope="module")
async def stacks(
    postgres_url: str, temporal_address: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[ProcessStack, ProcessStack]]:
    """Two installations, each with its own database."""
    urls = [await create_test_database(postgres_url) for _ in range(2)]
    try:
        with (
            process_stack(tmp_path_factory.mktemp("source"), urls[0], temporal_address) as first,
            process_stack(
                tmp_path_factory.mktemp("copy"),
                urls[1],
                temporal_address,
                OPSCONDUCTOR_TEMPORAL_NAMESPACE=SECOND_INSTALL_NAMESPACE,
            ) as second,
        ):
            yield first, second
    finally:
        for url in urls:
            await drop_test_database(postgres_url, url)


class EnvCli(Cli):
    """A CLI with extra environment variables (where secret references point)."""

    extra: dict[str, str]

    def env(self) -> dict[str, str]:
        return {**super().env(), **getattr(self, "extra", {})}


def cli_for(stack: ProcessStack, home: Path, **extra: str) -> EnvCli:
    cli = EnvCli(stack, home)
    cli.extra = extra
    cli.login()
    return cli


def configuration(sshd: LoopbackSshd) -> str:
    return f"""\
kind: trigger
name: hello-hook
job: hello
source: generic
secret: {{env: HOOK_SECRET}}
dedup_key: "{{{{ payload.id }}}}"
---
kind: schedule
name: nightly-hello
job: hello
cron: "0 3 * * *"
timezone: Europe/Berlin
paused: true
---
kind: job
name: hello
description: applied from a file
targets:
  groups: [web]
steps:
  - id: say
    action: ssh.command
    with:
      command: "echo hello from $(hostname)"
---
kind: targets
items:
  - {{name: loopback, address: {sshd.host}, port: {sshd.port}, credential: sshd-key,
     groups: [web], tags: {{env: test}}}}
---
kind: group
name: web
description: web servers
---
kind: credential
name: sshd-key
type: ssh_key
username: {sshd.username}
secret:
  private_key: {{file: ./sshd_key}}
---
kind: credential
name: db-password
type: ssh_password
username: postgres
secret:
  password: {{env: DB_PASSWORD}}
---
kind: channel
name: team-hook
description: the team's webhook
url: {{env: TEAM_HOOK_URL}}
"""


def in_recorded_shell(cli: Cli, history: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """The command as a user types it into bash with history on (a non-interactive bash
    records the lines it reads from stdin once `set -o history`), history then written out."""
    script = "\n".join(
        [
            "set -o history",
            f"HISTFILE={shlex.quote(str(history))}",
            shlex.join([sys.executable, "-m", "opsconductor", *arguments]),
            "status=$?",
            "history -w",
            "exit $status",
        ]
    )
    return subprocess.run(
        ["bash", "-s"],
        input=script + "\n",
        env=cli.env(),
        capture_output=True,
        text=True,
        timeout=120,
        start_new_session=True,
        check=False,
    )


def results(answer: subprocess.CompletedProcess[str]) -> dict[tuple[str, str], str]:
    documents = json.loads(answer.stdout)["documents"]
    return {(item["kind"], item["name"]): item["result"] for item in documents}


def assert_secret_free(texts: list[str], secret_values: list[str]) -> None:
    for text in texts:
        for value in secret_values:
            assert value not in text


def test_export_then_apply_reproduces_an_installation_that_runs(
    stacks: tuple[ProcessStack, ProcessStack], sshd: LoopbackSshd, tmp_path: Path
) -> None:
    source_stack, copy_stack = stacks
    key_file = tmp_path / "sshd_key"
    key_file.write_text(sshd.client_key_text)
    config = tmp_path / "config.yaml"
    config.write_text(configuration(sshd))
    hook_url = f"json://hook:{WEBHOOK_TOKEN}@127.0.0.1:9/notify"
    source = cli_for(
        source_stack,
        tmp_path / "a",
        DB_PASSWORD=DB_PASSWORD,
        TEAM_HOOK_URL=hook_url,
        HOOK_SECRET=HOOK_SECRET,
    )

    # A file without the secrets inline: the key from a file, the password from a variable.
    history = tmp_path / "bash_history"
    applied = in_recorded_shell(source, history, "apply", "-f", str(config), "-o", "json")
    assert applied.returncode == 0, shown(applied, source_stack)
    assert set(results(applied).values()) == {"create"}, shown(applied)
    assert "opsconductor apply -f" in history.read_text()
    order = [item["kind"] for item in json.loads(applied.stdout)["documents"]]
    assert order == [
        "credential",
        "credential",
        "group",
        "channel",
        "target",
        "job",
        "schedule",
        "trigger",
    ]
    again = source.ok("apply", "-f", str(config), "-o", "json")
    assert set(results(again).values()) == {"unchanged"}, shown(again)

    inline = tmp_path / "inline.yaml"
    inline.write_text(
        "kind: credential\nname: inline\ntype: secret\nsecret: {value: " + DB_PASSWORD + "}\n"
    )
    refused = source("apply", "-f", str(inline))
    assert refused.returncode == 1
    assert "--allow-inline-secrets" in refused.stderr

    exported = source.ok("export", "-o", str(tmp_path / "export.yaml"))
    text = (tmp_path / "export.yaml").read_text()
    assert "OPSCONDUCTOR_SECRET_SSHD_KEY_PRIVATE_KEY" in text
    assert "OPSCONDUCTOR_SECRET_TEAM_HOOK_URL" in text
    assert "OPSCONDUCTOR_SECRET_HELLO_HOOK_SECRET" in text

    copy = cli_for(
        copy_stack,
        tmp_path / "b",
        OPSCONDUCTOR_SECRET_SSHD_KEY_PRIVATE_KEY=sshd.client_key_text,
        OPSCONDUCTOR_SECRET_DB_PASSWORD_PASSWORD=DB_PASSWORD,
        OPSCONDUCTOR_SECRET_TEAM_HOOK_URL=hook_url,
        OPSCONDUCTOR_SECRET_HELLO_HOOK_SECRET=HOOK_SECRET,
    )
    planned = copy.ok("apply", "--dry-run", "-f", str(tmp_path / "export.yaml"), "-o", "json")
    assert json.loads(planned.stdout)["dry_run"] is True
    plan = results(planned)
    assert ("job", "hello") in plan
    assert ("schedule", "nightly-hello") in plan
    # The admin exists in both installations (created at first start).
    assert plan.pop(("user", "admin")) == "unchanged"
    assert set(plan.values()) == {"create"}, shown(planned)
    assert json.loads(copy.ok("groups", "list", "-o", "json").stdout)["items"] == []

    copied = copy.ok("apply", "-f", str(tmp_path / "export.yaml"), "-o", "json")
    assert results(copied) == results(planned) | {("user", "admin"): "unchanged"}
    unchanged = copy.ok("apply", "-f", str(tmp_path / "export.yaml"), "-o", "json")
    assert set(results(unchanged).values()) == {"unchanged"}, shown(unchanged)
    credentials = json.loads(unchanged.stdout)["documents"]
    assert {item["note"] for item in credentials if item["kind"] == "credential"} == {
        "secrets not compared"
    }
    # The copied trigger answers with the secret it was applied with; its log shows the run.
    (hook,) = json.loads(copy.ok("triggers", "list", "-o", "json").stdout)["items"]
    body = b'{"id": "event-1"}'
    stamp = str(int(time.time()))
    signature = hmac.new(HOOK_SECRET.encode(), stamp.encode() + b"." + body, "sha256")
    delivered = httpx.post(
        copy_stack.url + hook["url"],
        content=body,
        headers={
            "X-OpsConductor-Timestamp": stamp,
            "X-OpsConductor-Signature": "sha256=" + signature.hexdigest(),
        },
    )
    assert delivered.status_code == 202, delivered.text
    log = copy.ok("triggers", "events", "hello-hook", "-o", "json")
    (event,) = json.loads(log.stdout)["items"]
    assert (event["decision"], event["run_id"]) == ("started", delivered.json()["runs"][0])

    run = copy("run", "hello", "--follow")
    assert run.returncode == 0, shown(run, copy_stack)
    assert "hello from" in run.stdout

    listed = copy.ok("credentials", "list", "-o", "json")
    names = {item["name"] for item in json.loads(listed.stdout)["items"]}
    assert names == {"sshd-key", "db-password"}
    outputs = [
        step.stdout + step.stderr
        for step in (applied, again, refused, exported, planned, copied, unchanged, listed)
    ]
    assert_secret_free(
        [*outputs, text, history.read_text(), source_stack.logs(), copy_stack.logs()],
        [DB_PASSWORD, WEBHOOK_TOKEN, HOOK_SECRET, sshd.client_key_text.strip().splitlines()[1]],
    )
