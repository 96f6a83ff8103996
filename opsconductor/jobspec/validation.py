"""Validation of a job document that names the path of every problem it finds.

Structure is checked by the pydantic models; this module adds what a schema cannot say: known
actions and their `with` blocks, a DAG of `needs`, template syntax, and templates that read only
steps guaranteed to have finished before them.
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from opsconductor.errors import FieldProblem
from opsconductor.jobspec.actions import ActionSpec
from opsconductor.jobspec.document import JobDocument, Step
from opsconductor.jobspec.graph import ancestors, find_cycle
from opsconductor.jobspec.parameters import declaration_problems
from opsconductor.jobspec.plugins import known_actions
from opsconductor.jobspec.templates import (
    is_template,
    nondeterminism,
    referenced_steps,
    syntax_problem,
)


@dataclass
class ValidationReport:
    document: JobDocument | None = None
    problems: list[FieldProblem] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return self.document is not None and not self.problems


UNAVAILABLE_ACTION = "unavailable_action"
NONDETERMINISTIC = "nondeterministic"


def _path(*parts: object) -> str:
    return ".".join(str(part) for part in parts if part != "")


def pydantic_problems(error: ValidationError, prefix: str = "") -> list[FieldProblem]:
    return [
        FieldProblem(
            path=_path(prefix, *(part for part in item["loc"])) or prefix or "document",
            message=item["msg"].removeprefix("Value error, "),
            type=item["type"],
        )
        for item in error.errors()
    ]


def validate_document(
    raw: Any, actions: Mapping[str, ActionSpec] | None = None
) -> ValidationReport:
    """`actions` are those a step may use: by default the core catalog and the plugins'."""
    if not isinstance(raw, Mapping):
        return ValidationReport(problems=[FieldProblem("document", "must be an object")])
    catalog = known_actions() if actions is None else actions
    try:
        document = JobDocument.model_validate(raw)
    except ValidationError as error:
        # Still check the steps that parse, so one structural slip does not hide the rest.
        return ValidationReport(problems=pydantic_problems(error) + _step_problems(raw, catalog))
    problems = list(_semantic_problems(document, catalog))
    return ValidationReport(document=document, problems=problems)


def _semantic_problems(
    document: JobDocument, actions: Mapping[str, ActionSpec]
) -> Iterator[FieldProblem]:
    ids: dict[str, int] = {}
    for index, step in enumerate(document.steps):
        if step.id in ids:
            yield FieldProblem(
                _path("steps", index, "id"),
                f"duplicate step id {step.id!r} (also steps.{ids[step.id]})",
                "duplicate",
            )
        ids.setdefault(step.id, index)

    graph = {step.id: list(step.needs) for step in document.steps}
    for index, step in enumerate(document.steps):
        yield from _needs_problems(index, step, ids)
        yield from _action_problems(index, step, actions)
        yield from _template_problems(index, step)
        yield from _determinism_problems(index, step, actions)
    cycle = find_cycle({node: [n for n in needs if n in ids] for node, needs in graph.items()})
    if cycle:
        first = min(ids[node] for node in cycle)
        yield FieldProblem(
            _path("steps", first, "needs"),
            "needs form a cycle: " + " -> ".join([*cycle, cycle[0]]),
            "cycle",
        )
    else:
        yield from _reference_problems(document, graph)
    yield from declaration_problems(document.parameters)
    yield from _notify_problems(document)
    concurrency = document.strategy.concurrency
    if isinstance(concurrency, str) and (problem := syntax_problem(concurrency)):
        yield FieldProblem("strategy.concurrency", problem, "template")
    if isinstance(concurrency, str) and (problem := nondeterminism(concurrency)):
        yield FieldProblem("strategy.concurrency", problem, NONDETERMINISTIC)


def _notify_problems(document: JobDocument) -> Iterator[FieldProblem]:
    for index, rule in enumerate(document.notify):
        for name, text in (("title", rule.title), ("body", rule.body)):
            if text is not None and is_template(text) and (problem := syntax_problem(text)):
                yield FieldProblem(_path("notify", index, name), problem, "template")


