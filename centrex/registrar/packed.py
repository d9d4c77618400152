"""The memory store's table: each AOR's bindings kept packed, as bytes.

A ``Binding`` with its ``Source`` and a dozen strings and floats takes about
1.3 KB of Python objects; the same binding as a row of the recovery file
(``recovery.FIELDS``) packed with ``marshal`` is about 200 bytes. The table
keeps every AOR's bindings as one such packed list of rows and builds
``Binding`` objects only for the AOR a request is about (a REGISTER, a call's
lookup): unpacking and packing one binding costs a few microseconds, where
JSON took three times as long. The bytes never leave the process (marshal's
format belongs to the Python version); the recovery file holds the same rows
as JSON. A packed row leaves its AOR out (None in its place): the table's key
is the AOR, and unpacking puts it back (24 bytes less a binding, 2.4 MB per
100,000); the local socket a binding came in on and the server's id, the same
in nearly every row, are kept once for the process and a row holds their
number (``_NAMES``: at most ``NAMES_MAX``, a string past that stays in the
row; both are the server's own: its addresses, its settings, its recovery
file, never text a request carries).

Besides the rows, the table keeps what is needed without unpacking: the AORs
listed by when their earliest binding expires, in 4-second buckets (a purge
unpacks the AORs of the buckets due, not the table), the AORs with bindings
on each stream connection (for a closed connection) and the number of
bindings.
"""

from __future__ import annotations

import itertools
import marshal
import threading
from collections.abc import Iterable, Iterator
from typing import Any, Final

from centrex.registrar.binding import TRANSPORTS, Binding, Source

#: The packed form of an AOR with no bindings.
# Bound once: compiled, a module's attribute is looked up by name at every use.
_dumps: Final = marshal.dumps
_loads: Final = marshal.loads

EMPTY: Final = marshal.dumps([])

ConnectionKey = tuple[str, int]


def row(b: Binding) -> list[Any]:
    """``b`` as a recovery-file row, in ``recovery.FIELDS`` order."""
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


def from_row(r: list[Any]) -> Binding:
    """The binding of a row (TypeError, IndexError or ValueError when it is not one)."""
    return Binding(
        r[0],
        r[1],
        r[2],
        r[3],
        r[4],
        r[5],
        r[6],
        Source(r[7], r[8], r[9], r[10], r[11]),
        r[12],
        r[13],
        tuple(r[14]),
        r[15],
        r[16],
        r[17],
        r[18],
    )


#: Names kept once for the process (a row's ``local`` and ``server_id``), by number.
_NAMES: list[str] = []
_NUMBERS: dict[str, int] = {}
#: How many names at most; a name past these stays in its rows.
NAMES_MAX = 1024
_NAMES_LOCK: Final = threading.Lock()  # the loop and a thread loading a file both add


def _number(name: str) -> int | str:
    """``name``'s number, given one the first time (or ``name`` when full)."""
    number = _NUMBERS.get(name)
    if number is not None:
        return number
    with _NAMES_LOCK:
        number = _NUMBERS.get(name)
        if number is None:
            if len(_NAMES) >= NAMES_MAX:
                return name
            number = len(_NAMES)
            _NAMES.append(name)
            _NUMBERS[name] = number
    return number


def _name(value: int | str) -> str:
    return _NAMES[value] if isinstance(value, int) else value


def _stored(r: list[Any]) -> list[Any]:
    """Row ``r`` (changed in place) as the table keeps it."""
    r[1] = None
    r[10] = _number(r[10])
    r[16] = _number(r[16])
    return r


def _sized(data: bytes) -> bytes:
    """``data`` copied into an object of its own size, for a form that is kept.
    ``marshal.dumps`` grows its output to over 1 KB before shrinking it in
    place, so what it returns lives in a C ``malloc`` block, not in Python's
    small-object pools, and the freed tail of each is left between the next
    ones: 100,000 registrations' rows kept as returned held 21 MB spread
    over a C heap of 63 MB that could not be given back (heaptrack). A copy
    of a row (about 200 bytes) goes to the small-object pools. (A join of
    two makes the copy in one allocation, a third of the time that
    ``bytes(memoryview(data))`` takes; CPython's join returns its item
    itself only when there is one.)"""
    return b"".join((data, b""))


def pack(bindings: Iterable[Binding]) -> bytes:
    """``bindings`` (of one AOR) packed, as rows without their AOR."""
    return _sized(_dumps([_stored(row(b)) for b in bindings]))


def journal_record(aor: str, rows: list[list[Any]]) -> bytes:
    """The recovery journal's record of ``aor`` with ``rows`` (``row``, with
    their AOR): ``[aor, rows]`` in ``marshal`` (``recovery``)."""
    return _dumps([aor, rows], 4)


def pack_with_record(aor: str, bindings: Iterable[Binding]) -> tuple[bytes, bytes]:
    """``pack(bindings)`` and ``aor``'s ``journal_record`` with them, from the
    same rows: the record then needs no unpacking of the packed form."""
    rows = [row(b) for b in bindings]
    record = journal_record(aor, rows)
    return _sized(_dumps([_stored(r) for r in rows])), record


