"""Credentials as HA1 per realm and algorithm, never as plain text (RFC 7616 5.2).

The directory keeps, per user, the realm and ``H(user:realm:password)`` for each
algorithm (RFC 7616 3.4.2; RFC 8760 2): that is all a server needs to check a
digest, and a stolen copy does not give the password away, nor work in another
realm. The record of a ``[[users]]`` entry::

    [[users]]
    user = "1001"
    realm = "example.com"
    ha1_md5 = "…32 hex digits…"
    ha1_sha256 = "…64 hex digits…"

A plain ``password`` is still accepted, hashed at load for every realm served,
and reported with a warning for the event log. ``set_password`` and
``add_user`` are the pure part of ``centrex user passwd`` / ``centrex user
add``: they edit the TOML text with tomlkit, so comments and layout survive.

The hashes bind the user name as written in the entry: a client must send that
spelling as its digest ``username`` (RFC 7616 3.4.2), even when user names are
otherwise compared without case.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from centrex.auth.digest import MD5, SHA256, ha1, is_hash

if TYPE_CHECKING:  # tomlkit is imported by the two editing commands only, not by the server
    import tomlkit
    from tomlkit.items import AoT, Array

_USER_NAME_RE = re.compile(r"[A-Za-z0-9._+\-]+")
_RECORD_KEYS = {MD5: "md5", SHA256: "sha256"}


class UserEntry(Protocol):
    """What is read from a ``[[users]]`` entry (``centrex.config.settings.User``).

    ``realm``, ``ha1_md5`` and ``ha1_sha256`` are read when the entry has them.
    """

    @property
    def user(self) -> str: ...

    @property
    def password(self) -> str: ...

    @property
    def enabled(self) -> bool: ...


class UserFileError(ValueError):
    """The users file cannot take the change (unknown or duplicate user, bad input)."""


def hash_password(user: str, realm: str, password: str) -> dict[str, str]:
    """The stored record for ``password``: ``{"realm", "md5", "sha256"}`` (HA1 in hex)."""
    return {
        "realm": realm,
        "md5": ha1(MD5, user, realm, password),
        "sha256": ha1(SHA256, user, realm, password),
    }


@dataclass(frozen=True, slots=True)
class CredentialRecord:
    """One user's HA1 values in one realm; None for an algorithm without a hash."""

    user: str
    realm: str
    md5: str | None = None
    sha256: str | None = None

    def ha1(self, algorithm: str) -> str | None:
        """The HA1 for ``algorithm`` ("MD5" or "SHA-256"), or None."""
        if algorithm == MD5:
            return self.md5
        if algorithm == SHA256:
            return self.sha256
        return None


class Credentials:
    """HA1 values by user and realm: the password store of the authenticator.

    User names are found case-insensitively unless ``case_sensitive``
    (``registrar.case_sensitive``); the record keeps the configured spelling.
    """

    def __init__(self, *, case_sensitive: bool = False) -> None:
        self.case_sensitive = case_sensitive
        self._records: dict[tuple[str, str], CredentialRecord] = {}

    def _key(self, user: str, realm: str) -> tuple[str, str]:
        return (user if self.case_sensitive else user.lower(), realm)

    def add(
        self, user: str, realm: str, *, md5: str | None = None, sha256: str | None = None
    ) -> None:
        """Store HA1 values for ``user`` in ``realm`` (replacing earlier ones).

        ValueError when a value is not a hash of its algorithm.
        """
        for algorithm, value in ((MD5, md5), (SHA256, sha256)):
            if value is not None and not is_hash(algorithm, value):
                raise ValueError(f"the {algorithm} HA1 of {user!r} is not a {algorithm} hash")
        record = CredentialRecord(
            user, realm, md5.lower() if md5 else None, sha256.lower() if sha256 else None
        )
        self._records[self._key(user, realm)] = record

    def add_record(self, user: str, record: Mapping[str, str]) -> None:
        """Store a record as made by :func:`hash_password` (``md5``/``sha256`` optional)."""
        self.add(user, record["realm"], md5=record.get("md5"), sha256=record.get("sha256"))

    def add_password(self, user: str, realm: str, password: str) -> None:
        """Hash ``password`` for ``user`` in ``realm`` and store only the hashes."""
        self.add_record(user, hash_password(user, realm, password))

    def find(self, user: str, realm: str) -> CredentialRecord | None:
        """The record of ``user`` in ``realm``, or None."""
        return self._records.get(self._key(user, realm))

    def lookup(self, user: str, realm: str, algorithm: str) -> str | None:
        """The HA1 of ``user`` in ``realm`` for ``algorithm``, or None when there is none."""
        record = self._records.get(self._key(user, realm))
        return None if record is None else record.ha1(algorithm)

    def __len__(self) -> int:
        return len(self._records)

    @classmethod
    def from_users(
        cls,
        users: Iterable[UserEntry],
        realms: Sequence[str],
        *,
        case_sensitive: bool = False,
        warn_plain: bool = True,
    ) -> tuple[Credentials, list[str]]:
        """The credentials of the enabled ``[[users]]`` and warnings for the event log.

        An entry's ``ha1_md5`` / ``ha1_sha256`` count for its ``realm``; a plain
        ``password`` is hashed for every realm in ``realms`` (where no hash was
        given) and warned about (unless not ``warn_plain``). Disabled users get
        no credentials, so they are answered exactly like unknown ones.
        """
        credentials = cls(case_sensitive=case_sensitive)
        warnings: list[str] = []
        for index, entry in enumerate(users):
            if not entry.enabled:
                continue
            name = entry.user
            realm = _text_attribute(entry, "realm")
            md5 = _text_attribute(entry, "ha1_md5") or None
            sha256 = _text_attribute(entry, "ha1_sha256") or None
            hashed_realm = None
            if md5 or sha256:
                if not realm:
                    warnings.append(
                        f"users[{index}] ({name}): ha1 hashes without a realm are ignored; "
                        f"run `centrex user passwd {name}`"
                    )
                else:
                    try:
                        credentials.add(name, realm, md5=md5, sha256=sha256)
                        hashed_realm = realm
                    except ValueError as exc:
                        warnings.append(
                            f"users[{index}] ({name}): ha1_md5 / ha1_sha256: {exc}; both "
                            f"ignored. Fix: run `centrex user passwd {name}`"
                        )
            if entry.password:
                for served in realms:
                    if served != hashed_realm:
                        credentials.add_password(name, served, entry.password)
                if warn_plain:
                    warnings.append(
                        f"users[{index}] ({name}): password is stored in plain text; it was "
                        f"hashed at load. Run `centrex user passwd {name}` to keep only hashes"
                    )
            elif hashed_realm is not None and any(r != hashed_realm for r in realms):
                warnings.append(_realm_warning(index, name, hashed_realm, realms))
        return credentials, warnings


