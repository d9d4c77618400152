"""NOTIFY bodies of the standard packages, built from registration state.

``reginfo`` writes application/reginfo+xml (RFC 3680 5.1) and ``pidf``
application/pidf+xml (RFC 3863 4, the body RFC 3856 6.5 asks of a presence
notifier). Both go through xml.etree, so every name and URI is escaped.
"""

from __future__ import annotations

import hashlib
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from typing import Literal

from centrex.registrar.binding import Binding

REGINFO_TYPE = "application/reginfo+xml"
PIDF_TYPE = "application/pidf+xml"
REGINFO_NS = "urn:ietf:params:xml:ns:reginfo"
PIDF_NS = "urn:ietf:params:xml:ns:pidf"

#: RFC 3680 5.1: the state of a registration element.
RegistrationState = Literal["init", "active", "terminated"]
#: RFC 3680 5.1: why a contact is in its state.
ContactEvent = Literal[
    "registered", "created", "refreshed", "shortened", "expired", "deactivated",
    "probation", "unregistered", "rejected",
]  # fmt: skip
#: One contact of a reginfo document: the binding, whether it is active, and why.
ContactChange = tuple[Binding, bool, ContactEvent]


def _short_id(prefix: str, text: str) -> str:
    """A stable XML-safe id for ``text`` (an ID must start with a letter)."""
    digest = hashlib.blake2s(text.encode("utf-8", "surrogateescape"), digest_size=5).hexdigest()
    return prefix + digest


def _render(root: ET.Element) -> bytes:
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data


def _q(q: float) -> str:
    return f"{q:.3f}".rstrip("0").rstrip(".")


def reginfo(
    aor: str,
    *,
    version: int,
    full: bool,
    state: RegistrationState,
    contacts: Iterable[ContactChange],
    now: float,
) -> bytes:
    """A reginfo document for one AOR (RFC 3680 5.1).

    ``contacts`` are (binding, active, event): an active contact carries its
    remaining ``expires``, a terminated one ``expires="0"``. ``version`` counts
    the documents sent in this subscription from 0 (RFC 3680 5.1); the first
    must be ``full``.
    """
    root = ET.Element(
        "reginfo",
        {"xmlns": REGINFO_NS, "version": str(version), "state": "full" if full else "partial"},
    )
    registration = ET.SubElement(
        root, "registration", {"aor": aor, "id": _short_id("r", aor), "state": state}
    )
    for binding, active, event in contacts:
        attrs = {
            "id": _short_id("c", binding.id),
            "state": "active" if active else "terminated",
            "event": event,
            "expires": str(binding.remaining(now) if active else 0),
            "duration-registered": str(max(0, round(now - (binding.created_at or now)))),
            "callid": binding.call_id,
            "cseq": str(binding.cseq),
        }
        if binding.q is not None:
            attrs["q"] = _q(binding.q)
        contact = ET.SubElement(registration, "contact", attrs)
        ET.SubElement(contact, "uri").text = binding.contact
    return _render(root)


def pidf(entity: str, available: bool, now: float) -> bytes:
    """A PIDF document: one tuple with basic status open or closed (RFC 3863 4.1).

    ``entity`` is the presentity's SIP URI (RFC 3863 4.1.1 asks for a URI
    of the presentity; SIP URIs are what SIP presence clients match on); the
    tuple's contact is that URI too, so a watcher learns nothing about the
    devices behind it.
    """
    root = ET.Element("presence", {"xmlns": PIDF_NS, "entity": entity})
    tup = ET.SubElement(root, "tuple", {"id": _short_id("t", entity)})
    status = ET.SubElement(tup, "status")
    ET.SubElement(status, "basic").text = "open" if available else "closed"
    ET.SubElement(tup, "contact").text = entity
    ET.SubElement(tup, "timestamp").text = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    return _render(root)
