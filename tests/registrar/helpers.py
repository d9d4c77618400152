"""Building blocks of the registrar tests: real REGISTER bytes, parsed."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any

from centrex.config.settings import RegistrarSettings, User
from centrex.directory import Directory
from centrex.registrar.binding import Binding, Source
from centrex.registrar.memory import MemoryLocationStore
from centrex.registrar.registrar import Registrar
from centrex.registrar.store import LocationStore
from centrex.sip.message import Request, Response
from centrex.sip.parser import parse_message

T0 = 1_700_000_000.0
UDP = Source("udp", "192.0.2.10", 5060, "udp:203.0.113.1:5060")
_branches = itertools.count(1)


def register(
    contacts: str | Sequence[str] | None = "<sip:alice@192.0.2.10:5060>",
    *,
    to: str = "sip:alice@example.com",
    ruri: str = "sip:example.com",
    call_id: str = "call-1@192.0.2.10",
    cseq: int = 1,
    expires: int | None = None,
    extra: Iterable[str] = (),
) -> Request:
    """A REGISTER as a phone sends it, parsed from bytes."""
    lines = [
        f"REGISTER {ruri} SIP/2.0",
        f"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK{next(_branches)};rport",
        "Max-Forwards: 70",
        f"From: <{to}>;tag=f{cseq}",
        f"To: <{to}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
    ]
    if isinstance(contacts, str):
        lines.append(f"Contact: {contacts}")
    elif contacts is not None:
        lines.extend(f"Contact: {c}" for c in contacts)
    if expires is not None:
        lines.append(f"Expires: {expires}")
    lines.extend(extra)
    lines += ["User-Agent: TestPhone/1.0", "Content-Length: 0"]
    message = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(message, Request)
    return message


def settings(**changes: Any) -> RegistrarSettings:
    return RegistrarSettings(**changes)


def directory(*names: str, disabled: Iterable[str] = (), case_sensitive: bool = False) -> Directory:
    off = set(disabled)
    users = [User(user=n, enabled=n not in off) for n in (*names, *off)]
    return Directory(users, case_sensitive)


def make_registrar(
    store: LocationStore | None = None,
    *,
    users: Iterable[str] = ("alice", "bob"),
    disabled: Iterable[str] = (),
    server_id: str = "srv1",
    domains: Sequence[str] = ("example.com",),
    **changes: Any,
) -> Registrar:
    ids = itertools.count(1)
    tags = itertools.count(1)
    return Registrar(
        settings(**changes),
        store if store is not None else MemoryLocationStore(None),
        domains=list(domains),
        directory=directory(*users, disabled=disabled),
        server_id=server_id,
        new_id=lambda: f"b{next(ids)}",
        new_tag=lambda: f"t{next(tags)}",
    )


def contact_values(response: Response) -> list[str]:
    return response.get_all("Contact")


def reparse(response: Response) -> Response:
    """The response as a peer reads it off the wire."""
    parsed = parse_message(response.to_bytes())
    assert isinstance(parsed, Response)
    return parsed


def binding(
    contact: str = "sip:alice@192.0.2.10:5060",
    *,
    id: str = "b1",
    aor: str = "sip:alice@example.com",
    expires_at: float = T0 + 3600,
    q: float | None = None,
    call_id: str = "call-1@192.0.2.10",
    cseq: int = 1,
    source: Source = UDP,
    server_id: str = "srv1",
    updated_at: float = T0,
    **rest: Any,
) -> Binding:
    return Binding(
        id=id,
        aor=aor,
        contact=contact,
        expires_at=expires_at,
        q=q,
        call_id=call_id,
        cseq=cseq,
        source=source,
        server_id=server_id,
        created_at=rest.pop("created_at", updated_at),
        updated_at=updated_at,
        **rest,
    )
