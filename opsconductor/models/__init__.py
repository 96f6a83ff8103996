"""SQLModel tables and API schemas, one module per domain.

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
from opsconductor.models.target import Target, TargetGroup, TargetGroupMember
from opsconductor.models.throttle import LoginThrottle
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
    "RefreshToken",
    "Run",
    "RunLogLine",
    "RunStep",
    "Schedule",
    "Target",
    "TargetGroup",
    "TargetGroupMember",
    "User",
    "metadata",
]
