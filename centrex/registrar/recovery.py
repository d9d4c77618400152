"""The recovery file of the in-memory location store.

One JSON document, written atomically (a temporary file in the same folder,
fsync, rename over the old file, fsync of the folder), so a crash at any
moment leaves either the old file or the new one, never half of one::

    {"format": "centrex-registrations", "version": 1, "saved_at": 1700000000.0,
     "fields": ["id", "aor", ...],
     "bindings": [["3f2a...", "sip:alice@example.com", ...], ...]}

Each binding is an array in the order ``fields`` names, which keeps the file
compact and lets one ``json.loads`` read it; a reader maps columns by name, so
a later version may add fields.

Rewriting the whole table after every hundred changes would cost time in
proportion to the table (20,000 bindings: two thirds of the server's CPU at
1,000 REGISTERs a second), so the store writes most flushes as a journal
next to the file, ``<file>.journal``, one JSON line per changed AOR with all
of its bindings after the change, appended and fsynced::

    {"format": "centrex-registrations-journal", "generation": 7, "fields": [...]}
    ["sip:alice@example.com", [["3f2a...", "sip:alice@example.com", ...]]]
    ["sip:bob@example.com", []]

and rewrites the file (compacts) only when the journal has grown to half the
file's size. The file names its ``"journal"`` generation (a random number
drawn at each compaction); a journal of another generation (one left by a
crash between a compaction and the start of the next journal, or beside a
file that was lost) is ignored. A reader applies the lines of the matching
journal in order and stops at the first one it cannot read (an append cut by
a crash).
"""

from __future__ import annotations

import gc
import json
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from centrex.registrar.binding import Binding, Source

FORMAT = "centrex-registrations"
JOURNAL_FORMAT = "centrex-registrations-journal"
VERSION = 1
#: The name of the file in the data directory.
FILE_NAME = "registrations.json"

FIELDS: tuple[str, ...] = (
    "id",
    "aor",
    "contact",
    "expires_at",
    "q",
    "call_id",
    "cseq",
    "transport",
    "host",
    "port",
    "local",
    "connection_id",
    "instance",
    "reg_id",
    "path",
    "user_agent",
    "server_id",
    "created_at",
    "updated_at",
)


