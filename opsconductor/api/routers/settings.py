"""Install-wide settings: admins change them, and each change is audited."""

from fastapi import APIRouter

from opsconductor.api.auth import AuditDep
from opsconductor.api.deps import SessionDep
from opsconductor.api.permissions import UserManager
from opsconductor.models.base import utcnow
from opsconductor.models.settings import PasswordResetSettingsPublic, PasswordResetSettingsUpdate
from opsconductor.services import password_recovery

router = APIRouter(prefix="/settings", tags=["settings"])


@router.get("/password-reset", name="settings.password_reset")
async def read_password_reset(_: UserManager, session: SessionDep) -> PasswordResetSettingsPublic:
    return await password_recovery.read_settings(session)


@router.put("/password-reset", name="settings.password_reset_update")
async def update_password_reset(
    body: PasswordResetSettingsUpdate, _: UserManager, session: SessionDep, entry: AuditDep
) -> PasswordResetSettingsPublic:
    entry.detail["channel_id"] = str(body.channel_id) if body.channel_id else None
    return await password_recovery.update_settings(session, body, utcnow())
