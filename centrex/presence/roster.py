"""Who is registered, as presence sees it: the registrar's events, replayed.

The presence service does not read the location store (that is async and may
be a remote database). It keeps its own copy of which AORs have bindings,
seeded from the store at start (``load``) and kept current by the registrar's
``AorEvent``s (RFC 3680 and RFC 3856 notifiers build on exactly the
available / unavailable transitions). Users are named as the directory
spells them, with their directory description.
"""

from __future__ import annotations

from collections.abc import Iterable

from centrex.directory import Directory
from centrex.presence.userlist import UserEntry
from centrex.registrar.aor import aor_host, aor_user
from centrex.registrar.binding import Binding, lookup_order
from centrex.sip.uri import unescape


class Roster:
    """The AORs that have live bindings, per domain, with those bindings."""

    def __init__(self, directory: Directory, *, case_sensitive: bool = False) -> None:
        self.directory = directory
        self.case_sensitive = case_sensitive
        self._domains: dict[str, dict[str, tuple[Binding, ...]]] = {}

    def load(self, bindings: Iterable[Binding], now: float) -> int:
        """Replace the roster with the live ``bindings`` (at start); returns the AOR count."""
        grouped: dict[str, list[Binding]] = {}
        for binding in bindings:
            if binding.live(now):
                grouped.setdefault(binding.aor, []).append(binding)
        self._domains = {}
        for aor, found in grouped.items():
            self.set(aor, tuple(lookup_order(found)))
        return len(grouped)

    def set(self, aor: str, bindings: tuple[Binding, ...]) -> tuple[Binding, ...]:
        """Record ``aor``'s bindings (none: it left); returns the bindings it had."""
        domain = aor_host(aor)
        table = self._domains.get(domain)
        before = table.get(aor, ()) if table is not None else ()
        if bindings:
            self._domains.setdefault(domain, {})[aor] = bindings
        elif table is not None:
            table.pop(aor, None)
            if not table:
                del self._domains[domain]
        return before

    def bindings(self, aor: str) -> tuple[Binding, ...]:
        """The bindings ``aor`` has, as last reported."""
        table = self._domains.get(aor_host(aor))
        return table.get(aor, ()) if table is not None else ()

    def is_available(self, aor: str) -> bool:
        """True when ``aor`` has at least one binding."""
        return bool(self.bindings(aor))

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
