"""The binding decision of a REGISTER: RFC 3261 10.3 steps 6 to 8, pure.

``decide`` takes the AOR's stored bindings, the request as ``read_register``
left it and the clock, and returns the ``Outcome``: the response status, the
``Changes`` for the store and the bindings the 200 lists. It does no I/O, so a
store calls it inside its transaction and tests call it directly.

Beyond RFC 3261:

* A contact that matches no binding by URI but comes from the same device as
  one (the same ``+sip.instance`` and ``reg-id``, RFC 5626 6; without an
  instance, the same Call-ID, RFC 3261 10.2.4, from another source address)
  replaces that binding, so a phone whose address or NAT mapping changed
  does not leave its old contact behind. The same Call-ID from the same
  source adds a contact (10.2.1.2).
* ``max_contacts`` per AOR, with the ``reject`` (403) or ``evict_oldest``
  policy; the oldest binding is the one refreshed least recently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from centrex.config.settings import RegistrarSettings
from centrex.registrar.binding import Binding, live_bindings
from centrex.registrar.request import ContactRequest, RegisterRequest
from centrex.registrar.store import NO_CHANGES, Changes
from centrex.sip.errors import ParseError
from centrex.sip.uri import URI, parse_uri


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one REGISTER decision.

    ``status`` is 200, 403 (too many contacts) or 500 (an out-of-order
    update); ``changes`` is empty unless it is 200. ``before`` are the stored
    bindings the decision saw; ``bindings`` the live ones afterwards in lookup
    order (what the 200 lists); ``evicted`` those ``evict_oldest`` pushed out.
    """

    status: int
    reason: str | None
    changes: Changes
    before: tuple[Binding, ...]
    bindings: tuple[Binding, ...] = ()
    evicted: tuple[Binding, ...] = ()

    # Written out: a compiled build compiles it (the dataclass's own runs
    # interpreted, ~15x slower); object.__setattr__ as the class is frozen.
    def __init__(
        self,
        status: int,
        reason: str | None,
        changes: Changes,
        before: tuple[Binding, ...],
        bindings: tuple[Binding, ...] = (),
        evicted: tuple[Binding, ...] = (),
    ) -> None:
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "reason", reason)
        object.__setattr__(self, "changes", changes)
        object.__setattr__(self, "before", before)
        object.__setattr__(self, "bindings", bindings)
        object.__setattr__(self, "evicted", evicted)

    @property
    def ok(self) -> bool:
        """True for a 200."""
        return self.status == 200


