"""Where a benchmark's figures go: ``bench/results/<name>.json``, written the same way by every script.

write_results(args.out, {"benchmark": "bus", ...})   # prints "wrote bench/results/bus.json"
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_results(path: Path, result: Any) -> None:
    """``result`` as indented JSON at ``path`` (its folder made if need be); values JSON does not
    know (paths, dates) as their text."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {path}")
