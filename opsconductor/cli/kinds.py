"""The kinds `apply` and `export` know: how each is read from the API as a document, compared,
created and updated. A document's fields are the API's, with references by name (a target's
`credential` and `groups`, a schedule's `job`) so a file moves between installations.

The order of KINDS is the order of applying: what others name comes first (credentials and
groups before targets, channels and libraries before the jobs that use them, jobs before
their schedules and triggers).
"""

import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsconductor.cli.client import ApiClient, CliError, listed
from opsconductor.cli.secret_refs import CREDENTIAL_SECRET_FIELDS, export_reference, resolve

PAGE = 500


@dataclass(frozen=True, slots=True)
class Document:
    source: str
    kind: str
    body: dict[str, Any]
    base: Path

    @property
    def name(self) -> str:
        return str(self.body.get(KINDS[self.kind].key, ""))


@dataclass(slots=True)
class Installation:
    """What the API holds, listed once per kind (again after that kind was applied)."""

    client: ApiClient
    allow_inline_secrets: bool = False
    _listed: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def items(self, kind: str) -> dict[str, dict[str, Any]]:
        if kind not in self._listed:
            handler = KINDS[kind]
            self._listed[kind] = {
                str(item[handler.key]): item for item in listed(self.client, handler.path, PAGE)
            }
        return self._listed[kind]

    def forget(self, kind: str) -> None:
        self._listed.pop(kind, None)

    def name_of(self, kind: str, item_id: str | None) -> str | None:
        if item_id is None:
            return None
        for name, item in self.items(kind).items():
            if str(item["id"]) == str(item_id):
                return name
        return None

    def id_of(self, kind: str, name: str, where: str) -> str:
        item = self.items(kind).get(name)
        if item is None:
            raise CliError(f"{where}: no {kind} named {name!r}")
        return str(item["id"])


class Kind:
    """The default: a resource listed at `path`, created by POST and updated by PATCH with the
    fields that differ, all of its document fields compared."""

    key = "name"
    path = ""
    # Document fields that are not compared (secrets, which cannot be read back).
    uncompared: frozenset[str] = frozenset()
    note = ""

    def document(self, item: dict[str, Any], installation: Installation) -> dict[str, Any]:
        raise NotImplementedError

    def changed(self, document: Document, installation: Installation) -> list[str] | None:
        """The fields that differ; None when there is nothing of that name yet."""
        current = installation.items(document.kind).get(document.name)
        if current is None:
            return None
        exported = self.document(current, installation)
        return [
            key
            for key, value in document.body.items()
            if key not in self.uncompared and exported.get(key) != value
        ]

    def body(self, document: Document, installation: Installation) -> dict[str, Any]:
        return dict(document.body)

    def create(self, document: Document, installation: Installation) -> None:
        installation.client.post(self.path, self.body(document, installation))

    def update(self, document: Document, fields: list[str], installation: Installation) -> None:
        current = installation.items(document.kind)[document.name]
        body = self.body(document, installation)
        installation.client.request(
            "PATCH",
            f"{self.path}/{current['id']}",
            json_body={key: value for key, value in body.items() if key in fields},
        )


class GroupKind(Kind):
    path = "/target-groups"

    def document(self, item: dict[str, Any], installation: Installation) -> dict[str, Any]:
        return {"name": item["name"], "description": item["description"]}


class CredentialKind(Kind):
    """`type` is the API's `kind` (the document's `kind` says it is a credential). Secrets are
    sent on create only; apply never rotates (`opsconductor credentials rotate` does)."""

    path = "/credentials"
    uncompared = frozenset({"secret"})
    note = "secrets not compared"

    def document(self, item: dict[str, Any], installation: Installation) -> dict[str, Any]:
        document: dict[str, Any] = {
            "name": item["name"],
            "type": item["kind"],
            "username": item["username"],
            "description": item["description"],
        }
        if item["kind"] == "winrm":
            document.update(transport=item["transport"], verify_tls=item["verify_tls"])
        document["secret"] = {
            name: export_reference(item["name"], name)
            for name in CREDENTIAL_SECRET_FIELDS.get(item["kind"], ())
            if name != "passphrase"
        }
        return document

    def changed(self, document: Document, installation: Installation) -> list[str] | None:
        fields = super().changed(document, installation)
        if fields and "type" in fields:
            raise CliError(
                f"{document.source}: credential {document.name!r} exists with another type",
                ["a credential's type cannot change: delete it, or give the new one a new name"],
            )
        return fields

    def body(self, document: Document, installation: Installation) -> dict[str, Any]:
        body = {key: value for key, value in document.body.items() if key not in ("type", "secret")}
        return {**body, "kind": document.body.get("type")}

    def create(self, document: Document, installation: Installation) -> None:
        references = document.body.get("secret")
        if not isinstance(references, dict) or not references:
            raise CliError(f"{document.source}: a new credential needs `secret:`")
        secret = {
            name: value
            for name, reference in references.items()
            if (
                value := resolve(
                    reference,
                    f"{document.source}: secret.{name}",
                    document.base,
                    installation.allow_inline_secrets,
                )
            )
            is not None
        }
        installation.client.post(self.path, {**self.body(document, installation), "secret": secret})


