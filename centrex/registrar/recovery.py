"""The recovery file of the in-memory location store.

One JSON document, written atomically (a temporary file in the same folder,
fsync, rename over the old file, fsync of the folder), so a crash at any
moment leaves either the old file or the new one, never half of one::

    {"format":"centrex-registrations","version":1,"saved_at":1700000000.0,"journal":7,"fields":["id","aor",...],"bindings":[
    ["3f2a...","sip:alice@example.com",...],["9b1c...","sip:alice@example.com",...],
    ["77d0...","sip:bob@example.com",...]
    ]}

Each binding is an array in the order ``fields`` names, which keeps the file
compact; a reader maps columns by name, so a later version may add fields.
The file is laid out one AOR per line (all of its rows), which is still the
same document to any JSON reader (versions before this layout wrote it on one
line, and their files load too). Reading parses about 16 KB of whole lines
at a time, so loading holds little more than the table it builds (the memory
store keeps the rows packed, ``centrex.registrar.packed``).

Rewriting the whole table after every hundred changes would cost time in
proportion to the table (20,000 bindings: two thirds of the server's CPU at
1,000 REGISTERs a second), so the store writes most flushes as a journal
next to the file, ``<file>.journal``, one record per changed AOR with all
of its bindings after the change, appended (and fsynced at most once a
second, ``memory.SYNC_INTERVAL_S``). The journal starts
with a JSON line naming it; its records follow in binary, each
``[length, CRC-32]`` (two 32-bit little-endian numbers) and then that many
bytes of ``marshal`` data, the list ``[aor, rows]`` (rows as in the file)::

    {"format":"centrex-registrations-journal","generation":7,"fields":[...],"records":"marshal"}
    <length><crc>["sip:alice@example.com", [["3f2a...", "sip:alice@example.com", ...]]]
    <length><crc>["sip:bob@example.com", []]

(Journals of earlier versions, without ``"records"``, hold one JSON line
``["aor", rows]`` per record; they are still read.) A record costs a third of
a JSON line to write: most of a JSON line's time goes to printing the three
times of each binding. The journal is only ever read by this module, and
each record's CRC is checked before it is unpacked.

The file is rewritten (compacted) when the journal has grown to the file's
size, and at a clean stop. The file names its ``"journal"`` generation (a
random number drawn at each compaction); a journal of another generation (one
left by a crash between a compaction and the start of the next journal, or
beside a file that was lost) is ignored. A reader applies the records of the
matching journal in order and stops at one cut short (an append cut by a
crash); a whole record that is damaged (its CRC does not match) is skipped,
said in the event log, and the journal kept aside as ``<journal>.bad-<time>``.

The reader takes the journal before the file's rows (once the file's first
line has named the generation): its records are applied, in order, to a
table of their own, and the file's rows of the AORs they name are skipped.
After a crash at the worst moment the journal names nearly every AOR of the
file, whose rows are then not checked, packed, and unpacked again to be
replaced. The file's table then takes the journal's AORs (``_Replay``), and
the table is the one applying the records after the file gives, its order
of AORs included.
"""

from __future__ import annotations

import gc
import json
import json.scanner
import logging
import marshal
import os
import struct
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, NamedTuple

from centrex.registrar.binding import Binding
from centrex.registrar.packed import (
    EMPTY,
    PackedTable,
    journal_record,
    pack,
    pack_rows,
    row_connections,
    unpack_rows,
    valid_row,
    valid_rows,
)
from centrex.registrar.packed import row as packed_row
from centrex.registrar.writer import WRITE_BYTES, AtomicFile, Journal

FORMAT = "centrex-registrations"
JOURNAL_FORMAT = "centrex-registrations-journal"
#: The ``"records"`` of a journal whose records are binary (``append_journal``).
JOURNAL_RECORDS = "marshal"
logger = logging.getLogger(__name__)

#: A journal record's head: the length and the CRC-32 of its marshal data.
_RECORD_HEAD = struct.Struct("<II")
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


#: How the first line of a file in the line layout ends (see ``file_pieces``).
_BINDINGS_OPEN = b',"bindings":['


