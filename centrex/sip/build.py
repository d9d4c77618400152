"""Messages Centrex writes itself from a request: responses, ACK and CANCEL.

The copied headers are taken as raw lines from the request, so an answer costs
no parse or render of them.
"""

from __future__ import annotations

import re
from typing import Final

from centrex.sip.headers import header_key, split_values
from centrex.sip.message import Request, Response, decode_text, encode_text
from centrex.sip.status import reason_phrase

_COPIED: Final = ("via", "from", "to", "call-id", "cseq")
_HAS_TAG: Final = re.compile(r";[ \t]*tag[ \t]*=", re.IGNORECASE)


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
) -> Response:
    """A response to ``request`` (RFC 3261 8.2.6.2).

    Via, From, To, Call-ID and CSeq are copied; ``to_tag`` is added to To when
    the request's To has no tag (never to a 100, 8.2.6.2). Timestamp is copied
    into a 100 Trying (8.2.6.1). ``headers`` are appended.
    """
    lines: list[bytes] = []
    keys: list[str] = []
    for key in _COPIED:
        for line in request.raw_lines_of_key(key):
            if key == "to" and to_tag is not None and status != 100:
                line = _with_tag(line, to_tag)
            lines.append(line)
            keys.append(key)
    if status == 100:
        for line in request.raw_lines_of_key("timestamp"):
            lines.append(line)
            keys.append("timestamp")
    for name, value in headers or ():
        lines.append(encode_text(f"{name}: {value}"))
        keys.append(header_key(name))
    response = Response(status, reason or reason_phrase(status), lines, keys, body)
    # The Via lines are the request's, as they are: a Via it has parsed
    # need not be parsed again (the response goes where it says).
    response.share_top_via(request)
    return response


def _with_tag(line: bytes, tag: str) -> bytes:
    value = decode_text(line[line.index(b":") + 1 :])
    gt = value.rfind(">")
    tail = value[gt + 1 :] if gt >= 0 else value
    if ";" in tail and _HAS_TAG.search(tail):  # (no parameter, no search)
        return line
    return line.rstrip(b" \t") + b";tag=" + tag.encode("ascii")


def _copy(request: Request, names: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(name, value) for name in names for value in _values(request, name)]


def _values(request: Request, name: str) -> list[str]:
    return [decode_text(line[line.index(b":") + 1 :].strip()) for line in request.raw_lines(name)]


def _hop_request(request: Request, method: str, to_value: str) -> Request:
    """The common shape of ACK (17.1.1.3) and CANCEL (9.1): one Via, same Route."""
    top_via = split_values(request.get("via") or "")[0]
    headers: list[tuple[str, str]] = [
        ("Via", top_via),
        ("Max-Forwards", "70"),
        *_copy(request, ("Route",)),
        ("From", request.get("from") or ""),
        ("To", to_value),
        ("Call-ID", request.call_id),
        ("CSeq", f"{request.cseq.number} {method}"),
    ]
    return Request.new(method, request.uri, headers)


def make_ack(invite: Request, response: Response) -> Request:
    """The ACK a client transaction sends for a non-2xx final response (17.1.1.3).

    Request-URI, Call-ID, From, CSeq number and the top Via are those of the
    INVITE; To is that of the response (with its tag); Route is copied.
    """
    return _hop_request(invite, "ACK", response.get("to") or "")


def make_cancel(request: Request) -> Request:
    """A CANCEL for ``request`` (RFC 3261 9.1): same Request-URI, Call-ID, To,
    From, CSeq number and top Via; Route copied; CSeq method CANCEL."""
    return _hop_request(request, "CANCEL", request.get("to") or "")
