"""Forms that change things through the API, described once and drawn by `_form.html`.

A form is a list of fields named by their path in the API's JSON body ("secret.private_key");
`console.js` posts the form as that JSON to the API route and puts each problem the API
names (`errors[].path`) next to the field of that path. So a new form is a few lines here.
"""

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from opsconductor.models.credential import CredentialKind, WinrmTransport
from opsconductor.models.target import Protocol


class Kind(StrEnum):
    text = "text"
    textarea = "textarea"
    # Write-only: never filled from the API's answer (it has none to give).
    password = "password"  # noqa: S105 (a kind of field, not a secret)
    # A textarea with a file chooser beside it whose file the browser reads into the textarea.
    key = "key"
    integer = "integer"
    select = "select"
    checkbox = "checkbox"
    # Several check boxes, sent as a list of the checked values.
    choices = "choices"
    # "a, b": a list of strings.
    words = "words"
    # "env=prod, role=web": a string mapping.
    tags = "tags"
    # A textarea holding a JSON value, sent parsed (left as text when it does not parse, for
    # the API to name the field).
    json = "json"
    # A date and time without an offset, which the API takes as UTC.
    datetime = "datetime"


@dataclass(frozen=True)
class Choice:
    value: str
    label: str


@dataclass(frozen=True)
class Field:
    path: str
    label: str
    kind: Kind = Kind.text
    hint: str = ""
    choices: Sequence[Choice] = ()
    required: bool = False
    # What an emptied field sends when editing (JSON), so clearing it clears it; without one
    # an empty field is left out, which leaves the stored value as it is.
    cleared: str | None = None
    # The JSON type a select's value is sent as ("integer", "boolean"…); a string if unset.
    sends: str = ""

    @property
    def id(self) -> str:
        return "field-" + self.path.replace(".", "-").replace("_", "-")

    def shown(self, item: Mapping[str, Any] | None) -> str:
        """The field's value in `item` (an API answer) as the input holds it."""
        if item is None or self.kind is Kind.password or self.kind is Kind.key:
            return ""
        value: Any = item
        for part in self.path.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if value is None:
            return ""
        if self.kind is Kind.json:
            return json.dumps(value, indent=2)
        if self.kind is Kind.tags:
            return ", ".join(f"{key}={tag}" for key, tag in value.items())
        if self.kind in (Kind.words, Kind.choices):
            return ", ".join(str(word) for word in value)
        return str(value).lower() if isinstance(value, bool) else str(value)

    def checked(self, item: Mapping[str, Any] | None, choice: str) -> bool:
        return choice in {word.strip() for word in self.shown(item).split(",")}


@dataclass(frozen=True)
class Group:
    """Fields under one key of the body (`root`: "parameters", "targets"), drawn in a fieldset
    of their own."""

    root: str
    legend: str
    fields: Sequence[Field]
    note: str = ""
    # An API path (GET) the fields are shown to as they change (GET /targets/selected), and
    # what the answer's place says while they are all empty.
    preview: str = ""
    empty: str = ""
    # What the whole group sends (JSON) when all its fields are empty on an edit form.
    cleared: str | None = None


@dataclass(frozen=True)
class Form:
    """One form: where it is sent, how, and what comes next ("{id}" is the answer's id)."""

    id: str
    api: str
    submit: str
    fields: Sequence[Field]
    method: str = "POST"
    next: str = ""
    legend: str = ""
    item: Mapping[str, Any] | None = None
    notes: Sequence[str] = field(default_factory=tuple)
    # An API path (GET) the fields are shown to as they change, saying how many targets they
    # select (GET /targets/selected answers).
    preview: str = ""
    # A console path (GET) sent the form's fields as they change; its fragment is shown in
    # the form and puts each problem at its field (see console/live.py).
    live: str = ""
    # Asked (OK / Cancel) before the form is sent.
    confirm: str = ""
    # The id of an element the answer's fields are shown in (console.js, `data-show`): the form
    # stays, e.g. to show a secret made by the call, once.
    show: str = ""
    # A selector of the form's textarea holding YAML (or JSON): the server turns it into the
    # JSON body (POST /builder/parse, which changes nothing) before it goes to the API.
    yaml: str = ""
    # Drawn after the fields.
    groups: Sequence[Group] = ()