def file_pieces(
    values: Iterable[tuple[str, bytes]], saved_at: float, generation: int
) -> Iterator[bytes]:
    """The file for the AORs ``values`` (each with its packed bindings), in
    pieces: the first line, then one piece per AOR (with the comma before
    it), then the end.

    One JSON document in the line layout: the header and ``"bindings":[`` on
    the first line, then one line per AOR with its rows, then ``]}``. Any JSON
    reader sees the same document as the one-line form; ``read_table`` loads
    it a few lines at a time.
    """
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "saved_at": saved_at,
        "journal": generation,
        "fields": list(FIELDS),
    }
    yield json.dumps(doc, separators=(",", ":")).encode("ascii")[:-1] + _BINDINGS_OPEN + b"\n"
    first = True
    encode = _encode
    for aor, value in values:
        rows = unpack_rows(value, aor)
        if not rows:
            continue
        line = encode(rows)[1:-1].encode("ascii")
        yield line if first else b",\n" + line
        first = False
    yield b"\n]}\n"


#: Compact JSON, ASCII only: header values decoded with surrogateescape stay lossless.
_ENCODER = json.JSONEncoder(separators=(",", ":"))


def _make_encode() -> Callable[[Any], str]:
    """``_ENCODER.encode``, with the C encoder made once instead of per call
    (``JSONEncoder.encode`` builds one for every value: a third of the time
    of encoding an AOR's rows). Rows hold no containers of their own making,
    so the check for cycles is left out. The same text either way."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return _ENCODER.encode
    encoder = make(
        None, _ENCODER.default, json.encoder.encode_basestring_ascii, None, ":", ",",
        False, False, True,
    )  # fmt: skip

    def encode(value: Any) -> str:
        return "".join(encoder(value, 0))

    return encode


_encode = _make_encode()


def _grouped(bindings: Iterable[Binding]) -> list[tuple[str, bytes]]:  # packed, per AOR
    by_aor: dict[str, list[Binding]] = {}
    for b in bindings:
        by_aor.setdefault(b.aor, []).append(b)
    return [(aor, pack(group)) for aor, group in by_aor.items()]


def encode(bindings: Iterable[Binding], saved_at: float, generation: int = 0) -> bytes:
    """The recovery file content for ``bindings``, continued by journal ``generation``."""
    return b"".join(file_pieces(_grouped(bindings), saved_at, generation))


def decode(data: bytes, path: Path, now: float) -> list[Binding]:
    """The bindings in recovery file content ``data`` still live at ``now``."""
    table = PackedTable()
    _decode(table, data, path, now)
    return list(table.bindings())


def _header(doc: Any, path: Path) -> tuple[list[Any], int]:
    """The fields and journal generation a file's document names, checked."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise RecoveryFileError(path, f"not a {FORMAT} file")
    version = doc.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise RecoveryFileError(path, f"version {version!r}; this Centrex reads up to {VERSION}")
    fields = doc.get("fields")
    if not isinstance(fields, list):
        raise RecoveryFileError(path, "no fields or bindings")
    generation = doc.get("journal", 0)
    if not isinstance(generation, int):
        raise RecoveryFileError(path, f"journal generation {generation!r}")
    return fields, generation


def _decode(
    table: PackedTable,
    data: bytes,
    path: Path,
    now: float,
    departed: Departed | None = None,
    replaced: Callable[[int], Mapping[str, bool]] | None = None,
) -> int:
    """Put the live bindings of file content ``data`` in ``table``; the journal
    generation the file names. ``replaced``, given that generation, names the
    AORs whose rows in the file are to be skipped (a journal replaces them)."""
    end = data.find(b"\n")
    if end > 0 and data[:end].endswith(_BINDINGS_OPEN):
        try:
            doc = json.loads(data[: end - len(_BINDINGS_OPEN)] + b"}")
        except ValueError:
            pass
        else:
            fields, generation = _header(doc, path)
            skip = replaced(generation) if replaced is not None else _NONE
            _decode_lines(table, data, end + 1, fields, path, now, departed, skip)
            return generation
    # Any other layout of the same document: read it whole.
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise RecoveryFileError(path, f"not JSON ({exc})") from None
    fields, generation = _header(doc, path)
    rows = doc.get("bindings")
    if not isinstance(rows, list):
        raise RecoveryFileError(path, "no fields or bindings")
    if fields != list(FIELDS):
        rows = _reorder(rows, fields, path)
    skip = replaced(generation) if replaced is not None else _NONE
    _put(table, _live_rows(_kept(table, rows, skip, path, now), path, now, departed))
    return generation


#: No AORs to skip.
_NONE: Final[Mapping[str, bool]] = MappingProxyType({})


