"""The job builder's pure parts: form fields from an action's JSON Schema, a form's values back
into a step, and the layout of the steps' DAG picture."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

# Fields whose values usually span lines get a textarea.
_LONG_TEXT = frozenset({"script", "body", "content", "message", "command"})
NODE_WIDTH, NODE_HEIGHT, GAP_X, GAP_Y = 150, 40, 50, 16


@dataclass
class FormField:
    name: str
    label: str
    # text, textarea, number, boolean, select, list, yaml
    kind: str
    required: bool = False
    description: str = ""
    options: list[str] = field(default_factory=list)
    placeholder: str = ""


def _branches(schema: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    options = schema.get("anyOf") or schema.get("oneOf") or [schema]
    return [option for option in options if option.get("type") != "null"]


def _kind(name: str, schema: Mapping[str, Any]) -> tuple[str, list[str]]:
    first = (_branches(schema) or [{}])[0]
    kind = first.get("type")
    if "enum" in first:
        return "select", [str(value) for value in first["enum"]]
    if kind == "boolean":
        return "boolean", ["true", "false"]
    if kind in ("integer", "number"):
        return "number", []
    if kind == "array":
        return "list", []
    if kind == "string":
        return ("textarea" if name in _LONG_TEXT else "text"), []
    return "yaml", []


def fields_of(with_schema: Mapping[str, Any]) -> list[FormField]:
    """One field per property of a `with` schema; values that are not plain become YAML."""
    required = set(with_schema.get("required", []))
    found = []
    for name, schema in with_schema.get("properties", {}).items():
        kind, options = _kind(name, schema)
        default = schema.get("default")
        found.append(
            FormField(
                name=f"with.{name}",
                label=schema.get("title", name),
                kind=kind,
                required=name in required,
                description=schema.get("description", ""),
                options=options,
                placeholder="" if default in (None, "", [], {}) else f"default: {default}",
            )
        )
    return found


def _number(text: str) -> int | float | str:
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            continue
    return text  # a template such as "{{ params.n }}"; the validator has the last word


def _value(form_field: FormField, text: str) -> Any:
    if form_field.kind == "number":
        return _number(text)
    if form_field.kind == "boolean":
        return text == "true"
    if form_field.kind == "list":
        return [_number(item.strip()) for item in text.split(",") if item.strip()]
    if form_field.kind == "yaml":
        return yaml.safe_load(text)
    return text


# The step's own settings besides id, action, needs and run_once, drawn after its `with` fields.
STEP_SETTINGS = (
    FormField("step.name", "Name", "text", description="a human title; defaults to the id"),
    FormField("step.when", "When", "text", description="a condition; the step is skipped if false"),
    FormField("step.on_error", "On error", "select", options=["fail", "continue"]),
    FormField("step.timeout", "Timeout", "text", placeholder="e.g. 5m"),
    FormField("step.credential", "Credential", "text", description="overrides the target's"),
    FormField(
        "step.retry", "Retry", "yaml", description="attempts, interval, backoff, max_interval"
    ),
)


def step_from_form(
    action: str, fields: list[FormField], values: Mapping[str, str], needs: list[str]
) -> dict[str, Any]:
    step: dict[str, Any] = {"id": values.get("step.id", "").strip(), "action": action}
    if needs:
        step["needs"] = needs
    if values.get("step.run_once") == "true":
        step["run_once"] = True
    for setting in STEP_SETTINGS:
        text = values.get(setting.name, "")
        if text.strip():
            step[setting.name.removeprefix("step.")] = _value(setting, text.strip())
    with_: dict[str, Any] = {}
    for form_field in fields:
        text = values.get(form_field.name, "")
        if text.strip():
            with_[form_field.name.removeprefix("with.")] = _value(form_field, text)
    step["with"] = with_
    return step


def _text(form_field: FormField, value: Any) -> str:
    """A value as the form's field holds it: what `_value` reads back into the same value."""
    if form_field.kind == "boolean":
        return "true" if value is True else "false" if value is False else str(value)
    if form_field.kind == "list" and isinstance(value, list):
        return ", ".join(str(item) for item in value)
    if form_field.kind == "yaml" and isinstance(value, dict | list):
        return dump(value).strip()
    return str(value)


