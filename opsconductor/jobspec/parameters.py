"""Values checked against declared parameters, with a path per problem: a run's parameters
against its job's, and a library step's `with` against the step's."""

from collections.abc import Mapping
from typing import Any

import regex

from opsconductor.errors import FieldProblem
from opsconductor.jobspec.document import ParameterSpec, ParameterType
from opsconductor.jobspec.templates import is_template

# A pattern is the job author's and the value the caller's: a backtracking pattern like
# `(a+)+$` against a long value would hold the API's event loop for minutes. The `regex` engine
# stops a match after this much time (CPU time, so a busy machine stretches it on the clock).
PATTERN_TIMEOUT_SECONDS = 0.1

_PYTHON_TYPES: dict[ParameterType, tuple[type, ...]] = {
    ParameterType.string: (str,),
    ParameterType.integer: (int,),
    ParameterType.number: (int, float),
    ParameterType.boolean: (bool,),
    ParameterType.array: (list,),
    ParameterType.object: (dict,),
}


def _type_matches(kind: ParameterType, value: Any) -> bool:
    if isinstance(value, bool) and kind is not ParameterType.boolean:
        return False
    return isinstance(value, _PYTHON_TYPES[kind])


def _value_problems(path: str, spec: ParameterSpec, value: Any) -> list[FieldProblem]:
    if not _type_matches(spec.type, value):
        return [FieldProblem(path, f"must be of type {spec.type.value}", "type")]
    problems = []
    if spec.enum is not None and value not in spec.enum:
        problems.append(FieldProblem(path, f"must be one of {spec.enum}", "enum"))
    if spec.pattern is not None and isinstance(value, str):
        problems.extend(_pattern_problems(path, spec.pattern, value))
    if isinstance(value, int | float):
        if spec.minimum is not None and value < spec.minimum:
            problems.append(FieldProblem(path, f"must be at least {spec.minimum:g}", "minimum"))
        if spec.maximum is not None and value > spec.maximum:
            problems.append(FieldProblem(path, f"must be at most {spec.maximum:g}", "maximum"))
    return problems


def _pattern_problems(
    path: str, pattern: str, value: str, timeout: float = PATTERN_TIMEOUT_SECONDS
) -> list[FieldProblem]:
    try:
        if regex.search(pattern, value, timeout=timeout):
            return []
    except TimeoutError:
        return [
            FieldProblem(
                path,
                f"could not be checked against {pattern} in time (the pattern backtracks too "
                "much on this value; simplify the pattern)",
                "pattern_timeout",
            )
        ]
    return [FieldProblem(path, f"must match {pattern}", "pattern")]


def resolve_parameters(
    declared: Mapping[str, ParameterSpec],
    given: Mapping[str, Any],
    *,
    prefix: str = "parameters",
    owner: str = "this job",
    templates_allowed: bool = False,
) -> tuple[dict[str, Any], list[FieldProblem]]:
    """The values (defaults filled in) and every problem with what was given.

    With `templates_allowed` (a library step's `with`, rendered only when the step runs), a
    template stands for any value and is checked when it renders, not here.
    """
    problems = [
        FieldProblem(f"{prefix}.{name}", f"is not a parameter of {owner}", "unknown")
        for name in given
        if name not in declared
    ]
    resolved: dict[str, Any] = {}
    for name, spec in declared.items():
        if name in given:
            value = given[name]
        elif spec.required:
            problems.append(FieldProblem(f"{prefix}.{name}", "is required", "missing"))
            continue
        else:
            value = spec.default
        if value is not None and not (templates_allowed and is_template(value)):
            problems.extend(_value_problems(f"{prefix}.{name}", spec, value))
        resolved[name] = value
    return resolved, problems


def declaration_problems(
    declared: Mapping[str, ParameterSpec], prefix: str = "parameters"
) -> list[FieldProblem]:
    """Defaults that break their own declaration, found when the document is saved."""
    problems = []
    for name, spec in declared.items():
        if spec.pattern is not None:
            try:
                regex.compile(spec.pattern)
            except regex.error as error:
                problems.append(
                    FieldProblem(f"{prefix}.{name}.pattern", f"invalid pattern: {error}")
                )
                continue
        if spec.default is not None:
            problems.extend(_value_problems(f"{prefix}.{name}.default", spec, spec.default))
    return problems
