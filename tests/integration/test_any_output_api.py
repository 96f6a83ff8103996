"""Any output through the API: a command printing NUL, invalid UTF-8 and 64 KiB of random bytes
succeeds, its output kept per the rule in docs/engine.md ("Output"); a `when` that uses
randomness is refused at validation with its path."""

import httpx
import pytest

from tests.identity_helpers import Account, api, assert_problem
from tests.run_helpers import run_on_target, target_steps

pytestmark = pytest.mark.integration

SHOWN = "a\\x00b\\xff"  # what `printf 'a\0b\377\n'` prints, as the record and the log show it


@pytest.mark.usefixtures("workers")
async def test_nul_invalid_utf8_and_binary_output_is_kept_and_readable(
    http: httpx.AsyncClient, operator: Account, viewer: Account, loopback: str
) -> None:
    run = await run_on_target(
        http,
        operator,
        loopback,
        {
            "id": "binary",
            "action": "ssh.command",
            "with": {
                "command": "head -c 65536 /dev/urandom; printf '\\na\\0b\\377\\n';"
                " printf 'a\\0b\\377\\n' >&2"
            },
        },
        {
            "id": "after",
            "needs": ["binary"],
            "action": "ssh.command",
            # Outputs with NUL reach the next step's context, and its record, too.
            "with": {"command": "echo '{{ steps.binary.stderr }}'"},
        },
        {
            "id": "split",
            "action": "ssh.command",
            # U+05D0 (0xD7 0x90) cut in two on stdout, with a line on stderr in between.
            "with": {
                "command": "printf '\\327'; sleep 0.3; echo err >&2; sleep 0.3; printf '\\220\\n'"
            },
        },
    )
    assert run["status"] == "succeeded", run
    steps = target_steps(run)
    binary = steps["binary"]
    assert (binary["status"], binary["exit_code"]) == ("succeeded", 0)
    # Over 64 KiB once escaped: the record keeps the tail, the log the whole.
    assert f"\n{SHOWN}\n[… " in binary["stdout"]
    assert binary["stdout"].endswith("earlier characters in the run log]")
    assert binary["stderr"] == SHOWN
    assert binary["outputs"]["stderr"] == SHOWN
    assert "\x00" not in binary["stdout"]
    # Written through the shell, the escape's backslash is printed as it is.
    assert steps["after"]["stdout"] == SHOWN
    # Each stream is decoded on its own: half a character on stdout waits for its other half.
    assert (steps["split"]["stdout"], steps["split"]["stderr"]) == ("\u05d0", "err")

    answer = await http.get(api(f"/runs/{run['id']}/logs"), headers=viewer.headers)
    assert answer.status_code == 200
    logs = answer.json()
    lines = [(line["stream"], line["line"]) for line in logs if line["step_id"] == "binary"]
    assert ("stdout", SHOWN) in lines
    assert ("stderr", SHOWN) in lines
    # Every random byte reached the log: 64 KiB, most of them escaped, none of them NUL.
    stdout_text = "".join(line for stream, line in lines if stream == "stdout")
    assert len(stdout_text) > 65536
    assert "\x00" not in stdout_text


async def test_a_random_when_is_refused_at_validation_with_its_path(
    http: httpx.AsyncClient, operator: Account
) -> None:
    document = {
        "name": "dice",
        "steps": [
            {"id": "a", "action": "ssh.command", "with": {"command": "true"}},
            {"id": "b", "action": "ssh.command", "with": {"command": "true"}},
            {
                "id": "c",
                "action": "ssh.command",
                "when": "{{ [true, false] | random }}",
                # Rendered by the activity, so randomness here is allowed.
                "with": {"command": "sleep {{ [0, 1] | random }}"},
            },
        ],
    }
    answer = await http.post(api("/jobs/validate"), json=document, headers=operator.headers)
    assert answer.status_code == 200
    body = answer.json()
    assert body["valid"] is False
    assert [error["path"] for error in body["errors"]] == ["steps.2.when"]
    assert "random" in body["errors"][0]["message"]
    saved = await http.post(api("/jobs"), json=document, headers=operator.headers)
    problem = assert_problem(saved, 422)
    assert "steps.2.when" in str(problem)
