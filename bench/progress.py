"""Live progress fan-out: the gateway against a bare python-socketio server, in one run.

    python bench/progress.py                  # 500 waiting pages per side, 100 events (~1-4 min)
    python bench/progress.py --pages 200      # quicker
    python bench/progress.py --clients python # pages as python-socketio clients instead (slower)

N waiting pages are split across TWO server processes of each kind, all following one session, so
every event goes to every page. The pages are socket.io-client connections (the library the
browser page uses, pinned in bench/node/package.json, installed with npm on the first run) in
one Node process: python-socketio clients, a few threads each in the benchmark's own process,
cost more than the servers and were most of what was measured.

- ours: the event is written to the outbox on PostgreSQL (commit) -> the relay publishes it with
        confirms to RabbitMQ -> each gateway process (`python -m services.gateway`, its own
        exclusive queue) decodes it with the contract, tags it with its outbox id and emits it
        to the session's room;
- bare: python-socketio's own multi-process fan-out: KombuManager(write_only) emits through
        RabbitMQ -> each bare server process (socketio.Server + KombuManager, threading mode,
        simple-websocket, on the same Werkzeug server) emits to its room;
- bare without compression: the same, answering websockets without permessage-deflate as the
        gateway does (services/gateway/transport.py): python-socketio's fan-out, like for like;
- bare with direct writes: the same again, also writing each page's frames from the emitting
        thread as the gateway does (transport.py): the gateway's fan-out without the outbox,
        the relay and the contract, so what the gateway adds on top is what it costs.

Latency of one event = from just before the commit (ours) or the emit call (bare) until the
LAST page has it; events go one at a time, alternating between the sides so the machine's noise
hits all of them. p50/p99 over events, and the ratios ours/bare. Also the p50 until the event is
on the broker (a probe queue bound like the servers') and until the FIRST page has it: the fixed
cost of each path; what is left to the last page is the fan-out. For the gateway, where the time
went: the commit (timed by the producer here) and each gateway process's own timings (/stats:
from the event being made to the process having it, then to having written it to every page).
Memory per page = growth of the server processes' RSS while the pages connect (after a first
batch of 25 pages each), divided by the pages. Writes bench/results/progress.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
import socketio  # noqa: E402
from kombu import Connection, Consumer, Exchange, Queue  # noqa: E402

from bench.support.results import write_results  # noqa: E402
from bench.support.servers import server_arguments, throwaway_servers  # noqa: E402
from libs.contracts import SESSION_PROGRESS, SessionState, decode_message, new_message  # noqa: E402
from libs.db import Database  # noqa: E402
from libs.db.demo import seed_demo  # noqa: E402
from libs.messaging import Bus, declare_gateway_queue  # noqa: E402
from libs.settings import Settings  # noqa: E402
from services.gateway.transport import WithoutCompression, write_directly  # noqa: E402
from tests.support.gateway import new_session, token_for  # noqa: E402
from tests.support.gateway_process import gateway_process  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "progress.json"
NODE_PAGES = ROOT / "bench" / "node" / "pages.js"
BARE_NAMESPACE = "/bare"
ROOM = "all"
BARE_MODES = ("stock", "uncompressed", "direct")
CONNECT_BATCH = 25  # pages that connect at once (bench/node/pages.js, PythonPages.connect)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


@dataclass(frozen=True)
class Listen:
    """What the pages of one side do: where they listen and how an event is numbered."""

    namespace: str
    auth: Any
    follow: bool  # the gateway's pages ask to follow their session; bare pages are in the room
    key: str  # dotted path of the payload field numbering the event ("data.done", "n")
    type: str | None = None  # only payloads of this "type" count


class PythonPages:
    """Pages as python-socketio clients in this process (each with its own threads): the clients'
    own cost is then a large part of what is measured (see --clients)."""

    def __init__(self, listen: Listen) -> None:
        self.listen = listen
        self.clients: list[socketio.Client] = []
        self.arrivals: dict[int, list[float]] = {}
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        return len(self.clients)

    def _on_event(self, payload: dict[str, Any]) -> None:
        now = time.time()
        if self.listen.type is not None and payload.get("type") != self.listen.type:
            return
        key: Any = payload
        for part in self.listen.key.split("."):
            key = key.get(part) if isinstance(key, dict) else None
        if key is not None:
            with self._lock:
                self.arrivals.setdefault(int(key), []).append(now)

    def connect(self, count: int, url: str, path: str) -> None:
        namespace = self.listen.namespace

        def one() -> None:
            client = socketio.Client(reconnection=False)
            client.on("event", self._on_event, namespace=namespace)
            client.connect(
                url,
                auth=self.listen.auth,
                transports=["websocket"],
                namespaces=[namespace],
                socketio_path=path,
                wait_timeout=30,
            )
            if self.listen.follow:
                client.call("follow", {"last_id": 2**62}, namespace=namespace, timeout=30)
            with self._lock:
                self.clients.append(client)

        # A few at a time: a burst of handshakes is not what is measured.
        for start in range(0, count, CONNECT_BATCH):
            threads = [threading.Thread(target=one) for _ in range(min(CONNECT_BATCH, count - start))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)

    def wait_all(self, key: int, timeout: float = 10.0) -> tuple[float, float] | None:
        """(first, last) arrival of event ``key`` once every page has it; None after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                got = self.arrivals.get(key, [])
                if len(got) >= len(self.clients):
                    return min(got), max(got)
            time.sleep(0.0005)
        return None

    def close(self) -> None:
        # Closing a websocket client waits up to 3 s for a close frame the dev server never sends:
        # the servers are stopped instead, which ends every connection at once.
        self.clients.clear()