def _step_problems(raw: Mapping[str, Any], actions: Mapping[str, ActionSpec]) -> list[FieldProblem]:
    steps = raw.get("steps")
    if not isinstance(steps, list):
        return []
    problems: list[FieldProblem] = []
    for index, item in enumerate(steps):
        try:
            step = Step.model_validate(item)
        except ValidationError:
            continue
        problems += [
            *_action_problems(index, step, actions),
            *_template_problems(index, step),
            *_determinism_problems(index, step, actions),
        ]
    return problems


def _needs_problems(index: int, step: Step, ids: Mapping[str, int]) -> Iterator[FieldProblem]:
    for position, need in enumerate(step.needs):
        where = _path("steps", index, "needs", position)
        if need == step.id:
            yield FieldProblem(where, f"step {step.id!r} cannot need itself", "self_reference")
        elif need not in ids:
            yield FieldProblem(where, f"unknown step {need!r}", "unknown_step")


def _action_problems(
    index: int, step: Step, actions: Mapping[str, ActionSpec]
) -> Iterator[FieldProblem]:
    spec = actions.get(step.action)
    if spec is None:
        known = ", ".join(sorted(name for name, item in actions.items() if item.available))
        yield FieldProblem(
            _path("steps", index, "action"),
            f"unknown action {step.action!r}; known actions: {known}",
            "unknown_action",
        )
        return
    if not spec.available:
        # Reported, and the `with` block still checked: a library may use an action ahead of
        # the release that makes it executable (a job using it is refused on this problem).
        yield FieldProblem(
            _path("steps", index, "action"),
            f"{step.action} is not available in this version of OpsConductor yet",
            UNAVAILABLE_ACTION,
        )
    if step.run_once and spec.needs_target:
        yield FieldProblem(
            _path("steps", index, "run_once"),
            f"{step.action} acts on a target, so it cannot be run_once",
            "run_once",
        )
    if spec.run_once_only and not step.run_once:
        yield FieldProblem(
            _path("steps", index, "run_once"),
            f"{step.action} decides for the whole run, so it must be run_once: true",
            "run_once",
        )
    try:
        spec.input_model.model_validate(step.with_)
    except ValidationError as error:
        yield from pydantic_problems(error, prefix=_path("steps", index, "with"))


def strings_in(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string inside a JSON-like value, with its path."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from strings_in(item, _path(path, key))
    elif isinstance(value, list):
        for position, item in enumerate(value):
            yield from strings_in(item, _path(path, position))


def _template_texts(index: int, step: Step) -> Iterator[tuple[str, str]]:
    yield from strings_in(step.with_, _path("steps", index, "with"))
    if step.when is not None:
        yield _path("steps", index, "when"), step.when


def _template_problems(index: int, step: Step) -> Iterator[FieldProblem]:
    for path, text in _template_texts(index, step):
        if is_template(text) and (problem := syntax_problem(text)):
            yield FieldProblem(path, problem, "template")


def _determinism_problems(
    index: int, step: Step, actions: Mapping[str, ActionSpec]
) -> Iterator[FieldProblem]:
    """Templates the workflow renders must render the same on a replay. An action's `with`
    block is rendered by its activity (randomness there is harmless: a result is recorded once),
    except for actions the workflow performs itself (no queue: control.sleep, control.approval)."""
    texts: list[tuple[str, str]] = []
    if step.when is not None:
        texts.append((_path("steps", index, "when"), step.when))
    spec = actions.get(step.action)
    if spec is not None and spec.queue is None:
        texts += strings_in(step.with_, _path("steps", index, "with"))
    for path, text in texts:
        if problem := nondeterminism(text):
            yield FieldProblem(path, problem, NONDETERMINISTIC)


def _reference_problems(
    document: JobDocument, graph: Mapping[str, list[str]]
) -> Iterator[FieldProblem]:
    for index, step in enumerate(document.steps):
        upstream = ancestors(graph, step.id)
        for path, text in _template_texts(index, step):
            if not is_template(text) or syntax_problem(text):
                continue
            for name in sorted(referenced_steps(text) - upstream):
                yield FieldProblem(
                    path,
                    f"reads steps.{name}, which is not among the steps this one needs "
                    "(directly or through its needs), so it may not have run yet",
                    "unordered_reference",
                )
