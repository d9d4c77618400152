"""The sans-IO rules of the transport layer (RFC 3261 18.2.1, 18.2.2; RFC 3581).

What the server adds to the top Via of a request it receives, where a response
goes, and what malformed input is answered with. Pure functions on messages,
so they are tested without sockets; ``TransportLayer`` applies them.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from typing import Final

from centrex.sip.build import make_response
from centrex.sip.errors import ParseError
from centrex.sip.message import Request, Response
from centrex.sip.parser import parse_message
from centrex.sip.via import Via
from centrex.transport.address import default_port, unbracketed

#: Via sent-protocol transport -> the transport that carries it here.
_VIA_TRANSPORTS: Final = {"UDP": "udp", "TCP": "tcp", "TLS": "tls"}


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a response goes when not over the connection its request came on."""

    transport: str
    host: str
    port: int

    # Written out: a compiled build compiles it (the dataclass's own runs
    # interpreted, ~15x slower); object.__setattr__ as the class is frozen.
    def __init__(self, transport: str, host: str, port: int) -> None:
        object.__setattr__(self, "transport", transport)
        object.__setattr__(self, "host", host)
        object.__setattr__(self, "port", port)


def _same_address(sent_by_host: str, source: str) -> bool:
    host = unbracketed(sent_by_host)
    if host == source:
        return True
    try:
        return ipaddress.ip_address(host) == ipaddress.ip_address(source.partition("%")[0])
    except ValueError:
        # A host name never equals the source address (18.2.1).
        return False


def stamp_received(request: Request, source_host: str, source_port: int) -> bool:
    """Record the source of ``request`` in its top Via; True when the Via changed.

    RFC 3261 18.2.1: add ``received=<source IP>`` when the sent-by host is a
    name or an address other than the source. RFC 3581 4: when the Via has
    ``rport`` without a value, fill it with the source port, and then add
    ``received`` even when it equals sent-by. The top Via value is replaced in
    place of the old one; every other Via stays as it came. Raises ParseError
    when the Via cannot be parsed (a validated request always parses).
    """
    via = request.top_via
    params = via.params
    wants_rport = "rport" in params and params["rport"] is None
    received = params.get("received")
    if not wants_rport and (
        # A received already there must name the source, or responses go astray.
        received == source_host if received is not None else _same_address(via.host, source_host)
    ):
        return False
    new_params = dict(params)
    new_params["received"] = source_host
    if wants_rport:
        new_params["rport"] = str(source_port)
    stamped = Via(via.transport, via.host, via.port, new_params, via.protocol_name, via.version)
    request.set_top_via(str(stamped), stamped)
    return True


def response_destination(via: Via) -> Destination | None:
    """Where to send a response with top Via ``via`` (RFC 3261 18.2.2, RFC 3581 4).

    For the reliable case this is where to open a new connection, used only
    when the one the request came on has closed: the ``received`` address (or
    sent-by host) and the sent-by port. Otherwise, in RFC order: ``maddr``;
    ``received`` with ``rport`` (3581) or the sent-by port; the sent-by itself.
    A missing port is the transport's default (19.1.2). None for a transport
    Centrex does not carry.
    """
    transport = _VIA_TRANSPORTS.get(via.transport)
    if transport is None:
        return None
    sent_by_port = via.port if via.port is not None else default_port(transport)
    received = via.received
    if transport != "udp":
        return Destination(transport, unbracketed(received or via.host), sent_by_port)
    maddr = via.maddr
    if maddr is not None:
        return Destination(transport, unbracketed(maddr), sent_by_port)
    if received is not None:
        rport = via.rport
        port = rport if rport is not None else sent_by_port
        return Destination(transport, unbracketed(received), port)
    return Destination(transport, unbracketed(via.host), sent_by_port)


def error_response(error: ParseError) -> Response | None:
    """The answer to a malformed request, or None when it gets no answer.

    RFC 3261 8.2 / 18.3 / 21.4.x give the status (400 naming the culprit, 413,
    505, 513); the reason phrase is the parser's description. Garbage, a
    malformed response (18.1.2), a request without a Via to answer along, and
    an ACK (17.1.1.3: never answered) get nothing. A To without a tag gets
    one (8.2.6.2: every response but a 100 carries it), the same for a
    retransmission of the request, as no transaction keeps it (8.2.7): a
    hash of its Via, From, Call-ID and CSeq lines.
    """
    request = error.request
    if error.status is None or request is None or request.method == "ACK":
        return None
    if "via" not in request:
        return None
    return make_response(request, error.status, error.reason, to_tag=_stateless_tag(request))


def _stateless_tag(request: Request) -> str:
    """The To tag of an answer given without a transaction: a hash of the
    top Via, the From, the Call-ID and the CSeq number, which a request, its
    retransmissions and the ACK of a non-2xx answer to it share (17.1.1.3)."""
    vias = request.get_all("via")
    cseq = (request.get("cseq") or "").split()
    parts = (
        vias[0] if vias else "",
        request.get("from") or "",
        request.get("call-id") or "",
        cseq[0] if cseq else "",
    )
    return hashlib.blake2s(
        "\n".join(parts).encode(errors="surrogateescape"), digest_size=6
    ).hexdigest()


def acks_stateless_answer(ack: Request) -> bool:
    """True for the ACK of an answer given without a transaction (a 400 to a
    malformed INVITE): it is hop by hop (17.1.1.3) and ends here, where a
    2xx ACK, which matches no transaction either, goes on."""
    try:
        tag = ack.to_tag
    except ParseError:
        return False
    return tag is not None and tag == _stateless_tag(ack)


def request_from_head(head: bytes) -> Request | None:
    """The request line and complete header lines at the start of ``head``.

    Used when stream framing fails (a header block too large, no or a bad
    Content-Length) to find the Via, From, To, Call-ID and CSeq an error
    response needs. A partial last line is left out; nothing is validated.
    """
    head = head.lstrip(b"\r\n")
    end = head.find(b"\r\n\r\n")
    if end < 0:
        end = head.rfind(b"\r\n")
        if end < 0:
            return None
    head = head[:end]
    message: Request | Response | None
    try:
        message = parse_message(
            head + b"\r\n\r\n",
            validate=False,
            max_header_bytes=len(head) + 1,
            max_lines=head.count(b"\n") + 2,
        )
    except ParseError as exc:
        message = exc.request
    return message if isinstance(message, Request) else None
