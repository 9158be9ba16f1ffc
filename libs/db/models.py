"""SQLAlchemy 2 models. Every row that belongs to an organization carries ``org_id``
(the :class:`Tenanted` mixin), which is what :mod:`libs.db.tenancy` filters on.

Personal info (name, gender, eye colour, glasses) lives only on :class:`HeadshotSession`, in
nullable columns that :meth:`HeadshotSession.erase_personal_info` clears when the headshots are
complete; events and the outbox never hold it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from libs.contracts import SessionState, transition

# The largest integer id a row can have (BigInteger: 64 bits, signed). A URL's integer id beyond it
# names no row; routes bound it (``<int(max=MAX_ROW_ID):...>``) so the database is never asked.
MAX_ROW_ID = 2**63 - 1


def new_id() -> str:
    return str(uuid.uuid4())


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes on both SQLite (which drops the zone) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Tenanted:
    """Marks a model as belonging to one organization; tenant-scoped sessions filter on it."""

    org_id: Mapped[str] = mapped_column(String(36), ForeignKey("organizations.id"), index=True)


class Role(StrEnum):
    EMPLOYEE = "employee"
    ORG_ADMIN = "org_admin"
    SUPPORT = "support"


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    package_id: Mapped[str] = mapped_column(String(64), default="professional")
    manual_review: Mapped[bool] = mapped_column(Boolean, default=False)
    renewal: Mapped[bool] = mapped_column(Boolean, default=False)
    # Style ids ("backdrop:clothing") employees may choose; empty means the whole catalog.
    allowed_styles: Mapped[list[str]] = mapped_column(JSON, default=list)
    retention_days: Mapped[int] = mapped_column(Integer, default=30)
    webhook_url: Mapped[str | None] = mapped_column(String(500), default=None)
    # HMAC-SHA256 key signing the org's webhooks (shown once to the admin, rotatable).
    webhook_secret: Mapped[str | None] = mapped_column(String(128), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class User(Base):
    """A person who signs in. Support staff belong to no organization (org_id is null)."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("org_id", "email"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str | None] = mapped_column(String(36), ForeignKey("organizations.id"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    display_name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(20), default=Role.EMPLOYEE.value)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class HeadshotSession(Tenanted, Base):
    __tablename__ = "headshot_sessions"
    __table_args__ = (Index("ix_headshot_sessions_state", "state"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id"), index=True)
    state: Mapped[str] = mapped_column(String(20), default=SessionState.ONBOARDING.value)
    package_id: Mapped[str] = mapped_column(String(64))
    format_id: Mapped[str | None] = mapped_column(String(64), default=None)
    # Personal info: erased when the headshots are complete.
    full_name: Mapped[str | None] = mapped_column(String(200), default=None)
    gender: Mapped[str | None] = mapped_column(String(32), default=None)
    eye_color: Mapped[str | None] = mapped_column(String(32), default=None)
    glasses: Mapped[str | None] = mapped_column(String(32), default=None)
    personal_info_erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    failure_reason: Mapped[str | None] = mapped_column(Text, default=None)
    progress_done: Mapped[int] = mapped_column(Integer, default=0)
    progress_total: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # The org admin's decision: who, when, and (for a rejection) the reason the employee reads.
    review_reason: Mapped[str | None] = mapped_column(Text, default=None)
    reviewed_by: Mapped[str | None] = mapped_column(String(36), default=None)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    photos: Mapped[list[Photo]] = relationship(back_populates="session", order_by="Photo.created_at")
    styles: Mapped[list[ChosenStyle]] = relationship(
        back_populates="session", order_by="ChosenStyle.position"
    )
    headshots: Mapped[list[Headshot]] = relationship(back_populates="session", order_by="Headshot.position")

    def move_to(self, target: str | SessionState) -> None:
        """Change state through the one function that knows the legal transitions."""
        self.state = transition(self.state, target).value

    def erase_personal_info(self) -> None:
        self.full_name = self.gender = self.eye_color = self.glasses = None
        self.personal_info_erased_at = utcnow()


class Photo(Tenanted, Base):
    __tablename__ = "photos"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    session_id: Mapped[str] = mapped_column(String(36), ForeignKey("headshot_sessions.id"), index=True)
    original_key: Mapped[str] = mapped_column(String(200))  # as uploaded, kept for generation
    clean_key: Mapped[str] = mapped_column(String(200))  # re-encoded, no metadata
    prepared_key: Mapped[str | None] = mapped_column(String(200), default=None)  # crop from preprocess
    training_key: Mapped[str | None] = mapped_column(String(200), default=None)  # LoRA-size square crop
    # Preparation's verdict: "kept" (used for training), "dropped" (with a reason), or null before it.
    quality_score: Mapped[float | None] = mapped_column(Float, default=None)
    decision: Mapped[str | None] = mapped_column(String(20), default=None)
    decision_reason: Mapped[str | None] = mapped_column(Text, default=None)
    # What preparation measured (scores, perceptual hash), or the problem that stopped it: the
    # inputs of the decision, kept so a resumed session decides without preparing photos again.
    preparation: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    face_box: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    embedding: Mapped[list[float] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    session: Mapped[HeadshotSession] = relationship(back_populates="photos")


class ChosenStyle(Tenanted, Base):
    __tablename__ = "chosen_styles"
    __table_args__ = (UniqueConstraint("session_id", "style_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(String(36), ForeignKey("headshot_sessions.id"), index=True)
    style_id: Mapped[str] = mapped_column(String(130))
    preselected: Mapped[bool] = mapped_column(Boolean, default=False)
    position: Mapped[int] = mapped_column(Integer, default=0)

    session: Mapped[HeadshotSession] = relationship(back_populates="styles")


class PersonModel(Tenanted, Base):
    __tablename__ = "person_models"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    session_id: Mapped[str] = mapped_column(String(36), ForeignKey("headshot_sessions.id"), index=True)
    engine: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class Headshot(Tenanted, Base):
    __tablename__ = "headshots"
    __table_args__ = (UniqueConstraint("session_id", "style_id", "index_in_style"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    session_id: Mapped[str] = mapped_column(String(36), ForeignKey("headshot_sessions.id"), index=True)
    style_id: Mapped[str] = mapped_column(String(130))
    index_in_style: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer, default=0)
    blob_key: Mapped[str] = mapped_column(String(200))
    thumb_key: Mapped[str | None] = mapped_column(String(200), default=None)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(BigInteger)
    # Face-embedding likeness to the person's uploads (1 = identical; null when not scored).
    likeness: Mapped[float | None] = mapped_column(Float, default=None)
    # Marked by the person on the results page (their picks, downloadable together).
    favourite: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    session: Mapped[HeadshotSession] = relationship(back_populates="headshots")


class UploadAttempt(Tenanted, Base):
    """One photo upload attempt (accepted or not), counted for the per-person rate limit.

    Counting rows in the database, rather than in memory, makes the limit hold across every
    process serving intake. Rows older than a few minutes are pruned by the uploader itself.
    """

    __tablename__ = "upload_attempts"
    __table_args__ = (Index("ix_upload_attempts_user_time", "user_id", "created_at"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EmailSend(Tenanted, Base):
    """One e-mail the notification service owes for one event: at most one row per (message,
    template), so a redelivered event finds what became of the first attempt.

    ``status``: ``sending`` (claimed, the SMTP conversation may be under way), ``pending`` (a
    transient failure; the next delivery of the event tries again), ``sent``, ``failed``
    (permanent: bad address, 5xx, no such person). Holds ids, never the address or the name.
    """

    __tablename__ = "email_sends"
    __table_args__ = (
        UniqueConstraint("message_id", "template"),
        Index("ix_email_sends_status", "status", "updated_at"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    message_id: Mapped[str] = mapped_column(String(36))
    template: Mapped[str] = mapped_column(String(40))
    session_id: Mapped[str | None] = mapped_column(String(36), default=None)
    user_id: Mapped[str | None] = mapped_column(String(36), default=None)
    status: Mapped[str] = mapped_column(String(12))
    subject: Mapped[str | None] = mapped_column(String(200), default=None)  # set once it is built
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class EmailAttempt(Tenanted, Base):
    """One try at sending an e-mail: when, how long the server took, and what it answered (the
    reply to the message, or the error). The server's words only, addresses replaced."""

    __tablename__ = "email_attempts"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    send_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("email_sends.id"), index=True
    )
    attempt: Mapped[int] = mapped_column(Integer)  # 1 for the first try of this e-mail
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    outcome: Mapped[str] = mapped_column(String(12))  # sent, pending (transient), failed (permanent)
    reply: Mapped[str | None] = mapped_column(Text, default=None)  # the server's answer, first 1 KB
    error: Mapped[str | None] = mapped_column(Text, default=None)


class WebhookDelivery(Tenanted, Base):
    """One event owed to an organization's webhook endpoint, delivered outside the event handler.

    ``status``: ``pending`` (``next_attempt_at`` says when), ``delivered``, ``failed`` (given up).
    ``step`` is the position in the retry schedule of the current series (a resend starts over).
    The body is fixed when the delivery is recorded, so every attempt sends the same bytes.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("org_id", "message_id"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    message_id: Mapped[str] = mapped_column(String(36))
    event: Mapped[str] = mapped_column(String(100))
    session_id: Mapped[str | None] = mapped_column(String(36), default=None)
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12), default="pending")
    step: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class WebhookAttempt(Tenanted, Base):
    """One try of a webhook delivery: what the endpoint answered (or why there was no answer)."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    delivery_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("webhook_deliveries.id"), index=True
    )
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempt: Mapped[int | None] = mapped_column(Integer, default=None)  # 1, 2, … across resends
    url: Mapped[str] = mapped_column(String(500))
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    response_excerpt: Mapped[str | None] = mapped_column(Text, default=None)  # first 1 KB


class OrgApiKey(Tenanted, Base):
    """A key an org admin's own tools use on the org API. Only a SHA-256 of the key is stored;
    the key itself is shown once, when it is created."""

    __tablename__ = "org_api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))  # the key's first characters, to recognise it
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[str | None] = mapped_column(String(36), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class DeletionReceipt(Tenanted, Base):
    """Proof that data went: which kinds and how many objects, when, why and by whom.

    ``reason``: ``completion`` (personal info at completion), ``retention`` (uploads and person
    models after the org's retention days) or ``request`` (the person or their admin asked).
    ``actor`` is a user id or ``"system"``. Ids and counts only: a receipt holds no personal info.
    """

    __tablename__ = "deletion_receipts"
    __table_args__ = (Index("ix_deletion_receipts_user", "user_id", "created_at"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    session_id: Mapped[str | None] = mapped_column(String(36), index=True, default=None)
    user_id: Mapped[str | None] = mapped_column(String(36), default=None)
    reason: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(36))
    # {"personal_info": 4, "photos": 2, "photo_files": 6, "person_models": 1, "headshot_files": 8, ...}
    kinds: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class JobRun(Base):
    """When a cluster-wide periodic job last ran: instances claim a period by locking this row."""

    __tablename__ = "job_runs"

    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    ran_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OutboxMessage(Base):
    """An event waiting to be published (sent_at null) or already published.

    Kept after sending: it is also the session's timeline and the replay log for waiting pages.
    Not tenant-filtered by the ORM (the relay reads every org), but carries org_id for ops.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        # The relay's "unsent, in id order" (migration 0011_outbox_path).
        Index(
            "ix_outbox_unsent",
            "id",
            postgresql_where=text("sent_at IS NULL"),
            sqlite_where=text("sent_at IS NULL"),
        ),
        Index("ix_outbox_session", "session_id", "id"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    message_id: Mapped[str] = mapped_column(String(36), unique=True)
    routing_key: Mapped[str] = mapped_column(String(100))
    org_id: Mapped[str] = mapped_column(String(36))
    session_id: Mapped[str | None] = mapped_column(String(36), default=None)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    # The relay that publishes this row (the one running in the process that wrote it, handed the
    # row after the commit), and until when: other relays take it only after that (migration
    # 0012_outbox_held). Null: any relay takes it.
    held_by: Mapped[str | None] = mapped_column(String(32), default=None)
    held_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class ProcessedMessage(Base):
    """A message a consumer has handled: written in the same transaction as the effect."""

    __tablename__ = "processed_messages"

    consumer: Mapped[str] = mapped_column(String(150), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditLog(Base):
    """Who did what. Support staff actions across orgs always land here."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    org_id: Mapped[str | None] = mapped_column(String(36), index=True, default=None)
    actor_id: Mapped[str | None] = mapped_column(String(36), default=None)
    action: Mapped[str] = mapped_column(String(100))
    target: Mapped[str | None] = mapped_column(String(200), default=None)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WorkerHeartbeat(Base):
    """One consumer process (or thread, embedded) saying it is alive, every HEARTBEAT_SECONDS."""

    __tablename__ = "worker_heartbeats"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)  # service@host:pid:instance
    service: Mapped[str] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    handled: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    current_session_id: Mapped[str | None] = mapped_column(String(36), default=None)


class QueueSample(Base):
    """A queue's depth at one moment, sampled by the ops worker for the last hour's chart."""

    __tablename__ = "queue_samples"
    __table_args__ = (Index("ix_queue_samples_time", "sampled_at"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    sampled_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    queue: Mapped[str] = mapped_column(String(200))
    ready: Mapped[int] = mapped_column(Integer, default=0)
    unacked: Mapped[int | None] = mapped_column(Integer, default=None)
    consumers: Mapped[int | None] = mapped_column(Integer, default=None)


class StuckCheck(Base):
    """What the stuck check did about a session in one state: re-queued it once, then flagged it."""

    __tablename__ = "stuck_checks"

    session_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(36), index=True)
    state: Mapped[str] = mapped_column(String(20))
    requeued_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    flagged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


__all__ = [
    "MAX_ROW_ID",
    "AuditLog",
    "Base",
    "ChosenStyle",
    "EmailSend",
    "Headshot",
    "HeadshotSession",
    "OrgApiKey",
    "Organization",
    "OutboxMessage",
    "PersonModel",
    "Photo",
    "ProcessedMessage",
    "QueueSample",
    "Role",
    "StuckCheck",
    "Tenanted",
    "UploadAttempt",
    "User",
    "WebhookAttempt",
    "WebhookDelivery",
    "WorkerHeartbeat",
    "new_id",
    "utcnow",
]
