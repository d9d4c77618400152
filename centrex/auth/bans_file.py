"""How ``centrex bans list|clear`` reaches a running server: two small files.

The server writes the bans in force to ``bans.json`` in its data folder when
they change (checked every second); ``centrex bans clear`` drops a
``bans-clear.json`` request there, which the server carries out and deletes
within a second. Files keep the command free of any listening control port.
The server reads ``bans.json`` back when it starts, so the bans in force
outlive a restart.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from centrex.auth.abuse import Ban, FailureTracker
from centrex.workers.frames import worker_path, worker_paths

BANS_FILE = "bans.json"
CLEAR_FILE = "bans-clear.json"


def write_bans(data_dir: Path, bans: list[Ban], worker: int = 0) -> None:
    """Publish ``bans``; each worker of several keeps its own file (``worker_path``)."""
    rows = [{"ip": b.ip, "since": b.since, "until": b.until, "failures": b.failures} for b in bans]
    path = worker_path(data_dir / BANS_FILE, worker)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"bans": rows}), encoding="utf-8")
    os.replace(temporary, path)


def read_bans(data_dir: Path, now: float) -> list[Ban]:
    """The bans the server last wrote, without those that have run out (every
    worker's, when it has several: one address may be banned by more than one)."""
    bans: list[Ban] = []
    for path in worker_paths(data_dir / BANS_FILE):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            found = [
                Ban(str(r["ip"]), float(r["since"]), float(r["until"]), int(r["failures"]))
                for r in data.get("bans", [])
            ]
            bans.extend(found)  # (all of a file, or none of it)
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            continue  # missing, or not what write_bans writes: no bans from it
    return [b for b in bans if b.until > now]


def request_clear(data_dir: Path, ip: str | None) -> None:
    """Ask the server to lift the ban of ``ip`` (every ban when None)."""
    path = data_dir / CLEAR_FILE
    try:
        wanted = json.loads(path.read_text(encoding="utf-8")).get("clear", [])
    except (FileNotFoundError, json.JSONDecodeError):
        wanted = []
    wanted.append(ip if ip is not None else "*")
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"clear": wanted}), encoding="utf-8")
    os.replace(temporary, path)


def take_clear_requests(data_dir: Path) -> list[str]:
    """The addresses a pending ``bans-clear.json`` asks to lift (``*``: all),
    the file deleted; [] when there is none."""
    path = data_dir / CLEAR_FILE
    try:
        wanted = json.loads(path.read_text(encoding="utf-8")).get("clear", [])
    except FileNotFoundError:
        return []
    except json.JSONDecodeError:
        wanted = []
    path.unlink(missing_ok=True)
    return [str(ip) for ip in wanted]


def lift_bans(failures: FailureTracker, wanted: list[str]) -> int:
    """Lift the bans ``take_clear_requests`` named; how many were lifted."""
    lifted = 0
    for ip in wanted:
        lifted += failures.clear(None if ip == "*" else ip)
    return lifted


def apply_clear_requests(data_dir: Path, failures: FailureTracker) -> int:
    """Carry out a pending ``bans-clear.json``; returns how many bans were lifted."""
    return lift_bans(failures, take_clear_requests(data_dir))
