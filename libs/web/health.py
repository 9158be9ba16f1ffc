"""``/healthz`` (the process answers) and ``/readyz`` (its dependencies answer)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from flask import Flask, Response, jsonify

ReadyCheck = Callable[[], None]  # raises when the dependency is not usable


def install_health(app: Flask, checks: Mapping[str, ReadyCheck]) -> None:
    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:
        results: dict[str, str] = {}
        ok = True
        for name, check in checks.items():
            try:
                check()
                results[name] = "ok"
            except Exception as exc:  # any failure means "not ready"; say which and why
                ok = False
                results[name] = f"failed: {exc}"
        return jsonify({"status": "ok" if ok else "unavailable", "checks": results}), 200 if ok else 503