class ChannelKind(Kind):
    """A channel's URL holds its credentials (a webhook token, a mail password), so it is a
    secret reference like a credential's fields, sent on create and never compared."""

    path = "/notification-channels"
    uncompared = frozenset({"url"})
    note = "url not compared"

    def document(self, item: dict[str, Any], installation: Installation) -> dict[str, Any]:
        return {
            "name": item["name"],
            "description": item["description"],
            "url": export_reference(item["name"], "url"),
        }

    def body(self, document: Document, installation: Installation) -> dict[str, Any]:
        body = dict(document.body)
        body["url"] = resolve(
            body.get("url"),
            f"{document.source}: url",
            document.base,
            installation.allow_inline_secrets,
        )
        return body

    def update(self, document: Document, fields: list[str], installation: Installation) -> None:
        current = installation.items(document.kind)[document.name]
        installation.client.request(
            "PATCH",
            f"{self.path}/{current['id']}",
            json_body={key: document.body[key] for key in fields},
        )


class UserKind(Kind):
    """Users without passwords: a new user gets a random one nobody knows, and signs in after
    an administrator issues a password reset (`POST /users/{id}/password-reset`)."""

    key = "username"
    path = "/users"
    note = "no password: issue a reset"

    def document(self, item: dict[str, Any], installation: Installation) -> dict[str, Any]:
        return {key: item[key] for key in ("username", "email", "role", "disabled")}

    def create(self, document: Document, installation: Installation) -> None:
        if "password" in document.body:
            raise CliError(f"{document.source}: a user document holds no password")
        unknown_password = secrets.token_urlsafe(32) + "Aa1!"
        installation.client.post(self.path, {**document.body, "password": unknown_password})


class TargetKind(Kind):
    """Created and updated through `POST /targets/import` (by name); a pinned host key that
    differs is set with `POST /targets/{id}/host-key`."""

    path = "/targets"

    def document(self, item: dict[str, Any], installation: Installation) -> dict[str, Any]:
        document = {
            "name": item["name"],
            "address": item["address"],
            "protocol": item["protocol"],
            "port": item["port"],
            "credential": installation.name_of("credential", item["credential_id"]),
            "os": item["os"],
            "description": item["description"],
            "tags": item["tags"],
            "vars": item["vars"],
            "groups": sorted(item["groups"]),
            "host_key_fingerprint": item["host_key_fingerprint"],
        }
        return {key: value for key, value in document.items() if value is not None}

    def changed(self, document: Document, installation: Installation) -> list[str] | None:
        fields = super().changed(document, installation)
        if fields and "groups" in fields:
            groups = document.body.get("groups")
            if isinstance(groups, list) and self._current_groups(document, installation) == sorted(
                str(group) for group in groups
            ):
                fields.remove("groups")
        return fields

    def _current_groups(self, document: Document, installation: Installation) -> list[str]:
        return sorted(installation.items("target")[document.name]["groups"])

    def create(self, document: Document, installation: Installation) -> None:
        import_targets(installation.client, [document.body], document.source)

    def update(self, document: Document, fields: list[str], installation: Installation) -> None:
        row = {key: document.body[key] for key in fields if key != "host_key_fingerprint"}
        if row:
            import_targets(installation.client, [{"name": document.name, **row}], document.source)
        if "host_key_fingerprint" in fields:
            current = installation.items("target")[document.name]
            installation.client.post(
                f"/targets/{current['id']}/host-key",
                {"fingerprint": document.body["host_key_fingerprint"]},
            )


class JobKind(Kind):
    """Compared as the server stores it: `POST /jobs/validate` answers the document as it would
    be saved, so a document that differs only in defaults written out is unchanged."""

    path = "/jobs"

    def document(self, item: dict[str, Any], installation: Installation) -> dict[str, Any]:
        full = installation.client.get(f"/jobs/{item['id']}")
        document: dict[str, Any] = full["source"] or full["document"]
        return document

    def changed(self, document: Document, installation: Installation) -> list[str] | None:
        answer = installation.client.post("/jobs/validate", document.body)
        if not answer["valid"]:
            raise CliError(
                f"{document.source}: the job document is invalid",
                [f"{item['path']}: {item['message']}" for item in answer["errors"]],
            )
        current = installation.items("job").get(document.name)
        if current is None:
            return None
        saved = installation.client.get(f"/jobs/{current['id']}")
        if answer.get("document") == saved["document"]:
            return []
        return sorted(
            key
            for key in set(saved["document"]) | set(answer.get("document") or {})
            if saved["document"].get(key) != (answer.get("document") or {}).get(key)
        )

    def update(self, document: Document, fields: list[str], installation: Installation) -> None:
        current = installation.items("job")[document.name]
        installation.client.request("PUT", f"/jobs/{current['id']}", json_body=document.body)


