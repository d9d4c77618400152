"""The event log (what the server does) and the SIP trace log (every message on the wire)."""

from centrex.logs.event_log import (
    LEVELS,
    ROOT_LOGGER,
    JsonFormatter,
    TextFormatter,
    event,
    reset_event_log,
    setup_event_log,
)
from centrex.logs.sip_trace import (
    FLUSH_INTERVAL_S,
    NullTrace,
    SipTrace,
    SipTraceLog,
    format_peer,
    open_sip_trace,
)

__all__ = [
    "FLUSH_INTERVAL_S",
    "LEVELS",
    "ROOT_LOGGER",
    "JsonFormatter",
    "NullTrace",
    "SipTrace",
    "SipTraceLog",
    "TextFormatter",
    "event",
    "format_peer",
    "open_sip_trace",
    "reset_event_log",
    "setup_event_log",
]
