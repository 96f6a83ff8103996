"""Library steps of a job, expanded into core steps when the job is saved.

A step `action: linux/disk-usage@1.2.0` (or `linux/disk-usage`, the newest enabled version)
becomes the body of that library step, so the workflow only ever sees core actions and a saved
job version never changes when its library does. The rules (docs/libraries.md):

- Body step `b` of job step `s` gets the id `s__b`, except the body's last step, which takes
  `s` itself: the job's dependants of `s`, and its templates' `steps.s.outputs.*`, read the
  last step's result without any rewriting.
- Body steps without `needs` take the job step's `needs`; `steps.<b>` in body templates is
  rewritten to the new ids.
- The job step's arguments reach the body's templates as `params`: each body template that
  reads `params` is prefixed with `{% set params = {...} %}` holding literal arguments as
  literals and templated ones as expressions (rendered, like any template, when the step runs).
- `when` (single-step bodies), `on_error`, `run_once`, and `retry`, `timeout`, `credential`
  when set, carry over onto the body steps.
"""

import json
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from opsconductor.errors import FieldProblem
from opsconductor.jobspec.document import OnError, Step
from opsconductor.jobspec.library import LibraryDocument, LibraryStep, newest, semver_key
from opsconductor.jobspec.parameters import resolve_parameters
from opsconductor.jobspec.templates import (
    TRUE_WORDS,
    is_template,
    reads_variable,
    syntax_problem,
)
from opsconductor.jobspec.validation import ValidationReport, strings_in, validate_document

LIBRARY_ACTION = re.compile(
    r"^(?P<library>[a-z0-9][a-z0-9-]*)/(?P<step>[a-z][a-z0-9_-]*)(?:@(?P<version>[0-9A-Za-z.-]+))?$"
)
FILE_REFERENCE = re.compile(
    r"^(?P<library>[a-z0-9][a-z0-9-]*)@(?P<version>[0-9A-Za-z.-]+)/(?P<name>[^/]+)$"
)
ID_SEPARATOR = "__"
MAX_STEP_ID = 64
# Stands in for a library step that cannot be expanded, so the rest of the document is still
# checked (its dependants, its `when`) without a cascade of "unknown step" problems.
PLACEHOLDER = {"action": "control.sleep", "with": {"duration": "1s"}}
# Fields of a body step that keep their path when a problem is reported on the job's step.
_SAME_PATH_FIELDS = frozenset({"id", "needs", "run_once", "credential", "timeout", "retry"})


def is_library_action(action: object) -> bool:
    return isinstance(action, str) and "/" in action


@dataclass(frozen=True, slots=True)
class LibraryReference:
    library: str
    step: str
    version: str | None

    @classmethod
    def parse(cls, action: str) -> "LibraryReference | None":
        match = LIBRARY_ACTION.match(action)
        if match is None:
            return None
        return cls(match["library"], match["step"], match["version"])


@dataclass(frozen=True, slots=True)
class FileReference:
    """A library file as ssh.upload's `file` names it once expanded: `linux@1.2.0/name`."""

    library: str
    version: str
    name: str

    @classmethod
    def parse(cls, text: str) -> "FileReference | None":
        match = FILE_REFERENCE.match(text)
        if match is None:
            return None
        return cls(match["library"], match["version"], match["name"])

    def __str__(self) -> str:
        return f"{self.library}@{self.version}/{self.name}"


@dataclass(frozen=True, slots=True)
class InstalledVersion:
    document: LibraryDocument
    enabled: bool


@dataclass(frozen=True, slots=True)
class InstalledLibrary:
    name: str
    enabled: bool
    versions: Mapping[str, InstalledVersion]


class LibraryPin(BaseModel):
    """A library version a job version was expanded from, and the job's steps that use it."""

    library: str
    version: str
    steps: list[str]


@dataclass(frozen=True, slots=True)
class _Origin:
    index: int
    # For a body step: "linux/disk-usage@1.2.0 body step df", to say where a problem arose.
    label: str | None = None


@dataclass
class JobCheck:
    """A job document checked with its library steps expanded; problems name source paths."""

    report: ValidationReport
    pins: list[LibraryPin] = field(default_factory=list)
    # The document as written, kept when it differs from the expanded one.
    source: dict[str, Any] | None = None


