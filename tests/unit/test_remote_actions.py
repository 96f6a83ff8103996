"""What ssh.upload accepts as a destination, and how WinRM commands and output are shaped."""

import base64

import pytest

from opsconductor.activities.winrm import cmd_command, powershell_command, readable_stderr
from opsconductor.jobspec.actions import dest_problem


@pytest.mark.parametrize(
    "dest", ["/etc/app.conf", "/srv/app/.env", "/opt/my app/config.yaml", "/a..b/c"]
)
def test_plain_absolute_paths_are_accepted(dest: str) -> None:
    assert dest_problem(dest) is None


@pytest.mark.parametrize(
    ("dest", "problem"),
    [
        ("app.conf", "must be an absolute path"),
        ("~/app.conf", "must be an absolute path"),
        ("/srv/../etc/passwd", "must not contain '..' segments"),
        ("/srv/..", "must not contain '..' segments"),
        ("/srv/./app.conf", "must be a normalized path"),
        ("//srv/app.conf", "must be a normalized path"),
        ("/srv//app.conf", "must be a normalized path"),
        ("/srv/app/", "must be a normalized path"),
        ("/", "must be a normalized path"),
        ("/srv/app\x00.conf", "must not contain a NUL character"),
    ],
)
def test_other_destinations_are_refused(dest: str, problem: str) -> None:
    assert problem in (dest_problem(dest) or "")


def test_powershell_is_sent_utf16_base64_encoded() -> None:
    script = "Write-Output 'héllo'\nexit 3\n"
    *words, encoded = powershell_command(script)
    assert words == ["powershell.exe", "-NoProfile", "-NonInteractive", "-EncodedCommand"]
    assert base64.b64decode(encoded).decode("utf-16-le") == script


def test_cmd_arguments_are_quoted_one_by_one() -> None:
    # Quoted by the argv rules, then every cmd.exe metacharacter (quotes included) caret-escaped.
    assert cmd_command("dir", ["C:\\Program Files\\", "/b", 'say "hi"', "a&b"]) == [
        "dir",
        '^"C:\\Program Files\\\\^"',
        '^"/b^"',
        '^"say \\^"hi\\^"^"',
        '^"a^&b^"',
    ]


def test_plain_stderr_is_kept_and_broken_clixml_is_shown_as_it_came() -> None:
    assert readable_stderr("Access is denied.\n") == "Access is denied.\n"
    assert readable_stderr("#< CLIXML\r\n<Objs><S S=") == "#< CLIXML\r\n<Objs><S S="