def _choices(values: Sequence[str], blank: str | None = None) -> tuple[Choice, ...]:
    head = (Choice("", blank),) if blank is not None else ()
    return head + tuple(Choice(value, value) for value in values)


# -- credentials ---------------------------------------------------------------------------------

KINDS = _choices([kind.value for kind in CredentialKind])

SECRET_FIELDS = (
    Field(
        "secret.private_key",
        "Private key",
        Kind.key,
        "ssh_key: paste the key (OpenSSH or PEM) or choose its file; it is read by your browser",
    ),
    Field("secret.passphrase", "Key passphrase", Kind.password, "ssh_key, if the key has one"),
    Field("secret.password", "Password", Kind.password, "ssh_password, winrm, http_basic"),
    Field("secret.token", "Token", Kind.password, "http_bearer"),
    Field("secret.value", "Value", Kind.password, "secret"),
)


def _credential_fields() -> list[Field]:
    return [
        Field("name", "Name", required=True),
        Field("username", "Username", hint="the account it logs in as", cleared="null"),
        Field("description", "Description", Kind.textarea, cleared='""'),
        Field(
            "transport",
            "WinRM transport",
            Kind.select,
            "winrm only",
            _choices([transport.value for transport in WinrmTransport], blank="—"),
        ),
        Field("verify_tls", "Verify TLS certificates (winrm)", Kind.checkbox),
    ]


def credential_form(item: Mapping[str, Any] | None = None) -> Form:
    if item is None:
        kind = Field("kind", "Kind", Kind.select, choices=KINDS, required=True)
        return Form(
            "credential-form",
            "/api/v1/credentials",
            "Create credential",
            [kind, *_credential_fields(), *SECRET_FIELDS],
            next="/credentials/{id}",
            notes=("The secret is write-only: nobody can read it back, here or through the API.",),
        )
    return Form(
        "credential-form",
        f"/api/v1/credentials/{item['id']}",
        "Save",
        _credential_fields(),
        method="PATCH",
        legend="Edit",
        item=item,
    )


def rotate_form(item: Mapping[str, Any]) -> Form:
    return Form(
        "rotate-form",
        f"/api/v1/credentials/{item['id']}/rotate",
        "Rotate secret",
        SECRET_FIELDS,
        legend=f"Rotate: a new {item['kind']} secret replaces the stored one",
    )


# -- targets -------------------------------------------------------------------------------------


def credential_field(credentials: Sequence[Mapping[str, Any]], cleared: str | None = None) -> Field:
    """A choice of credential (or none) for the targets a form makes or changes."""
    choices = tuple(Choice(str(c["id"]), f"{c['name']} ({c['kind']})") for c in credentials)
    return Field(
        "credential_id",
        "Credential",
        Kind.select,
        choices=(Choice("", "none"), *choices),
        cleared=cleared,
    )


def target_form(
    credentials: Sequence[Mapping[str, Any]],
    groups: Sequence[Mapping[str, Any]],
    item: Mapping[str, Any] | None = None,
) -> Form:
    fields = [
        Field("name", "Name", required=True),
        Field("address", "Address", hint="host name or IP address", required=True),
        Field("protocol", "Protocol", Kind.select, choices=_choices([p.value for p in Protocol])),
        Field("port", "Port", Kind.integer, "default: 22 for ssh, 5985 for winrm"),
        credential_field(credentials, cleared="null"),
        Field("os", "Operating system", hint="e.g. debian", cleared="null"),
        Field("tags", "Tags", Kind.tags, "key=value, separated by commas", cleared="{}"),
        Field(
            "groups",
            "Groups",
            Kind.choices,
            choices=tuple(Choice(g["name"], g["name"]) for g in groups),
            cleared="[]",
        ),
        Field("description", "Description", Kind.textarea, cleared='""'),
    ]
    if item is None:
        return Form("target-form", "/api/v1/targets", "Create target", fields, next="/targets/{id}")
    return Form("target-form", f"/api/v1/targets/{item['id']}", "Save", fields, "PATCH", item=item)