def referenced_libraries(raw: Any) -> set[str]:
    """The library names a job document uses, so only those are loaded to expand it."""
    names: set[str] = set()
    for item in _raw_steps(raw):
        action = item.get("action")
        if is_library_action(action) and (reference := LibraryReference.parse(action)):
            names.add(reference.library)
        if (file := _upload_file(item)) and (file_reference := FileReference.parse(file)):
            names.add(file_reference.library)
    return names


def check_job(raw: Any, installed: Mapping[str, InstalledLibrary]) -> JobCheck:
    if not (isinstance(raw, Mapping) and isinstance(raw.get("steps"), list)):
        return JobCheck(validate_document(raw))
    expander = _Expander(installed)
    steps = [step for index, item in enumerate(raw["steps"]) for step in expander.step(index, item)]
    report = validate_document({**raw, "steps": steps})
    problems = expander.problems + _relocated(report.problems, expander.origins)
    report = ValidationReport(report.document, list(dict.fromkeys(problems)))
    pins = [
        LibraryPin(library=library, version=version, steps=step_ids)
        for (library, version), step_ids in sorted(
            expander.pins.items(), key=lambda item: (item[0][0], semver_key(item[0][1]))
        )
    ]
    return JobCheck(report, pins, dict(raw) if expander.expanded_any else None)


def _raw_steps(raw: Any) -> list[Any]:
    steps = raw.get("steps") if isinstance(raw, Mapping) else None
    return [item for item in steps if isinstance(item, Mapping)] if isinstance(steps, list) else []


def _upload_file(item: Mapping[str, Any]) -> str | None:
    arguments = item.get("with")
    if item.get("action") != "ssh.upload" or not isinstance(arguments, Mapping):
        return None
    file = arguments.get("file")
    return file if isinstance(file, str) else None


def resolve_library(
    reference: LibraryReference, installed: Mapping[str, InstalledLibrary]
) -> tuple[str, LibraryDocument] | str:
    """The version a reference means and its document, or why it cannot be used."""
    library = installed.get(reference.library)
    if library is None:
        return f"no library {reference.library!r} is installed"
    if not library.enabled:
        return f"the library {reference.library!r} is disabled"
    if reference.version is not None:
        version = reference.version
        chosen = library.versions.get(version)
        if chosen is None:
            known = ", ".join(sorted(library.versions, key=semver_key))
            return f"{reference.library} has no version {version} (versions: {known})"
        if not chosen.enabled:
            return f"{reference.library}@{version} is disabled"
    else:
        enabled = [number for number, item in library.versions.items() if item.enabled]
        found = newest(enabled)
        if found is None:
            return f"{reference.library} has no enabled version"
        version = found
    document = library.versions[version].document
    if reference.step not in document.steps:
        known = ", ".join(sorted(document.steps))
        return f"{reference.library}@{version} has no step {reference.step!r} (steps: {known})"
    return version, document