def _kept(
    table: PackedTable, rows: list[Any], skip: Mapping[str, bool], path: Path, now: float
) -> list[Any]:
    """The rows of ``rows`` whose AOR is not in ``skip`` (``_Replay.named``);
    an AOR in ``skip`` with a live row here keeps its place in ``table``
    (``PackedTable.reserve``) unless a record removed it (or left it with
    no live binding)."""
    if not skip:
        return rows
    try:
        # (A row's AOR that is not a string is no AOR of the journal's.)
        kept = [r for r in rows if type(r[1]) is not str or r[1] not in skip]
        if len(kept) < len(rows):
            # The places of these rows' AORs, in their order: those put here
            # (``_put`` groups them) and those the journal fills.
            table.reserve([r[1] for r in rows if r[3] > now and skip.get(r[1]) is not True])
    except (TypeError, IndexError, KeyError) as exc:
        raise RecoveryFileError(path, f"bad binding ({exc!r})") from None
    return kept


#: Bytes of the line layout parsed at a time (about 60 bindings: larger chunks
#: leave more of their parsed objects' memory behind, scattered among the table's).
_CHUNK = 1 << 14


def _decode_lines(
    table: PackedTable,
    data: bytes,
    start: int,
    fields: list[Any],
    path: Path,
    now: float,
    departed: Departed | None = None,
    skip: Mapping[str, bool] = _NONE,
) -> None:
    """Read the rows of the line layout, from offset ``start`` to the closing ``]}``
    (those of the AORs in ``skip`` left out).

    The rows are parsed a chunk of whole lines at a time (an AOR's rows are on
    one line), so reading holds one chunk's objects besides the table it
    builds, never the whole document's.
    """
    ours = fields == list(FIELDS)
    close = data.rfind(b"\n]}")
    if close < start - 1 or data[close + 3 :].strip():
        raise RecoveryFileError(path, "cut short (no closing ]})")
    if data[close - 1 : close] == b",":
        raise RecoveryFileError(path, "bad bindings line")
    while start < close:
        cut = data.find(b",\n", min(start + _CHUNK, close))
        if cut < 0 or cut > close:
            cut = close
        try:
            chunk = f"[{data[start:cut].decode('utf-8')}]"
        except UnicodeDecodeError:
            raise RecoveryFileError(path, "bad bindings line") from None
        try:
            rows, at = _scan(chunk, 0)
        except (ValueError, StopIteration):
            at = -1
        if at != len(chunk) or not isinstance(rows, list):
            raise RecoveryFileError(path, "bad bindings line")
        if not ours:
            rows = _reorder(rows, fields, path)
        _put(table, _live_rows(_kept(table, rows, skip, path, now), path, now, departed))
        start = cut + 2


#: The C scanner behind ``json.loads``, called on a str without its per-call checks.
_scan = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]


def _put(table: PackedTable, rows: list[list[Any]]) -> None:
    """Add the bindings of (checked, live) ``rows`` to ``table``."""
    by_aor: dict[str, list[list[Any]]] = {}
    for r in rows:
        group = by_aor.get(r[1])
        if group is None:
            by_aor[r[1]] = [r]
        else:
            group.append(r)
    load = table.load
    for aor, group in by_aor.items():
        held = table.packed(aor)
        if held != EMPTY:  # (its rows of an earlier chunk; not a place held)
            group = unpack_rows(held, aor) + group
        # (Most AORs have one binding: no generator for their earliest expiry.)
        first = group[0][3] if len(group) == 1 else min(r[3] for r in group)
        load(aor, pack_rows(group), first, len(group), row_connections(group))


#: The rows a load found expired, by AOR (``read_table``'s ``departed``).
Departed = dict[str, list[list[Any]]]


def _live_rows(
    rows: list[Any], path: Path, now: float, departed: Departed | None = None
) -> list[list[Any]]:
    """The rows of ``rows`` live at ``now``, each checked to be a binding (an
    expired row is dropped, and only kept in ``departed`` when given and it
    is a binding)."""
    try:
        live = [r for r in rows if r[3] > now]
    except (TypeError, IndexError, KeyError) as exc:
        raise RecoveryFileError(path, f"bad binding ({exc!r})") from None
    if departed is not None and len(live) < len(rows):
        for r in rows:
            if r[3] <= now and valid_row(r):
                departed.setdefault(r[1], []).append(r)
    if not valid_rows(live):
        bad = next(r for r in live if not valid_row(r))
        raise RecoveryFileError(path, f"bad binding {bad!r:.200}")
    return live


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
    except (TypeError, IndexError, KeyError) as exc:  # (a row that is not a list: KeyError)
        raise RecoveryFileError(path, f"bad binding ({exc!r})") from None


