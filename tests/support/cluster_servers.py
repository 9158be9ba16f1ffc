"""A private RabbitMQ node and a private PostgreSQL cluster under a temporary folder, on free ports,
for the fault runs: restarting them (``stop_app``/``start_app``, ``pg_ctl restart``) never touches the
servers other tests use. See /docs/scaling.md "A cluster on one machine" and ENVIRONMENT notes.

    with private_rabbitmq(tmp) as rabbit, private_postgres(tmp) as pg:
        rabbit.amqp_url, pg.url            # for BROKER_URL / DATABASE_URL
        rabbit.ctl("close_all_connections", "fault test")
        pg.restart()

If a server cannot be started, :class:`ServerError` says the exact command that would start it
(the tests fail with it: never a skip).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.notification import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")


class ServerError(AssertionError):
    pass


def _run(cmd: list[str], *, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    try:
        done = subprocess.run(
            cmd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServerError(f"{_shown(cmd, env)} did not finish: {exc}") from exc
    if done.returncode != 0:
        raise ServerError(f"{_shown(cmd, env)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


def _shown(cmd: list[str], env: dict[str, str] | None) -> str:
    prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
    return f"{prefix} {shlex.join(cmd)}".strip()


def _as_user(user: str, cmd: list[str]) -> list[str]:
    """Servers refuse to run as root: run as their service user when we are root."""
    return ["runuser", "-u", user, "--", *cmd] if os.geteuid() == 0 else cmd


@dataclass
class PrivateRabbitMQ:
    folder: Path
    node: str
    port: int
    dist_port: int
    management_port: int

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    @property
    def management_url(self) -> str:
        return f"http://guest:guest@127.0.0.1:{self.management_port}"

    @property
    def env(self) -> dict[str, str]:
        d = self.folder
        return {
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_PID_FILE": str(d / "pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "plugins"),
        }

    def ctl(self, *args: str, timeout: float = 120) -> str:
        return _run(["rabbitmqctl", "-q", "-n", self.node, *args], timeout=timeout)

    def start(self) -> None:
        d = self.folder
        (d / "mnesia").mkdir(parents=True, exist_ok=True)
        (d / "log").mkdir(exist_ok=True)
        (d / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\n"
            f"management.tcp.port = {self.management_port}\n"
            "management.tcp.ip = 127.0.0.1\n"
            "loopback_users = none\n"
        )
        (d / "plugins").write_text("[rabbitmq_management].\n")
        if os.geteuid() == 0:
            shutil.chown(d, "rabbitmq", "rabbitmq")
            for p in d.rglob("*"):
                shutil.chown(p, "rabbitmq", "rabbitmq")
        _run(["rabbitmq-server", "-detached"], env=self.env)
        self.await_startup()

    def await_startup(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.ctl("await_startup", timeout=60)
                return
            except ServerError:
                if time.monotonic() > deadline:
                    raise ServerError(
                        f"RabbitMQ node {self.node} did not start; start it with: "
                        f"{_shown(['rabbitmq-server', '-detached'], self.env)} "
                        f"(log in {self.folder / 'log'})"
                    ) from None
                time.sleep(1)

    def stop_app(self) -> None:
        self.ctl("stop_app")

    def start_app(self) -> None:
        self.ctl("start_app")
        self.await_startup()

    def shutdown(self) -> None:
        try:
            self.ctl("shutdown", timeout=60)
        except ServerError:
            pid = (self.folder / "pid").read_text().strip() if (self.folder / "pid").exists() else ""
            if pid.isdigit():
                subprocess.run(["kill", "-9", pid], check=False)


@dataclass
class PrivatePostgres:
    folder: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}"

    def _pg_ctl(self, *args: str) -> list[str]:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c max_connections=200"
        return _as_user(
            "postgres",
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.folder / "data"),
                "-o",
                options,
                "-l",
                str(self.folder / "log"),
                "-w",
                *args,
            ],
        )

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        initdb = _as_user(
            "postgres",
            [str(PG_BIN / "initdb"), "-D", str(self.folder / "data"), "-A", "trust", "-U", "postgres"],
        )
        _run(initdb)
        try:
            _run(self._pg_ctl("start"))
        except ServerError as exc:
            raise ServerError(
                f"PostgreSQL did not start; start it with: {shlex.join(self._pg_ctl('start'))}\n{exc}"
            ) from None

    def restart(self) -> None:
        _run(self._pg_ctl("-m", "fast", "restart"))

    def stop(self) -> None:
        subprocess.run(self._pg_ctl("-m", "immediate", "stop"), capture_output=True, check=False, timeout=120)


@contextmanager
def private_rabbitmq(folder: Path) -> Iterator[PrivateRabbitMQ]:
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    rabbit = PrivateRabbitMQ(
        folder, f"fault-{uuid.uuid4().hex[:8]}@localhost", free_port(), free_port(), free_port()
    )
    try:
        rabbit.start()
        yield rabbit
    finally:
        rabbit.shutdown()


@contextmanager
def private_postgres(folder: Path) -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres(folder, free_port())
    try:
        pg.start()
        yield pg
    finally:
        pg.stop()
