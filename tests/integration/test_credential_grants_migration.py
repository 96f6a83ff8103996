"""Migration 0011 keeps today's jobs running: it grants what existing jobs and targets use, and
prints each grant it made."""

import asyncio
import json
import uuid

import pytest
from alembic import command

from opsconductor.schema import alembic_config
from tests.identity_helpers import execute_sql

pytestmark = pytest.mark.integration

BEFORE = "0011_log_attempts"
SEALED = "'\\x00'::bytea, '\\x00'::bytea, '\\x00'::bytea, '\\x00'::bytea, 'k1'"


async def test_the_upgrade_grants_what_jobs_and_targets_use_and_prints_it(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = alembic_config(database_url)
    await asyncio.to_thread(command.downgrade, config, BEFORE)
    olivia = uuid.uuid4()
    await execute_sql(
        database_url,
        "INSERT INTO users (id, username, email, role, disabled, password_hash, created_at, "
        "updated_at) VALUES (:id, 'olivia', 'o@example.com', 'operator', false, 'x', now(), now())",
        id=olivia,
    )
    for name, kind in (
        ("db", "secret"),
        ("api", "http_basic"),
        ("fleet", "ssh_password"),
        ("idle", "secret"),
    ):
        await execute_sql(
            database_url,
            "INSERT INTO credentials (id, name, kind, username, description, verify_tls, "
            f"ciphertext, nonce, wrapped_key, key_nonce, key_id, created_at, updated_at) VALUES "
            f"(:id, :name, :kind, 'u', '', true, {SEALED}, now(), now())",
            id=uuid.uuid4(),
            name=name,
            kind=kind,
        )
    document = {
        "name": "deploy",
        "steps": [
            {"id": "a", "action": "http.request", "with": {"url": "http://x", "credential": "api"}},
            {"id": "b", "action": "ssh.command", "with": {"command": "{{ secret('db') }}"}},
        ],
    }
    job_id = uuid.uuid4()
    await execute_sql(
        database_url,
        "INSERT INTO jobs (id, name, description, current_version, created_by, created_at, "
        "updated_at) VALUES (:id, 'deploy', '', 1, 'olivia', now(), now())",
        id=job_id,
    )
    await execute_sql(
        database_url,
        "INSERT INTO job_versions (id, job_id, version, document, created_by, created_at) "
        "VALUES (:id, :job, 1, CAST(:document AS jsonb), 'gone-user', now())",
        id=uuid.uuid4(),
        job=job_id,
        document=json.dumps(document),
    )
    await execute_sql(
        database_url,
        "INSERT INTO targets (id, name, address, protocol, port, credential_id, description, "
        "tags, vars, created_at, updated_at) SELECT :id, 'web-1', '10.0.0.1', 'ssh', 22, id, "
        "'', '{}', '{}', now(), now() FROM credentials WHERE name = 'fleet'",
        id=uuid.uuid4(),
    )
    for triggered_by in ("olivia", "schedule:gone"):
        await execute_sql(
            database_url,
            "INSERT INTO runs (id, job_id, job_name, job_version, status, parameters, targets, "
            "triggered_by, workflow_id, created_at) VALUES (:id, :job, 'deploy', 1, 'running', "
            "'{}', '[]', :by, 'run-x', now())",
            id=uuid.uuid4(),
            job=job_id,
            by=triggered_by,
        )
    capsys.readouterr()

    await asyncio.to_thread(command.upgrade, config, "head")

    grants = await execute_sql(
        database_url,
        "SELECT credentials.name, users.username, credential_grants.role FROM credential_grants "
        "JOIN credentials ON credentials.id = credential_grants.credential_id "
        "LEFT JOIN users ON users.id = credential_grants.user_id ORDER BY 1, 2, 3",
    )
    # olivia created the job; whoever saved its version is no user any more: the operator role.
    assert [tuple(row) for row in grants] == [
        ("api", "olivia", None),
        ("api", None, "operator"),
        ("db", "olivia", None),
        ("db", None, "operator"),
        ("fleet", None, "operator"),
    ]
    # A run in flight acts for who started it; one whose origin is gone, for nobody.
    runs = await execute_sql(database_url, "SELECT triggered_by, run_as FROM runs ORDER BY 1")
    assert [tuple(row) for row in runs] == [("olivia", "olivia"), ("schedule:gone", None)]
    printed = capsys.readouterr().out.splitlines()
    assert "migration 0012: granted 'api' to user olivia (used by job 'deploy')" in printed
    assert "migration 0012: granted 'fleet' to role operator (used by target 'web-1')" in printed
    assert len([line for line in printed if line.startswith("migration 0012: granted")]) == 5
