"""`opsconductor apply -f FILE…`, `opsconductor export` and `opsconductor targets import FILE`.

A file holds one or more YAML (or JSON) documents separated by `---`; `kind` says what each
is (docs/cli.md). Every document is planned first (create, update or unchanged, compared with
what the API holds), then applied kind by kind in dependency order (kinds.KINDS), so a file
may name a group or credential it also defines. `--dry-run` prints the plan and changes nothing.
"""

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from opsconductor.cli.client import ApiClient, CliError, connect, reports_errors
from opsconductor.cli.kinds import KINDS, Document, Installation, import_targets
from opsconductor.cli.output import (
    OutputFormat,
    OutputOption,
    field,
    print_json,
    print_table,
    progress,
)

KIND_ALIASES = {"targets": "target"}
MAX_NAME_MATCHES = 500

app = typer.Typer()
targets_app = typer.Typer(no_args_is_help=True, help="The inventory: import targets.")


@targets_app.callback()
def targets() -> None:
    """The inventory: import targets. (A callback keeps `targets` a group of one command.)"""


@dataclass(slots=True)
class Planned:
    document: Document
    action: str  # create, update or unchanged
    fields: list[str]
    id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.document.kind,
            "name": self.document.name,
            "result": self.action,
            "fields": self.fields,
            "note": KINDS[self.document.kind].note,
            "source": self.document.source,
            "id": self.id,
        }


