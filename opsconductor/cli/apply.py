"""`opsconductor apply -f FILE` and `opsconductor targets import FILE`.

A file holds one or more YAML (or JSON) documents separated by `---`. `kind` says what each
is: `job` (the default: a job document as in docs/jobs.md), `target` (one target, the fields of
`POST /targets`), or `targets` (`items:`, a list of them). Applying is idempotent: a job
whose document is unchanged gets no new version, and targets are upserted by name.
"""

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from opsconductor.cli.client import ApiClient, CliError, connect, reports_errors
from opsconductor.cli.output import OutputFormat, OutputOption, print_json, print_table, progress

SUPPORTED_KINDS = ("job", "target", "targets")
MAX_NAME_MATCHES = 500

targets_app = typer.Typer(no_args_is_help=True, help="The inventory: import targets.")


@dataclass(frozen=True, slots=True)
class Document:
    source: str
    kind: str
    body: Any

    @property
    def label(self) -> str:
        return f"{self.source} ({self.kind})"


@dataclass(frozen=True, slots=True)
class Applied:
    kind: str
    name: str
    result: str
    id: str | None = None
    version: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "result": self.result,
            "id": self.id,
            "version": self.version,
        }


def read_text(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CliError(f"cannot read {path}: {error}") from None


def load_documents(path: str, default_kind: str = "job") -> list[Document]:
    """Every document in the file, with its kind; unknown kinds stop before anything is sent."""
    try:
        raw = [item for item in yaml.safe_load_all(read_text(path)) if item is not None]
    except yaml.YAMLError as error:
        raise CliError(f"{path} is not valid YAML: {error}") from None
    documents = []
    for index, item in enumerate(raw, start=1):
        source = f"{path}#{index}" if len(raw) > 1 else path
        if isinstance(item, list):
            documents.append(Document(source, "targets", item))
            continue
        if not isinstance(item, dict):
            raise CliError(f"{source}: a document must be a mapping, not {type(item).__name__}")
        body: Any = dict(item)
        kind = str(body.pop("kind", default_kind)).lower()
        if kind not in SUPPORTED_KINDS:
            raise CliError(
                f"{source}: unknown kind {kind!r}",
                [
                    f"supported: {', '.join(SUPPORTED_KINDS)} (a library is installed with "
                    "`POST /libraries` or `opsconductor libraries install FILE`)"
                ],
            )
        if kind == "targets":
            items = body.get("items")
            if not isinstance(items, list) or set(body) != {"items"}:
                raise CliError(f"{source}: kind 'targets' takes one field, items: a list")
            body = items
        documents.append(Document(source, kind, body))
    if not documents:
        raise CliError(f"{path} holds no document")
    return documents


def find_job_id(client: ApiClient, name: str) -> str | None:
    page = client.get("/jobs", q=name, limit=MAX_NAME_MATCHES)
    for job in page["items"]:
        if job["name"] == name:
            return str(job["id"])
    return None


def validate_job(client: ApiClient, document: Document) -> None:
    answer = client.post("/jobs/validate", document.body)
    if not answer["valid"]:
        raise CliError(
            f"{document.source}: the job document is invalid",
            [f"{item['path']}: {item['message']}" for item in answer["errors"]],
        )


def apply_job(client: ApiClient, document: Document) -> Applied:
    name = str(document.body.get("name", ""))
    existing = find_job_id(client, name)
    if existing is None:
        job = client.post("/jobs", document.body)
        return Applied("job", name, "created", job["id"], job["version"])
    response = client.request("PUT", f"/jobs/{existing}", json_body=document.body)
    job = response.json()
    changed = response.headers.get("X-OpsConductor-Changed") != "false"
    return Applied("job", name, "updated" if changed else "unchanged", job["id"], job["version"])


def import_targets(client: ApiClient, rows: Any, media_type: str, source: str) -> list[Applied]:
    content = rows.encode() if isinstance(rows, str) else _json_bytes(rows)
    report = client.request(
        "POST", "/targets/import", content=content, headers={"Content-Type": media_type}
    ).json()
    applied = [
        Applied("target", row.get("name") or f"row {row['row']}", row["status"])
        for row in report["rows"]
    ]
    failures = [
        f"{source} row {row['row']} ({row.get('name') or '?'}): {problem['path'] or 'row'}: "
        f"{problem['message']}"
        for row in report["rows"]
        for problem in row.get("errors", [])
    ]
    if failures:
        raise CliError(f"{report['failed']} target(s) not imported", failures)
    return applied


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()


def report(results: Sequence[Applied], output: OutputFormat) -> None:
    if output is OutputFormat.json:
        print_json([item.as_dict() for item in results])
        return
    print_table(
        [item.as_dict() for item in results],
        [
            ("KIND", lambda row: row["kind"]),
            ("NAME", lambda row: row["name"]),
            ("RESULT", lambda row: row["result"]),
            ("VERSION", lambda row: row["version"]),
        ],
    )


@reports_errors
def apply(
    files: Annotated[
        list[str],
        typer.Option("--file", "-f", help="A YAML/JSON file of documents, or - for stdin."),
    ],
    output: OutputOption = OutputFormat.table,
) -> None:
    """Create or update jobs and targets from files; unchanged documents change nothing."""
    documents = [document for path in files for document in load_documents(path)]
    results: list[Applied] = []
    with connect() as client, progress("applying…"):
        # Every job is validated before anything is saved, so a bad file changes nothing.
        for document in documents:
            if document.kind == "job":
                validate_job(client, document)
        for document in documents:
            if document.kind == "job":
                results.append(apply_job(client, document))
            else:
                rows = document.body if document.kind == "targets" else [document.body]
                results += import_targets(client, rows, "application/json", document.source)
    report(results, output)


@targets_app.command("import")
@reports_errors
def import_command(
    file: Annotated[str, typer.Argument(help="A .csv, .json or .yaml file, or - for stdin.")],
    output: OutputOption = OutputFormat.table,
) -> None:
    """Upsert targets by name from CSV (the API's columns), JSON or YAML (a list of targets)."""
    with connect() as client, progress("importing…"):
        if file.lower().endswith(".csv"):
            results = import_targets(client, read_text(file), "text/csv", file)
        else:
            documents = load_documents(file, default_kind="target")
            results = []
            for document in documents:
                if document.kind == "job":
                    raise CliError(f"{document.source}: a job, not targets; use `apply -f`")
                rows = document.body if document.kind == "targets" else [document.body]
                results += import_targets(client, rows, "application/json", document.source)
    report(results, output)