SELECTED = "/api/v1/targets/selected"

# -- groups --------------------------------------------------------------------------------------


def group_form(item: Mapping[str, Any] | None = None) -> Form:
    fields = [
        Field("name", "Name", required=True),
        Field("description", "Description", Kind.textarea, cleared='""'),
    ]
    if item is None:
        api = "/api/v1/target-groups"
        return Form("group-form", api, "Create group", fields, next="/groups/{id}")
    api = f"/api/v1/target-groups/{item['id']}"
    return Form("group-form", api, "Save", fields, "PATCH", "", "Edit", item)


def run_target_fields(groups: Sequence[Mapping[str, Any]]) -> list[Field]:
    """The run form's target selector (RunCreate.targets), the job's own when left empty."""
    return [
        Field(
            "targets.groups",
            "Groups",
            Kind.choices,
            choices=tuple(Choice(g["name"], g["name"]) for g in groups),
        ),
        *_selector_fields("targets."),
    ]


def _selector_fields(prefix: str) -> list[Field]:
    """Targets by name and by tags, as a target selector spells them."""
    return [
        Field(f"{prefix}names", "Target names", Kind.words, "separated by commas"),
        Field(f"{prefix}tags", "Tags", Kind.tags, "key=value, separated by commas; all must match"),
    ]


def members_form(item: Mapping[str, Any]) -> Form:
    return Form(
        "members-form",
        f"/api/v1/target-groups/{item['id']}/members",
        "Set members",
        _selector_fields(""),
        method="PUT",
        legend="Members",
        notes=("The targets selected here replace the group's members; nothing selects none.",),
        preview=SELECTED,
    )


def targets_group(
    groups: Sequence[Mapping[str, Any]],
    own: Mapping[str, Any],
    who: str,
    cleared: str | None = None,
) -> Group:
    """A target selector (run_target_fields) saying how many targets it selects as it is
    typed; left empty, `who` acts on the job's own selector `own`."""
    chosen = "; ".join(f"{key} {json.dumps(value)}" for key, value in own.items() if value)
    return Group(
        "targets",
        "Targets",
        run_target_fields(groups),
        note=f"Left empty, {who} on the job's own targets: {chosen or 'none'}.",
        preview=SELECTED,
        empty="The job's own targets.",
        cleared=cleared,
    )


# -- a job's parameters --------------------------------------------------------------------------

# How a parameter's value is sent, by its declared type (ParameterSpec.type).
_SENT_AS = {"integer": "integer", "number": "number", "boolean": "boolean"}


def _plain(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _parameter_field(name: str, spec: Mapping[str, Any]) -> Field:
    kind = spec.get("type", "string")
    default = spec.get("default")
    said = [
        "required" if spec.get("required") else "",
        spec.get("description", ""),
        "" if default is None else f"default: {_plain(default)}",
    ]
    hint = "; ".join(part for part in said if part)
    path, required, sends = f"parameters.{name}", bool(spec.get("required")), _SENT_AS.get(kind, "")
    if spec.get("enum") or kind == "boolean":
        values = [_plain(value) for value in spec.get("enum") or [True, False]]
        choices = _choices(values, blank="—")
        return Field(path, name, Kind.select, hint, choices, required, sends=sends)
    if kind in ("array", "object"):
        return Field(path, name, Kind.json, hint or "JSON", required=required)
    if kind in ("integer", "number"):
        return Field(path, name, Kind.integer, hint, required=required)
    return Field(path, name, hint=hint, required=required)


def parameters_group(
    parameters: Mapping[str, Mapping[str, Any]], cleared: str | None = None
) -> Group:
    """A field per parameter a job declares (its document's `parameters`), sent typed as the
    API checks them."""
    fields = [_parameter_field(name, spec) for name, spec in parameters.items()]
    note = "" if fields else "This job takes no parameters."
    return Group("parameters", "Parameters", fields, note=note, cleared=cleared)


def defaults(parameters: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """An item (as `Field.shown` reads one) holding the parameters' defaults."""
    given = {name: spec.get("default") for name, spec in parameters.items()}
    return {"parameters": {name: value for name, value in given.items() if value is not None}}
