"""The product's services. Each folder is one service; it imports libs/, never another service.

Only the launcher (``python -m services``, :mod:`services.launcher`) knows them all: it mounts
every web app that exists and runs every worker's handlers.
"""

# Where each web service is mounted in the embedded mode (and behind a single host in production).
WEB_MOUNTS: dict[str, str] = {
    "intake": "",
    "review": "/review",
    "ops": "/ops",
    "gateway": "/gateway",
    "notification": "/mail",
}

SERVICE_NAMES: tuple[str, ...] = (
    "intake",
    "review",
    "preprocess",
    "generation",
    "notification",
    "ops",
    "gateway",
)
