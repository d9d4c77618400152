"""What the presence service is told by the configuration.

``PresenceSettings`` is a plain frozen value so the sans-IO core needs no
pydantic model. ``from_registrar`` reads it from ``[registrar]``; the keys this
service adds there (``presence_events``, ``event_available``, ...) are read
with their defaults while the settings model does not know them yet.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

#: How NOTIFYs of the registrar events are written: inside the subscription
#: dialog (RFC 6665 4.2.2), or as the original soft phones expect them.
WireForm = Literal["rfc6665", "lanscape"]

#: RFC 3680 (registrations) and RFC 3856 (presence) package names.
REG_EVENT = "reg"
PRESENCE_EVENT = "presence"

_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")


@dataclass(frozen=True, slots=True)
class PresenceSettings:
    """The knobs of SUBSCRIBE/NOTIFY handling.

    ``registrar_name`` is the user part of ``sip:<name>@<domain>``, the URI the
    registrar events are subscribed at and NOTIFYs come from. ``compat`` picks
    the wire form of the registrar events ("" = RFC 6665, "lanscape").
    ``notify_max_bytes`` bounds a whole NOTIFY on the wire; ``via_reserve`` of
    it is kept free for the Via the sender adds. ``min/default/max_expires``
    bound subscription lifetimes (RFC 6665 4.2.1.1). ``notify_timeout_s`` is how
    long a NOTIFY may stay unanswered before it counts as timed out even when
    the sender never reports it (twice Timer F by default).
    ``notify_min_interval_s`` throttles change NOTIFYs per subscription: the
    first change after a quiet spell goes at once, the changes that follow
    within this time wait and go together (RFC 6665 4.2.2 leaves the rate to
    the notifier; RFC 3856 6.4 suggests throttling presence). 0: no throttle.
    """

    enabled: bool = True
    registrar_name: str = "Registrar"
    event_available: str = "user-available"
    event_unavailable: str = "user-unavailable"
    compat: Literal["", "lanscape"] = ""
    standard_packages: bool = True
    notify_max_bytes: int = 1300
    via_reserve: int = 160
    notify_failures_before_drop: int = 3
    min_expires: int = 60
    default_expires: int = 3600
    max_expires: int = 7200
    notify_timeout_s: float = 64.0
    notify_min_interval_s: float = 1.0
    case_sensitive: bool = False
    user_agent: str = ""

    def __post_init__(self) -> None:
        names = (self.event_available, self.event_unavailable)
        for name in names:
            if not _TOKEN.fullmatch(name):
                raise ValueError(f"event name {name!r} must be a SIP token")
        lowered = [n.lower() for n in names]
        if len(set(lowered)) != 2 or set(lowered) & {REG_EVENT, PRESENCE_EVENT}:
            raise ValueError(
                "the two registrar event names must differ from each other, reg and presence"
            )
        if self.compat not in ("", "lanscape"):
            raise ValueError(f'compat must be "" or "lanscape", not {self.compat!r}')
        if not 1 <= self.min_expires <= self.default_expires <= self.max_expires:
            raise ValueError("expires bounds must satisfy 1 <= min <= default <= max")
        if self.notify_max_bytes - self.via_reserve < 400 or self.via_reserve < 0:
            raise ValueError("notify_max_bytes leaves no room for a NOTIFY")
        if self.notify_failures_before_drop < 1:
            raise ValueError("notify_failures_before_drop must be at least 1")
        if self.notify_min_interval_s < 0:
            raise ValueError("notify_min_interval_s must not be negative")

    @property
    def wire_form(self) -> WireForm:
        """The form new subscriptions to the registrar events get."""
        return "lanscape" if self.compat == "lanscape" else "rfc6665"

    @property
    def build_limit(self) -> int:
        """How many bytes a NOTIFY may have before the sender adds its Via."""
        return self.notify_max_bytes - self.via_reserve

    @classmethod
    def from_registrar(cls, registrar: Any, *, user_agent: str = "") -> PresenceSettings:
        """The presence settings of a ``RegistrarSettings`` (``[registrar]``).

        Keys the model does not have (yet) take their defaults, so this works
        before and after the settings model learns them.
        """
        default = cls()

        def read(key: str, fallback: Any) -> Any:
            return getattr(registrar, key, fallback)

        return cls(
            enabled=read("presence_events", default.enabled),
            registrar_name=read("name", default.registrar_name),
            event_available=read("event_available", default.event_available),
            event_unavailable=read("event_unavailable", default.event_unavailable),
            compat=read("presence_compat", default.compat),
            standard_packages=read("presence_standard_packages", default.standard_packages),
            notify_max_bytes=read("notify_max_bytes", default.notify_max_bytes),
            notify_failures_before_drop=read(
                "notify_failures_before_drop", default.notify_failures_before_drop
            ),
            notify_min_interval_s=read(
                "notify_min_interval_ms", default.notify_min_interval_s * 1000
            )
            / 1000,
            min_expires=read("subscribe_min_expires", default.min_expires),
            default_expires=read("subscribe_default_expires", default.default_expires),
            max_expires=read("subscribe_max_expires", default.max_expires),
            case_sensitive=read("case_sensitive", default.case_sensitive),
            user_agent=user_agent,
        )
