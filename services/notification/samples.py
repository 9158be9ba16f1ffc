"""Each e-mail with sample values, for previews (``python -m services.notification preview ready``)
and for checking the templates render without a database."""

from __future__ import annotations

from typing import Any

from libs.settings import Settings
from services.notification.content import WHAT_HAPPENED_DEFAULT, WHAT_TO_DO, duration
from services.notification.emails import Email, Recipient

SAMPLE_SESSION = "a51b2c3d-0000-4000-8000-000000000000"


def sample(settings: Settings, template: str) -> Email:
    base = settings.public_url
    values: dict[str, dict[str, Any]] = {
        "submitted": {
            "photo_count": 6,
            "style_count": 3,
            "manual_review": False,
            "waiting_url": f"{base}/sessions/{SAMPLE_SESSION}/waiting",
        },
        "rejected": {
            "reason": "Please add two photos without sunglasses, taken in daylight.",
            "fix_url": f"{base}/sessions/{SAMPLE_SESSION}",
        },
        "ready": {"headshot_count": 12, "results_url": f"{base}/sessions/{SAMPLE_SESSION}/results"},
        "failed": {
            "stage": "Learning your likeness",
            "what_happened": WHAT_HAPPENED_DEFAULT,
            "what_to_do": WHAT_TO_DO,
            "waiting_url": f"{base}/sessions/{SAMPLE_SESSION}/waiting",
        },
        "invite": {
            "invite_url": f"{base}/invite/sample-token",
            "valid_for": duration(settings.INVITE_TTL_SECONDS),
        },
    }
    return Email(
        template, Recipient("sample", "bea@acme.example", "Bea", "Acme Corporation"), values[template]
    )