class _Abort(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _out_of_order(binding: Binding, reg: RegisterRequest) -> bool:
    """RFC 3261 10.3 step 7: same Call-ID and a CSeq not above the stored one."""
    return binding.call_id == reg.call_id and reg.cseq <= binding.cseq


_OUT_OF_ORDER: Final = "Out of order REGISTER: CSeq not higher than the binding's"


def decide(
    reg: RegisterRequest,
    current: list[Binding],
    now: float,
    settings: RegistrarSettings,
    *,
    server_id: str,
    new_id: Callable[[], str],
) -> Outcome:
    """Apply a REGISTER to the stored ``current`` bindings of its AOR at ``now``.

    All contacts succeed or the request fails and nothing changes (10.3 step
    7). Expired bindings are treated as absent and removed with any change.
    ``new_id`` names new bindings; ``server_id`` is written into bindings this
    server now holds.
    """
    before = tuple(current)
    live = [b for b in current if b.expires_at > now]
    if reg.is_query:
        return Outcome(200, None, NO_CHANGES, before, tuple(live_bindings(live, now)))
    try:
        if reg.wildcard:
            return _remove_all(reg, before, live)
        working, touched = _apply_contacts(reg, live, now, server_id, new_id)
        evicted = _limit(live, working, touched, settings)
    except _Abort as abort:
        return Outcome(abort.status, abort.reason, NO_CHANGES, before)
    original = {b.id: b for b in before}
    put = tuple(b for b in working.values() if original.get(b.id) is not b)
    remove = tuple(b.id for b in before if b.id not in working)
    return Outcome(
        200,
        None,
        Changes(put, remove),
        before,
        tuple(live_bindings(working.values(), now)),
        evicted,
    )


def _remove_all(reg: RegisterRequest, before: tuple[Binding, ...], live: list[Binding]) -> Outcome:
    """``Contact: *`` with ``Expires: 0`` (10.3 step 6 and 7)."""
    if any(_out_of_order(b, reg) for b in live):
        raise _Abort(500, _OUT_OF_ORDER)
    return Outcome(200, None, Changes((), tuple(b.id for b in before)), before)


def _parsed(binding: Binding) -> URI | None:
    try:
        return parse_uri(binding.contact)
    except ParseError:
        return None


def _match(contact: ContactRequest, live: list[Binding]) -> str | None:
    """The id of the stored binding whose contact is ``contact``'s URI, if any.

    A refresh names its contact as it did before: the same text is the same
    URI, found without parsing the stored ones; otherwise they are compared
    as URIs (19.1.4: case, escapes and parameter order may differ)."""
    for binding in live:
        if binding.contact == contact.text:
            return binding.id
    for binding in live:
        if _parsed(binding) == contact.uri:
            return binding.id
    return None


def instance_key(instance: str) -> str:
    """``+sip.instance`` in the form two equal ones share (RFC 5626 4.1: a
    URN, RFC 8141 3: its scheme and namespace compared without case; RFC
    4122 3: a UUID's hex digits too)."""
    bare = instance[1:-1] if instance.startswith("<") and instance.endswith(">") else instance
    lowered = bare.lower()
    if lowered.startswith("urn:uuid:"):
        return lowered
    if lowered.startswith("urn:"):
        end = lowered.find(":", 4)
        if end > 0:
            return lowered[:end] + bare[end:]
    return bare


def _same_device(binding: Binding, contact: ContactRequest, reg: RegisterRequest) -> bool:
    if contact.instance is not None:
        return (
            binding.instance is not None
            and instance_key(binding.instance) == instance_key(contact.instance)
            and binding.reg_id == contact.reg_id
        )
    # The same Call-ID from another source address: the phone moved (a new
    # IP address or NAT mapping) and this is its new contact. From the same
    # source it is the phone adding a contact (RFC 3261 10.2.1.2, one
    # Call-ID for all of a UA's registrations, 10.2.4), which stays beside
    # the others.
    if binding.call_id != reg.call_id:
        return False
    if binding.path or reg.path:
        # Through an edge proxy (Path, RFC 3327) every REGISTER has its
        # source: the same Call-ID is the same device, as it always was.
        return True
    old, new = binding.source, reg.source
    return (old.transport, old.host, old.port) != (new.transport, new.host, new.port)


def _apply_contacts(
    reg: RegisterRequest,
    live: list[Binding],
    now: float,
    server_id: str,
    new_id: Callable[[], str],
) -> tuple[dict[str, Binding], set[str]]:
    """The AOR's bindings after each contact of ``reg`` is applied, by id, and
    the ids of the bindings the request wrote."""
    working = {b.id: b for b in live}
    # Which stored binding each contact names by URI (RFC 3261 19.1.4 comparison).
    matches = [_match(c, live) for c in reg.contacts]
    named = {bid for bid in matches if bid is not None}
    touched: set[str] = set()
    for contact, match in zip(reg.contacts, matches, strict=True):
        if match is not None and match in working:
            old = working[match]
            if match not in touched and _out_of_order(old, reg):
                raise _Abort(500, _OUT_OF_ORDER)
            if contact.expires == 0:
                del working[match]
            else:
                working[match] = _refresh(old, contact, reg, now, server_id)
            touched.add(match)
            continue
        if contact.expires == 0:
            continue  # removing a binding that does not exist changes nothing
        same_device = [
            b
            for b in working.values()
            if b.id not in touched and b.id not in named and _same_device(b, contact, reg)
        ]
        if any(_out_of_order(b, reg) for b in same_device):
            raise _Abort(500, _OUT_OF_ORDER)
        for b in same_device:
            del working[b.id]
        binding = _new(contact, reg, now, server_id, new_id())
        working[binding.id] = binding
        touched.add(binding.id)
    return working, touched


def _limit(
    live: list[Binding],
    working: dict[str, Binding],
    touched: set[str],
    settings: RegistrarSettings,
) -> tuple[Binding, ...]:
    """Enforce ``max_contacts``; returns the evicted bindings (removed from ``working``).

    Only growth is refused: an AOR over a lowered limit can still refresh.
    Bindings the request itself wrote are never evicted.
    """
    limit = settings.max_contacts
    if len(working) <= limit or len(working) <= len(live):
        return ()
    refused = _Abort(403, f"Too many contacts (at most {limit})")
    if settings.max_contacts_policy == "reject":
        raise refused
    candidates = sorted(
        (b for b in working.values() if b.id not in touched),
        key=lambda b: (b.updated_at, b.created_at),
    )
    excess = len(working) - limit
    if excess > len(candidates):
        raise refused
    evicted = tuple(candidates[:excess])
    for b in evicted:
        del working[b.id]
    return evicted


def _new(
    contact: ContactRequest,
    reg: RegisterRequest,
    now: float,
    server_id: str,
    binding_id: str,
    created_at: float | None = None,
) -> Binding:
    return Binding(
        id=binding_id,
        aor=reg.aor,
        contact=contact.text,
        expires_at=now + contact.expires,
        q=contact.q,
        call_id=reg.call_id,
        cseq=reg.cseq,
        source=reg.source,
        instance=contact.instance,
        reg_id=contact.reg_id,
        path=reg.path,
        user_agent=reg.user_agent,
        server_id=server_id,
        created_at=now if created_at is None else created_at,
        updated_at=now,
    )


def _refresh(
    old: Binding, contact: ContactRequest, reg: RegisterRequest, now: float, server_id: str
) -> Binding:
    return _new(contact, reg, now, server_id, old.id, old.created_at)