class RecoveryFileError(Exception):
    """A recovery file that cannot be read: not JSON, another format, a newer version."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def _row(b: Binding) -> list[Any]:
    s = b.source
    return [
        b.id,
        b.aor,
        b.contact,
        b.expires_at,
        b.q,
        b.call_id,
        b.cseq,
        s.transport,
        s.host,
        s.port,
        s.local,
        s.connection_id,
        b.instance,
        b.reg_id,
        list(b.path),
        b.user_agent,
        b.server_id,
        b.created_at,
        b.updated_at,
    ]


def encode(bindings: Iterable[Binding], saved_at: float, generation: int = 0) -> bytes:
    """The recovery file content for ``bindings``, continued by journal ``generation``."""
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "saved_at": saved_at,
        "journal": generation,
        "fields": list(FIELDS),
        "bindings": [_row(b) for b in bindings],
    }
    # ASCII output: header values decoded with surrogateescape stay lossless.
    return json.dumps(doc, separators=(",", ":")).encode("ascii")


def _from_row(row: list[Any]) -> Binding:
    return Binding(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        Source(row[7], row[8], row[9], row[10], row[11]),
        row[12],
        row[13],
        tuple(row[14]),
        row[15],
        row[16],
        row[17],
        row[18],
    )


def decode(data: bytes, path: Path, now: float) -> list[Binding]:
    """The bindings in recovery file content ``data`` still live at ``now``."""
    return _decode(data, path, now)[0]


def _decode(data: bytes, path: Path, now: float) -> tuple[list[Binding], int]:
    """The live bindings of file content ``data`` and the journal generation it names."""
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise RecoveryFileError(path, f"not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise RecoveryFileError(path, f"not a {FORMAT} file")
    version = doc.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise RecoveryFileError(path, f"version {version!r}; this Centrex reads up to {VERSION}")
    fields = doc.get("fields")
    rows = doc.get("bindings")
    if not isinstance(fields, list) or not isinstance(rows, list):
        raise RecoveryFileError(path, "no fields or bindings")
    if fields != list(FIELDS):
        rows = _reorder(rows, fields, path)
    generation = doc.get("journal", 0)
    if not isinstance(generation, int):
        raise RecoveryFileError(path, f"journal generation {generation!r}")
    return _live(rows, path, now), generation


def _live(rows: list[Any], path: Path, now: float) -> list[Binding]:
    out: list[Binding] = []
    try:
        for row in rows:
            if row[3] > now:
                out.append(_from_row(row))
    except (TypeError, IndexError, KeyError, ValueError) as exc:
        raise RecoveryFileError(path, f"bad binding ({exc})") from None
    return out


# What a file from another version may leave out.
_OPTIONAL: dict[str, Any] = {
    "q": None,
    "local": "",
    "connection_id": None,
    "instance": None,
    "reg_id": None,
    "path": [],
    "user_agent": None,
    "server_id": "",
    "created_at": 0.0,
    "updated_at": 0.0,
}


def _reorder(rows: list[Any], fields: list[Any], path: Path) -> list[Any]:
    """Rows of another field order mapped to ours."""
    index = {name: i for i, name in enumerate(fields) if isinstance(name, str)}
    missing = [f for f in FIELDS if f not in index and f not in _OPTIONAL]
    if missing:
        raise RecoveryFileError(path, f"missing fields {missing}")
    try:
        return [[row[index[f]] if f in index else _OPTIONAL[f] for f in FIELDS] for row in rows]
    except (TypeError, IndexError) as exc:
        raise RecoveryFileError(path, f"bad binding ({exc})") from None


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new file.

    The data go to a temporary file next to ``path``, which is fsynced and
    renamed over ``path``; the folder is fsynced so the rename survives a power
    cut. On any failure the temporary file is removed and ``path`` is untouched.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # Unique per write: a save still running in a thread at stop must not share it.
    temp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        with open(temp, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # not possible on every platform; the rename itself is atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save(path: Path, bindings: Iterable[Binding], saved_at: float, generation: int = 0) -> int:
    """Write ``bindings`` to the recovery file ``path`` atomically; its size in bytes.

    ``generation`` names the journal that will continue it (``append_journal``).
    """
    with gc_paused():
        data = encode(bindings, saved_at, generation)
    write_atomically(path, data)
    return len(data)


def journal_path(path: Path) -> Path:
    """The journal that continues recovery file ``path``."""
    return path.with_name(f"{path.name}.journal")


def append_journal(
    path: Path, changes: Iterable[tuple[str, tuple[Binding, ...]]], generation: int | None
) -> int:
    """Append one line per changed AOR (all its bindings now) to the journal of
    ``path`` and fsync it; the bytes written.

    ``generation`` starts a new journal (replacing any older one) with that
    generation in its first line; None appends to the current one.
    """
    lines = [
        json.dumps([aor, [_row(b) for b in bindings]], separators=(",", ":")).encode("ascii")
        for aor, bindings in changes
    ]
    if generation is not None:
        header = {"format": JOURNAL_FORMAT, "generation": generation, "fields": list(FIELDS)}
        lines.insert(0, json.dumps(header, separators=(",", ":")).encode("ascii"))
    if not lines:
        return 0
    data = b"\n".join(lines) + b"\n"
    journal = journal_path(path)
    with open(journal, "wb" if generation is not None else "ab") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    if generation is not None:
        _fsync_folder(path.parent)
    return len(data)


class Recovered(NamedTuple):
    """What a recovery file and its journal hold."""

    bindings: list[Binding]
    #: The journal generation the file names (0 for a file without one).
    generation: int
    #: Journal lines applied.
    journal_lines: int


def read(path: Path, now: float) -> Recovered:
    """The live bindings of recovery file ``path`` with its journal applied."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Recovered([], 0, 0)
    with gc_paused():
        bindings, generation = _decode(data, path, now)
        if generation == 0:
            return Recovered(bindings, 0, 0)
        try:
            journal = journal_path(path).read_bytes()
        except FileNotFoundError:
            return Recovered(bindings, generation, 0)
        return _apply_journal(bindings, generation, journal, path, now)


def _apply_journal(
    bindings: list[Binding], generation: int, journal: bytes, path: Path, now: float
) -> Recovered:
    lines = journal.split(b"\n")
    try:
        header = json.loads(lines[0])
    except ValueError:
        return Recovered(bindings, generation, 0)
    if (
        not isinstance(header, dict)
        or header.get("format") != JOURNAL_FORMAT
        or header.get("generation") != generation
        or not isinstance(header.get("fields"), list)
    ):
        return Recovered(bindings, generation, 0)
    fields = header["fields"]
    by_aor: dict[str, list[Binding]] = {}
    for binding in bindings:
        by_aor.setdefault(binding.aor, []).append(binding)
    applied = 0
    for line in lines[1:]:
        try:
            aor, rows = json.loads(line)
            if not isinstance(aor, str) or not isinstance(rows, list):
                break
            if fields != list(FIELDS):
                rows = _reorder(rows, fields, path)
            by_aor[aor] = _live(rows, path, now)
        except (ValueError, TypeError, RecoveryFileError):
            break  # the end of what was written whole
        applied += 1
    out = [b for aor_bindings in by_aor.values() for b in aor_bindings]
    return Recovered(out, generation, applied)


def load(path: Path, now: float) -> list[Binding]:
    """The live bindings of recovery file ``path`` and its journal; none when
    there is no file."""
    return read(path, now).bindings


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector.

    Building hundreds of thousands of acyclic objects (rows, bindings) would
    trigger it over and over for nothing; pausing it halves load and save times.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def set_aside(path: Path, now: float | None = None) -> Path:
    """Rename an unreadable recovery file out of the way; returns the new name."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
    target = path.with_name(f"{path.name}.bad-{stamp}")
    os.replace(path, target)
    return target
