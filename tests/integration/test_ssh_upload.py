"""ssh.upload through the API and the job-run workflow, against the loopback sshd: the file is
checked on the host, by an ssh.command step of the same job and by reading it directly (the
sshd runs on this machine)."""

import hashlib
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.sshd import LoopbackSshd
from tests.identity_helpers import Account, api, assert_problem
from tests.run_helpers import run_on_target, target_steps
from tests.vault_helpers import planted_secret

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]


@pytest.fixture
def remote_dir() -> Iterator[Path]:
    """A directory the sshd user creates in a step (so it may write there); removed after."""
    path = Path(f"/tmp/opsc-upload-{uuid.uuid4().hex[:8]}")
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def test_an_upload_lands_whole_with_its_mode_and_checksum(
    http: httpx.AsyncClient,
    admin: Account,
    operator: Account,
    sshd: LoopbackSshd,
    loopback: str,
    remote_dir: Path,
) -> None:
    token = await planted_secret(http, admin.headers, "app-token", granted_to=["operator"])
    dest = remote_dir / "app.conf"
    content = "# managed\nhost = {{ target.name }}\ntoken = {{ secret('app-token') }}\n"
    expected = f"# managed\nhost = {loopback}\ntoken = {token}\n".encode()
    digest = hashlib.sha256(expected).hexdigest()

    run = await run_on_target(
        http,
        operator,
        loopback,
        {
            "id": "old",
            "action": "ssh.command",
            "with": {"command": f"mkdir -m 755 {remote_dir} && echo old > {dest}"},
        },
        {
            "id": "upload",
            "needs": ["old"],
            "action": "ssh.upload",
            "with": {"dest": str(dest), "content": content, "mode": "0640"},
        },
        {
            "id": "check",
            "needs": ["upload"],
            "action": "ssh.command",
            "with": {
                "command": f"sha256sum {dest} | cut -d' ' -f1; stat -c %a {dest}; "
                f"ls -A {remote_dir}"
            },
        },
    )

    assert run["status"] == "succeeded", run
    steps = target_steps(run)
    assert steps["upload"]["outputs"] == {"bytes": len(expected), "sha256": digest}
    # On the host: the same checksum, the mode, and no temporary file left beside it.
    assert steps["check"]["stdout"] == f"{digest}\n640\napp.conf"
    assert dest.read_bytes() == expected
    assert dest.stat().st_mode & 0o7777 == 0o640
    assert dest.owner() == sshd.username
    summary = f"wrote {len(expected)} bytes to {dest} (mode 0640, sha256 {digest})"
    assert steps["upload"]["stdout"] == summary
    logs = (await http.get(api(f"/runs/{run['id']}/logs"), headers=operator.headers)).json()
    assert ("upload", summary) in [(line["step_id"], line["line"]) for line in logs]
    # The secret is the point of the file, but appears nowhere else.
    assert token not in str(run) + str(logs)


async def test_a_bad_destination_is_refused_naming_the_field(
    http: httpx.AsyncClient, operator: Account, loopback: str, remote_dir: Path
) -> None:
    for dest, problem in [
        ("etc/app.conf", "must be an absolute path, got 'etc/app.conf'"),
        ("/tmp/a/../etc/passwd", "must not contain '..' segments, got '/tmp/a/../etc/passwd'"),
        ("/tmp/app/", "must be a normalized path to a file"),
    ]:
        document = {
            "name": "bad-upload",
            "steps": [{"id": "up", "action": "ssh.upload", "with": {"dest": dest, "content": ""}}],
        }
        answer = await http.post(api("/jobs"), json=document, headers=operator.headers)
        errors = assert_problem(answer, 422)["errors"]
        assert [error["path"] for error in errors] == ["steps.0.with.dest"]
        assert problem in errors[0]["message"]

    # A template is checked once rendered, on the worker; no retry can fix it.
    run = await run_on_target(
        http,
        operator,
        loopback,
        {
            "id": "up",
            "action": "ssh.upload",
            "with": {"dest": "{{ params.dest }}", "content": "x"},
            "retry": {"attempts": 3, "interval": "100ms"},
        },
        parameters={"dest": f"{remote_dir}/../passwd"},
    )
    step = target_steps(run)["up"]
    assert (step["status"], step["attempts"]) == ("failed", 1)
    assert (
        step["reason"] == f"with.dest: must not contain '..' segments, got '{remote_dir}/../passwd'"
    )


async def test_uploads_that_cannot_be_done_say_why(
    http: httpx.AsyncClient, operator: Account, loopback: str
) -> None:
    # A library file that no installed library version holds is refused when the job is saved.
    refused = await http.post(
        api("/jobs"),
        json={
            "name": "missing-library-file",
            "steps": [
                {
                    "id": "library_file",
                    "action": "ssh.upload",
                    "with": {"dest": "/tmp/opsc-never.conf", "file": "nolib@1.0.0/app.conf"},
                }
            ],
        },
        headers=operator.headers,
    )
    problem = assert_problem(refused, 422)
    assert problem["errors"] == [
        {
            "path": "steps.0.with.file",
            "message": "no library version nolib@1.0.0",
            "type": "file",
        }
    ]
    run = await run_on_target(
        http,
        operator,
        loopback,
        {
            "id": "forbidden",
            "action": "ssh.upload",
            "with": {"dest": "/root/opsc-never.conf", "content": "x"},
        },
    )
    steps = target_steps(run)
    assert steps["forbidden"]["reason"] == "cannot write /root/opsc-never.conf: Permission denied"
    assert not Path("/tmp/opsc-never.conf").exists()
    assert list(Path("/root").glob(".opsc-never.conf.*")) == []
