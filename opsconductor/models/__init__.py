"""SQLModel tables and the API schemas over them, one module per domain.

Each module has two marked sections, in this order:

- `# -- tables`: the `table=True` classes alembic compares with the migrations, and the `XBase`
  (plain SQLModel) each extends for the fields its schemas share: `X(XBase, table=True)`.
- `# -- API schemas`: request and answer bodies, all non-table SQLModel classes:
  `XCreate`/`XUpdate` (usually extending `XBase`) and `XPublic` for a resource's answer. Other
  answers keep the names clients already see in the OpenAPI document (`RunDetail`,
  `ScanListItem`, `TokenPair`…): the class name is the schema's name there.

Why one module per domain rather than a separate `schemas/` package: a schema's constraints
mirror its table's columns (`XBase` is shared by both), so they change together and are read
together, and keeping `models.<domain>` as the one import for both spares every router,
service and test an import change. Not here: Temporal payloads (`opsconductor/contracts/`),
job documents (`opsconductor/jobspec/`; `ScanCreate` extends `jobspec.scan.ScanOptions`, which
`nmap.scan` steps share) and the generic `Page` envelope (`models/page.py`, a pydantic generic).

Importing this package registers every table on `SQLModel.metadata` (alembic reads it).
"""

from opsconductor.models.api_token import ApiToken
from opsconductor.models.audit import AuditEvent
from opsconductor.models.base import metadata
from opsconductor.models.credential import Credential, CredentialAccess
from opsconductor.models.discovery import DiscoveryHost, DiscoveryScan
from opsconductor.models.job import Job, JobVersion
from opsconductor.models.library import Library, LibraryVersion
from opsconductor.models.notification import NotificationChannel, NotificationDelivery
from opsconductor.models.run import Run, RunLogLine, RunStep
from opsconductor.models.schedule import Schedule
from opsconductor.models.session import AuthSession, RefreshToken
from opsconductor.models.settings import PasswordResetSettings
from opsconductor.models.target import Target, TargetGroup, TargetGroupMember
from opsconductor.models.throttle import LoginThrottle
from opsconductor.models.trigger import Trigger, TriggerEvent, TriggerSignature
from opsconductor.models.user import User

__all__ = [
    "ApiToken",
    "AuditEvent",
    "AuthSession",
    "Credential",
    "CredentialAccess",
    "DiscoveryHost",
    "DiscoveryScan",
    "Job",
    "JobVersion",
    "Library",
    "LibraryVersion",
    "LoginThrottle",
    "NotificationChannel",
    "NotificationDelivery",
    "PasswordResetSettings",
    "RefreshToken",
    "Run",
    "RunLogLine",
    "RunStep",
    "Schedule",
    "Target",
    "TargetGroup",
    "TargetGroupMember",
    "Trigger",
    "TriggerEvent",
    "TriggerSignature",
    "User",
    "metadata",
]
