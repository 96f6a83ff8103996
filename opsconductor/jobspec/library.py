"""Step libraries: versioned documents of reusable steps, each a body of core actions.

A library is data. Its steps are expanded into a job's own steps when the job is saved
(jobspec/expansion.py), so the workflow only ever runs core actions, and a saved job version
keeps working whatever later happens to the library.
"""

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, ValidationError

from opsconductor.errors import FieldProblem
from opsconductor.jobspec.actions import CORE_ACTIONS, ActionSpec
from opsconductor.jobspec.document import (
    JOB_NAME_PATTERN,
    ParameterSpec,
    ParameterType,
    Step,
    Strict,
)
from opsconductor.jobspec.parameters import declaration_problems
from opsconductor.jobspec.templates import (
    TEMPLATE_MARKERS,
    is_template,
    referenced_attributes,
    syntax_problem,
)
from opsconductor.jobspec.validation import (
    UNAVAILABLE_ACTION,
    pydantic_problems,
    strings_in,
    validate_document,
)

# semver.org 2.0.0 without build metadata: `1.2.3+a` and `1.2.3+b` would be different versions
# of equal precedence, and "the newest version" must be one.
SEMVER_PATTERN = (
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?$"
)
LIBRARY_STEP_PATTERN = r"^[a-z][a-z0-9_-]{0,63}$"
# Parameter names are read as `params.<name>` in templates.
LIBRARY_PARAMETER_PATTERN = r"^[a-z_][a-z0-9_]{0,63}$"
FILE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
MAX_FILE_CHARACTERS = 1024 * 1024

LibraryStepName = Annotated[str, StringConstraints(pattern=LIBRARY_STEP_PATTERN)]
FileName = Annotated[str, StringConstraints(pattern=FILE_NAME_PATTERN)]
FileContent = Annotated[str, StringConstraints(max_length=MAX_FILE_CHARACTERS)]

_SEMVER = re.compile(SEMVER_PATTERN)


def semver_key(version: str) -> tuple[int, int, int, tuple[tuple[int, int, str], ...]]:
    """Precedence as semver.org defines it: a pre-release sorts before its release, numeric
    identifiers numerically and before alphanumeric ones."""
    match = _SEMVER.match(version)
    if match is None:
        raise ValueError(f"{version!r} is not a semantic version")
    major, minor, patch, prerelease = match.groups()
    identifiers: tuple[tuple[int, int, str], ...] = ((2, 0, ""),)  # a release: above any pre
    if prerelease:
        identifiers = tuple(
            (0, int(part), "") if part.isdigit() else (1, 0, part) for part in prerelease.split(".")
        )
    return int(major), int(minor), int(patch), identifiers


def newest(versions: list[str]) -> str | None:
    return max(versions, key=semver_key, default=None)


class LibraryOutput(Strict):
    description: str = ""


class LibraryStep(Strict):
    description: str = ""
    parameters: dict[
        Annotated[str, StringConstraints(pattern=LIBRARY_PARAMETER_PATTERN)], ParameterSpec
    ] = Field(default_factory=dict)
    outputs: dict[str, LibraryOutput] = Field(
        default_factory=dict,
        description="Outputs of the body's last step, which a job reads as "
        "steps.<its step id>.outputs.<name>",
    )
    body: list[Step] = Field(min_length=1, max_length=50)

    def last(self) -> Step:
        """The body step no other body step needs (validation makes it exactly one)."""
        needed = {need for step in self.body for need in step.needs}
        return next(step for step in reversed(self.body) if step.id not in needed)


class LibraryDocument(Strict):
    name: str = Field(pattern=JOB_NAME_PATTERN)
    version: str = Field(pattern=SEMVER_PATTERN, max_length=64)
    description: str = ""
    steps: dict[LibraryStepName, LibraryStep] = Field(min_length=1)
    files: dict[FileName, FileContent] = Field(
        default_factory=dict, description="Files for ssh.upload's `file`, by name"
    )
    api_version: Literal["opsconductor/v1"] = Field(default="opsconductor/v1")


def library_document_schema() -> dict[str, Any]:
    return LibraryDocument.model_json_schema(by_alias=True)


_TEMPLATE_ALTERNATIVE = {"type": "string", "pattern": TEMPLATE_MARKERS.pattern}