class NodePages:
    """Pages as socket.io-client connections (the browser page's library) in one Node process
    (bench/node/pages.js): one event loop for all of them, so the servers are what is measured."""

    def __init__(self, listen: Listen) -> None:
        self.count = 0
        self._done: dict[int, tuple[float, float]] = {}
        self._answers: queue.Queue[dict[str, Any]] = queue.Queue()
        self._changed = threading.Condition()
        options = {"namespace": listen.namespace, "auth": listen.auth, "follow": listen.follow}
        options.update(key=listen.key, type=listen.type)
        self._proc = subprocess.Popen(
            ["node", str(NODE_PAGES), json.dumps(options)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            answer = json.loads(line)
            if "all" in answer:
                with self._changed:
                    self._done[int(answer["all"])] = (float(answer["first"]), float(answer["at"]))
                    self._changed.notify_all()
            else:
                self._answers.put(answer)
        self._answers.put({"error": f"the Node pages ended (exit {self._proc.wait()})"})

    def connect(self, count: int, url: str, path: str) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps({"connect": url, "path": path, "count": count}) + "\n")
        self._proc.stdin.flush()
        answer = self._answers.get(timeout=300)
        if "error" in answer:
            raise SystemExit(f"Node pages: {answer['error']}")
        self.count = int(answer["connected"])

    def wait_all(self, key: int, timeout: float = 10.0) -> tuple[float, float] | None:
        with self._changed:
            self._changed.wait_for(lambda: key in self._done, timeout)
            return self._done.get(key)

    def close(self) -> None:
        self._proc.kill()
        self._proc.wait(10)


Pages = PythonPages | NodePages


class BrokerProbe:
    """One more listener on the broker, bound like the side's servers (a gateway queue, or a queue on
    KombuManager's fanout exchange): when an event is there, every server could have it. Splits the
    latency into the way to the broker (outbox + relay, or the emitter) and the servers' part."""

    def __init__(
        self, amqp_url: str, bind: Callable[[Connection], Queue], key_of: Callable[[bytes], int]
    ) -> None:
        self._conn = Connection(amqp_url)
        self._queue = bind(self._conn)
        self._key_of = key_of
        self._arrived: dict[int, float] = {}
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        def on_message(message: Any) -> None:
            now = time.time()
            with self._changed:
                self._arrived[self._key_of(message.body)] = now
                self._changed.notify_all()

        with Consumer(self._conn.default_channel, queues=[self._queue], on_message=on_message, no_ack=True):
            while not self._stop.is_set():
                with suppress(TimeoutError):
                    self._conn.drain_events(timeout=0.25)

    def at(self, key: int, timeout: float = 10.0) -> float | None:
        with self._changed:
            self._changed.wait_for(lambda: key in self._arrived, timeout)
            return self._arrived.get(key)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._conn.release()


def node_pages_ready() -> None:
    """Install bench/node's pinned socket.io-client (npm) the first time; fail clearly without Node."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise SystemExit("--clients node needs Node.js and npm (or run with --clients python)")
    if not (NODE_PAGES.parent / "node_modules" / "socket.io-client").is_dir():
        subprocess.run(
            ["npm", "ci", "--silent", "--no-audit", "--no-fund"], cwd=NODE_PAGES.parent, check=True
        )


def measure(stacks: dict[str, Stack], events: int) -> dict[str, dict[str, Any]]:
    """Send events one at a time, alternating between the stacks (the machine's noise hits both)."""
    latencies: dict[str, list[float]] = {name: [] for name in stacks}
    firsts: dict[str, list[float]] = {name: [] for name in stacks}
    brokers: dict[str, list[float]] = {name: [] for name in stacks}
    missing = dict.fromkeys(stacks, 0)
    for i in range(1, events + 1):
        for name, stack in stacks.items():
            sent = stack.send(i)
            arrived = stack.pages.wait_all(i)
            if arrived is None:
                missing[name] += 1
            else:
                firsts[name].append(arrived[0] - sent)
                latencies[name].append(arrived[1] - sent)
            at_broker = stack.probe.at(i, timeout=2.0)  # the pages have it: so has the broker
            if at_broker is not None:
                brokers[name].append(at_broker - sent)
            time.sleep(0.01)
    out = {}
    for name, values in latencies.items():
        if not values:
            raise SystemExit(f"{name}: no event reached every page")
        out[name] = {
            "p50_ms": round(statistics.median(values) * 1000, 2),
            "p99_ms": round(percentile(values, 0.99) * 1000, 2),
            # On the broker (ready for every server), then at the FIRST page: the path's fixed cost;
            # the rest of p50 is the fan-out to every page.
            "broker_p50_ms": round(statistics.median(brokers[name]) * 1000, 2),
            "first_page_p50_ms": round(statistics.median(firsts[name]) * 1000, 2),
            "events_missing_a_page": missing[name],
            "pages": stacks[name].pages.count,
            "kib_per_page": stacks[name].kib_per_page,
            **stacks[name].breakdown(),
        }
    return out


@dataclass
class Stack:
    pages: Pages
    probe: BrokerProbe
    send: Callable[[int], float]
    kib_per_page: float
    breakdown: Callable[[], dict[str, Any]] = dict  # more of where the time went (the gateway's)


def open_pages(clients: str, listen: Listen) -> Pages:
    return NodePages(listen) if clients == "node" else PythonPages(listen)


def connect_pages(pages: Pages, servers: list[tuple[str, int]], count: int, path: str) -> float:
    """Connect ``count`` pages split over the servers; return the KiB of server RSS per page.
    A first batch per server (as many as connect at once) is not counted: what grows once, with
    the first concurrent handshakes (imports, the database pool, the server's threads), is not a
    page's."""
    warm = max(1, min(CONNECT_BATCH, count // (2 * len(servers))))
    for url, _pid in servers:
        pages.connect(warm, url, path)
    before = sum(rss_kib(pid) for _url, pid in servers)
    rest = count - warm * len(servers)
    share = rest // len(servers)
    for n, (url, _pid) in enumerate(servers):
        extra = rest - share * len(servers) if n == 0 else 0
        pages.connect(share + extra, url, path)
    after = sum(rss_kib(pid) for _url, pid in servers)
    if pages.count != count:
        raise SystemExit(f"only {pages.count} of {count} pages connected")
    return round((after - before) / max(1, rest), 1)


# --- ours ----------------------------------------------------------------------------------------------
@contextmanager
def gateway_stack(settings: Settings, pages_count: int, clients: str) -> Iterator[Stack]:
    db = Database(settings.database_url)
    demo = seed_demo(db)
    sid = new_session(db, demo.employees[0], SessionState.GENERATING)
    auth = {"session_id": sid, "token": token_for(settings, db, sid)}
    bus = Bus(settings, db)
    bus.declare()
    relay = bus.relay()
    stop = threading.Event()
    threading.Thread(target=relay.run_forever, args=(stop,), daemon=True).start()
    pages = open_pages(clients, Listen("/progress", auth, True, "data.done", SESSION_PROGRESS.routing_key))
    org = str(demo.employees[0].org_id)
    commits: list[float] = []

    def send(i: int) -> float:
        started = time.time()
        message = new_message(
            SESSION_PROGRESS, org_id=org, session_id=sid, stage="generating", done=i, total=i
        )
        with db.uow(org_id=org) as uow:
            uow.add_message(message)
            uow.commit()
        if i > 0:
            commits.append(time.time() - started)
        return started

    def breakdown(urls: list[str]) -> dict[str, Any]:
        """The commit (timed here), and what each gateway process timed (its /stats): from the event
        being made to the process having it, and from then to having written it to every page."""
        stats = [requests.get(f"{url}/gateway/stats", timeout=10).json() for url in urls]
        return {
            "commit_p50_ms": round(statistics.median(commits) * 1000, 2),
            "gateway_processes": [
                {k: one[k] for k in ("delivered", "written_directly", "timings")} for one in stats
            ],
        }

    try:
        with gateway_process(settings) as first, gateway_process(settings) as second:
            servers = [(first.url, first.pid), (second.url, second.pid)]
            kib = connect_pages(pages, servers, pages_count, "/gateway/socket.io")
            probe = BrokerProbe(
                settings.BROKER_URL,
                lambda conn: declare_gateway_queue(conn, f"bench-probe-{uuid.uuid4().hex[:8]}"),
                lambda body: int(decode_message(body).data["done"]),
            )
            send(0)  # warm the path (relay connection, first emit)
            pages.wait_all(0)
            yield Stack(pages, probe, send, kib, lambda: breakdown([first.url, second.url]))
            probe.close()
            pages.close()
    finally:
        stop.set()
        relay.close()
        db.dispose()


# --- bare python-socketio --------------------------------------------------------------------------------
def serve_bare(amqp_url: str, channel: str, mode: str) -> None:
    """A bare python-socketio server process (``--serve-bare``): prints its port, serves until killed.
    ``mode`` (BARE_MODES): "stock" is python-socketio as it comes; "uncompressed" answers websockets
    without permessage-deflate as the gateway does; "direct" also writes frames on the emitting
    thread as the gateway does (both services/gateway/transport.py)."""
    from werkzeug.serving import make_server

    manager = socketio.KombuManager(amqp_url, channel=channel)
    server = socketio.Server(async_mode="threading", client_manager=manager)
    if mode == "direct":
        write_directly(server.eio)

    @server.on("connect", namespace=BARE_NAMESPACE)
    def connect(sid: str, _environ: Any, _auth: Any = None) -> None:
        server.enter_room(sid, ROOM, namespace=BARE_NAMESPACE)

    app: Any = socketio.WSGIApp(server)
    http = make_server("127.0.0.1", 0, app if mode == "stock" else WithoutCompression(app), threaded=True)
    print(f"bare at http://127.0.0.1:{http.server_port}", flush=True)
    http.serve_forever()


@contextmanager
def bare_process(amqp_url: str, channel: str, mode: str) -> Iterator[tuple[str, int]]:
    flags = ["--serve-bare", "--amqp-url", amqp_url, "--channel", channel, "--mode", mode]
    proc = subprocess.Popen(
        [sys.executable, __file__, *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("bare at "):
            raise SystemExit(f"bare server did not start: {line!r}")
        yield line.split()[2], proc.pid
    finally:
        proc.terminate()
        proc.wait(20)


@contextmanager
def bare_stack(amqp_url: str, pages_count: int, clients: str, mode: str) -> Iterator[Stack]:
    pages = open_pages(clients, Listen(BARE_NAMESPACE, None, False, "n"))
    channel = f"bench-bare-{uuid.uuid4().hex[:8]}"  # each bare side its own fanout exchange
    emitter = socketio.KombuManager(amqp_url, channel=channel, write_only=True)

    def send(i: int) -> float:
        started = time.time()
        emitter.emit("event", {"n": i}, room=ROOM, namespace=BARE_NAMESPACE)
        return started

    def bind(conn: Connection) -> Queue:
        fanout = Exchange(channel, type="fanout", durable=False)  # KombuManager's exchange
        probe_queue = Queue(f"bench-probe.{uuid.uuid4()}", fanout, durable=False, auto_delete=True)
        bound = probe_queue(conn.default_channel)
        bound.declare()
        return bound

    def key_of(body: bytes) -> int:
        args = json.loads(body)["data"]  # KombuManager's message: {"method": "emit", "data": [payload], ...}
        return int((args[0] if isinstance(args, list) else args)["n"])

    probe = BrokerProbe(amqp_url, bind, key_of)
    with (
        bare_process(amqp_url, channel, mode) as first,
        bare_process(amqp_url, channel, mode) as second,
    ):
        kib = connect_pages(pages, [first, second], pages_count, "/socket.io")
        # KombuManager's listener binds its queue in a thread of its own: wait for a first event.
        for _ in range(50):
            send(0)
            if pages.wait_all(0, timeout=0.2) is not None:
                break
        yield Stack(pages, probe, send, kib)
        probe.close()
        pages.close()


def main(argv: list[str] | None = None) -> int:
    parser = server_arguments(__doc__)
    parser.add_argument("--pages", type=int, default=500, help="waiting pages per side (default 500)")
    parser.add_argument("--events", type=int, default=100, help="events sent one at a time (default 100)")
    parser.add_argument(
        "--clients",
        choices=("node", "python"),
        default="node",
        help="the pages: socket.io-client in one Node process (default), or python-socketio clients "
        "in this process (their own cost then dominates both sides)",
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS.relative_to(ROOT)})"
    )
    parser.add_argument("--serve-bare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--channel", default="socketio", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=BARE_MODES, default="stock", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_bare:
        serve_bare(args.amqp_url, args.channel, args.mode)
        return 0
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    # Stopped from outside (timeout, kill): still stop the servers and drop the vhost and database.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    if args.clients == "node":
        node_pages_ready()
    started = time.monotonic()
    with throwaway_servers(args.amqp_url, args.pg_url) as (amqp_url, pg_url):
        settings = Settings(
            BROKER_URL=amqp_url,
            DATABASE_URL=pg_url,
            SECRET_KEY=uuid.uuid4().hex,
            VAR_DIR=str(ROOT / "var" / "bench"),
        )
        print(
            f"{args.pages} waiting pages ({args.clients} clients) on each side (two processes each), "
            f"{args.events} events one at a time"
        )
        with (
            bare_stack(amqp_url, args.pages, args.clients, "stock") as bare_side,
            bare_stack(amqp_url, args.pages, args.clients, "uncompressed") as plain_side,
            bare_stack(amqp_url, args.pages, args.clients, "direct") as direct_side,
            gateway_stack(settings, args.pages, args.clients) as ours_side,
        ):
            stacks = {
                "bare": bare_side,
                "bare_uncompressed": plain_side,
                "bare_direct": direct_side,
                "gateway": ours_side,
            }
            figures = measure(stacks, args.events)
        bare, plain, direct, ours = (
            figures[k] for k in ("bare", "bare_uncompressed", "bare_direct", "gateway")
        )

    def ratio_to(base: dict[str, Any]) -> dict[str, float]:
        return {q: round(ours[f"{q}_ms"] / base[f"{q}_ms"], 2) for q in ("p50", "p99")}

    ratio, uncompressed, like_for_like = ratio_to(bare), ratio_to(plain), ratio_to(direct)
    print(f"{'':<46}{'p50 ms':>9}{'p99 ms':>9}{'broker':>9}{'1st page':>9}{'KiB/page':>10}")
    for name, row in (
        ("bare python-socketio (KombuManager)", bare),
        ("bare, websockets without compression", plain),
        ("bare, no compression, direct writes", direct),
        ("gateway (outbox+relay+own queues)", ours),
    ):
        print(
            f"{name:<46}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}{row['broker_p50_ms']:>9.2f}"
            f"{row['first_page_p50_ms']:>9.2f}{row['kib_per_page']:>10.1f}"
        )
    for name, r in (
        ("ratio gateway/bare", ratio),
        ("ratio gateway/bare without compression", uncompressed),
        ("ratio gateway/bare with direct writes", like_for_like),
    ):
        print(f"{name:<46}{r['p50']:>9.2f}{r['p99']:>9.2f}")
    print("gateway, where the time went (p50 ms from just before the commit):")
    print(f"  commit done {ours['commit_p50_ms']:.2f}, on the broker {ours['broker_p50_ms']:.2f}")
    for n, one in enumerate(ours["gateway_processes"], 1):
        timings = one["timings"]
        if timings["lag_ms"] is None:
            continue
        print(
            f"  process {n}: has it {timings['lag_ms']['p50']:.2f}, then written to its pages in "
            f"{timings['handling_ms']['p50']:.2f} (p99 {timings['handling_ms']['p99']:.2f}); "
            f"{one['written_directly']} frames written directly"
        )
    print(f"  first page {ours['first_page_p50_ms']:.2f}, last page {ours['p50_ms']:.2f}")
    result = {
        "benchmark": "progress",
        "pages": args.pages,
        "events": args.events,
        "clients": args.clients,
        "bare_python_socketio": bare,
        "bare_python_socketio_uncompressed": plain,
        "bare_python_socketio_direct_writes": direct,
        "gateway": ours,
        "ratio_gateway_over_bare": ratio,
        "ratio_gateway_over_bare_uncompressed": uncompressed,
        "ratio_gateway_over_bare_direct_writes": like_for_like,
        "seconds": round(time.monotonic() - started, 1),
        "context": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
        },
    }
    write_results(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
