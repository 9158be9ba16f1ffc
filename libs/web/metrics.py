"""Prometheus metrics shared by every Flask app (labelled by service) and the /metrics route.

The route serves the process-wide registry, so it also shows the consumer's message counters and
handler durations (libs/messaging/metrics.py) and the gauges below, which the ops worker sets
every OPS_CHECK_SECONDS (docs/ops.md lists the alerts worth setting on them).
"""

from __future__ import annotations

import time

from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

REQUESTS = Counter("http_requests_total", "HTTP requests answered", ["service", "method", "status"])
LATENCY = Histogram("http_request_seconds", "HTTP request duration", ["service", "method"])
SESSIONS = Gauge("headshots_sessions", "Headshot sessions per state (set by the ops worker)", ["state"])
OUTBOX_LAG = Gauge("headshots_outbox_lag_seconds", "Age of the oldest unpublished outbox row (0: none)")
STUCK = Gauge("headshots_stuck_sessions", "Sessions the stuck check has flagged for support")


def install_metrics(app: Flask, service: str) -> None:
    @app.before_request
    def _start_timer() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.pop("request_started", None)
        if started is not None:
            elapsed = time.perf_counter() - started
            LATENCY.labels(service, request.method).observe(elapsed)
            REQUESTS.labels(service, request.method, str(response.status_code)).inc()
            if request.path not in ("/healthz", "/metrics"):
                app.logger.info(
                    "%s %s %s %.0f ms",
                    request.method,
                    request.full_path.rstrip("?"),
                    response.status_code,
                    elapsed * 1000,
                )
        return response

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST)
