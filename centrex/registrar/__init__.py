"""REGISTER semantics (RFC 3261 section 10) and the location service.

``Registrar`` answers REGISTER requests and keeps bindings in a
``LocationStore`` (``MemoryLocationStore`` with a recovery file by default);
``aor_of`` turns a URI into the key bindings are stored under.
"""

from centrex.registrar.aor import aor_of, normalize_domain
from centrex.registrar.binding import Binding, Source, live_bindings, lookup_order
from centrex.registrar.events import AorEvent, EventListeners, EventReason, Listener
from centrex.registrar.memory import MemoryLocationStore
from centrex.registrar.recovery import RecoveryFileError
from centrex.registrar.registrar import Registrar, render_contact
from centrex.registrar.request import RegisterRequest, Rejection, read_register, read_target
from centrex.registrar.rules import Outcome, decide
from centrex.registrar.store import AorRemoval, Changes, LocationStore

__all__ = [
    "AorEvent",
    "AorRemoval",
    "Binding",
    "Changes",
    "EventListeners",
    "EventReason",
    "Listener",
    "LocationStore",
    "MemoryLocationStore",
    "Outcome",
    "RecoveryFileError",
    "RegisterRequest",
    "Registrar",
    "Rejection",
    "Source",
    "aor_of",
    "decide",
    "live_bindings",
    "lookup_order",
    "normalize_domain",
    "read_register",
    "read_target",
    "render_contact",
]
