"""All configuration, read from environment variables in one place.

Every setting is a typed field of :class:`Settings` with an embedded-mode default, so a bare
checkout runs with no environment at all. Tests build ``Settings(...)`` explicitly instead of
patching globals. ``python -m libs.settings`` prints the table of settings the README shows.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _setting(default: Any, doc: str) -> Any:
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class Settings:
    # --- where things live -------------------------------------------------------------------
    VAR_DIR: str = _setting(str(ROOT / "var"), "Folder for the embedded mode's files.")
    BROKER_URL: str = _setting(
        "memory://", "kombu URL: `memory://` (embedded, in-process) or `amqp://user:pw@host:5672/vhost`."
    )
    DATABASE_URL: str = _setting("", "SQLAlchemy URL. Empty: a SQLite file `VAR_DIR/headshots.db`.")
    BLOB_DIR: str = _setting("", "Folder of the blob store. Empty: `VAR_DIR/blobs`.")
    BLOB_URL: str = _setting(
        "", "`s3://bucket/prefix` for an S3-compatible blob store. Empty: the folder `BLOB_DIR`."
    )
    S3_ENDPOINT_URL: str = _setting("", "S3-compatible endpoint (e.g. `http://minio:9000`). Empty: AWS.")
    S3_REGION: str = _setting("us-east-1", "Region of the S3 bucket.")
    S3_ACCESS_KEY_ID: str = _setting("", "S3 access key. Empty: the default credential chain.")
    S3_SECRET_ACCESS_KEY: str = _setting("", "S3 secret key (with S3_ACCESS_KEY_ID).")
    PERSON_MODEL_DIR: str = _setting(
        "", "Folder of person models (shared by generation workers). Empty: `VAR_DIR/person-models`."
    )
    SMTP_URL: str = _setting(
        "",
        "`smtp://user:pw@host:port` (plain), `smtp+starttls://…` (STARTTLS) or `smtps://…` (TLS) for "
        "e-mail. Empty: .eml files under `VAR_DIR/mail`.",
    )
    MAIL_FROM: str = _setting("Headshots <headshots@localhost>", "Sender of every e-mail.")
    SMTP_TIMEOUT_SECONDS: float = _setting(10.0, "Seconds an SMTP server may take to answer before we retry.")
    WEBHOOK_TIMEOUT_SECONDS: float = _setting(
        10.0, "Seconds a webhook endpoint may take to connect or answer."
    )
    WEBHOOK_ALLOW_PRIVATE: bool = _setting(
        False,
        "Allow webhook endpoints on loopback, private or link-local addresses (local receivers, tests).",
    )
    WEBHOOK_POLL_SECONDS: float = _setting(1.0, "How often the webhook dispatcher looks for due deliveries.")
    # --- web -------------------------------------------------------------------------------------
    HOST: str = _setting("127.0.0.1", "Address the embedded server listens on.")
    PORT: int = _setting(8000, "Port the embedded server listens on.")
    PUBLIC_URL: str = _setting("", "Base URL used in links and e-mails. Empty: `http://HOST:PORT`.")
    WEB_SERVICES: str = _setting(
        "", "Comma-separated web services `services.wsgi` serves under gunicorn. Empty: every one."
    )
    WEB_WORKERS: int = _setting(2, "gunicorn worker processes per instance (the gateway keeps one).")
    WEB_THREADS: int = _setting(32, "Threads per gunicorn worker: requests one process serves at once.")
    SECRET_KEY: str = _setting(
        "embedded-dev-secret-change-me", "Signs cookies, invite links and result URLs. Set it in production."
    )
    SECURE_COOKIES: bool = _setting(False, "Mark cookies Secure (set true behind HTTPS).")
    INVITE_TTL_SECONDS: int = _setting(7200, "How long an invite link stays valid.")
    RESULT_URL_TTL_SECONDS: int = _setting(3600, "How long a signed result image URL stays valid.")
    PROGRESS_TOKEN_TTL_SECONDS: int = _setting(
        900, "How long the token a waiting page uses to listen to live progress stays valid."
    )
    GATEWAY_PATH: str = _setting(
        "/gateway",
        "Path on this host where browsers reach the websocket gateway (Socket.IO at GATEWAY_PATH/socket.io).",
    )
    UPLOADS_PER_MINUTE: int = _setting(30, "Photo uploads allowed per person per minute.")
    LOG_LEVEL: str = _setting("INFO", "Python logging level.")
    # --- photos ----------------------------------------------------------------------------------
    MAX_UPLOAD_BYTES: int = _setting(50 * 1024 * 1024, "Largest accepted photo file, in bytes.")
    MAX_IMAGE_PIXELS: int = _setting(60_000_000, "Largest accepted photo, in pixels (decompression bombs).")
    MIN_PHOTO_SIDE: int = _setting(512, "Smallest accepted photo side, in pixels.")
    MIN_FACE_WIDTH: int = _setting(410, "Face width required in a full-resolution photo, in pixels.")
    MIN_FACE_FRACTION: float = _setting(
        0.15, "For smaller photos: face width required as a fraction of the photo's shorter side."
    )
    SAME_PERSON_DISTANCE: float = _setting(0.6, "Largest face-embedding distance counted as the same person.")
    # --- photo preparation (preprocess) ----------------------------------------------------------
    PREPARE_KEEP_BEST: int = _setting(15, "Most photos kept for training per session, best first.")
    PREPARE_MIN_PHOTOS: int = _setting(
        1, "Fewest usable photos a session needs; with fewer it fails with a reason the person can act on."
    )
    PREPARE_MIN_SHARPNESS: float = _setting(
        0.25, "Photos whose face scores below this sharpness (0-1) are dropped as too blurry."
    )
    # --- messaging -------------------------------------------------------------------------------
    DELIVERY_LIMIT: int = _setting(5, "Deliveries of one message before it is dead-lettered.")
    RETRY_DELAY_MS: int = _setting(2000, "Delay before a failed message is delivered again.")
    PUBLISH_TIMEOUT: float = _setting(5.0, "Seconds to wait for a broker confirm before failing.")
    HEARTBEAT: int = _setting(30, "AMQP heartbeat, in seconds (0 turns heartbeats off).")
    OUTBOX_POLL_SECONDS: float = _setting(0.2, "How often the outbox relay looks for unsent rows.")
    OUTBOX_BATCH: int = _setting(100, "Outbox rows published per relay round.")
    OUTBOX_GATHER_SECONDS: float = _setting(
        0.02,
        "When events keep coming (a relay round of two rows or more, the next commit within this "
        "time), wait this long for more before the next round: fewer, fuller rounds under load; "
        "a lone event never waits.",
    )
    # --- generation ------------------------------------------------------------------------------
    ENGINE: str = _setting(
        "auto", "`studio`, `diffusion`, or `auto` (diffusion when MODEL_DIR is set, else studio)."
    )
    MODEL_DIR: str = _setting("", "Diffusion base model: a diffusers folder or a .safetensors file.")
    DEVICE: str = _setting("auto", "`auto`, `cpu`, `cuda`, `cuda:1`...")
    INFERENCE_STEPS: int = _setting(30, "Denoising steps per headshot.")
    GUIDANCE_SCALE: float = _setting(7.0, "Classifier-free guidance scale.")
    IMG2IMG: bool = _setting(False, "Render image-to-image from the person's reference crop.")
    IMG2IMG_STRENGTH: float = _setting(0.6, "How far image-to-image may move from the reference.")
    BATCH_SIZE: int = _setting(4, "Headshots of the same size rendered together.")
    ATTENTION_SLICING: bool = _setting(False, "Trade speed for memory in attention.")
    CPU_OFFLOAD: bool = _setting(False, "Keep idle model parts on the CPU (needs accelerate).")
    LORA_STEPS: int = _setting(400, "Training steps of a person model.")
    LORA_RANK: int = _setting(8, "Rank of a person model's LoRA.")
    LORA_LEARNING_RATE: float = _setting(1e-4, "Learning rate of person model training.")
    LORA_RESOLUTION: int = _setting(512, "Side of the training crops, in pixels.")
    # --- ops ------------------------------------------------------------------------------------
    HEARTBEAT_SECONDS: float = _setting(
        10.0, "How often each consumer writes its heartbeat row (ops: workers)."
    )
    WORKER_GONE_SECONDS: int = _setting(60, "A worker silent this long is shown as gone.")
    OPS_CHECK_SECONDS: float = _setting(
        30.0, "How often the ops worker samples queues and checks stuck sessions."
    )
    RABBITMQ_MANAGEMENT_URL: str = _setting(
        "", "RabbitMQ management API, e.g. `http://guest:guest@host:15672`. Empty: passive declares."
    )
    STUCK_SUBMITTED_SECONDS: int = _setting(
        600, "Longest a session may wait in `submitted` before ops re-queues it."
    )
    STUCK_REVIEW_SECONDS: int = _setting(
        259200, "Longest in `in_review` (a person decides) before it is flagged."
    )
    STUCK_QUEUED_SECONDS: int = _setting(900, "Longest in `queued` before ops re-queues it.")
    STUCK_PREPROCESSING_SECONDS: int = _setting(900, "Longest in `preprocessing` without progress.")
    STUCK_TRAINING_SECONDS: int = _setting(3600, "Longest in `training` without progress.")
    STUCK_GENERATING_SECONDS: int = _setting(1800, "Longest in `generating` without a new headshot.")
    RENDER_SIZE: str = _setting(
        "", "`WIDTHxHEIGHT` every headshot is rendered at instead of its format's size (previews, tests)."
    )
    LIKENESS_POLICY: str = _setting(
        "retry",
        "`retry` (score; re-render a shot with no face or too little likeness), `score-only`, or `off`.",
    )
    LIKENESS_TRIES: int = _setting(3, "Renders of one shot at most under the `retry` likeness policy.")
    # --- data retention --------------------------------------------------------------------------
    DEFAULT_RETENTION_DAYS: int = _setting(30, "Days results are kept when the organization sets none.")
    RETENTION_CHECK_SECONDS: int = _setting(
        3600, "Seconds between retention rounds (one instance runs each round; uploads past retention go)."
    )

    # ---------------------------------------------------------------------------------------------
    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read every setting from ``environ`` (default ``os.environ``); ``overrides`` win."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name in environ:
                values[f.name] = _coerce(f.name, environ[f.name], type(f.default))
        values.update(overrides)
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    # --- derived values (never stored twice) ----------------------------------------------------
    @property
    def database_url(self) -> str:
        return self.DATABASE_URL or f"sqlite:///{Path(self.VAR_DIR) / 'headshots.db'}"

    @property
    def blob_dir(self) -> Path:
        return Path(self.BLOB_DIR) if self.BLOB_DIR else Path(self.VAR_DIR) / "blobs"

    @property
    def person_model_dir(self) -> Path:
        return Path(self.PERSON_MODEL_DIR) if self.PERSON_MODEL_DIR else Path(self.VAR_DIR) / "person-models"

    @property
    def mail_dir(self) -> Path:
        return Path(self.VAR_DIR) / "mail"

    @property
    def public_url(self) -> str:
        return (self.PUBLIC_URL or f"http://{self.HOST}:{self.PORT}").rstrip("/")

    @property
    def engine(self) -> str:
        if self.ENGINE != "auto":
            return self.ENGINE
        return "diffusion" if self.MODEL_DIR else "studio"

    @property
    def embedded_broker(self) -> bool:
        return self.BROKER_URL.startswith("memory://")


class SettingsError(ValueError):
    pass


def _coerce(name: str, raw: str, kind: type) -> Any:
    try:
        if kind is bool:
            lowered = raw.strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(raw)
        return kind(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a valid {kind.__name__}") from None


def markdown_table() -> str:
    """The README's table of settings, generated from the fields above."""
    rows = ["| setting | type | default | meaning |", "| --- | --- | --- | --- |"]
    for f in dataclasses.fields(Settings):
        default = f.default
        if f.name == "VAR_DIR":
            default = "`var/` in the checkout"
        elif default == "":
            default = "(empty)"
        else:
            default = f"`{default}`"
        rows.append(f"| `{f.name}` | {type(f.default).__name__} | {default} | {f.metadata['doc']} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m libs.settings",
        description="Print the settings table (markdown), or the values in force with --current.",
    )
    parser.add_argument("--current", action="store_true", help="print the values read from the environment")
    args = parser.parse_args(argv)
    if args.current:
        current = Settings.from_env()
        for f in dataclasses.fields(Settings):
            value = "***" if f.name == "SECRET_KEY" else getattr(current, f.name)
            print(f"{f.name}={value}")
    else:
        print(markdown_table())


if __name__ == "__main__":
    main()
