"""Who is registered, as presence sees it: the registrar's events, replayed.

The presence service keeps its own list of which AORs have bindings, seeded
from the store at start (``load``) and kept current by the registrar's
``AorEvent``s: the registrar events and the presence package (RFC 3856)
build on exactly the available / unavailable transitions. The reg package
(RFC 3680) reports each contact that comes or goes besides, from the
"changed" events the registrar makes for the AORs it has watchers of;
those change nothing here. Users are named as the directory spells them,
with their directory description.

The bindings themselves (what a ``reg`` NOTIFY lists) are read from the
location store (``source``: the memory store's table or the database
store's cache, both in this process): a copy here would double what every
registered user costs, and would hold only what the event that made the
AOR available reported, not a phone registered after it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from centrex.directory import Directory
from centrex.presence.userlist import UserEntry, encode_all
from centrex.registrar.aor import aor_host, aor_user
from centrex.registrar.binding import Binding, lookup_order
from centrex.sip.uri import unescape


class Roster:
    """The AORs that have live bindings, per domain, with those bindings.

    ``source(aor, now)`` gives an AOR's live bindings from the location
    store; the roster then keeps only which AORs are available (100,000
    registered users cost presence 4.4 MB of RSS in process, their dict
    entries, against 25 MB with packed copies). Without one (a table made
    without a store, as in tests) it keeps the bindings the events report.
    """

    def __init__(
        self,
        directory: Directory,
        *,
        case_sensitive: bool = False,
        source: Callable[[str, float], tuple[Binding, ...]] | None = None,
    ) -> None:
        self.directory = directory
        self.case_sensitive = case_sensitive
        self._source = source
        # AOR -> the bindings last reported, or () with a source (read from there).
        self._domains: dict[str, dict[str, tuple[Binding, ...]]] = {}
        # Who is in each domain changed this many times (for the list cache).
        self._versions: dict[str, int] = {}
        self._lists: dict[tuple[bool, str], tuple[int, int, list[str], list[int]]] = {}

    def load(self, bindings: Iterable[Binding], now: float) -> int:
        """Replace the roster with the live ``bindings`` (at start); returns the AOR count."""
        grouped: dict[str, list[Binding]] = {}
        for binding in bindings:
            if binding.live(now):
                grouped.setdefault(binding.aor, []).append(binding)
        self._domains = {}
        self._lists.clear()
        for aor, found in grouped.items():
            self.set(aor, tuple(lookup_order(found)))
        return len(grouped)

    def set(self, aor: str, bindings: tuple[Binding, ...]) -> None:
        """Record ``aor``'s bindings (none: it left)."""
        domain = aor_host(aor)
        table = self._domains.get(domain)
        if bindings:
            if table is None:
                table = self._domains[domain] = {}
            if aor not in table:
                self._versions[domain] = self._versions.get(domain, 0) + 1
            table[aor] = () if self._source is not None else bindings
        elif table is not None:
            if table.pop(aor, None) is not None:
                self._versions[domain] = self._versions.get(domain, 0) + 1
            if not table:
                del self._domains[domain]

    def change(self, aor: str, came: tuple[Binding, ...], gone: tuple[Binding, ...]) -> None:
        """Contacts of ``aor`` came or went while it stays available: nothing
        to do with a source (the store has them); else the bindings kept
        as reported follow."""
        if self._source is not None:
            return
        table = self._domains.get(aor_host(aor))
        if table is None or aor not in table:
            return
        went = {b.id for b in gone} | {b.id for b in came}
        kept = [b for b in table[aor] if b.id not in went]
        table[aor] = tuple(lookup_order([*kept, *came]))

    def bindings(self, aor: str, now: float) -> tuple[Binding, ...]:
        """The bindings ``aor`` has: those live at ``now`` in the store
        (``source``), else as last reported."""
        table = self._domains.get(aor_host(aor))
        if table is None or aor not in table:
            return ()
        if self._source is not None:
            return self._source(aor, now)
        return table[aor]

    def is_available(self, aor: str) -> bool:
        """True when ``aor`` has at least one binding."""
        table = self._domains.get(aor_host(aor))
        return table is not None and aor in table

    def __len__(self) -> int:
        return sum(len(table) for table in self._domains.values())

    def entry(self, aor: str) -> UserEntry:
        """The list entry of ``aor``: the directory's name and description."""
        user = unescape(aor_user(aor) or "")
        found = self.directory.find(user)
        if found is None:
            return UserEntry(user, "")
        return UserEntry(found.user, found.description)

    def available_users(self, domain: str) -> list[UserEntry]:
        """The users of ``domain`` with bindings, in the order they registered."""
        return [self.entry(aor) for aor in self._domains.get(domain, {})]

    def unavailable_users(self, domain: str) -> list[UserEntry]:
        """The directory's users without bindings in ``domain``, in directory order."""
        online = self._domains.get(domain, {})
        out: list[UserEntry] = []
        for user in self.directory.all():
            name = user.user if self.case_sensitive else user.user.lower()
            if f"sip:{name}@{domain}" not in online:
                out.append(UserEntry(user.user, user.description))
        return out

    def encoded_list(self, domain: str, *, available: bool) -> tuple[list[str], list[int]]:
        """``available_users`` (or ``unavailable_users``) of ``domain`` encoded for
        the Event header, with their byte sizes (``encode_all``).

        Kept until someone joins or leaves the domain or the directory is
        reloaded, so the subscribers that ask for a list in between (all the
        phones of an office after a restart) share one build of it. The lists
        returned are shared: do not change them.
        """
        key = (available, domain)
        stamp = (self._versions.get(domain, 0), self.directory.version)
        cached = self._lists.get(key)
        if cached is not None and cached[:2] == stamp:
            return cached[2], cached[3]
        users = self.available_users(domain) if available else self.unavailable_users(domain)
        encoded, sizes = encode_all(users)
        self._lists[key] = (*stamp, encoded, sizes)
        return encoded, sizes