def parameters_schema(parameters: Mapping[str, ParameterSpec]) -> dict[str, Any]:
    """The JSON Schema of a library step's `with`: its declared parameters, each also
    accepting a template (rendered when the step runs)."""
    properties: dict[str, Any] = {}
    for name, spec in parameters.items():
        schema: dict[str, Any] = {"type": spec.type.value}
        for key in ("description", "default", "pattern", "minimum", "maximum", "enum"):
            value = getattr(spec, key)
            if value not in (None, ""):
                schema[key] = value
        if spec.type is not ParameterType.string:
            schema = {"anyOf": [schema, _TEMPLATE_ALTERNATIVE]}
        properties[name] = schema
    return {
        "type": "object",
        "properties": properties,
        "required": [name for name, spec in parameters.items() if spec.required],
        "additionalProperties": False,
    }


@dataclass
class LibraryReport:
    document: LibraryDocument | None = None
    problems: list[FieldProblem] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return self.document is not None and not self.problems


def validate_library(raw: Any) -> LibraryReport:
    if not isinstance(raw, Mapping):
        return LibraryReport(problems=[FieldProblem("document", "must be an object")])
    try:
        document = LibraryDocument.model_validate(raw)
    except ValidationError as error:
        return LibraryReport(problems=pydantic_problems(error))
    problems: list[FieldProblem] = []
    for name, step in document.steps.items():
        problems += _step_problems(document, f"steps.{name}", step)
    return LibraryReport(document=document, problems=problems)


def _relocated(problem: FieldProblem, prefix: str) -> FieldProblem:
    return FieldProblem(f"{prefix}.{problem.path}", problem.message, problem.type)


def _step_problems(
    document: LibraryDocument, where: str, step: LibraryStep
) -> Iterator[FieldProblem]:
    yield from (_relocated(problem, where) for problem in declaration_problems(step.parameters))
    # A body is checked as the steps of a job would be: actions, `with` blocks, needs, template
    # syntax and ordered references; only core actions, and those not executable yet allowed.
    body = {"name": "body", "steps": [item.model_dump(by_alias=True) for item in step.body]}
    report = validate_document(body, actions=CORE_ACTIONS)
    for problem in report.problems:
        if problem.type != UNAVAILABLE_ACTION:
            yield FieldProblem(
                f"{where}.body.{problem.path.removeprefix('steps.')}",
                problem.message.replace("known actions", "core actions"),
                problem.type,
            )
    for index, body_step in enumerate(step.body):
        yield from _body_step_problems(document, f"{where}.body.{index}", step, body_step)
    yield from _last_step_problems(where, step)


def _body_step_problems(
    document: LibraryDocument, where: str, step: LibraryStep, body_step: Step
) -> Iterator[FieldProblem]:
    if body_step.run_once:
        yield FieldProblem(
            f"{where}.run_once",
            "a body step cannot be run_once; a job sets run_once on the library step",
            "run_once",
        )
    texts = [(f"{where}.when", body_step.when)] if body_step.when else []
    texts += list(strings_in(body_step.with_, f"{where}.with"))
    for path, text in texts:
        if not is_template(text) or syntax_problem(text):
            continue
        for name in sorted(referenced_attributes(text, "params") - set(step.parameters)):
            yield FieldProblem(path, f"reads params.{name}, which this step does not declare")
    if body_step.action == "ssh.upload":
        yield from _file_problems(document, f"{where}.with.file", body_step.with_.get("file"))


def _file_problems(document: LibraryDocument, path: str, file: object) -> Iterator[FieldProblem]:
    if file is None:
        return
    if not isinstance(file, str) or is_template(file):
        yield FieldProblem(path, "must name a file of the library literally", "file")
    elif file not in document.files:
        known = ", ".join(sorted(document.files)) or "none"
        yield FieldProblem(path, f"no file {file!r} in the library (files: {known})", "file")


def _last_step_problems(where: str, step: LibraryStep) -> Iterator[FieldProblem]:
    needed = {need for item in step.body for need in item.needs}
    last = [item.id for item in step.body if item.id not in needed]
    if len(last) != 1:
        yield FieldProblem(
            f"{where}.body",
            "a body must end in exactly one step (one no other body step needs), whose "
            f"outputs are the step's; it ends in: {', '.join(last) or 'a cycle'}",
            "body_end",
        )
        return
    spec: ActionSpec | None = CORE_ACTIONS.get(step.last().action)
    if spec is None:
        return  # the unknown action is the problem, reported at its own path
    given = spec.outputs
    for name in step.outputs:
        if name not in given:
            yield FieldProblem(
                f"{where}.outputs.{name}",
                f"the body's last step ({step.last().action}) gives no output {name!r}; it "
                f"gives: {', '.join(given) or 'none'}",
                "output",
            )