def pack_rows(rows: list[list[Any]]) -> bytes:
    """Rows (``row``, checked with ``valid_row``) of one AOR packed, without
    their AOR (the lists given are left as they are)."""
    return _sized(_dumps([_stored(list(r)) for r in rows]))


def unpack_rows(data: bytes, aor: str) -> list[list[Any]]:
    """The rows ``pack`` or ``pack_rows`` packed of ``aor``, whole."""
    rows: list[list[Any]] = _loads(data)
    for r in rows:
        r[1] = aor
        r[10] = _name(r[10])
        r[16] = _name(r[16])
    return rows


def _signatures() -> frozenset[tuple[type, ...]]:
    """The types a row's fields may have, every combination (384)."""
    number, maybe_number = (int, float), (int, float, type(None))
    maybe_int, maybe_str = (int, type(None)), (str, type(None))
    fields: list[tuple[type, ...]] = [
        (str,), (str,), (str,), number, maybe_number, (str,), (int,),  # id .. cseq
        (str,), (str,), (int,), (str,), maybe_int,  # transport .. connection_id
        maybe_str, maybe_int, (list,), maybe_str, (str,), number, number,  # instance ..
    ]  # fmt: skip
    return frozenset(itertools.product(*fields))


_SIGNATURES: Final = _signatures()


def valid_rows(rows: list[Any]) -> bool:
    """True when every row of ``rows`` is valid (``valid_row``): one pass of
    set operations in C, for loading a file."""
    try:
        signatures = set(map(tuple, map(_types, rows)))
        transports = {r[7] for r in rows}
    except (TypeError, IndexError):  # a row that is not a list, or too short
        return False
    return (
        signatures <= _SIGNATURES
        and transports <= TRANSPORTS
        and all(type(p) is str for r in rows if r[14] for p in r[14])
    )


def _types(r: Any) -> map[type]:
    if type(r) is not list:
        raise TypeError("not a row")
    return map(type, r)


def valid_row(r: Any) -> bool:
    """True when ``r`` is a row ``from_row`` makes a well-typed binding of
    (bool is not taken for a number)."""
    return valid_rows([r])


def unpack(data: bytes, aor: str) -> tuple[Binding, ...]:
    """The bindings of ``aor`` that ``pack`` packed."""
    return tuple(from_row(r) for r in unpack_rows(data, aor))


def connection_key(binding: Binding) -> ConnectionKey | None:
    """The stream connection ``binding`` lives with (None for UDP)."""
    cid = binding.source.connection_id
    if cid is None or not binding.source.connection_oriented:
        return None
    return (binding.server_id, cid)


def row_connections(rows: list[list[Any]]) -> list[ConnectionKey]:
    """``connection_key`` of each row of ``rows`` (``row``) that has one."""
    return [(r[16], r[11]) for r in rows if r[11] is not None and r[7] != "udp"]


#: Width of an expiry bucket, in seconds.
BUCKET_S: Final = 4


#: Past any real expiry: where a binding that never expires (``Infinity`` in a
#: hand-edited file) is listed.
_NEVER: Final = 1e18