def write_atomically(path: Path, data: bytes | Iterable[bytes | memoryview]) -> int:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new file.

    The data go to a temporary file next to ``path``, which is fsynced and
    renamed over ``path``; the folder is fsynced so the rename survives a power
    cut (``writer.AtomicFile``). On any failure the temporary file is removed
    and ``path`` is untouched. ``data`` may come in pieces, written a
    megabyte at a time; the bytes written are returned.
    """
    file = AtomicFile(path)
    try:
        file.open()
        if isinstance(data, bytes):
            file.write(data)
        else:
            parts: list[bytes | memoryview] = []
            held = 0
            for piece in data:
                parts.append(piece)
                held += len(piece)
                if held >= WRITE_BYTES:
                    file.write(b"".join(parts))
                    parts, held = [], 0
            file.write(b"".join(parts))
        return file.commit()
    except BaseException:
        file.discard()
        raise


def save(path: Path, bindings: Iterable[Binding], saved_at: float, generation: int = 0) -> int:
    """Write ``bindings`` to the recovery file ``path`` atomically; its size in bytes.

    ``generation`` names the journal that will continue it (``append_journal``).
    """
    with gc_paused():
        data = encode(bindings, saved_at, generation)
    return write_atomically(path, data)


def save_packed(
    path: Path,
    aors: list[str],
    values: list[bytes],
    saved_at: float,
    generation: int = 0,
) -> int:
    """``save`` for AORs already packed (``PackedTable.snapshot()``: the AORs
    and their packed bindings, in the same order): the file is their
    concatenation, written as it is made (the memory store writes the same
    file a slice at a time, ``MemoryLocationStore._compact``)."""
    pairs = zip(aors, values, strict=True)
    return write_atomically(path, file_pieces(pairs, saved_at, generation))


def journal_path(path: Path) -> Path:
    """The journal that continues recovery file ``path``."""
    return path.with_name(f"{path.name}.journal")


def append_journal(
    path: Path, changes: Iterable[tuple[str, tuple[Binding, ...]]], generation: int | None
) -> int:
    """Append one record per changed AOR (all its bindings now) to the journal
    of ``path`` and fsync it; the bytes written.

    ``generation`` starts a new journal (replacing any older one) with that
    generation in its first line; None appends to the current one.
    """
    journal = Journal(journal_path(path))
    try:
        written = journal.append(journal_records(changes, generation), generation is not None)
        journal.sync()
        return written
    finally:
        journal.close()


def journal_records(
    changes: Iterable[tuple[str, tuple[Binding, ...]]], generation: int | None
) -> bytes:
    """What ``append_journal`` writes for ``changes``: the records (after the
    first line of a new journal of ``generation``)."""
    records = [journal_record(aor, [packed_row(b) for b in bindings]) for aor, bindings in changes]
    return frame_journal_records(records, generation)


def frame_journal_records(records: list[bytes], generation: int | None) -> bytes:
    """``journal_records`` of records encoded already (``packed.journal_record``):
    each with its head, after the first line of a new journal of ``generation``."""
    parts: list[bytes] = []
    if generation is not None:
        header = {
            "format": JOURNAL_FORMAT,
            "generation": generation,
            "fields": list(FIELDS),
            "records": JOURNAL_RECORDS,
        }
        parts.append(json.dumps(header, separators=(",", ":")).encode("ascii") + b"\n")
    head, crc = _RECORD_HEAD.pack, zlib.crc32
    for data in records:
        parts.append(head(len(data), crc(data)))
        parts.append(data)
    return b"".join(parts)


def _journal_records(journal: bytes, start: int, damaged: list[int] | None = None) -> Iterator[Any]:
    """The records of a binary journal from offset ``start``, unpacked, up to
    the first one cut short (the append a crash cut). A whole record that is
    damaged (its CRC does not match, or it does not unpack) is skipped and its
    offset added to ``damaged``: the records after it, of other users, still
    hold what they held (a record is one user's bindings, whole)."""
    size, head = len(journal), _RECORD_HEAD.size
    while start + head <= size:
        offset = start
        length, crc = _RECORD_HEAD.unpack_from(journal, start)
        start += head
        data = journal[start : start + length]
        start += length
        if len(data) != length:
            return
        if zlib.crc32(data) != crc:
            if damaged is not None:
                damaged.append(offset)
            continue
        try:
            record = marshal.loads(data)
        except (ValueError, EOFError, TypeError):
            if damaged is not None:
                damaged.append(offset)
            continue
        yield record


def _journal_lines(lines: list[bytes]) -> Iterator[Any]:
    """The records of a JSON-lines journal (earlier versions), up to the first
    line that is not JSON."""
    for line in lines:
        try:
            yield json.loads(line)
        except ValueError:
            return


class Recovered(NamedTuple):
    """What a recovery file and its journal hold."""

    bindings: list[Binding]
    #: The journal generation the file names (0 for a file without one).
    generation: int
    #: Journal records applied.
    journal_lines: int


def read(path: Path, now: float) -> Recovered:
    """The live bindings of recovery file ``path`` with its journal applied."""
    table, generation, applied = read_table(path, now)
    return Recovered(list(table.bindings()), generation, applied)


def read_table(
    path: Path, now: float, *, keep: bool = False, departed: Departed | None = None
) -> tuple[PackedTable, int, int]:
    """Recovery file ``path`` with its journal applied, as the memory store keeps
    it; with the journal generation the file names and the journal records applied.
    ``keep``: a journal with damaged records is copied aside (the server's load;
    a command that only reads leaves the files as they are). ``departed``, when
    given, gets the rows of the AORs that were registered when the file was
    last written and have no live binding at ``now`` (they expired while the
    server was down: their watchers were told of them, and not of their end)."""
    table = PackedTable()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return table, 0, 0
    journal = _Replay(path, now, keep, departed is not None)
    with gc_paused():
        # The journal first: the file's rows of the AORs it replaces (after a
        # crash at the worst moment, nearly all of them) are then skipped
        # instead of packed, indexed and unpacked again (docs/benchmarks.md).
        generation = _decode(table, data, path, now, departed, journal.replaced)
        del data
        journal.finish(table, departed)
    if departed:
        for aor in [aor for aor in departed if aor in table]:
            del departed[aor]
    return table, generation, journal.applied


#: Journal records checked at a time (``_Replay._take``).
_BATCH: Final = 256


class _Replay:
    """The journal of a recovery file, read before the file's rows (``read_table``).

    Its records are applied in order to a table of their own, as they would
    be after the file: the table's order of AORs is then the one the
    record-by-record replay gave (an AOR a record removed, or left with no
    live binding, goes after the others when a later record brings it back).
    The file's table then takes them (``PackedTable.adopt``): an AOR the
    file listed with a live binding, and no record removed, keeps the
    file's place. The AORs of ``departed`` may come in another order.
    """

    def __init__(self, path: Path, now: float, keep: bool, departed: bool) -> None:
        self.path = path
        self.now = now
        self.keep = keep
        #: The AORs the records name, as the last of them left each.
        self.table = PackedTable()
        #: Each AOR the records name: True when one of them left it with no
        #: live binding (a place in the file's order is then not its own).
        self.named: dict[str, bool] = {}
        #: ``read_table``'s ``departed``, of the AORs the records name (None: not asked).
        self.departed: dict[str, list[list[Any]] | None] | None = {} if departed else None
        #: Records applied.
        self.applied = 0
        self._journal = b""
        self._damaged: list[int] = []
        #: A journal that could not be read: raised once the file is read
        #: (a file that cannot be read is said first, as before).
        self._error: OSError | None = None

    def replaced(self, generation: int) -> dict[str, bool]:
        """Read the journal if it continues a file of ``generation``; the AORs
        it names (``named``)."""
        if generation != 0:
            try:
                journal = journal_path(self.path).read_bytes()
            except FileNotFoundError:
                pass
            except OSError as exc:
                self._error = exc
            else:
                self._read(generation, journal)
        return self.named

    def finish(self, table: PackedTable, departed: Departed | None) -> None:
        """Give ``table`` (the file's, read without the AORs ``named``) the
        AORs of the journal; say its damaged records."""
        if self._error is not None:
            raise self._error
        if self._damaged:
            _report_damage(journal_path(self.path), self._journal, self._damaged, self.keep)
        self._journal = b""
        if self.named:
            table.adopt(self.table)
            self.table = PackedTable()
        if departed is not None and self.departed:
            for aor, gone in self.departed.items():
                if gone:
                    departed[aor] = gone

    def _read(self, generation: int, journal: bytes) -> None:
        """Take the records of ``journal`` that continue the file."""
        end = journal.find(b"\n")
        try:
            header = json.loads(journal[: end if end >= 0 else len(journal)])
        except ValueError:
            return
        if (
            not isinstance(header, dict)
            or header.get("format") != JOURNAL_FORMAT
            or header.get("generation") != generation
            or not isinstance(header.get("fields"), list)
            or end < 0
        ):
            return
        fields = header["fields"]
        damaged = self._damaged
        if header.get("records") == JOURNAL_RECORDS:
            records = _journal_records(journal, end + 1, damaged)
        elif "records" in header:
            return  # a kind of record this version does not know
        else:
            records = _journal_lines(journal[end + 1 :].split(b"\n"))
        path = self.path
        ours = fields == list(FIELDS)
        # (AOR, rows, how many damaged records were read before this one)
        batch: list[tuple[str, list[Any], int]] = []
        stopped = False
        for record in records:
            try:
                aor, rows = record
                if not isinstance(aor, str) or not isinstance(rows, list):
                    break
                if not ours:
                    rows = _reorder(rows, fields, path)
            except (ValueError, TypeError, RecoveryFileError):
                break  # the end of what was written whole
            batch.append((aor, rows, len(damaged)))
            if len(batch) == _BATCH:
                stopped = not self._take(batch)
                batch = []
                if stopped:
                    break
        if not stopped:
            self._take(batch)
        if damaged:
            self._journal = journal  # (a copy is kept aside once the file is read)

    def _take(self, batch: list[tuple[str, list[Any], int]]) -> bool:
        """Take the records ``batch`` in order; False when one is not whole:
        it and those after it are left (the end of the journal), and so are
        the damaged records read past it. Their live rows are checked
        together (``valid_rows`` costs a microsecond a call: as much as the
        rest of a record)."""
        now = self.now
        try:
            lives = [[r for r in rows if r[3] > now] for _, rows, _ in batch]
            whole = valid_rows([r for live in lives for r in live])
        except (TypeError, IndexError, KeyError):
            whole = False
        for at, (aor, rows, damaged_before) in enumerate(batch):
            live: list[list[Any]] | None
            if whole:
                live = lives[at]
            else:  # which one is not whole: one at a time
                try:
                    live = _live_rows(rows, self.path, now)
                except RecoveryFileError:
                    live = None
            if live is None or not self._take_one(aor, rows, live):
                del self._damaged[damaged_before:]
                return False
        return True

    def _take_one(self, aor: str, rows: list[Any], live: list[list[Any]]) -> bool:
        """Apply the record of ``aor``: its ``rows``, of which ``live`` (checked)
        are live; False when it is not a record this store wrote."""
        if not all(r[1] == aor for r in live):
            return False
        departed = self.departed
        if departed is not None:
            # The AOR as the record left it: registered, and since expired;
            # or removed (its watchers were told then).
            gone = (
                [r for r in rows if r[3] <= self.now and valid_row(r) and r[1] == aor]
                if len(live) < len(rows)
                else None
            )
            departed[aor] = gone or None
        if live:
            self.named.setdefault(aor, False)
        else:
            self.named[aor] = True
        # (Most AORs have one binding: no generator for their earliest expiry.)
        first = live[0][3] if len(live) == 1 else min((r[3] for r in live), default=0.0)
        self.table.load(aor, pack_rows(live), first, len(live), row_connections(live))
        self.applied += 1
        return True


def _report_damage(path: Path, journal: bytes, damaged: list[int], keep: bool) -> None:
    """Say that journal ``path`` had damaged records; with ``keep``, save a copy."""
    kept = ""
    if keep:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        copy = path.with_name(f"{path.name}.bad-{stamp}")
        try:
            copy.write_bytes(journal)
            kept = f"; the journal is kept as {copy}"
        except OSError as exc:
            kept = f"; cannot keep a copy: {exc}"
    logger.error(
        "recovery journal %s: %d damaged record(s) skipped (the first at byte %d): "
        "the users they changed have the registrations of before that change until "
        "their phones register again%s",
        path,
        len(damaged),
        damaged[0],
        kept,
    )


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
