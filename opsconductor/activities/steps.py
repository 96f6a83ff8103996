"""What every step activity shares: rendering the `with` block on the worker, masking secrets,
bounding output, and failing in a way the workflow can read (the last attempt's output rides
along as failure details, encrypted by the codec like every payload)."""

import asyncio
import base64
import json
import urllib.parse
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from opsconductor.activities.run_log import RunLogStream
from opsconductor.contracts.steps import StepRequest, StepResult
from opsconductor.jobspec.templates import SecretResolver, TemplateProblem, render_value
from opsconductor.text import storable

# Step output kept in history and on the run record; the full output streams to the run log.
MAX_OUTPUT_CHARACTERS = 64 * 1024
# Kept in memory per stream while a command runs: what `bounded` keeps, plus room for its note.
MAX_CAPTURED = 2 * MAX_OUTPUT_CHARACTERS
# Heartbeats are how a cancelled run (or a timed-out step) reaches a running activity.
HEARTBEAT_SECONDS = 5
MASK = "********"
REJECTED = "StepRejected"
FAILED = "StepFailed"

M = TypeVar("M", bound=BaseModel)


# Derived forms (encodings, lines) are masked only from this many characters on: masking every
# 1-3 character fragment would blank ordinary output. The exact secret is masked at any length.
MIN_DERIVED_CHARACTERS = 4
# `base64` (coreutils) wraps its output at 76 characters; each wrapped line is masked too.
BASE64_LINE = 76


def derived_forms(value: str) -> set[str]:
    """The ways a secret commonly leaves a program other than verbatim: base64 (standard and
    URL-safe, padded or not, and its wrapped lines), URL encoding, a JSON string's body, hex,
    and each line of a multi-line secret."""
    if len(value) < MIN_DERIVED_CHARACTERS:
        return set()
    raw = value.encode()
    encoded = base64.b64encode(raw).decode()
    forms = {
        encoded,
        encoded.rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        *(encoded[start : start + BASE64_LINE] for start in range(0, len(encoded), BASE64_LINE)),
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        raw.hex(),
        raw.hex().upper(),
        *(line.rstrip("\r") for line in value.split("\n")),
    }
    return {form for form in forms if len(form) >= MIN_DERIVED_CHARACTERS}


class SecretMask:
    """Remembers every secret revealed to a step so none of them leaves it in clear, in any
    of its derived forms either."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        # Longest first, so a secret containing another is masked whole; sorted once per
        # change, not per line (a chunk's mask holds its SSH key's lines and encodings).
        self._longest_first: list[str] = []

    def remember(self, value: str) -> str:
        if value:
            known = len(self._values)
            self._values.add(value)
            self._values.update(derived_forms(value))
            if len(self._values) != known:
                self._longest_first = sorted(self._values, key=len, reverse=True)
        return value

    def wrap(self, resolver: SecretResolver) -> SecretResolver:
        return lambda name: self.remember(resolver(name))

    def apply(self, text: str) -> str:
        for value in self._longest_first:
            if value in text:
                text = text.replace(value, MASK)
        return text

    def apply_to_start(self, text: str) -> str:
        """`apply` to the start of a text whose rest is unknown: its last characters may begin
        a secret the rest would complete, so as many as the longest secret are dropped."""
        masked = self.apply(text)
        longest = len(self._longest_first[0]) if self._longest_first else 0
        return masked[: max(0, len(masked) - longest)]


def bounded(text: str, dropped_to: str = "in the run log") -> str:
    """The last MAX_OUTPUT_CHARACTERS of `text`, noting how many earlier characters were cut
    and where they went (`dropped_to`: true of the caller's output, e.g. "in the run log")."""
    if len(text) <= MAX_OUTPUT_CHARACTERS:
        return text
    dropped = len(text) - MAX_OUTPUT_CHARACTERS
    return text[-MAX_OUTPUT_CHARACTERS:] + f"\n[… {dropped} earlier characters {dropped_to}]"


# Inside a chunk activity (activities/ssh_chunks.py) each target runs its own attempts, and the
# chunk heartbeats for all of them: the target's attempt number, and no heartbeat of its own.
member_attempt: ContextVar[int | None] = ContextVar("member_attempt", default=None)


def attempt() -> int:
    """The attempt of the step running in this context: the activity's, or a chunk member's."""
    member = member_attempt.get()
    return activity.info().attempt if member is None else member


def rejected(message: str) -> ApplicationError:
    """A step that no retry can fix: a template, a value or a credential is wrong."""
    return ApplicationError(
        message, StepResult(attempt=attempt()), type=REJECTED, non_retryable=True
    )


def failed(message: str, result: StepResult) -> ApplicationError:
    """A step that ran and failed; Temporal retries it within the step's retry policy."""
    return ApplicationError(message, result, type=FAILED)


def render_inputs(
    request: StepRequest,
    model: type[M],
    mask: SecretMask,
    secrets: SecretResolver | None = None,
    transform: Callable[[dict[str, Any]], dict[str, Any]] = lambda values: values,
) -> M:
    """The step's `with` block rendered against its context, then validated by its model."""
    resolver = mask.wrap(secrets) if secrets is not None else None
    values: dict[str, Any] = {}
    for name, value in request.with_.items():
        try:
            values[name] = render_value(value, request.context, resolver)
        except TemplateProblem as error:
            raise rejected(mask.apply(f"with.{name}: {error}")) from None
    try:
        return model.model_validate(transform(values))
    except ValidationError as error:
        problems = "; ".join(
            f"with.{'.'.join(str(part) for part in item['loc'])}: "
            + item["msg"].removeprefix("Value error, ")
            for item in error.errors()
        )
        raise rejected(mask.apply(problems)) from None


def exit_result(exit_code: int | None, stdout: str, stderr: str) -> StepResult:
    """What a remote command returns; its outputs are the same three values."""
    return StepResult(
        attempt=attempt(),
        exit_code=exit_code,
        stdout=stdout,
        stderr=stderr,
        outputs={"exit_code": exit_code, "stdout": stdout, "stderr": stderr},
    )


def check_exit(result: StepResult, expect: object) -> StepResult:
    """The result, or a (retryable) failure carrying it when the exit code is not expected."""
    assert isinstance(expect, list)
    if result.exit_code not in expect:
        shown = "a signal" if result.exit_code is None else str(result.exit_code)
        raise failed(f"exited with {shown}, expected {', '.join(map(str, expect))}", result)
    return result


class OutputTail:
    """One output stream of a remote command: to the run log as it arrives, and its tail kept
    for the result."""

    def __init__(self, name: str, log: RunLogStream):
        self._name = name
        self._log = log
        self._text = ""

    def add(self, chunk: str) -> None:
        chunk = storable(chunk)  # NUL as `\\x00`, like the record and the log keep it
        self._log.write(self._name, chunk)
        self._text = (self._text + chunk)[-MAX_CAPTURED:]

    def result(self, mask: SecretMask) -> str:
        return bounded(mask.apply(self._text).rstrip("\n"))


@asynccontextmanager
async def heartbeating() -> AsyncIterator[None]:
    """Heartbeats while the body runs, so a cancellation can reach it. A chunk member's
    body does not: its chunk heartbeats (with its progress as details) for every member."""
    if member_attempt.get() is not None:
        yield
        return

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(HEARTBEAT_SECONDS)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