def _bucket(expires_at: float) -> int:
    return int(min(expires_at, _NEVER) // BUCKET_S)


class PackedTable:
    """AOR -> its bindings, packed; with the indexes the store needs."""

    __slots__ = ("_aors", "_by_connection", "_due", "_swept_through", "count")

    def __init__(self) -> None:
        self._aors: dict[str, bytes] = {}
        # Expiry buckets: bucket number -> AORs whose earliest expiry falls in it
        # (an entry may be stale: the AOR refreshed since; it is checked when due).
        self._due: dict[int, list[str]] = {}
        self._swept_through = -1  # buckets up to this one have been taken by ``expired``
        self._by_connection: dict[ConnectionKey, set[str]] = {}
        #: How many bindings the table holds (expired ones not yet purged included).
        self.count = 0

    def __contains__(self, aor: object) -> bool:
        return aor in self._aors

    def get(self, aor: str) -> tuple[Binding, ...]:
        """``aor``'s bindings, unpacked (empty when it has none)."""
        data = self._aors.get(aor)
        return unpack(data, aor) if data is not None else ()

    def packed(self, aor: str) -> bytes:
        """``aor``'s bindings as stored (``EMPTY`` when it has none)."""
        return self._aors.get(aor, EMPTY)

    def set(
        self,
        aor: str,
        old: tuple[Binding, ...],
        new: tuple[Binding, ...],
        packed: bytes | None = None,
    ) -> None:
        """Replace ``aor``'s bindings ``old`` (what ``get`` returned) with
        ``new`` (``packed``: their ``pack``, when the caller made it)."""
        self._reindex(aor, old, new)
        self.count += len(new) - len(old)
        if new:
            self._aors[aor] = pack(new) if packed is None else packed
            due = _bucket(min(b.expires_at for b in new))
            # An AOR already listed in a bucket still to come stays listed there.
            # Listed in a bucket no later than its due one is enough: a sweep
            # that finds it not yet due lists it again where it now belongs.
            was = _bucket(min(b.expires_at for b in old)) if old else None
            if was is None or due < was or was <= self._swept_through:
                self._due.setdefault(due, []).append(aor)
        else:
            self._aors.pop(aor, None)

    def load(
        self,
        aor: str,
        data: bytes,
        first_expiry: float,
        count: int,
        connections: Iterable[ConnectionKey],
    ) -> None:
        """Take ``aor``'s bindings from a file, in place of what it had: ``data``
        is their packed form (kept as it is; checked rows, ``count`` of them),
        with their earliest expiry and the stream connections they live on."""
        held = self._aors.get(aor)
        if held is not None:
            if held != EMPTY:  # (EMPTY: a place held, ``reserve``)
                # Its rows, not its bindings: building their objects only to
                # forget them was a sixth of a start after a crash, when a
                # journal replaced most AORs after the file (docs/benchmarks.md).
                rows = unpack_rows(held, aor)
                by_connection = self._by_connection
                for key in row_connections(rows):
                    aors = by_connection.get(key)
                    if aors is not None:
                        aors.discard(aor)
                        if not aors:
                            del by_connection[key]
                self.count -= len(rows)
            if not count:
                del self._aors[aor]
        if count:
            self._aors[aor] = data
            self._due.setdefault(_bucket(first_expiry), []).append(aor)
            self.count += count
            for key in connections:
                self._by_connection.setdefault(key, set()).add(aor)

    def reserve(self, aors: Iterable[str]) -> None:
        """Hold the place of ``aors`` in the table's order (that of the file, in
        which presence lists who registered first) for ``load`` or ``adopt``
        to fill (an AOR held already keeps its place and bindings); ``adopt``
        gives up the places left."""
        aors_ = self._aors
        for aor in aors:
            aors_.setdefault(aor, EMPTY)

    def adopt(self, other: PackedTable) -> None:
        """Take the AORs of ``other`` (a recovery journal's, which replace this
        table's): each in the place this table holds for it (``reserve``),
        the others after this table's, in ``other``'s order. ``other``'s
        lists and sets become this table's: it is not to be used again."""
        aors = self._aors
        if other._aors:
            aors.update(other._aors)
        # Places no AOR of ``other`` took (the journal removed those AORs).
        for aor in [aor for aor, data in aors.items() if data == EMPTY]:
            del aors[aor]
        self.count += other.count
        for due, listed in other._due.items():
            mine = self._due.get(due)
            if mine is None:
                self._due[due] = listed
            else:
                mine += listed
        for key, holders in other._by_connection.items():
            held = self._by_connection.get(key)
            if held is None:
                self._by_connection[key] = holders
            else:
                held |= holders

    def _reindex(self, aor: str, old: tuple[Binding, ...], new: tuple[Binding, ...]) -> None:
        old_keys = {k for b in old if (k := connection_key(b)) is not None}
        new_keys = {k for b in new if (k := connection_key(b)) is not None}
        for key in old_keys - new_keys:
            aors = self._by_connection.get(key)
            if aors is not None:
                aors.discard(aor)
                if not aors:
                    del self._by_connection[key]
        for key in new_keys - old_keys:
            self._by_connection.setdefault(key, set()).add(aor)

    def expired(self, now: float) -> list[tuple[str, tuple[Binding, ...]]]:
        """The AORs with a binding that has expired at ``now``, each with all its
        bindings; the caller ``set``s each without the expired ones.

        Only the AORs listed in the buckets due by ``now`` are unpacked, not the
        whole table.
        """
        last = _bucket(now)
        listed: list[str] = []
        for due in [b for b in self._due if b <= last]:
            listed += self._due.pop(due)
        out: list[tuple[str, tuple[Binding, ...]]] = []
        again: list[tuple[int, str]] = []
        for aor in dict.fromkeys(listed):  # each once, whatever its stale entries
            if aor not in self._aors:
                continue
            current = self.get(aor)
            first = min(b.expires_at for b in current)
            if first <= now:
                out.append((aor, current))
            else:
                again.append((_bucket(first), aor))  # not due yet: listed where it now is
        self._swept_through = max(self._swept_through, last)
        for due, aor in again:
            self._due.setdefault(due, []).append(aor)
        return out

    def connections(self, server_id: str) -> list[ConnectionKey]:
        """The connections of ``server_id`` that hold bindings."""
        return [k for k in self._by_connection if k[0] == server_id]

    def on_connection(self, key: ConnectionKey) -> list[str]:
        """The AORs with a binding on connection ``key``, sorted."""
        return sorted(self._by_connection.get(key, ()))

    def snapshot(self) -> tuple[list[str], list[bytes]]:
        """Every AOR and, in the same order, its packed bindings (bytes do not
        change): two lists, which cost the loop a seventh of a list of pairs."""
        return list(self._aors), list(self._aors.values())

    def bindings(self) -> Iterator[Binding]:
        """Every binding, unpacked."""
        for aor, data in self._aors.items():
            yield from unpack(data, aor)
