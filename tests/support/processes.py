"""Run a command of the product as a person does (``python -m ...``) and stop it with a signal.

    proc = start_command(["-m", "services"], tmp_path)
    out = read_until(proc, r"Press Ctrl-C")
    rest = stop_with(proc, signal.SIGINT)        # asserts exit 0, "Stopped." and no traceback

``start_command(..., signals_blocked=True)`` starts the process with SIGINT and SIGTERM blocked,
the way some supervisors do: a signal sent at once stays pending until the program's own handler
takes it, which is how a test sends one "in the first instruction" deterministically.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def start_command(
    args: list[str], tmp_path: Path, *, signals_blocked: bool = False, **env: str
) -> subprocess.Popen[str]:
    environ = {
        **os.environ,
        "VAR_DIR": str(tmp_path / "var"),
        "PORT": "0",
        "SECRET_KEY": "process-test",
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    # The child inherits the signal mask at fork: block here (main thread), restore right after.
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS) if signals_blocked else None
    try:
        return subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    finally:
        if previous is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def read_until(proc: subprocess.Popen[str], pattern: str, timeout: float = 120) -> str:
    """Read the output line by line until ``pattern`` shows (bounded: a busy machine is slow)."""
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        if re.search(pattern, line):
            return "".join(seen)
    raise AssertionError(f"never saw {pattern!r}; output was:\n{''.join(seen)}")


def stop_with(
    proc: subprocess.Popen[str], sig: signal.Signals, *, seen: str = "", timeout: float = 90
) -> str:
    """Send ``sig`` and check the clean stop: exit status 0, "Stopped." and no traceback.

    ``timeout`` only bounds a hang (the launcher gives up on a stuck part after 20 s)."""
    proc.send_signal(sig)
    try:
        rest, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # Still running: ask it for every thread's stack (services.stopping registers SIGUSR1),
        # then kill it, so the failure says where it hung.
        proc.send_signal(signal.SIGUSR1)
        time.sleep(2)
        proc.kill()
        dump, _ = proc.communicate()
        raise AssertionError(f"did not stop within {timeout:g} s of {sig.name}:\n{seen}{dump}") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    output = seen + rest
    assert proc.returncode == 0, f"exit status {proc.returncode} after {sig.name}:\n{output}"
    assert "Stopped." in rest, output
    assert "Traceback" not in output, output
    return rest
