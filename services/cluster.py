"""``python -m services.cluster``: the distributed mode on this machine, every service its own process.

    python -m services.cluster                       # RabbitMQ :5672 and PostgreSQL :5432 running here
    python -m services.cluster --port 9000 --generation-workers 1 --seed

The same layout as docker-compose.yml and deploy/, without Docker: one outbox relay, two
generation workers, two gateways, and one process for each other service (intake, review, ops and
notification serve their pages and consume their events in the same process; preprocess and
generation only consume). Each is started exactly as a person would start it
(``python -m services run --only <name> --own-relay``, ``python -m services relay``), prints where it
listens, and Ctrl-C or SIGTERM stops them all cleanly: each gets SIGTERM and finishes the message in
hand (services/stopping.py), and only a process still running after ``STOP_SECONDS`` is killed.

Every process gets the environment's settings plus: the broker and database (defaults: the local
servers, database ``headshots`` created if missing), a shared ``VAR_DIR`` (blobs, person models and
.eml mail when ``SMTP_URL`` is empty), and ``PUBLIC_URL`` = intake's address so links in e-mails open
the employee pages. There is no proxy in front: each web service answers on its own port under
its usual path (``/review``, ``/ops``, ``/mail``, ``/gateway``), and the waiting page, which looks for
the gateway on its own host, falls back to polling.

Tests and the pipeline benchmark drive the same class (:class:`Cluster`): ``kill``, ``restart`` and
``add`` a process while the rest keeps running.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from services import WEB_MOUNTS
from services.stopping import catch_stop_signals

ROOT = Path(__file__).resolve().parents[1]
READY_LINE = "Press Ctrl-C to stop."  # printed by `python -m services` once a process consumes/serves
START_SECONDS = 180.0  # a busy machine imports torch and dlib slowly
STOP_SECONDS = 30.0  # each process bounds its own stop at 20 s (services/launcher.py)
DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672//"
DEFAULT_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:5432/headshots"


@dataclass(frozen=True)
class Part:
    """One kind of process: its command (after ``python``) and whether it serves HTTP."""

    name: str
    args: tuple[str, ...]
    web: bool = False


PARTS: dict[str, Part] = {
    p.name: p
    for p in (
        Part("relay", ("-m", "services", "relay")),
        Part("intake", ("-m", "services", "run", "--only", "intake", "--own-relay"), web=True),
        Part("review", ("-m", "services", "run", "--only", "review", "--own-relay"), web=True),
        Part("ops", ("-m", "services", "run", "--only", "ops", "--own-relay"), web=True),
        Part("notification", ("-m", "services", "run", "--only", "notification", "--own-relay"), web=True),
        Part("preprocess", ("-m", "services", "run", "--only", "preprocess", "--no-web", "--own-relay")),
        Part("generation", ("-m", "services", "run", "--only", "generation", "--no-web", "--own-relay")),
        Part("gateway", ("-m", "services", "run", "--only", "gateway", "--no-relay"), web=True),
    )
}


def layout(*, generation_workers: int = 2, gateways: int = 2, relays: int = 1) -> list[str]:
    """The parts to start, in order, one name per process."""
    counts = {"relay": relays, "generation": generation_workers, "gateway": gateways}
    return [name for name in PARTS for _ in range(counts.get(name, 1))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Process:
    """One running service process; its output goes to ``log`` (and to ``echo`` when given)."""

    part: Part
    index: int
    port: int | None
    log: Path
    echo: IO[str] | None = None
    popen: subprocess.Popen[str] | None = None
    ready: threading.Event = field(default_factory=threading.Event)

    @property
    def label(self) -> str:
        return f"{self.part.name}-{self.index}"

    @property
    def url(self) -> str | None:
        if self.port is None:
            return None
        return f"http://127.0.0.1:{self.port}{WEB_MOUNTS.get(self.part.name, '')}/"

    def start(self, env: Mapping[str, str]) -> None:
        self.ready.clear()
        extra = {"PORT": str(self.port)} if self.port is not None else {}
        self.popen = subprocess.Popen(
            [sys.executable, *self.part.args],
            cwd=ROOT,
            env={**env, **extra, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # Ctrl-C in the terminal reaches the cluster only; it stops them
        )
        threading.Thread(target=self._pump, args=(self.popen,), name=f"log-{self.label}", daemon=True).start()

    def _pump(self, popen: subprocess.Popen[str]) -> None:
        assert popen.stdout is not None
        with self.log.open("a") as out:
            for line in popen.stdout:
                out.write(line)
                out.flush()
                if self.echo is not None:
                    self.echo.write(f"{self.label:>14} | {line}")
                    self.echo.flush()
                if READY_LINE in line:
                    self.ready.set()

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        if self.alive():
            assert self.popen is not None
            self.popen.send_signal(sig)

    def wait(self, timeout: float) -> int | None:
        if self.popen is None:
            return None
        try:
            return self.popen.wait(max(0.0, timeout))
        except subprocess.TimeoutExpired:
            return None


class ClusterError(RuntimeError):
    pass


class Cluster:
    """Every service as its own OS process on one machine.

    ``env`` holds the settings every process gets (BROKER_URL, DATABASE_URL...); ``port`` is the
    first web port (intake's; the others follow), or 0 for free ports."""

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        parts: list[str] | None = None,
        port: int = 8000,
        log_dir: Path | None = None,
        echo: IO[str] | None = None,
    ) -> None:
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="cluster-logs-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.echo = echo
        self.processes: list[Process] = []
        self._next_port = port
        names = parts or layout()
        for name in names:
            self._add_process(name)
        intake = self.first("intake")
        public = env.get("PUBLIC_URL") or (intake.url or "").rstrip("/")
        self.env = {**os.environ, **env, "HOST": "127.0.0.1", "PUBLIC_URL": public}

    def _add_process(self, name: str) -> Process:
        part = PARTS[name]
        port = None
        if part.web:
            port = free_port() if self._next_port == 0 else self._next_port
            if self._next_port:
                self._next_port += 1
        index = 1 + sum(1 for p in self.processes if p.part.name == name)
        process = Process(part, index, port, self.log_dir / f"{name}-{index}.log", self.echo)
        self.processes.append(process)
        return process

    def first(self, name: str) -> Process:
        return self.get(name, 1)

    def get(self, name: str, index: int = 1) -> Process:
        for p in self.processes:
            if p.part.name == name and p.index == index:
                return p
        raise KeyError(f"{name}-{index}")

    def url(self, name: str, index: int = 1) -> str:
        url = self.get(name, index).url
        if url is None:
            raise KeyError(f"{name} serves no HTTP")
        return url

    # --- lifecycle -------------------------------------------------------------------------------
    def migrate(self) -> None:
        """Bring the database to the newest schema first (the compose file's one-shot ``migrate``)."""
        done = subprocess.run(
            [sys.executable, "-m", "libs.db.migrate"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=START_SECONDS,
        )
        if done.returncode != 0:
            raise ClusterError(f"migrations failed:\n{done.stdout}{done.stderr}")

    def start(self, stop: threading.Event | None = None) -> None:
        """Start every process and wait until each consumes and serves (or one of them dies)."""
        self.migrate()
        for p in self.processes:
            p.start(self.env)
        self.wait_ready(self.processes, stop)

    def wait_ready(self, processes: list[Process], stop: threading.Event | None = None) -> None:
        deadline = time.monotonic() + START_SECONDS
        for p in processes:
            while not p.ready.wait(0.2):
                if stop is not None and stop.is_set():
                    return
                if not p.alive():
                    raise ClusterError(f"{p.label} ended while starting:\n{self.tail(p)}")
                if time.monotonic() > deadline:
                    raise ClusterError(f"{p.label} not ready after {START_SECONDS:g} s:\n{self.tail(p)}")

    def add(self, name: str) -> Process:
        """Start one more process of a part (e.g. a second relay) and wait until it is ready."""
        process = self._add_process(name)
        process.start(self.env)
        self.wait_ready([process])
        return process

    def kill(self, name: str, index: int = 1) -> Process:
        """SIGKILL: the process dies wherever it is (a crash, an OOM kill)."""
        p = self.get(name, index)
        p.signal(signal.SIGKILL)
        p.wait(STOP_SECONDS)
        return p

    def restart(self, name: str, index: int = 1) -> Process:
        p = self.get(name, index)
        if p.alive():
            p.signal(signal.SIGTERM)
            if p.wait(STOP_SECONDS) is None:
                p.signal(signal.SIGKILL)
                p.wait(STOP_SECONDS)
        p.start(self.env)
        self.wait_ready([p])
        return p

    def stop(self) -> dict[str, int | None]:
        """SIGTERM to every process, then wait; kill what is still running at the deadline.
        Returns each process's exit status (None: it had to be killed)."""
        for p in self.processes:
            p.signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        codes = {p.label: p.wait(deadline - time.monotonic()) for p in self.processes}
        for p in self.processes:
            if p.alive():
                p.signal(signal.SIGKILL)
                p.wait(5)
        return codes

    def dead(self) -> list[Process]:
        return [p for p in self.processes if p.popen is not None and not p.alive()]

    def tail(self, p: Process, lines: int = 40) -> str:
        try:
            return "".join(p.log.read_text().splitlines(keepends=True)[-lines:])
        except OSError:
            return ""

    def describe(self) -> str:
        rows = []
        for p in self.processes:
            where = p.url or ("(publishes the outbox)" if p.part.name == "relay" else "(consumes events)")
            rows.append(f"  {p.label:<16} pid {p.pid:<8} {where}")
        return "\n".join(rows)


def ensure_database(url: str) -> None:
    """Create the PostgreSQL database of ``url`` if it does not exist yet."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    target = make_url(url)
    if not target.drivername.startswith("postgresql") or not target.database:
        return
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.scalar(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target.database}
            )
            if not exists:
                conn.execute(sa.text(f'CREATE DATABASE "{target.database}"'))
    finally:
        admin.dispose()


def main(argv: list[str] | None = None) -> int:
    stop = catch_stop_signals()  # first: Ctrl-C / SIGTERM only ask to stop, even while starting
    parser = argparse.ArgumentParser(
        prog="python -m services.cluster",
        description="Start every service as its own process on the local RabbitMQ and PostgreSQL (the "
        "distributed mode without Docker): a relay, two generation workers, two gateways and one process "
        "of each other service. Ctrl-C stops them all. Settings come from the environment (python -m "
        f"libs.settings); BROKER_URL defaults to {DEFAULT_BROKER}, DATABASE_URL to {DEFAULT_DATABASE}.",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=8000,
        help="intake's port; the other web services take the next ones (0: free ports) (default: 8000)",
    )
    parser.add_argument("--generation-workers", type=int, default=2, help="generation processes (default: 2)")
    parser.add_argument("--gateways", type=int, default=2, help="gateway processes (default: 2)")
    parser.add_argument("--relays", type=int, default=1, help="outbox relays; more are safe (default: 1)")
    parser.add_argument("--seed", action="store_true", help="create the demo data and print sign-in links")
    parser.add_argument("--quiet", action="store_true", help="do not echo the processes' output")
    parser.add_argument(
        "--log-dir", type=Path, help="where each process's log goes (default: VAR_DIR/cluster)"
    )
    args = parser.parse_args(argv)

    from libs.settings import Settings

    env = dict(os.environ)
    env.setdefault("BROKER_URL", DEFAULT_BROKER)
    env.setdefault("DATABASE_URL", DEFAULT_DATABASE)
    if env["BROKER_URL"].startswith("memory://") or not env["DATABASE_URL"].startswith("postgresql"):
        print(
            "error: a cluster needs RabbitMQ and PostgreSQL (memory:// and SQLite live in one process); "
            "set BROKER_URL=amqp://... and DATABASE_URL=postgresql+psycopg://...",
            file=sys.stderr,
        )
        return 2
    settings = Settings.from_env(BROKER_URL=env["BROKER_URL"], DATABASE_URL=env["DATABASE_URL"])
    env["VAR_DIR"] = settings.VAR_DIR
    ensure_database(settings.database_url)
    parts = layout(generation_workers=args.generation_workers, gateways=args.gateways, relays=args.relays)
    cluster = Cluster(
        env,
        parts=parts,
        port=args.port,
        log_dir=args.log_dir or Path(settings.VAR_DIR) / "cluster",
        echo=None if args.quiet else sys.stdout,
    )
    print(f"starting {len(parts)} processes (logs in {cluster.log_dir})", flush=True)
    try:
        cluster.start(stop)
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        cluster.stop()
        return 1
    if not stop.is_set():
        if args.seed:
            subprocess.run([sys.executable, "-m", "services", "seed"], cwd=ROOT, env=cluster.env, check=False)
        print(f"\nRunning ({len(cluster.processes)} processes):\n{cluster.describe()}", flush=True)
        print(f"Employees' links open {cluster.env['PUBLIC_URL']}/. Press Ctrl-C to stop.", flush=True)
    reported: set[str] = set()
    while not stop.wait(0.5):
        for p in cluster.dead():
            if p.label not in reported:
                reported.add(p.label)
                print(
                    f"warning: {p.label} exited with status {p.popen.returncode if p.popen else '?'}; "
                    f"its log: {p.log}",
                    file=sys.stderr,
                    flush=True,
                )
    print("Stopping…", flush=True)
    codes = cluster.stop()
    unclean = {label: code for label, code in codes.items() if code != 0 and label not in reported}
    for label, code in unclean.items():
        print(
            f"  {label}: " + (f"killed after {STOP_SECONDS:g} s" if code is None else f"exit status {code}")
        )
    print("Stopped.", flush=True)
    return 0 if not unclean else 1


if __name__ == "__main__":
    sys.exit(main())
