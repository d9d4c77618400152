"""Enumerations of the hot path hashed in C (``IdentityEnum``).

The records made per message (peers, sources, bindings, transaction events)
are frozen, slotted dataclasses with an ``__init__`` written in their source,
which a compiled build compiles (docs/architecture.md); the dataclass's own is
made by ``exec`` at import and runs interpreted.

This module imports nothing of ours: any layer may use it.
"""

from __future__ import annotations

from enum import Enum


class IdentityEnum(Enum):
    """An enumeration hashed by identity, in C. ``Enum.__hash__`` is a Python
    function (``hash(self._name_)``), called whenever a member is a dict key
    or a set element: the transaction tables do that several times per
    message. Members are singletons and compare by identity, so the object's
    own hash is as good."""

    __hash__ = object.__hash__
