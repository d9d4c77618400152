"""The transport layer: UDP, TCP and TLS listeners and the connection table (RFC 3261 18).

``TransportLayer`` turns bytes from the network into parsed messages for the
server, and messages from the server into bytes on the right socket:

* 18.2.1 / RFC 3581 4: every received request gets ``received`` and a filled
  ``rport`` in its top Via before anyone sees it (``rules.stamp_received``).
* 18.3: a datagram is one message; a stream is framed by Content-Length, one
  ``StreamFramer`` per connection, with RFC 5626 CRLF keep-alives answered.
* Malformed input: a request the parser can answer gets that status (400
  naming the culprit, 413, 505, 513); garbage and malformed responses get
  silence (18.1.2). On a stream a framing failure also closes the connection,
  since where the next message starts is unknown.
* 18.2.2: a response goes over the connection its request came on while it is
  open, else where the top Via says (``rules.response_destination``).
* 18.1.1: connections are kept in a table by (transport, remote host, remote
  port) and reused for anything sent to that peer.

Handlers run synchronously on the event loop; an exception in one is logged
and the layer carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import itertools
import logging
import socket
import ssl
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any, Final

from centrex.logs.sip_trace import NullTrace, SipTraceLog
from centrex.sip.errors import ParseError
from centrex.sip.message import Request, Response
from centrex.sip.parser import check_response, parse_message, validate_request
from centrex.transport.address import ListenAddress, LocalSocket, Peer, ip_family, route_source
from centrex.transport.connection import StreamConnection
from centrex.transport.limits import TransportLimits
from centrex.transport.rules import (
    acks_stateless_answer,
    error_response,
    request_from_head,
    response_destination,
    stamp_received,
)
from centrex.transport.table import ConnectionTable
from centrex.transport.udp import UdpEndpoint, bind_udp_socket

logger: Final = logging.getLogger(__name__)

MessageHandler = Callable[[Request | Response, Peer, LocalSocket], None]
ConnectionHandler = Callable[[Peer], None]
_STOP_GRACE: Final = 1.0


@dataclass(slots=True)
class TransportStats:
    """Counters for metrics and tests."""

    messages: int = 0
    malformed_answered: int = 0
    malformed_dropped: int = 0
    framing_errors: int = 0
    connections_refused: int = 0
    handler_errors: int = 0
    refused: int = 0


class TransportLayer:
    """Every listening socket and connection of one Centrex process (RFC 3261 18).

    ``on_message(message, peer, local)`` gets every well-formed request (top
    Via stamped) and response. ``on_connection_closed(peer)`` is called once
    for every TCP/TLS connection that was up and is gone, whatever the cause
    (including ``stop()``); ``peer.connection_id`` says which.
    """

    def __init__(
        self,
        on_message: MessageHandler,
        *,
        on_connection_closed: ConnectionHandler | None = None,
        on_connection_opened: ConnectionHandler | None = None,
        limits: TransportLimits | None = None,
        client_tls_context: ssl.SSLContext | None = None,
        trace: SipTraceLog | None = None,
        admit: Callable[[Peer], bool] | None = None,
        worker: tuple[int, int] = (0, 1),
        relay: Callable[[bytes, Peer], bool] | None = None,
    ) -> None:
        self._on_message = on_message
        # Asked before a message is parsed: a banned or flooding source costs nothing.
        self._admit = admit
        # The SIP trace sees the bytes as they cross the wire, malformed ones too.
        self.trace: SipTraceLog = trace if trace is not None else NullTrace()
        self._on_connection_closed = on_connection_closed
        self._on_connection_opened = on_connection_opened
        # With several workers: the connections the others hold, by address
        # (``remote_connection``), so a message for one goes to its holder.
        self._held_elsewhere: dict[tuple[str, str, int], int] = {}
        self.limits = limits if limits is not None else TransportLimits()
        self.stats = TransportStats()
        # With several workers (``centrex.workers``): this one's index and
        # their count. They share the listen addresses (SO_REUSEPORT) and
        # number their connections so that ``id % count`` is the holder;
        # ``relay`` hands bytes for another worker's connection to it.
        self._index, self._count = worker
        self._relay = relay if self._count > 1 else None
        self._ids = itertools.count(self._index or self._count, self._count)
        self._udp: list[UdpEndpoint] = []
        self._udp_by_family: dict[int, UdpEndpoint] = {}
        # (Any, not asyncio.Server: uvloop's lists its sockets where the
        # stubs say a tuple, and compiled code checks the type it is told)
        self._servers: list[tuple[str, Any]] = []
        self._table = ConnectionTable(self.limits, client_tls_context)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started = False
        self._stopping = False

    # -- life cycle ----------------------------------------------------------------

    async def start(
        self, listen: list[ListenAddress], tls_context: ssl.SSLContext | None = None
    ) -> None:
        """Open every listener; on any failure close those opened and raise.

        ``tls_context`` (see ``tls.server_context``) is required when a ``tls:``
        address is listed. OSError names the address that could not be bound.
        """
        if self._started:
            raise RuntimeError("TransportLayer.start() called twice")
        self._started = True
        try:
            for address in listen:
                try:
                    if address.transport == "udp":
                        await self._listen_udp(address)
                    else:
                        await self._listen_stream(address, tls_context)
                except OSError as exc:
                    reason = exc.strerror or str(exc)
                    raise type(exc)(exc.errno, f"cannot listen on {address}: {reason}") from exc
        except BaseException:
            await self.stop()
            raise

    async def _listen_udp(self, address: ListenAddress) -> None:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(
            address.host, address.port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE
        )
        seen: set[tuple[Any, ...]] = set()
        for family, _, _, _, sockaddr in infos:
            if (family, sockaddr) in seen:
                continue
            seen.add((family, sockaddr))
            sock = bind_udp_socket(
                family, (str(sockaddr[0]), *sockaddr[1:]), reuse_port=self._count > 1
            )
            _, endpoint = await loop.create_datagram_endpoint(
                functools.partial(UdpEndpoint, self, self.limits.max_datagram_bytes), sock=sock
            )
            self._udp.append(endpoint)
            self._udp_by_family.setdefault(endpoint.family, endpoint)

    async def _listen_stream(
        self, address: ListenAddress, tls_context: ssl.SSLContext | None
    ) -> None:
        if address.transport == "tls" and tls_context is None:
            raise ValueError(f"listen address {address}: TLS needs a certificate (tls_context)")
        loop = asyncio.get_running_loop()
        if address.transport == "tls":
            assert tls_context is not None
            # Accepted here and handed to the loop's TLS with the peer
            # known (``_TlsListener``): a server with ssl= runs the handshake
            # before the protocol sees the peer, so the per-address limit
            # could not count a connection until its handshake was done,
            # and one address holding stalled handshakes used up the
            # descriptors. (start_tls on an accepted connection would do,
            # but uvloop 0.23's never completes a server-side handshake.)
            listener = await _TlsListener.open(self, address, tls_context)
            self._servers.append((address.transport, listener))
            return
        server = await loop.create_server(
            functools.partial(self._inbound, address.transport),
            address.host,
            address.port,
            reuse_address=True,
            reuse_port=self._count > 1,
        )
        self._servers.append((address.transport, server))

    def _accept_tls(self, sock: socket.socket, host: str, context: ssl.SSLContext) -> None:
        """A TCP connection to a ``tls:`` listener: counted against its
        address's limit from now on, then its handshake run."""
        if self._stopping or not self._table.begin_handshake(host):
            self.stats.connections_refused += 1
            sock.close()
            return
        self._spawn(self._handshake(sock, host, context))

    async def _handshake(self, sock: socket.socket, host: str, context: ssl.SSLContext) -> None:
        connection = self._inbound("tls")
        connection.count_handshake(host)  # (counted until connection_opened)
        try:
            await asyncio.get_running_loop().connect_accepted_socket(
                lambda: connection,
                sock,
                ssl=context,
                ssl_handshake_timeout=self.limits.connect_timeout,
            )
        except asyncio.CancelledError:
            sock.close()
            raise
        except Exception as exc:  # a failed or stalled handshake, whatever the error
            logger.debug("TLS handshake with %s failed: %s", host, exc)
            sock.close()
        finally:
            if connection.take_handshake() is not None:  # (never reached connection_opened)
                self._table.end_handshake(host)

    def _inbound(self, transport_name: str) -> StreamConnection:
        return StreamConnection(self, transport_name, next(self._ids), self.limits, inbound=True)

    def _outbound(self, transport_name: str, connection_id: int) -> StreamConnection:
        return StreamConnection(self, transport_name, connection_id, self.limits, inbound=False)

    async def stop(self) -> None:
        """Close every listener and connection; wait (briefly) until they are gone."""
        self._stopping = True
        for _, server in self._servers:
            server.close()
        for endpoint in self._udp:
            if endpoint.transport is not None:
                endpoint.transport.close()
        for task in self._tasks:
            task.cancel()
        connections = self._table.connections()
        for connection in connections:
            connection.close()
        if connections:
            closing = [connection.closed for connection in connections]
            _, pending = await asyncio.wait(closing, timeout=_STOP_GRACE)
            if pending:
                for connection in connections:
                    if not connection.closed.done():
                        connection.abort()
                await asyncio.wait(pending, timeout=_STOP_GRACE)
        for _, server in self._servers:
            await server.wait_closed()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._servers.clear()
        self._udp.clear()
        self._udp_by_family.clear()

    # -- inspection ------------------------------------------------------------------

    @property
    def bound(self) -> list[LocalSocket]:
        """The address of every listening socket, with the ports actually bound."""
        out = [endpoint.local for endpoint in self._udp]
        for name, server in self._servers:
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                out.append(LocalSocket(name, host, port))
        return out

    def bound_port(self, transport: str) -> int:
        """The port of the first ``transport`` listener (handy with port 0)."""
        for local in self.bound:
            if local.transport == transport:
                return local.port
        raise LookupError(f"no {transport} listener")

    @property
    def connection_count(self) -> int:
        """How many TCP/TLS connections are open."""
        return len(self._table)

    def is_connected(self, peer: Peer) -> bool:
        """True while a connection to ``peer`` (by id, else by address) is open."""
        return self._table.find(peer) is not None

    # -- sending ---------------------------------------------------------------------

    def send(self, data: bytes, peer: Peer, local: LocalSocket | None = None) -> bool:
        """Send ``data`` now; False when that cannot be done without waiting.

        UDP: one datagram from ``local`` (the socket a request came in on, for
        symmetric NAT traversal, RFC 3581 4) or the listener of the peer's
        address family; the host must be an IP address and the datagram within
        ``max_datagram_bytes``. TCP/TLS: over the open connection to the peer
        (by ``connection_id``, else by address, 18.1.1); without one this
        returns False and ``send_to`` is the call that opens one.
        """
        if peer.transport == "udp":
            if len(data) > self.limits.max_datagram_bytes:
                return False
            family = ip_family(peer.host)
            if family is None:
                return False
            endpoint = self._udp_endpoint(family, local)
            sent = endpoint is not None and endpoint.sendto(data, peer.host, peer.port)
        else:
            connection = self._table.find(peer)
            if connection is None and peer.connection_id is None and self._held_elsewhere:
                held = self._held_elsewhere.get(peer.key)
                if held is not None:
                    peer = Peer(peer.transport, peer.host, peer.port, held)
            if connection is None and self._elsewhere(peer):
                return self._relay_to_holder(data, peer)
            sent = connection is not None and connection.write(data)
        if sent and self.trace.enabled:
            self.trace.sent(data, peer.host, peer.port, time.time())
        return sent

    async def send_to(
        self,
        data: bytes,
        peer: Peer,
        *,
        local: LocalSocket | None = None,
        server_name: str | None = None,
    ) -> bool:
        """Like ``send``, opening a TCP/TLS connection or resolving a host name if needed.

        ``server_name`` is the identity a TLS server must prove (RFC 5922
        7.2; default: ``peer.host``). False when the connection could not be
        opened within ``connect_timeout`` or the name not resolved.
        """
        if self._stopping:
            return False
        if peer.transport == "udp":
            if len(data) > self.limits.max_datagram_bytes:
                logger.warning(
                    "%d-byte message to %s:%d not sent: a UDP datagram holds at most %d",
                    len(data),
                    peer.host,
                    peer.port,
                    self.limits.max_datagram_bytes,
                )
                return False
            if ip_family(peer.host) is None:
                resolved = await self._resolve(peer.host, peer.port)
                if resolved is None:
                    return False
                peer = replace(peer, host=resolved)
            return self.send(data, peer, local)
        connection = self._table.find(peer)
        if connection is None:
            if self._elsewhere(peer):
                return self._relay_to_holder(data, peer)
            connection = await self._table.connect(
                peer,
                server_name,
                self._outbound,
                functools.partial(next, self._ids),
                self._stream_source(peer),
            )
        sent = connection is not None and connection.write(data)
        if sent and self.trace.enabled:
            self.trace.sent(data, peer.host, peer.port, time.time())
        return sent

    def send_response(
        self, response: Response, received_over: Peer, local: LocalSocket | None = None
    ) -> bool:
        """Send a response the way RFC 3261 18.2.2 and RFC 3581 4 say.

        Over the connection the request came on (``received_over``) while it
        is open; otherwise to ``response_destination`` of the top Via. When a
        new connection or a name lookup is needed it is done in the background
        and True means "under way". False when the response cannot be sent.
        """
        return self.deliver_response(response, received_over, local) is not None

    def deliver_response(
        self, response: Response, received_over: Peer, local: LocalSocket | None = None
    ) -> Peer | None:
        """``send_response`` that tells where the response went: the peer it was
        sent (or is under way) to, None when it cannot be sent."""
        data = response.to_bytes()
        if received_over.reliable:
            connection = self._table.find(received_over)
            if connection is not None and connection.write(data):
                if self.trace.enabled:
                    self.trace.sent(data, received_over.host, received_over.port, time.time())
                return received_over
            if connection is None and self._elsewhere(received_over):
                return received_over if self._relay_to_holder(data, received_over) else None
        if received_over.transport == "udp":
            peer = self._udp_response_peer(response, received_over)
        else:
            found = self.response_peer(response)
            if found is None:
                return None
            peer = found
        if self.send(data, peer, local):
            return peer
        if self._stopping or (peer.transport == "udp" and ip_family(peer.host) is not None):
            return None
        self._spawn(self.send_to(data, peer, local=local))
        return peer

    def _udp_response_peer(self, response: Response, received_over: Peer) -> Peer:
        """Where the response to a request that came over UDP goes: as the top
        Via says (``received``, ``rport``, the sent-by port; 18.2.2, RFC 3581
        4), but over UDP to the source the request came from when the Via
        names another transport (a stream, SCTP, WS, a token we do not
        carry) or a ``maddr``. Opening the connection such a Via asks for, or
        sending to the address it names, would let a forged request make the
        server connect to, or send its answers (and their retransmissions)
        to, anyone."""
        try:
            via = response.top_via
        except ParseError:
            return received_over
        if via.maddr is not None:
            return received_over
        destination = response_destination(via)
        if destination is None or destination.transport != "udp":
            return received_over
        return Peer("udp", destination.host, destination.port)

    def response_peer(self, response: Response) -> Peer | None:
        """Where ``response`` goes by its top Via (18.2.2, RFC 3581 4); None,
        logged, when it cannot go anywhere."""
        try:
            via = response.top_via
        except ParseError as exc:
            logger.warning("response %s not sent: %s", response, exc.reason)
            return None
        destination = response_destination(via)
        if destination is None:
            logger.warning("response %s not sent: no transport %s", response, via.transport)
            return None
        return Peer(destination.transport, destination.host, destination.port)

    # -- callbacks of the sockets ------------------------------------------------

    def datagram(self, data: bytes, peer: Peer, local: LocalSocket) -> None:
        """One UDP datagram arrived (18.3: it holds exactly one message)."""
        self._receive(data, peer, local, stream=False)

    def forwarded(self, data: bytes, peer: Peer, local: LocalSocket, *, stream: bool) -> None:
        """A message another worker read and handed to this one (its
        transaction is here): handled as if read here, traced and admitted
        there already."""
        self._receive(data, peer, local, stream=stream, forwarded=True)

    def stream_message(self, data: bytes, connection: StreamConnection) -> None:
        """One framed message arrived on a TCP/TLS connection."""
        assert connection.peer is not None and connection.local is not None
        self._receive(data, connection.peer, connection.local, stream=True)

    def framing_failed(self, connection: StreamConnection, error: ParseError, head: bytes) -> None:
        """Answer what can be answered; the connection closes after (18.3)."""
        self.stats.framing_errors += 1
        logger.info("connection %s: %s; closing it", connection.peer, error.reason)
        if error.status is None or connection.peer is None:
            return
        request = request_from_head(head)
        if request is None:
            return
        with contextlib.suppress(ParseError):  # the answer goes over this connection anyway
            stamp_received(request, connection.peer.host, connection.peer.port)
        response = error_response(ParseError(error.reason, error.status, request=request))
        if response is not None:
            connection.write(response.to_bytes())

    def connection_opened(self, connection: StreamConnection) -> bool:
        """Admit a connection, or refuse it when over the per-address limit."""
        host = connection.take_handshake()
        if host is not None:  # its handshake is done: counted as a connection now
            self._table.end_handshake(host)
        if connection.peer is None or self._stopping:
            return False
        if not self._table.admit(connection):
            self.stats.connections_refused += 1
            return False
        if self._on_connection_opened is not None:
            try:
                self._on_connection_opened(connection.peer)
            except Exception:
                self.stats.handler_errors += 1
                logger.exception("on_connection_opened failed for %s", connection.peer)
        return True

    def remote_connection(self, peer: Peer, opened: bool) -> None:
        """Another worker opened (or closed) a connection to ``peer`` (whose
        ``connection_id`` names it): bytes for that address go to it."""
        if peer.connection_id is None:
            return
        if opened:
            self._held_elsewhere[peer.key] = peer.connection_id
        elif self._held_elsewhere.get(peer.key) == peer.connection_id:
            del self._held_elsewhere[peer.key]

    def connection_closed(self, connection: StreamConnection) -> None:
        """Forget a connection and tell the server (its bindings go, RFC 5626 5.3)."""
        if not self._table.forget(connection):
            return
        peer = connection.peer
        assert peer is not None
        if self._on_connection_closed is not None:
            try:
                self._on_connection_closed(peer)
            except Exception:
                self.stats.handler_errors += 1
                logger.exception("on_connection_closed failed for %s", peer)

    # -- internals ------------------------------------------------------------------

    def _stream_source(self, peer: Peer) -> str | None:
        """The address a new connection to ``peer`` is made from (None: the
        kernel's choice), among our listeners of its transport and family.

        The kernel's own choice (the route toward the peer) when a listener
        has that address or listens on every address; else, toward a
        loopback peer, a loopback listener, and toward another, the first
        listener that is not loopback (a listener on an address the route
        does not pick: a second address of the host's interface). A peer
        then sees an address we listen on, the one it may allow."""
        family = ip_family(peer.host)
        if family is None:
            return None
        hosts = [
            local.host
            for local in self.bound
            if local.transport == peer.transport and ip_family(local.host) == family
        ]
        if not hosts or "0.0.0.0" in hosts or "::" in hosts:
            return None
        routed = route_source(peer.host)
        if routed is None or routed in hosts:
            return None
        loopback = ipaddress.ip_address(peer.host.partition("%")[0]).is_loopback
        return next((h for h in hosts if ipaddress.ip_address(h).is_loopback == loopback), None)

    def _elsewhere(self, peer: Peer) -> bool:
        """True when ``peer``'s connection is another worker's to write."""
        connection_id = peer.connection_id
        return (
            self._relay is not None
            and connection_id is not None
            and connection_id % self._count != self._index
        )

    def _relay_to_holder(self, data: bytes, peer: Peer) -> bool:
        relay = self._relay
        assert relay is not None
        return relay(data, peer)

    def _receive(
        self,
        data: bytes,
        peer: Peer,
        local: LocalSocket,
        *,
        stream: bool,
        forwarded: bool = False,
    ) -> None:
        if not forwarded and self._admit is not None and not self._admit(peer):
            self.stats.refused += 1
            return
        if not forwarded and self.trace.enabled:
            self.trace.received(data, peer.host, peer.port, time.time())
        limits = self.limits
        try:
            message = parse_message(
                data,
                stream=stream,
                max_header_bytes=limits.max_header_bytes,
                max_body_bytes=limits.max_body_bytes,
                max_lines=limits.max_lines,
                validate=False,
            )
            if isinstance(message, Request):
                validate_request(message)
                stamp_received(message, peer.host, peer.port)
                if message.method == "ACK" and acks_stateless_answer(message):
                    return
            else:
                check_response(message)
        except ParseError as exc:
            self._answer_malformed(exc, peer, local)
            return
        self.stats.messages += 1
        try:
            self._on_message(message, peer, local)
        except Exception:
            self.stats.handler_errors += 1
            logger.exception("on_message failed for %r from %s", message, peer)

    def _answer_malformed(self, error: ParseError, peer: Peer, local: LocalSocket) -> None:
        request = error.request
        via_ok = False
        if request is not None and error.status is not None:
            try:
                stamp_received(request, peer.host, peer.port)
                via_ok = True
            except ParseError:
                pass
        response = error_response(error)
        if response is None:
            self.stats.malformed_dropped += 1
            logger.debug("dropped from %s: %s", peer, error.reason)
            return
        self.stats.malformed_answered += 1
        logger.debug("answering %s to %s: %s", error.status, peer, error.reason)
        if via_ok:
            self.send_response(response, peer, local)
        else:
            # No usable Via: the source is the only place left to answer.
            self.send(response.to_bytes(), peer, local)

    def _udp_endpoint(self, family: int, local: LocalSocket | None) -> UdpEndpoint | None:
        if local is not None and local.transport == "udp":
            for endpoint in self._udp:
                if endpoint.local == local:
                    return endpoint
        return self._udp_by_family.get(family)

    async def _resolve(self, host: str, port: int) -> str | None:
        """An address of ``host`` (A/AAAA only; RFC 3263 is the router's job)."""
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except OSError as exc:
            logger.info("cannot resolve %s: %s", host, exc)
            return None
        for family, _, _, _, sockaddr in infos:
            if family in self._udp_by_family:
                return str(sockaddr[0])
        return None

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class _TlsListener:
    """The listening sockets of a ``tls:`` address, each with its own accept
    loop: a connection is counted against its address's limit as it is
    accepted, and only then handed to the loop's TLS
    (``TransportLayer._accept_tls``). Looks like an ``asyncio.Server`` to the
    layer (``sockets``, ``close``, ``wait_closed``)."""

    def __init__(
        self, layer: TransportLayer, sockets: list[socket.socket], context: ssl.SSLContext
    ) -> None:
        self.sockets = sockets
        self._layer = layer
        self._context = context
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._accept(sock)) for sock in sockets]

    @classmethod
    async def open(
        cls, layer: TransportLayer, address: ListenAddress, context: ssl.SSLContext
    ) -> _TlsListener:
        """One socket per address ``address.host`` stands for (a name with an
        A and an AAAA record: both), as ``create_server`` binds them."""
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(
            address.host or None,
            address.port,
            type=socket.SOCK_STREAM,
            flags=socket.AI_PASSIVE,
        )
        sockets: list[socket.socket] = []
        seen: set[tuple[int, Any]] = set()
        try:
            for family, kind, proto, _, sockaddr in infos:
                if (family, sockaddr) in seen:
                    continue
                seen.add((family, sockaddr))
                sock = socket.socket(family, kind, proto)
                sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if layer._count > 1:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(sockaddr)
                sock.listen(128)
                sock.setblocking(False)
        except OSError:
            for sock in sockets:
                sock.close()
            raise  # (start() names the address)
        return cls(layer, sockets, context)

    async def _accept(self, listening: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, peer = await loop.sock_accept(listening)
                self._layer._accept_tls(sock, peer[0], self._context)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # (out of descriptors, ...: wait, do not spin)
                logger.warning("TLS accept on %s failed: %s", listening.getsockname(), exc)
                await asyncio.sleep(0.1)

    def close(self) -> None:
        """Stop accepting; the sockets close in ``wait_closed``, once the
        accept loops have let go of them."""
        for task in self._tasks:
            task.cancel()

    async def wait_closed(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for sock in self.sockets:
            sock.close()
