"""The user directory: who the registrar and the proxy know (``[[users]]``).

A user is found by the user part of an address, compared case-insensitively
unless ``registrar.case_sensitive``. A disabled user (``enabled = false``) is
treated as absent: it cannot register (the registrar answers 403, RFC 3261
10.3 step 4) and calls to it find no one. ``include_disabled=True`` reaches it
anyway, for the admin and for telling "disabled" from "unknown".
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from centrex.config.settings import User


class Directory:
    """The users of the server, looked up by user name."""

    def __init__(self, users: Iterable[User], case_sensitive: bool) -> None:
        self.case_sensitive = case_sensitive
        #: Grows with every ``replace``: what was derived from the users is stale.
        self.version = 0
        self._users: dict[str, User] = {}
        for user in users:
            key = self.key(user.user)
            if key in self._users:
                raise ValueError(f"user {user.user!r} is listed twice")
            self._users[key] = user

    def replace(self, other: Directory) -> None:
        """Take the users of ``other`` (a reload), keeping this object for its holders."""
        self.case_sensitive = other.case_sensitive
        self._users = dict(other._users)
        self.version += 1

    def key(self, name: str) -> str:
        """How ``name`` is compared: as written, or lower-cased."""
        return name if self.case_sensitive else name.lower()

    def find(self, name: str, *, include_disabled: bool = False) -> User | None:
        """The user called ``name``; a disabled one only with ``include_disabled``."""
        user = self._users.get(self.key(name))
        if user is None or (not user.enabled and not include_disabled):
            return None
        return user

    def all(self, *, include_disabled: bool = False) -> list[User]:
        """Every user in the order configured (the disabled ones only on request)."""
        return [u for u in self._users.values() if include_disabled or u.enabled]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.find(name) is not None

    def __iter__(self) -> Iterator[User]:
        return iter(self.all())

    def __len__(self) -> int:
        return len(self.all())
