"""Database: models, engine and unit of work, tenant scoping, migrations."""

from libs.db.database import Database, UnitOfWork, make_engine
from libs.db.models import (
    AuditLog,
    Base,
    ChosenStyle,
    Headshot,
    HeadshotSession,
    Organization,
    OrgApiKey,
    OutboxMessage,
    PersonModel,
    Photo,
    ProcessedMessage,
    Role,
    Tenanted,
    UploadAttempt,
    User,
    new_id,
    utcnow,
)
from libs.db.tenancy import CrossTenantWrite, scope_session, session_org

__all__ = [
    "AuditLog",
    "Base",
    "ChosenStyle",
    "CrossTenantWrite",
    "Database",
    "Headshot",
    "HeadshotSession",
    "OrgApiKey",
    "Organization",
    "OutboxMessage",
    "PersonModel",
    "Photo",
    "ProcessedMessage",
    "Role",
    "Tenanted",
    "UnitOfWork",
    "UploadAttempt",
    "User",
    "make_engine",
    "new_id",
    "scope_session",
    "session_org",
    "utcnow",
]