class _Expander:
    def __init__(self, installed: Mapping[str, InstalledLibrary]):
        self._installed = installed
        self.problems: list[FieldProblem] = []
        # Per expanded step, the source step it stands for.
        self.origins: list[_Origin] = []
        self.pins: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.expanded_any = False

    def step(self, index: int, item: Any) -> list[Any]:
        """The steps standing for one step of the source document."""
        if not (isinstance(item, Mapping) and is_library_action(item.get("action"))):
            if isinstance(item, Mapping):
                self._check_upload_file(index, item)
            self.origins.append(_Origin(index))
            return [item]
        self.expanded_any = True
        try:
            step = Step.model_validate(item)
        except ValidationError:
            # The validator reports the structure at this same path.
            self.origins.append(_Origin(index))
            return [item]
        body = self._library_body(index, step)
        if body is None:
            self.origins.append(_Origin(index))
            return [_placeholder(step)]
        return body

    def _problem(self, path: str, message: str, kind: str) -> None:
        self.problems.append(FieldProblem(path, message, kind))

    def _library_body(self, index: int, step: Step) -> list[dict[str, Any]] | None:
        where = f"steps.{index}"
        reference = LibraryReference.parse(step.action)
        if reference is None:
            self._problem(
                f"{where}.action",
                f"{step.action!r} is not a library step: write library/step or library/step@1.2.3",
                "unknown_action",
            )
            return None
        resolved = resolve_library(reference, self._installed)
        if isinstance(resolved, str):
            self._problem(f"{where}.action", resolved, "library")
            return None
        version, document = resolved
        label = f"{reference.library}/{reference.step}@{version}"
        library_step = document.steps[reference.step]
        arguments, problems = resolve_parameters(
            library_step.parameters,
            step.with_,
            prefix=f"{where}.with",
            owner=label,
            templates_allowed=True,
        )
        problems += [
            FieldProblem(path, problem, "template")
            for path, text in strings_in(step.with_, f"{where}.with")
            if is_template(text) and (problem := syntax_problem(text))
        ]
        if step.when is not None and len(library_step.body) > 1:
            problems.append(
                FieldProblem(
                    f"{where}.when",
                    f"{label} has a body of several steps, which cannot share one `when`; "
                    "put the condition on a step this one needs, or use a single-step "
                    "library step",
                    "when",
                )
            )
        longest = max(len(item.id) for item in library_step.body)
        if len(step.id) + len(ID_SEPARATOR) + longest > MAX_STEP_ID:
            problems.append(
                FieldProblem(
                    f"{where}.id",
                    f"too long for {label}: its body steps are named "
                    f"{step.id}{ID_SEPARATOR}<body step>, at most {MAX_STEP_ID} characters",
                    "id",
                )
            )
        if problems:
            self.problems += problems
            return None
        self.pins[(reference.library, version)].append(step.id)
        self.origins += [
            _Origin(index, f"{label} body step {item.id}") for item in library_step.body
        ]
        return _Body(step, library_step, reference, version, arguments).expanded()

    def _check_upload_file(self, index: int, item: Mapping[str, Any]) -> None:
        file = _upload_file(item)
        if file is None or is_template(file):
            return
        path = f"steps.{index}.with.file"
        reference = FileReference.parse(file)
        if reference is None:
            self._problem(path, "name a library file as library@version/name", "file")
            return
        library = self._installed.get(reference.library)
        installed = library.versions.get(reference.version) if library else None
        if installed is None:
            self._problem(
                path, f"no library version {reference.library}@{reference.version}", "file"
            )
        elif reference.name not in installed.document.files:
            self._problem(
                path,
                f"{reference.library}@{reference.version} has no file {reference.name!r}",
                "file",
            )
        else:
            self.pins[(reference.library, reference.version)].append(str(item.get("id")))


def _placeholder(step: Step) -> dict[str, Any]:
    kept = step.model_dump(mode="json", by_alias=True, include={"id", "needs", "when", "run_once"})
    return {**kept, **PLACEHOLDER}


