"""SQLModel tables and API schemas, one module per domain.

Importing this package registers every table on `SQLModel.metadata` (alembic reads it).
"""

from opsconductor.models.base import metadata
from opsconductor.models.user import User

__all__ = ["User", "metadata"]
