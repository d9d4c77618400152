"""Asyncio transports of RFC 3261 section 18: UDP, TCP and TLS.

The server builds one ``TransportLayer`` with its message handler, starts it
on ``ListenAddress`` entries and sends through it; everything else here is the
vocabulary of that API.
"""

from centrex.transport.address import ListenAddress, LocalSocket, Peer, default_port
from centrex.transport.layer import (
    ConnectionHandler,
    MessageHandler,
    TransportLayer,
    TransportStats,
)
from centrex.transport.limits import TransportLimits
from centrex.transport.loop import best_loop_factory, install_best_event_loop, loop_factory
from centrex.transport.rules import Destination, response_destination, stamp_received
from centrex.transport.tls import client_context, server_context

__all__ = [
    "ConnectionHandler",
    "Destination",
    "ListenAddress",
    "LocalSocket",
    "MessageHandler",
    "Peer",
    "TransportLayer",
    "TransportLimits",
    "TransportStats",
    "best_loop_factory",
    "client_context",
    "default_port",
    "install_best_event_loop",
    "loop_factory",
    "response_destination",
    "server_context",
    "stamp_received",
]
