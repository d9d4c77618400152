"""Bindings of the location service (RFC 3261 10, 10.3; RFC 3327; RFC 5626).

A ``Binding`` is one contact registered for an address-of-record, with
everything the proxy needs to reach it again (the address and transport the
REGISTER came from, the local socket and connection it came on, the Path to
route through) and what the shared database mode needs to tell servers apart
(``server_id``). Bindings are immutable: a refresh replaces the binding with
one that keeps its ``id``. ``Changes`` is what one update does to an AOR's
bindings (``apply_changes`` applies it), ``AorRemoval`` what a store removed
on its own (purge, a closed connection).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

#: The transports a REGISTER can arrive on.
TRANSPORTS: Final = frozenset({"udp", "tcp", "tls", "ws", "wss"})


@dataclass(frozen=True, slots=True)
class Source:
    """Where a REGISTER came from, as the transport layer received it.

    ``host`` and ``port`` are the packet's source address (RFC 3261 18.2.1
    "received"/"rport"), ``local`` names the socket it arrived on (for instance
    ``"udp:192.0.2.1:5060"``), ``connection_id`` the TCP/TLS/WebSocket
    connection it came over (None for UDP).
    """

    transport: str
    host: str
    port: int
    local: str = ""
    connection_id: int | None = None

    # Written out: a compiled build compiles it (the dataclass's own runs
    # interpreted, ~15x slower); object.__setattr__ as the class is frozen.
    def __init__(
        self,
        transport: str,
        host: str,
        port: int,
        local: str = "",
        connection_id: int | None = None,
    ) -> None:
        object.__setattr__(self, "transport", transport)
        object.__setattr__(self, "host", host)
        object.__setattr__(self, "port", port)
        object.__setattr__(self, "local", local)
        object.__setattr__(self, "connection_id", connection_id)
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {sorted(TRANSPORTS)}, not {transport!r}")

    @property
    def connection_oriented(self) -> bool:
        """True for the stream transports, whose bindings live with their connection."""
        return self.transport != "udp"


@dataclass(frozen=True, slots=True)
class Binding:
    """One contact of an address-of-record (RFC 3261 10.3 step 7).

    ``contact`` is the Contact URI as registered; ``expires_at`` the wall-clock
    time (seconds) it lapses at; ``q`` its preference (None when the UA gave
    none); ``call_id`` and ``cseq`` those of the REGISTER that last wrote it,
    which order later updates (10.3 step 7). ``instance`` and ``reg_id`` are the
    ``+sip.instance`` and ``reg-id`` Contact parameters (RFC 5626 4.1), ``path``
    the Path header values in order (RFC 3327 5.3). ``id`` identifies the
    binding across refreshes (a database row key); ``server_id`` is the server
    instance that holds its connection.
    """

    id: str
    aor: str
    contact: str
    expires_at: float
    q: float | None
    call_id: str
    cseq: int
    source: Source
    instance: str | None = None
    reg_id: int | None = None
    path: tuple[str, ...] = ()
    user_agent: str | None = None
    server_id: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0

    # Written out: a compiled build compiles it (the dataclass's own runs
    # interpreted, ~15x slower); object.__setattr__ as the class is frozen.
    def __init__(
        self,
        id: str,
        aor: str,
        contact: str,
        expires_at: float,
        q: float | None,
        call_id: str,
        cseq: int,
        source: Source,
        instance: str | None = None,
        reg_id: int | None = None,
        path: tuple[str, ...] = (),
        user_agent: str | None = None,
        server_id: str = "",
        created_at: float = 0.0,
        updated_at: float = 0.0,
    ) -> None:
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "aor", aor)
        object.__setattr__(self, "contact", contact)
        object.__setattr__(self, "expires_at", expires_at)
        object.__setattr__(self, "q", q)
        object.__setattr__(self, "call_id", call_id)
        object.__setattr__(self, "cseq", cseq)
        object.__setattr__(self, "source", source)
        object.__setattr__(self, "instance", instance)
        object.__setattr__(self, "reg_id", reg_id)
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "user_agent", user_agent)
        object.__setattr__(self, "server_id", server_id)
        object.__setattr__(self, "created_at", created_at)
        object.__setattr__(self, "updated_at", updated_at)

    def live(self, now: float) -> bool:
        """True while the binding has not expired at ``now``."""
        return self.expires_at > now

    def remaining(self, now: float) -> int:
        """Whole seconds left (the ``expires`` value a 200 reports, 10.3 step 8):
        at least 1 while it is live (``expires=0`` says a contact was removed)."""
        left = self.expires_at - now
        return max(1, round(left)) if left > 0 else 0

    @property
    def preference(self) -> float:
        """``q`` for ordering; a contact without q ranks as q=1."""
        return 1.0 if self.q is None else self.q


def lookup_order(bindings: Iterable[Binding]) -> list[Binding]:
    """Bindings by q descending, then most recently refreshed first (RFC 3261 16.6)."""
    return sorted(bindings, key=lambda b: (-b.preference, -b.updated_at, -b.created_at))


def live_bindings(bindings: Iterable[Binding], now: float) -> list[Binding]:
    """The bindings that have not expired at ``now``, in lookup order."""
    return lookup_order(b for b in bindings if b.expires_at > now)


@dataclass(frozen=True, slots=True)
class Changes:
    """What one update does to one AOR: bindings to write, binding ids to delete.

    A binding in ``put`` replaces the stored binding with the same ``id``, or
    is added when there is none.
    """

    put: tuple[Binding, ...] = ()
    remove: tuple[str, ...] = ()

    # Written out: a compiled build compiles it (the dataclass's own runs
    # interpreted, ~15x slower); object.__setattr__ as the class is frozen.
    def __init__(self, put: tuple[Binding, ...] = (), remove: tuple[str, ...] = ()) -> None:
        object.__setattr__(self, "put", put)
        object.__setattr__(self, "remove", remove)

    @property
    def empty(self) -> bool:
        """True when the update writes nothing."""
        return not self.put and not self.remove

    @property
    def size(self) -> int:
        """How many bindings the update writes or deletes."""
        return len(self.put) + len(self.remove)


NO_CHANGES: Final = Changes()


@dataclass(frozen=True, slots=True)
class AorRemoval:
    """Bindings a store removed from one AOR on its own initiative (purge,
    closed connection), with what the AOR still holds afterwards."""

    aor: str
    removed: tuple[Binding, ...]
    remaining: tuple[Binding, ...]

    # Written out: a compiled build compiles it (the dataclass's own runs
    # interpreted, ~15x slower); object.__setattr__ as the class is frozen.
    def __init__(
        self,
        aor: str,
        removed: tuple[Binding, ...],
        remaining: tuple[Binding, ...],
    ) -> None:
        object.__setattr__(self, "aor", aor)
        object.__setattr__(self, "removed", removed)
        object.__setattr__(self, "remaining", remaining)


def apply_changes(current: tuple[Binding, ...], changes: Changes) -> tuple[Binding, ...]:
    """``current`` with ``changes`` applied: removals first, then puts by id."""
    if changes.empty:
        return current
    gone = set(changes.remove)
    replaced = {b.id: b for b in changes.put}
    out = [replaced.pop(b.id, b) for b in current if b.id not in gone]
    out.extend(replaced.values())
    return tuple(out)