def values_of(step: Mapping[str, Any], fields: list[FormField]) -> dict[str, str]:
    """The step form's values for an existing step (the inverse of `step_from_form`)."""
    given = step.get("with")
    with_: Mapping[str, Any] = given if isinstance(given, dict) else {}
    values = {"step.id": str(step.get("id", ""))}
    if step.get("run_once") is True:
        values["step.run_once"] = "true"
    for form_field in [*STEP_SETTINGS, *fields]:
        source, _, key = form_field.name.partition(".")
        value = (with_ if source == "with" else step).get(key)
        if value is not None:
            values[form_field.name] = _text(form_field, value)
    return values


def replaced(steps: list[Any], old_id: str, step: dict[str, Any]) -> list[Any]:
    """The steps with step `old_id` replaced by `step`. A renamed step is renamed in the other
    steps' `needs` too (references in templates and `when` are left for the validator to
    report)."""
    new_id = step["id"]
    result: list[Any] = []
    for other in steps:
        if isinstance(other, dict) and other.get("id") == old_id:
            result.append(step)
        elif new_id != old_id and isinstance(other, dict) and isinstance(other.get("needs"), list):
            renamed = [new_id if wanted == old_id else wanted for wanted in other["needs"]]
            result.append({**other, "needs": renamed})
        else:
            result.append(other)
    return result


def form_field_of(path: str, index: int) -> str | None:
    """The step form's field for a validation path of step `index` (steps.3.with.url)."""
    prefix = f"steps.{index}."
    if not path.startswith(prefix):
        return None
    rest = path.removeprefix(prefix).split(".")
    if rest[0] == "with" and len(rest) > 1:
        return f"with.{rest[1]}"
    return f"step.{rest[0]}"


@dataclass
class Dag:
    width: int
    height: int
    nodes: list[dict[str, Any]]
    edges: list[dict[str, int]]


def dag_of(steps: list[Any]) -> Dag:
    """Steps in columns by depth (a step sits right of everything it needs)."""
    needs: dict[str, list[str]] = {}
    for step in steps:
        if isinstance(step, dict) and isinstance(step.get("id"), str):
            wanted = step.get("needs") or []
            needs[step["id"]] = [n for n in wanted if isinstance(n, str)]
    depth: dict[str, int] = {}

    def depth_of(step_id: str, seen: frozenset[str]) -> int:
        # A cycle (which the validator reports) is cut where it closes.
        if step_id not in depth:
            seen = seen | {step_id}
            upstream = [n for n in needs.get(step_id, []) if n in needs and n not in seen]
            depth[step_id] = 1 + max((depth_of(n, seen) for n in upstream), default=-1)
        return depth[step_id]

    rows: dict[int, int] = {}
    place: dict[str, tuple[int, int]] = {}
    for step_id in needs:
        column = depth_of(step_id, frozenset())
        row = rows.get(column, 0)
        rows[column] = row + 1
        place[step_id] = (column * (NODE_WIDTH + GAP_X), row * (NODE_HEIGHT + GAP_Y))
    # A node's needs name it for a screen reader, as the edges into it show them on screen.
    nodes = [
        {"id": step_id, "x": x, "y": y, "needs": [n for n in needs[step_id] if n in place]}
        for step_id, (x, y) in place.items()
    ]
    edges = [
        {
            "x1": place[upstream][0] + NODE_WIDTH,
            "y1": place[upstream][1] + NODE_HEIGHT // 2,
            "x2": place[step_id][0],
            "y2": place[step_id][1] + NODE_HEIGHT // 2,
        }
        for step_id, wanted in needs.items()
        for upstream in wanted
        if upstream in place and upstream != step_id
    ]
    columns = max(depth.values(), default=0) + 1
    return Dag(
        width=max(columns * (NODE_WIDTH + GAP_X) - GAP_X, NODE_WIDTH),
        height=max(max(rows.values(), default=1) * (NODE_HEIGHT + GAP_Y) - GAP_Y, NODE_HEIGHT),
        nodes=nodes,
        edges=edges,
    )


def pruned(value: Any) -> Any:
    """Without None, empty lists and empty mappings, at any depth: each means "not set"."""
    if isinstance(value, dict):
        kept = {key: pruned(item) for key, item in value.items()}
        return {key: item for key, item in kept.items() if item not in (None, [], {})}
    if isinstance(value, list):
        return [pruned(item) for item in value]
    return value


def dump(document: Any) -> str:
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
