"""The compact form of what a job run carries when it continues as new (`RunProgress`).

Per-target outcomes travel as one token per target and step: what later steps and the run's end
read of them (status, the skip's reason, whether a failure was tolerated, the exit code), never
their output or a failure's text, which stay on the run's records. Pure functions, safe in
workflow code.
"""

import itertools
from collections.abc import Iterable, Mapping, Sequence

from opsconductor.contracts.runs import SkipReason, StepOutcome, StepStatus

# The whole continuation input (plan, target names, progress) must stay below Temporal's 2 MB
# payload limit, with room for the codec's envelope; a run whose input would not fit carries on
# in its own history instead.
CARRY_LIMIT = 1_500_000

_STATUS_LETTERS = {
    StepStatus.succeeded: "s",
    StepStatus.cancelled: "x",
    StepStatus.running: "r",
    StepStatus.pending: "p",
}
_SKIP_LETTERS = {
    SkipReason.condition.value: "c",
    SkipReason.upstream_failed.value: "u",
    SkipReason.run_aborted.value: "a",
}
_FAILED, _TOLERATED = "f", "t"
_OUTCOME_OF_LETTER: dict[str, tuple[StepStatus, str | None, bool]] = {
    **{letter: (status, None, False) for status, letter in _STATUS_LETTERS.items()},
    **{letter: (StepStatus.skipped, reason, False) for reason, letter in _SKIP_LETTERS.items()},
    _FAILED: (StepStatus.failed, None, False),
    _TOLERATED: (StepStatus.failed, None, True),
}


def state_token(outcome: StepOutcome) -> str:
    if outcome.status is StepStatus.failed:
        letter = _TOLERATED if outcome.tolerated else _FAILED
    elif outcome.status is StepStatus.skipped:
        # Every skip has one of the three reasons; anything else reads as "did not run".
        letter = _SKIP_LETTERS.get(outcome.reason or "", _SKIP_LETTERS[SkipReason.run_aborted])
    else:
        letter = _STATUS_LETTERS[outcome.status]
    return letter + ("" if outcome.exit_code is None else str(outcome.exit_code))


def outcome_of(token: str, step_id: str) -> StepOutcome:
    status, reason, tolerated = _OUTCOME_OF_LETTER[token[0]]
    exit_code = int(token[1:]) if len(token) > 1 else None
    return StepOutcome(
        step_id=step_id, status=status, reason=reason, exit_code=exit_code, tolerated=tolerated
    )


def pack_states(
    names: Sequence[str], per_target: Mapping[str, Mapping[str, StepOutcome]]
) -> dict[str, str]:
    """For each step, its targets' tokens in target order, a run of equal ones as
    `<token>*<count>`: a fleet where most targets did the same carries a few bytes a step."""
    step_ids = list(dict.fromkeys(step_id for steps in per_target.values() for step_id in steps))
    packed: dict[str, str] = {}
    for step_id in step_ids:
        tokens = (
            state_token(per_target[name][step_id]) if step_id in per_target.get(name, {}) else ""
            for name in names
        )
        runs = [(token, len(list(group))) for token, group in itertools.groupby(tokens)]
        packed[step_id] = ",".join(token if n == 1 else f"{token}*{n}" for token, n in runs)
    return packed


def _tokens(packed: str) -> list[str]:
    tokens: list[str] = []
    for item in packed.split(","):
        token, _, count = item.partition("*")
        tokens.extend([token] * (int(count) if count else 1))
    return tokens


def unpack_states(
    names: Sequence[str], states: Mapping[str, str]
) -> dict[str, dict[str, StepOutcome]]:
    """Outcomes by target (in target order) and step, as `pack_states` found them.

    The targets with one token of a step share one outcome, without a target name: the run only
    reads a carried outcome (a later one replaces it, never changes it) and always by target, and
    building one per target and step would take seconds for a large fleet, longer than the SDK
    lets a workflow task run without yielding (2 s)."""
    columns = {step_id: _tokens(packed) for step_id, packed in states.items()}
    shared: dict[tuple[str, str], StepOutcome] = {}
    per_target: dict[str, dict[str, StepOutcome]] = {}
    for index, name in enumerate(names):
        own: dict[str, StepOutcome] = {}
        for step_id, tokens in columns.items():
            token = tokens[index]
            if token:
                outcome = shared.get((step_id, token))
                if outcome is None:
                    outcome = shared[(step_id, token)] = outcome_of(token, step_id)
                own[step_id] = outcome
        if own:
            per_target[name] = own
    return per_target


def pack_targets(names: Sequence[str], chosen: Iterable[str]) -> str:
    """A subset of the run's targets as a bit per target (bit i: names[i]), in hex."""
    members = set(chosen)
    bits = "".join("1" if name in members else "0" for name in reversed(names))
    return format(int(bits or "0", 2), "x")


def unpack_targets(names: Sequence[str], packed: str) -> set[str]:
    mask = int(packed, 16)
    return {name for index, name in enumerate(names) if mask >> index & 1}
