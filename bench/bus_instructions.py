"""The CPU work of one message on the bus's path, counted in instructions rather than timed.

    python bench/bus_instructions.py              # every path, 40 and 240 messages each (~5 min)
    python bench/bus_instructions.py --paths raw ours --messages 40 140

bench/bus.py times the path; on the 2-core machines it runs on, a round's ratios swing by more
than most changes to the code could move them (the machine's own speed drifts by up to two to one
within minutes, docs/messaging.md). This counts what the benchmark's own process executes for a
message sent one at a time (bus.py's latency run: producer, relay and consumer in one process,
RabbitMQ and PostgreSQL as there), with valgrind's callgrind: the same code gives the same count
whatever else the machine is doing. It is not a time (the servers' work and every wait are left
out, and an instruction of the interpreter is not an instruction of the kernel), but a step of
the Python code that got cheaper or dearer shows here when bus.py's rounds cannot tell it from
noise.

Each path runs twice in a process of its own under callgrind, with --messages' two counts (after
the same warm-up, the same one-message throughput runs, the same imports and connections), and
the difference of the two totals divided by the difference of the counts is the count per
message; the hash seed is fixed so that both runs build the same dictionaries. Paths: raw kombu
(publish with confirm, consume, ack), the same work written directly with psycopg and kombu, and
libs/messaging in one process and in the embedded mode (memory://, SQLite), as in bus.py. Ratios
are against raw kombu's count in the same run. Writes bench/results/bus_instructions.json.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bus import bench_embedded, bench_ours, bench_raw, bench_raw_same_work  # noqa: E402
from bench.support.results import write_results  # noqa: E402
from bench.support.servers import server_arguments, throwaway_servers  # noqa: E402
from libs.settings import Settings  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "bus_instructions.json"

# (key, label): the paths, raw kombu first (every ratio is against it)
PATHS = (
    ("raw", "raw kombu (confirms)"),
    ("same", "same work, psycopg + kombu directly"),
    ("ours", "libs/messaging, one process"),
    ("embedded", "libs/messaging, embedded (memory://, SQLite)"),
)
TOTAL = re.compile(r"^(?:summary|totals): (\d+)", re.MULTILINE)


def run_path(path: str, messages: int, amqp_url: str, pg_url: str) -> None:
    """In the process callgrind watches: ``messages`` one at a time through ``path``, and the
    one-message throughput runs every count has alike."""
    if path == "raw":
        bench_raw(amqp_url, messages, 1)
    elif path == "same":
        bench_raw_same_work(amqp_url, pg_url, messages, 1)
    elif path == "ours":
        bench_ours(Settings(BROKER_URL=amqp_url, DATABASE_URL=pg_url), messages, 1)
    elif path == "embedded":
        bench_embedded(messages, 1)
    else:
        raise ValueError(f"unknown path {path!r}")


def count_instructions(path: str, messages: int, amqp_url: str, pg_url: str) -> int:
    """The instructions of one run of ``path`` with ``messages``, counted by callgrind."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            "--quiet",
            f"--callgrind-out-file={out}",
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            path,
            str(messages),
            amqp_url,
            pg_url,
        ]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            raise RuntimeError(
                f"{path} with {messages} messages failed under callgrind:\n{done.stderr[-3000:]}"
            )
        found = TOTAL.search(out.read_text(errors="replace"))
        if found is None:
            raise RuntimeError(f"no total in callgrind's output for {path} with {messages} messages")
        return int(found.group(1))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    if argv[:1] == ["--child"]:  # one run, inside valgrind (count_instructions starts it)
        path, messages, amqp_url, pg_url = argv[1:5]
        run_path(path, int(messages), amqp_url, pg_url)
        return 0
    parser = server_arguments(__doc__)
    parser.add_argument(
        "--paths",
        nargs="+",
        choices=[key for key, _ in PATHS],
        default=[key for key, _ in PATHS],
        help="paths to count (default: all; raw kombu is always counted, for the ratios)",
    )
    parser.add_argument(
        "--messages",
        nargs=2,
        type=int,
        default=(40, 240),
        metavar=("FEW", "MANY"),
        help="the two message counts whose difference is measured (default 40 240)",
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS.relative_to(ROOT)})"
    )
    args = parser.parse_args(argv)
    few, many = args.messages
    if many <= few:
        parser.error("--messages: the second count must be larger than the first")
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: apt-get install valgrind", file=sys.stderr)
        return 2
    paths = [key for key, _ in PATHS if key == "raw" or key in args.paths]
    labels = dict(PATHS)

    per_message: dict[str, float] = {}
    with throwaway_servers(args.amqp_url, args.pg_url) as (amqp_url, pg_url):
        print(f"instructions of this process per message, one at a time ({many} - {few} messages)")
        for path in paths:
            totals = [count_instructions(path, n, amqp_url, pg_url) for n in (few, many)]
            per_message[path] = (totals[1] - totals[0]) / (many - few)
            print(f"  {labels[path]:<48}{per_message[path] / 1e6:>8.3f} M", flush=True)

    raw = per_message["raw"]
    print(f"{'path':<50}{'M instr/msg':>12}{'x raw':>8}")
    for path in paths:
        print(f"{labels[path]:<50}{per_message[path] / 1e6:>12.3f}{per_message[path] / raw:>8.2f}")
    result = {
        "benchmark": "bus_instructions",
        "messages": [few, many],
        "instructions_per_message": {path: round(value) for path, value in per_message.items()},
        "x_raw": {path: round(value / raw, 3) for path, value in per_message.items()},
    }
    write_results(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
