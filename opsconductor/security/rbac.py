"""Permissions, what each role may do, and who is asking.

Every route declares one Permission (api/auth.authorized); each role below is the set of
permissions it grants.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from opsconductor.models.user import Role, User


class Permission(StrEnum):
    # One's own profile, password, sessions and API tokens: every signed-in user has it.
    account = "account"
    users_read = "users:read"
    users_manage = "users:manage"
    audit_read = "audit:read"
    targets_read = "targets:read"
    targets_manage = "targets:manage"
    credentials_read = "credentials:read"
    credentials_manage = "credentials:manage"
    jobs_read = "jobs:read"
    jobs_manage = "jobs:manage"
    jobs_run = "jobs:run"
    runs_read = "runs:read"
    runs_cancel = "runs:cancel"
    runs_approve = "runs:approve"
    schedules_read = "schedules:read"
    schedules_manage = "schedules:manage"
    triggers_read = "triggers:read"
    triggers_manage = "triggers:manage"
    discovery_read = "discovery:read"
    discovery_run = "discovery:run"
    libraries_read = "libraries:read"
    libraries_manage = "libraries:manage"
    channels_read = "channels:read"
    channels_manage = "channels:manage"
    notifications_read = "notifications:read"
    # Sealing a payload with the codec: a sealed payload is what our workers accept as input,
    # so whoever may seal one may drive them through the Temporal frontend. Admins only.
    codec_encode = "codec:encode"


# Credentials are readable by viewers because their answers never hold secret material.
_VIEWER = frozenset(
    {
        Permission.account,
        Permission.users_read,
        Permission.targets_read,
        Permission.credentials_read,
        Permission.jobs_read,
        Permission.runs_read,
        Permission.schedules_read,
        Permission.triggers_read,
        Permission.discovery_read,
        Permission.libraries_read,
        Permission.channels_read,
        Permission.notifications_read,
    }
)
_OPERATOR = _VIEWER | {
    Permission.targets_manage,
    Permission.jobs_manage,
    Permission.jobs_run,
    Permission.runs_cancel,
    Permission.runs_approve,
    Permission.schedules_manage,
    Permission.triggers_manage,
    Permission.discovery_run,
}
_ADMIN = frozenset(Permission)

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.viewer: _VIEWER,
    Role.operator: _OPERATOR,
    Role.admin: _ADMIN,
}
_RANK = {Role.viewer: 0, Role.operator: 1, Role.admin: 2}


def allows(role: Role, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS[role]


def role_exceeds(role: Role, ceiling: Role) -> bool:
    return _RANK[role] > _RANK[ceiling]


def lower_role(first: Role, second: Role) -> Role:
    return first if _RANK[first] <= _RANK[second] else second


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking, and with which role: an API token may carry less than its owner."""

    user: User
    role: Role
    session_id: uuid.UUID | None = None
    api_token_id: uuid.UUID | None = None
    # When the credential it was found by lapses (None: never on its own).
    expires_at: datetime | None = None