def _realm_warning(index: int, name: str, hashed: str, realms: Sequence[str]) -> str:
    """Why a user whose hashes are for one realm fails in the others: a hash
    is of user:realm:password, so it answers one realm's challenge only."""
    others = ", ".join(r for r in realms if r != hashed)
    if hashed not in realms:
        where = f"realm {hashed}, in which this server never challenges ({others})"
    else:
        where = f"realm {hashed} only: it cannot authenticate in {others}"
    return (
        f"users[{index}] ({name}): its hashes are for {where}; set [auth] realm "
        f'= "{hashed}" to challenge in one realm for every domain, or run '
        f"`centrex user passwd {name}` after setting the realm"
    )


def _text_attribute(entry: object, name: str) -> str:
    value = getattr(entry, name, "")
    return value if isinstance(value, str) else ""


# -- the users file (``centrex user add`` / ``centrex user passwd``) -----------------


def _check_new_password(password: str) -> None:
    if not password:
        raise UserFileError("the password must not be empty")


def _users_array(doc: tomlkit.TOMLDocument, *, create: bool) -> AoT | Array | None:
    import tomlkit
    from tomlkit.items import AoT, Array

    users: Any = doc.get("users")
    if users is None:
        if not create:
            return None
        users = tomlkit.aot()
        doc.append("users", users)
        return users  # type: ignore[no-any-return]
    if not isinstance(users, AoT | Array):
        raise UserFileError("users must be [[users]] tables")
    return users


def _find_entry(users: AoT | Array | None, name: str, case_sensitive: bool) -> Any:
    from tomlkit.items import InlineTable, Table

    if users is None:
        return None
    wanted = name if case_sensitive else name.lower()
    for entry in users:
        if not isinstance(entry, Table | InlineTable):
            raise UserFileError("every users entry must be a table")
        written = entry.get("user")
        if isinstance(written, str):
            key = written if case_sensitive else written.lower()
            if key == wanted:
                return entry
    return None


def set_password(
    users_toml_text: str, name: str, realm: str, password: str, *, case_sensitive: bool = False
) -> str:
    """``users_toml_text`` with user ``name``'s password replaced by its hashes.

    Sets ``realm``, ``ha1_md5`` and ``ha1_sha256`` of the ``[[users]]`` entry and
    removes a plain ``password``; everything else (comments included) is kept.
    UserFileError when there is no such user or the password is empty.
    """
    import tomlkit

    _check_new_password(password)
    doc = tomlkit.parse(users_toml_text)
    entry = _find_entry(_users_array(doc, create=False), name, case_sensitive)
    if entry is None:
        raise UserFileError(f'there is no [[users]] entry with user = "{name}"')
    record = hash_password(str(entry["user"]), realm, password)
    entry["realm"] = realm
    entry["ha1_md5"] = record["md5"]
    entry["ha1_sha256"] = record["sha256"]
    if "password" in entry:
        del entry["password"]
    return tomlkit.dumps(doc)


def add_user(
    users_toml_text: str,
    name: str,
    realm: str,
    password: str,
    *,
    description: str = "",
    case_sensitive: bool = False,
) -> str:
    """``users_toml_text`` with a new ``[[users]]`` entry holding only hashes.

    UserFileError when the name is not a SIP user name (letters, digits, '.',
    '_', '+', '-'), is already used, or the password is empty.
    """
    if not _USER_NAME_RE.fullmatch(name):
        raise UserFileError(
            f"{name!r} is not a user name: use letters, digits, '.', '_', '+' or '-'"
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in description):
        raise UserFileError("the description must not contain control characters")
    import tomlkit
    from tomlkit.items import AoT

    _check_new_password(password)
    doc = tomlkit.parse(users_toml_text)
    users = _users_array(doc, create=True)
    if _find_entry(users, name, case_sensitive) is not None:
        raise UserFileError(f'a [[users]] entry with user = "{name}" already exists')
    record = hash_password(name, realm, password)
    fields = {
        "user": name,
        "description": description,
        "realm": realm,
        "ha1_md5": record["md5"],
        "ha1_sha256": record["sha256"],
    }
    if isinstance(users, AoT):
        table = tomlkit.table()
        table.update(fields)
        users.append(table)
    else:
        inline = tomlkit.inline_table()
        inline.update(fields)
        assert users is not None
        users.append(inline)
    return tomlkit.dumps(doc)


__all__ = [
    "CredentialRecord",
    "Credentials",
    "UserEntry",
    "UserFileError",
    "add_user",
    "hash_password",
    "set_password",
]