class _Body:
    """One library step's body, expanded for one job step."""

    def __init__(
        self,
        step: Step,
        library_step: LibraryStep,
        reference: LibraryReference,
        version: str,
        arguments: Mapping[str, Any],
    ):
        self._step = step
        self._library = reference.library
        self._version = version
        self._title = step.name or f"{reference.library}/{reference.step}"
        self.steps = library_step.body
        self._last = library_step.last().id
        self._ids = {
            item.id: step.id if item.id == self._last else f"{step.id}{ID_SEPARATOR}{item.id}"
            for item in self.steps
        }
        self._preamble = _params_preamble(arguments)
        self._references = re.compile(
            r"(?<![\w.])steps\.(" + "|".join(re.escape(item.id) for item in self.steps) + r")\b"
        )
        inherited = {"retry", "timeout", "credential"} & step.model_fields_set
        self._inherited = step.model_dump(mode="json", by_alias=True, include=inherited)

    def expanded(self) -> list[dict[str, Any]]:
        return [self._expand(item) for item in self.steps]

    def _text(self, text: str) -> str:
        if not is_template(text):
            return text
        text = self._references.sub(lambda match: f"steps.{self._ids[match[1]]}", text)
        return self._preamble + text if reads_variable(text, "params") else text

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._text(value)
        if isinstance(value, Mapping):
            return {key: self._value(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self._value(item) for item in value]
        return value

    def _expand(self, item: Step) -> dict[str, Any]:
        step = self._step
        data = item.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        data["id"] = self._ids[item.id]
        data["with"] = self._value(item.with_)
        if item.action == "ssh.upload" and isinstance(item.with_.get("file"), str):
            file = FileReference(self._library, self._version, item.with_["file"])
            data["with"]["file"] = str(file)
        needs = [self._ids[need] for need in item.needs] if item.needs else list(step.needs)
        data.pop("needs", None)
        if needs:
            data["needs"] = needs
        data.pop("when", None)
        if (when := self._when(item)) is not None:
            data["when"] = when
        if step.on_error is OnError.continue_:
            data["on_error"] = OnError.continue_.value
        if step.run_once:
            data["run_once"] = True
        data.update(self._inherited)
        last = item.id == self._last
        data["name"] = self._title if last else (item.name or f"{self._title}: {item.id}")
        return data

    def _when(self, item: Step) -> str | None:
        own = self._text(item.when) if item.when is not None else None
        if self._step.when is not None:  # a single-step body (checked before expanding)
            return self._step.when if own is None else all_of([self._step.when, own])
        if own is None and item.needs and self._step.on_error is OnError.continue_:
            # With `continue`, a tolerated failure would not stop the rest of the body; this
            # does, as a one-step action would end at its failure.
            failed = " or ".join(f"steps.{self._ids[need]}.failed" for need in item.needs)
            return "{{ not (" + failed + ") }}"
        return own


def jinja_literal(value: Any) -> str:
    """A JSON value written as a Jinja expression that evaluates to it."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        # Jinja unescapes string literals like Python: JSON's escapes mean the same there.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(jinja_literal(item) for item in value) + "]"
    if isinstance(value, Mapping):
        pairs = (f"{jinja_literal(str(key))}: {jinja_literal(item)}" for key, item in value.items())
        return "{" + ", ".join(pairs) + "}"
    raise TypeError(f"not a JSON value: {type(value).__name__}")


_SINGLE_EXPRESSION = re.compile(r"\{\{-?(?P<inner>.*?)-?\}\}", re.DOTALL)


def _single_expression(text: str) -> str | None:
    """`{{ expr }}` as the expression itself, so an argument keeps its type (a number, a
    list); None for any other template."""
    match = _SINGLE_EXPRESSION.fullmatch(text)
    if match is None:
        return None
    inner = match["inner"].strip()
    if any(marker in inner for marker in ("{{", "}}", "{%", "%}", "{#")):
        return None
    if syntax_problem("{{ (" + inner + ") }}") is not None:
        return None
    return f"({inner})"


def _params_preamble(arguments: Mapping[str, Any]) -> str:
    captures: list[str] = []
    entries: list[str] = []
    for name, value in arguments.items():
        if is_template(value):
            expression = _single_expression(value)
            if expression is None:
                # Captured before `params` is rebound, so it reads the job's own params.
                captures.append(f"{{% set library_arg_{name} %}}{value}{{% endset %}}")
                expression = f"library_arg_{name}"
        else:
            expression = jinja_literal(value)
        entries.append(f"{jinja_literal(name)}: {expression}")
    rebound = "{% set params = {" + ", ".join(entries) + "} %}"
    if not captures:
        return rebound
    # Read `params` before rebinding it: otherwise Jinja takes every `params` at this level,
    # those in the captures included, for the new binding, undefined when they render.
    return "{% set library_job_params = params %}" + "".join(captures) + rebound


def all_of(conditions: list[str]) -> str:
    """One `when` that holds when every condition renders to a true word."""
    words = "(" + ", ".join(jinja_literal(word) for word in sorted(TRUE_WORDS)) + ")"
    captures = "".join(
        f"{{% set library_condition_{index} %}}{text}{{% endset %}}"
        for index, text in enumerate(conditions)
    )
    tests = " and ".join(
        f"(library_condition_{index} | trim | lower in {words})" for index in range(len(conditions))
    )
    return captures + "{{ " + tests + " }}"


_STEP_PATH = re.compile(r"^steps\.(\d+)(?:\.(?P<rest>.*))?$")


def _relocated(problems: list[FieldProblem], origins: list[_Origin]) -> list[FieldProblem]:
    """Problems of the expanded document, at the path of the source step they come from."""
    moved: list[FieldProblem] = []
    for problem in problems:
        match = _STEP_PATH.match(problem.path)
        if match is None or int(match[1]) >= len(origins):
            moved.append(problem)
            continue
        origin = origins[int(match[1])]
        rest = match["rest"] or ""
        if origin.label is None:
            path = f"steps.{origin.index}" + (f".{rest}" if rest else "")
            moved.append(FieldProblem(path, problem.message, problem.type))
            continue
        field_name = rest.split(".", 1)[0]
        if field_name in _SAME_PATH_FIELDS:
            # Copied from the job's step as written: the problem is there.
            moved.append(
                FieldProblem(f"steps.{origin.index}.{rest}", problem.message, problem.type)
            )
            continue
        path = f"steps.{origin.index}.{'when' if field_name == 'when' else 'with'}"
        where = f"{origin.label}, {rest}" if rest else origin.label
        moved.append(FieldProblem(path, f"{where}: {problem.message}", problem.type))
    return moved
