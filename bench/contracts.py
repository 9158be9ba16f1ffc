"""What the contracts cost per message: building, serialising and decoding each event, in one run.

    python bench/contracts.py                 # 2,000 messages per event type and side
    python bench/contracts.py --messages 500  # quicker

For every event type on the bus (and the webhook test type), a typical body is:

- ours: ``new_message(...)`` (the producer's validation), ``.to_json()``, then ``decode_message``
        of those bytes (the consumer's validation): what a message costs the services besides I/O;
- raw:  ``json.dumps`` then ``json.loads`` of the same envelope dict, no validation: the floor.

Messages per second of each, and the ratio raw / ours (how many times slower the validated path is),
measured alternately in rounds so the machine's noise hits both alike; the figure of each side is
the median of its rounds. Writes bench/results/contracts.json (``--out``).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: `python bench/contracts.py`

from bench.support.results import write_results  # noqa: E402
from libs.contracts import (  # noqa: E402
    EVENTS,
    HEADSHOT_GENERATED,
    MEMBER_INVITED,
    MODEL_TRAINED,
    MODELS_RETIRED,
    PHOTOS_PROCESSED,
    SESSION_APPROVED,
    SESSION_COMPLETED,
    SESSION_FAILED,
    SESSION_PROGRESS,
    SESSION_REJECTED,
    SESSION_SUBMITTED,
    WEBHOOK_TESTED,
    EventType,
    decode_message,
    new_message,
)

RESULTS = ROOT / "bench" / "results" / "contracts.json"
ROUNDS = 5

# One typical body per event type: what the services send (ids are uuid strings).
ID = "6c1f0c52-3d0e-4a47-9d6e-2b1c1f0e9a11"
BODIES: dict[EventType, dict[str, Any]] = {
    SESSION_SUBMITTED: {
        "package": "executive",
        "format": "portrait",
        "styles": ["navy:suit", "white:shirt", "outdoor:knit"],
        "photo_count": 6,
    },
    SESSION_APPROVED: {"auto": False, "reviewer_id": ID},
    SESSION_REJECTED: {"reviewer_id": ID, "reason": "Please upload photos without sunglasses."},
    PHOTOS_PROCESSED: {"photo_ids": [ID] * 6},
    MODEL_TRAINED: {"person_model_id": ID, "engine": "studio", "seconds": 12.5},
    HEADSHOT_GENERATED: {"headshot_id": ID, "style": "navy:suit", "done": 3, "total": 16},
    SESSION_COMPLETED: {"headshot_count": 16},
    SESSION_FAILED: {"stage": "generating", "reason": "The engine ran out of memory twice."},
    MODELS_RETIRED: {"person_model_ids": [ID] * 3},
    SESSION_PROGRESS: {"stage": "generating", "done": 3, "total": 16},
    MEMBER_INVITED: {"user_id": ID, "invited_by": ID},
    WEBHOOK_TESTED: {"requested_by": ID},
}


def ours(event: EventType, data: dict[str, Any]) -> Callable[[], None]:
    session_id = ID if event.needs_session else None

    def run() -> None:
        decode_message(new_message(event, org_id=ID, session_id=session_id, **data).to_json().encode())

    return run


def raw(event: EventType, data: dict[str, Any]) -> Callable[[], None]:
    envelope = new_message(event, org_id=ID, session_id=ID if event.needs_session else None, **data).to_dict()

    def run() -> None:
        json.loads(json.dumps(envelope, separators=(",", ":"), sort_keys=True).encode())

    return run


def per_second(run: Callable[[], None], messages: int) -> float:
    start = time.perf_counter()
    for _ in range(messages):
        run()
    return messages / (time.perf_counter() - start)


def bench_event(event: EventType, messages: int) -> dict[str, float]:
    runs = {"ours": ours(event, BODIES[event]), "raw": raw(event, BODIES[event])}
    for run in runs.values():  # warm-up
        per_second(run, max(1, messages // 10))
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(ROUNDS):
        for name, run in runs.items():
            rates[name].append(per_second(run, max(1, messages // ROUNDS)))
    ours_rate, raw_rate = statistics.median(rates["ours"]), statistics.median(rates["raw"])
    return {
        "ours_per_second": round(ours_rate),
        "ours_us_per_message": round(1e6 / ours_rate, 1),
        "raw_per_second": round(raw_rate),
        "raw_over_ours": round(raw_rate / ours_rate, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--messages", type=int, default=2000, help="messages per event type and side (default: 2000)"
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS.relative_to(ROOT)})"
    )
    args = parser.parse_args(argv)
    missing = {str(e) for e in EVENTS.values()} - {str(e) for e in BODIES}
    if missing:
        parser.error(f"no typical body for {sorted(missing)}: add one to BODIES")
    figures = {key: bench_event(event, args.messages) for key, event in EVENTS.items()}
    print(f"{'event':<20} {'ours msg/s':>11} {'us/msg':>8} {'raw msg/s':>10} {'raw/ours':>9}")
    for key, f in figures.items():
        print(
            f"{key:<20} {f['ours_per_second']:>11,} {f['ours_us_per_message']:>8} "
            f"{f['raw_per_second']:>10,} {f['raw_over_ours']:>8}x"
        )
    print("ours: new_message + to_json + decode_message; raw: json.dumps + json.loads of the same envelope")
    write_results(
        args.out, {"python": platform.python_version(), "messages": args.messages, "events": figures}
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