class JobNamedKind(Kind):
    """A kind whose `job` names the job; the API's `job_id` is looked up when it is sent.
    `sent_apart` fields are sent by the kind itself (a secret), never as compared fields."""

    sent_apart: frozenset[str] = frozenset()
    FIELDS: tuple[str, ...] = ()

    def document(self, item: dict[str, Any], installation: Installation) -> dict[str, Any]:
        document: dict[str, Any] = {
            "name": item["name"],
            "job": installation.name_of("job", item["job_id"]),
        }
        document.update({key: item[key] for key in self.FIELDS})
        document.update(self.more(item))
        return {key: value for key, value in document.items() if value is not None}

    def more(self, item: dict[str, Any]) -> dict[str, Any]:
        """The kind's document fields beyond FIELDS."""
        return {}

    def body(self, document: Document, installation: Installation) -> dict[str, Any]:
        skipped = {"job", *self.sent_apart}
        body = {key: value for key, value in document.body.items() if key not in skipped}
        if "job" in document.body:
            body["job_id"] = installation.id_of("job", str(document.body["job"]), document.source)
        return body

    def update(self, document: Document, fields: list[str], installation: Installation) -> None:
        body = self.body(document, installation)
        sent = {("job_id" if key == "job" else key) for key in fields}
        current = installation.items(document.kind)[document.name]
        installation.client.request(
            "PATCH",
            f"{self.path}/{current['id']}",
            json_body={key: value for key, value in body.items() if key in sent},
        )


class ScheduleKind(JobNamedKind):
    path = "/schedules"
    FIELDS = ("cron", "timezone", "parameters", "targets", "overlap", "catchup_window", "paused")

    def more(self, item: dict[str, Any]) -> dict[str, Any]:
        return {"note": item["note"]}


class TriggerKind(JobNamedKind):
    """The secret is a reference (`{file: …}` or `{env: …}`) like a channel's URL: sent on
    create, never compared, never rotated by apply (a PATCH of `secret` through the API does)."""

    path = "/triggers"
    uncompared = frozenset({"secret"})
    sent_apart = frozenset({"secret"})
    note = "secret not compared"
    FIELDS = (
        "source",
        "parameters",
        "targets",
        "when",
        "dedup_key",
        "dedup_window",
        "on_resolved",
        "enabled",
        "rate_limit",
    )

    def more(self, item: dict[str, Any]) -> dict[str, Any]:
        return {"secret": export_reference(item["name"], "secret")}

    def create(self, document: Document, installation: Installation) -> None:
        secret = resolve(
            document.body.get("secret"),
            f"{document.source}: secret",
            document.base,
            installation.allow_inline_secrets,
        )
        if secret is None:
            raise CliError(f"{document.source}: a new trigger needs `secret:`")
        installation.client.post(self.path, {**self.body(document, installation), "secret": secret})


class LibraryKind(Kind):
    """A library document (docs/libraries.md). Versions are immutable: a version the server has
    is unchanged, a new version is added (`update`)."""

    path = "/libraries"

    def document(self, item: dict[str, Any], installation: Installation) -> dict[str, Any]:
        document: dict[str, Any] = item["document"]
        return document

    def changed(self, document: Document, installation: Installation) -> list[str] | None:
        current = installation.items("library").get(document.name)
        if current is None:
            return None
        versions = {str(item["version"]) for item in current["versions"]}
        return [] if str(document.body.get("version")) in versions else ["version"]

    def update(self, document: Document, fields: list[str], installation: Installation) -> None:
        installation.client.post(f"/libraries/{document.name}/versions", document.body)


def import_targets(client: ApiClient, rows: Any, source: str, media_type: str = "") -> list[Any]:
    """`POST /targets/import`; rows that fail stop the command with their problems."""
    content = rows.encode() if isinstance(rows, str) else json.dumps(rows).encode()
    report = client.request(
        "POST",
        "/targets/import",
        content=content,
        headers={"Content-Type": media_type or "application/json"},
    ).json()
    failures = [
        f"{source} row {row['row']} ({row.get('name') or '?'}): {problem['path'] or 'row'}: "
        f"{problem['message']}"
        for row in report["rows"]
        for problem in row.get("errors", [])
    ]
    if failures:
        raise CliError(f"{report['failed']} target(s) not imported", failures)
    rows_reported: list[Any] = report["rows"]
    return rows_reported


KINDS: dict[str, Kind] = {
    "library": LibraryKind(),
    "credential": CredentialKind(),
    "group": GroupKind(),
    "channel": ChannelKind(),
    "user": UserKind(),
    "target": TargetKind(),
    "job": JobKind(),
    "schedule": ScheduleKind(),
    "trigger": TriggerKind(),
}