def read_text(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CliError(f"cannot read {path}: {error}") from None


def load_documents(path: str, default_kind: str = "job") -> list[Document]:
    """Every document in the file, one per resource (`kind: targets` gives one per item);
    unknown kinds stop before anything is sent."""
    try:
        raw = [item for item in yaml.safe_load_all(read_text(path)) if item is not None]
    except yaml.YAMLError as error:
        raise CliError(f"{path} is not valid YAML: {error}") from None
    base = Path.cwd() if path == "-" else Path(path).resolve().parent
    documents = []
    for index, item in enumerate(raw, start=1):
        source = f"{path}#{index}" if len(raw) > 1 else path
        if isinstance(item, list):
            item = {"kind": "targets", "items": item}
        if not isinstance(item, dict):
            raise CliError(f"{source}: a document must be a mapping, not {type(item).__name__}")
        body: dict[str, Any] = dict(item)
        given = str(body.pop("kind", default_kind)).lower()
        kind = KIND_ALIASES.get(given, given)
        if kind not in KINDS:
            raise CliError(
                f"{source}: unknown kind {given!r}",
                [f"supported: {', '.join([*KINDS, *KIND_ALIASES])}"],
            )
        if given == "targets":
            items = body.get("items")
            if not isinstance(items, list) or set(body) != {"items"}:
                raise CliError(f"{source}: kind 'targets' takes one field, items: a list")
            for position, row in enumerate(items):
                if not isinstance(row, dict):
                    raise CliError(f"{source}: items.{position} must be a mapping")
                documents.append(Document(f"{source} items.{position}", kind, dict(row), base))
            continue
        documents.append(Document(source, kind, body, base))
    if not documents:
        raise CliError(f"{path} holds no document")
    return documents


def find_job_id(client: ApiClient, name: str) -> str | None:
    page = client.get("/jobs", q=name, limit=MAX_NAME_MATCHES)
    for job in page["items"]:
        if job["name"] == name:
            return str(job["id"])
    return None


def in_order(documents: Sequence[Document]) -> list[Document]:
    order = list(KINDS)
    return sorted(documents, key=lambda document: order.index(document.kind))


def plan_one(document: Document, installation: Installation) -> Planned:
    if not document.name:
        key = KINDS[document.kind].key
        raise CliError(f"{document.source}: a {document.kind} needs `{key}`")
    fields = KINDS[document.kind].changed(document, installation)
    if fields is None:
        return Planned(document, "create", [])
    action = "update" if fields else "unchanged"
    return Planned(document, action, fields, id_of(document, installation))


def id_of(document: Document, installation: Installation) -> str | None:
    item = installation.items(document.kind).get(document.name)
    return None if item is None else str(item["id"])


def apply_one(planned: Planned, installation: Installation) -> None:
    handler = KINDS[planned.document.kind]
    if planned.action == "create":
        handler.create(planned.document, installation)
    elif planned.action == "update":
        handler.update(planned.document, planned.fields, installation)


def check_duplicates(documents: Sequence[Document]) -> None:
    seen: dict[tuple[str, str], str] = {}
    for document in documents:
        key = (document.kind, document.name)
        if key in seen:
            raise CliError(
                f"{document.source}: {document.kind} {document.name!r} is also in {seen[key]}"
            )
        seen[key] = document.source


def report(results: Sequence[Planned], output: OutputFormat, dry_run: bool) -> None:
    rows = [item.as_dict() for item in results]
    if output is OutputFormat.json:
        print_json({"dry_run": dry_run, "documents": rows})
        return
    print_table(
        rows,
        [
            field("kind"),
            field("name"),
            ("RESULT" if not dry_run else "PLAN", lambda row: row["result"]),
            ("FIELDS", lambda row: row["fields"] or None),
            ("NOTE", lambda row: row["note"] or None),
        ],
    )
    if dry_run:
        typer.echo("dry run: nothing was changed", err=True)


@app.command()
@reports_errors
def apply(
    files: Annotated[
        list[str],
        typer.Option("--file", "-f", help="A YAML/JSON file of documents, or - for stdin."),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan; change nothing.")
    ] = False,
    allow_inline_secrets: Annotated[
        bool,
        typer.Option(help="Accept secrets written in the file rather than {file:} / {env:}."),
    ] = False,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Create or update what the documents describe, in dependency order; unchanged documents
    change nothing."""
    documents = in_order([document for path in files for document in load_documents(path)])
    check_duplicates(documents)
    results: list[Planned] = []
    with connect() as client, progress("applying…"):
        installation = Installation(client, allow_inline_secrets)
        # Jobs are validated and every document compared before anything is saved, so a bad
        # job or a missing reference in the files changes nothing...
        plans = [plan_one(document, installation) for document in documents]
        if not dry_run:
            # ...then kind by kind: what a later kind names exists by the time it is sent.
            for planned in plans:
                apply_one(planned, installation)
                if planned.action != "unchanged":
                    # Listed again when next needed: the ids of what was just created.
                    installation.forget(planned.document.kind)
                    planned.id = id_of(planned.document, installation)
        results = plans
    report(results, output, dry_run)


@app.command()
@reports_errors
def export(
    output_file: Annotated[
        str | None, typer.Option("--output-file", "-o", help="Write here instead of stdout.")
    ] = None,
    kind: Annotated[
        list[str] | None,
        typer.Option("--kind", "-k", help=f"Only these kinds ({', '.join(KINDS)}); repeatable."),
    ] = None,
) -> None:
    """Write the installation's configuration as documents `apply` takes; secrets as
    `{env: OPSCONDUCTOR_SECRET_<NAME>_<FIELD>}` references."""
    chosen = [KIND_ALIASES.get(item.lower(), item.lower()) for item in kind or KINDS]
    unknown = [item for item in chosen if item not in KINDS]
    if unknown:
        raise CliError(f"unknown kind {unknown[0]!r}", [f"supported: {', '.join(KINDS)}"])
    documents: list[dict[str, Any]] = []
    with connect() as client, progress("exporting…"):
        installation = Installation(client)
        for name, handler in KINDS.items():
            if name in chosen:
                documents += [
                    {"kind": name, **handler.document(item, installation)}
                    for _, item in sorted(installation.items(name).items())
                ]
    text = yaml.safe_dump_all(documents, sort_keys=False, explicit_start=True)
    if output_file is None:
        sys.stdout.write(text)
        return
    try:
        Path(output_file).write_text(text, encoding="utf-8")
    except OSError as error:
        raise CliError(f"cannot write {output_file}: {error}") from None
    typer.echo(f"{len(documents)} document(s) written to {output_file}", err=True)


@targets_app.command("import")
@reports_errors
def import_command(
    file: Annotated[str, typer.Argument(help="A .csv, .json or .yaml file, or - for stdin.")],
    output: OutputOption = OutputFormat.table,
) -> None:
    """Upsert targets by name from CSV (the API's columns), JSON or YAML (a list of targets)."""
    with connect() as client, progress("importing…"):
        if file.lower().endswith(".csv"):
            rows = import_targets(client, read_text(file), file, "text/csv")
        else:
            documents = load_documents(file, default_kind="target")
            wrong = [document for document in documents if document.kind != "target"]
            if wrong:
                raise CliError(f"{wrong[0].source}: a {wrong[0].kind}, not targets; use `apply -f`")
            rows = import_targets(client, [document.body for document in documents], file)
    results = [
        {"kind": "target", "name": row.get("name") or f"row {row['row']}", "result": row["status"]}
        for row in rows
    ]
    if output is OutputFormat.json:
        print_json(results)
        return
    print_table(
        results,
        [field("kind"), field("name"), field("result")],
    )
