"""Who may call a route, one alias per permission: a route declares exactly one, by taking
`principal: <Alias>` (see `auth.authorized`). Kept in one place so each router imports the
roles it uses instead of defining them again."""

from typing import Annotated

from opsconductor.api.auth import authorized, codec_caller
from opsconductor.security.rbac import Permission, Principal

# Any signed-in user, about their own account (sessions, tokens, password).
Account = Annotated[Principal, authorized(Permission.account)]
Auditor = Annotated[Principal, authorized(Permission.audit_read)]

JobReader = Annotated[Principal, authorized(Permission.jobs_read)]
JobAuthor = Annotated[Principal, authorized(Permission.jobs_manage)]
JobRunner = Annotated[Principal, authorized(Permission.jobs_run)]

RunReader = Annotated[Principal, authorized(Permission.runs_read)]
RunCanceller = Annotated[Principal, authorized(Permission.runs_cancel)]
RunApprover = Annotated[Principal, authorized(Permission.runs_approve)]
# Reading history payloads (the Temporal codec) is reading runs; under `up` the dev Web UI too.
CodecCaller = Annotated[Principal | None, codec_caller(Permission.runs_read)]
CodecEncoder = Annotated[Principal | None, codec_caller(Permission.codec_encode)]

ScheduleReader = Annotated[Principal, authorized(Permission.schedules_read)]
ScheduleManager = Annotated[Principal, authorized(Permission.schedules_manage)]

TriggerReader = Annotated[Principal, authorized(Permission.triggers_read)]
TriggerManager = Annotated[Principal, authorized(Permission.triggers_manage)]

TargetReader = Annotated[Principal, authorized(Permission.targets_read)]
TargetManager = Annotated[Principal, authorized(Permission.targets_manage)]

CredentialReader = Annotated[Principal, authorized(Permission.credentials_read)]
CredentialManager = Annotated[Principal, authorized(Permission.credentials_manage)]

DiscoveryReader = Annotated[Principal, authorized(Permission.discovery_read)]
Scanner = Annotated[Principal, authorized(Permission.discovery_run)]

LibraryReader = Annotated[Principal, authorized(Permission.libraries_read)]
LibraryManager = Annotated[Principal, authorized(Permission.libraries_manage)]

ChannelReader = Annotated[Principal, authorized(Permission.channels_read)]
ChannelManager = Annotated[Principal, authorized(Permission.channels_manage)]
NotificationReader = Annotated[Principal, authorized(Permission.notifications_read)]

UserReader = Annotated[Principal, authorized(Permission.users_read)]
UserManager = Annotated[Principal, authorized(Permission.users_manage)]
