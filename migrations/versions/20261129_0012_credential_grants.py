"""credential grants: who may use a credential; runs and schedules act for a user

Revision ID: 0012_credential_grants
Revises: 0011_log_attempts
Create Date: 2026-11-29

Today's jobs keep running: every credential a live job names is granted to the users who
created the job, saved its current version and own its schedules (to the `operator` role when
such a name is no user), and every credential a target logs in with to the `operator` role
(targets record no creator). The grants made are printed, one line each.
"""

import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from jinja2 import Environment, TemplateSyntaxError, nodes

revision: str = "0012_credential_grants"
down_revision: str | None = "0011_log_attempts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACCESS_OUTCOMES = "'revealed', 'refused'"
GRANTABLE_ROLES = "'operator', 'viewer'"
MIGRATION = "migration 0012"


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _named(document: dict[str, Any]) -> set[str]:
    """Credential names a stored job document uses: `credential:`, `with.credential` and
    literal `secret('…')` calls."""
    parser = Environment(autoescape=False)  # noqa: S701 (parsing only)
    names: set[str] = set()
    for step in document.get("steps", []):
        with_ = step.get("with") or {}
        names.update(
            name
            for name in (step.get("credential"), with_.get("credential"))
            if isinstance(name, str)
        )
        for text in _strings(with_):
            if "secret" not in text:
                continue
            try:
                tree = parser.parse(text)
            except TemplateSyntaxError:
                continue
            names.update(
                str(call.args[0].value)
                for call in tree.find_all(nodes.Call)
                if isinstance(call.node, nodes.Name)
                and call.node.name == "secret"
                and call.args
                and isinstance(call.args[0], nodes.Const)
            )
    return names


def _create_tables() -> None:
    op.create_table(
        "credential_grants",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("credential_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=True),
        sa.Column("granted_by", sa.String(length=64), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["credential_id"],
            ["credentials.id"],
            name=op.f("fk_credential_grants_credential_id_credentials"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_credential_grants_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credential_grants")),
        sa.UniqueConstraint(
            "credential_id", "user_id", name=op.f("uq_credential_grants_credential_id_user_id")
        ),
        sa.UniqueConstraint(
            "credential_id", "role", name=op.f("uq_credential_grants_credential_id_role")
        ),
        sa.CheckConstraint(
            "(user_id IS NULL) <> (role IS NULL) "
            f"AND (role IS NULL OR role IN ({GRANTABLE_ROLES}))",
            name=op.f("ck_credential_grants_grantee"),
        ),
    )
    op.create_index(
        op.f("ix_credential_grants_credential_id"),
        "credential_grants",
        ["credential_id"],
        unique=False,
    )
    op.add_column(
        "credential_access",
        sa.Column("outcome", sa.String(length=16), nullable=False, server_default="revealed"),
    )
    op.alter_column("credential_access", "outcome", server_default=None)
    op.create_check_constraint("outcome", "credential_access", f"outcome IN ({ACCESS_OUTCOMES})")
    op.add_column("credential_access", sa.Column("requester", sa.String(length=64), nullable=True))
    op.add_column("runs", sa.Column("run_as", sa.String(length=64), nullable=True))
    op.add_column("schedules", sa.Column("run_as", sa.String(length=64), nullable=True))
    op.execute("UPDATE schedules SET run_as = created_by")
    op.alter_column("schedules", "run_as", nullable=False)


def _backfill_runs() -> None:
    """Runs act for who started them, a schedule's owner, or their parent run's requester."""
    op.execute(
        "UPDATE runs SET run_as = triggered_by WHERE triggered_by IN (SELECT username FROM users)"
    )
    op.execute(
        "UPDATE runs SET run_as = schedules.created_by FROM schedules "
        "WHERE runs.triggered_by = 'schedule:' || schedules.name"
    )
    connection = op.get_bind()
    while True:  # one level of child runs per pass
        changed = connection.execute(
            sa.text(
                "UPDATE runs SET run_as = parent.run_as FROM runs AS parent "
                "WHERE runs.parent_run_id = parent.id AND runs.run_as IS NULL "
                "AND parent.run_as IS NOT NULL"
            )
        ).rowcount
        if not changed:
            break


def _grant_what_is_used() -> None:
    connection = op.get_bind()
    credentials: dict[str, uuid.UUID] = {
        name: credential_id
        for name, credential_id in connection.execute(sa.text("SELECT name, id FROM credentials"))
    }
    users: dict[str, uuid.UUID] = {
        name: user_id
        for name, user_id in connection.execute(sa.text("SELECT username, id FROM users"))
    }
    wanted: dict[tuple[uuid.UUID, str], str] = {}  # (credential, grantee) -> why

    def grant(credential_id: uuid.UUID, username: str | None, why: str) -> None:
        grantee = f"user:{username}" if username in users else "role:operator"
        wanted.setdefault((credential_id, grantee), why)

    jobs = connection.execute(
        sa.text(
            "SELECT jobs.id, jobs.name, jobs.created_by, job_versions.created_by, "
            "job_versions.document FROM jobs JOIN job_versions ON job_versions.job_id = jobs.id "
            "AND job_versions.version = jobs.current_version WHERE jobs.deleted_at IS NULL"
        )
    ).all()
    owners = connection.execute(sa.text("SELECT job_id, created_by FROM schedules")).all()
    for job_id, job_name, creator, saver, document in jobs:
        people = [creator, saver, *(owner for of_job, owner in owners if of_job == job_id)]
        for name in sorted(_named(document)):
            if name in credentials:
                for person in people:
                    grant(credentials[name], person, f"job {job_name!r}")
    targets = connection.execute(
        sa.text("SELECT name, credential_id FROM targets WHERE credential_id IS NOT NULL")
    ).all()
    for target_name, credential_id in targets:
        grant(credential_id, None, f"target {target_name!r}")
    names = {value: key for key, value in credentials.items()}
    for (credential_id, grantee), why in sorted(wanted.items(), key=lambda item: str(item)):
        kind, who = grantee.split(":", 1)
        connection.execute(
            sa.text(
                "INSERT INTO credential_grants (id, credential_id, user_id, role, granted_by, "
                "granted_at) VALUES (:id, :credential, :user, :role, :by, now())"
            ),
            {
                "id": uuid.uuid4(),
                "credential": credential_id,
                "user": users[who] if kind == "user" else None,
                "role": who if kind == "role" else None,
                "by": MIGRATION,
            },
        )
        # The upgrade's output lists every grant it made, for the administrator to review.
        print(f"{MIGRATION}: granted {names[credential_id]!r} to {kind} {who} (used by {why})")


def upgrade() -> None:
    _create_tables()
    _backfill_runs()
    _grant_what_is_used()


def downgrade() -> None:
    op.drop_column("schedules", "run_as")
    op.drop_column("runs", "run_as")
    op.drop_column("credential_access", "requester")
    op.drop_constraint("outcome", "credential_access", type_="check")
    op.drop_column("credential_access", "outcome")
    op.drop_index(op.f("ix_credential_grants_credential_id"), table_name="credential_grants")
    op.drop_table("credential_grants")
