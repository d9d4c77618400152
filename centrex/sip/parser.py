"""Turning bytes into a Request or Response (RFC 3261 sections 7 and 18.3).

``parse_message`` splits the header block once and indexes it; the mandatory
headers are then checked (``validate=True``) so that a malformed request is
answered with the status RFC 3261 asks for before any service sees it. Every
failure is a ``ParseError`` carrying that status, or ``status=None`` for input
that gets no answer (garbage, or any malformed response: 18.1.2).
"""

from __future__ import annotations

import re
from typing import Final

from centrex.sip.errors import ParseError
from centrex.sip.fields import METHOD_NAMES
from centrex.sip.message import _BYTES_KEY as _KEYS
from centrex.sip.message import Message, Request, Response, bytes_key, decode_text

_METHOD: Final = re.compile(rb"[A-Za-z0-9.!%*_+`'~-]+")
_VERSION: Final = re.compile(rb"SIP/(\d{1,3})\.(\d{1,3})", re.IGNORECASE)
_SINGLE_VALUED: Final = (
    "call-id",
    "cseq",
    "from",
    "to",
    "max-forwards",
    "content-length",
    "expires",
)
_MANDATORY: Final = ("from", "to", "call-id", "cseq")
#: One str per known method, shared by every request (a completed transaction's
#: key holds its method for Timer J).
_KNOWN_METHODS: Final = {m.encode(): m for m in METHOD_NAMES}

DEFAULT_MAX_HEADER_BYTES = 16384
DEFAULT_MAX_BODY_BYTES = 65536
DEFAULT_MAX_LINES = 256


def parse_message(
    data: bytes,
    *,
    stream: bool = False,
    validate: bool = True,
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_lines: int = DEFAULT_MAX_LINES,
) -> Request | Response:
    """Parse one whole SIP message.

    ``stream`` says the bytes were framed by Content-Length on a stream
    transport (they hold exactly one message); otherwise they are a datagram and
    18.3's rules apply: a Content-Length larger than the datagram is an error, a
    smaller one truncates the body, and a missing one means "the rest".
    """
    if data[:1] in (b"\r", b"\n"):
        # 7.5: CRLFs before the start-line are ignored.
        data = data.lstrip(b"\r\n")
        if not data:
            raise ParseError("Empty message", None)
    raw: bytes | None = data
    first_lf = data.find(b"\n")
    crlf = first_lf > 0 and data[first_lf - 1] == 13  # the start-line ends in CRLF
    end = data.find(b"\r\n\r\n") if crlf else -1
    if end >= 0:
        head = data[:end]
        body = data[end + 4 :]
        lines = head.split(b"\r\n")
    elif not crlf and (lf_end := data.find(b"\n\n")) >= 0:
        # Bare LF line ends: tolerated, and rendered with CRLF when forwarded.
        head, body, raw = data[:lf_end], data[lf_end + 2 :], None
        lines = head.replace(b"\r\n", b"\n").split(b"\n")
        crlf = False
    elif data.endswith(b"\r\n"):
        # A datagram without the empty line: no body.
        head, body, raw = data[:-2], b"", None
        lines = head.split(b"\r\n")
    else:
        raise ParseError("No end of header block", None)
    if len(head) > max_header_bytes:
        raise _oversized(data, lines[0], "Header block too large")
    if len(lines) > max_lines:
        raise _oversized(data, lines[0], "Too many header lines")

    start = lines[0]
    header_lines = lines[1:]
    if head.find(b"\n ") >= 0 or head.find(b"\n\t") >= 0:  # not `in` (message.py)
        header_lines = _unfold(header_lines)

    error: ParseError | None = None
    keys: list[str] = []
    if crlf:
        # Every line's name, when seen before, has its key already.
        for line in header_lines:
            colon = line.find(b":")
            key = _KEYS.get(line[:colon]) if colon > 0 else None
            if key is None:
                break
            keys.append(key)
    if keys and len(keys) == len(header_lines):
        kept = header_lines
    else:
        keys, kept, error = _index_lines(header_lines)
    if len(kept) != len(header_lines):
        raw = None

    message: Message
    if _is_response(start):
        message = _response(start, kept, keys, body, raw)
        if error is not None:
            raise ParseError(error.reason, None)
    else:
        request, error = _request(start, kept, keys, body, raw, error)
        message = request
        if error is not None:
            error.request = request if error.status is not None else None
            raise error

    _frame_body(message, stream, max_body_bytes)
    if validate:
        if isinstance(message, Request):
            validate_request(message)
        else:
            validate_response(message)
    return message


def _oversized(data: bytes, start: bytes, reason: str) -> ParseError:
    """513 for a request over the limits, with what is needed to answer it; a
    response over them is dropped. The second parse has no limits but is still
    linear, and only happens for an oversized request."""
    if _is_response(start):
        return ParseError(reason, None)
    try:
        partial = parse_message(
            data, validate=False, max_header_bytes=len(data) + 1, max_lines=len(data) + 1
        )
    except ParseError:
        partial = None
    return ParseError(reason, 513, request=partial if isinstance(partial, Request) else None)


def _index_lines(lines: list[bytes]) -> tuple[list[str], list[bytes], ParseError | None]:
    """The slow path of indexing: some line lacks a colon or has an unseen name."""
    error: ParseError | None = None
    keys: list[str] = []
    kept: list[bytes] = []
    for line in lines:
        colon = line.find(b":")
        if colon <= 0:
            if error is None and line.strip():
                error = ParseError("Malformed header line (no colon)")
            continue
        try:
            keys.append(bytes_key(line[:colon]))
        except ParseError as exc:
            error = error or exc
            continue
        kept.append(line)
    return keys, kept, error


def _is_response(start: bytes) -> bool:
    return start[:4].upper() == b"SIP/"


def _unfold(lines: list[bytes]) -> list[bytes]:
    """Join continuation lines (7.3.1 LWS folding) to the line they continue.

    The CRLF and indentation are kept in the line, so an unedited header goes
    out byte for byte; reading the value replaces them with one space.
    """
    out: list[list[bytes]] = []
    for line in lines:
        if line[:1] in (b" ", b"\t") and out:
            out[-1].append(line)
        else:
            out.append([line])
    return [b"\r\n".join(parts) for parts in out]


def _response(
    start: bytes,
    lines: list[bytes],
    keys: list[str],
    body: bytes,
    raw: bytes | None,
) -> Response:
    parts = start.split(b" ", 2)
    if len(parts) < 2 or _VERSION.fullmatch(parts[0]) is None:
        raise ParseError("Malformed Status-Line", None)
    if parts[0].upper() != b"SIP/2.0":
        raise ParseError("Unsupported SIP version in response", None)
    code = parts[1]
    if len(code) != 3 or not code.isdigit() or not (b"100" <= code <= b"699"):
        raise ParseError("Bad status code", None)
    reason = decode_text(parts[2]) if len(parts) > 2 else ""
    return Response(int(code), reason, lines, keys, body, raw)


def _request(
    start: bytes,
    lines: list[bytes],
    keys: list[str],
    body: bytes,
    raw: bytes | None,
    error: ParseError | None,
) -> tuple[Request, ParseError | None]:
    # A trailing blank after SIP/2.0 is answered with 400 (RFC 4475 3.1.2.10),
    # not dropped, so the sender stops retransmitting.
    trailing = start.endswith((b" ", b"\t"))
    parts = start.rstrip(b" \t").split(b" ")
    method = parts[0]
    version = parts[-1] if len(parts) > 1 else b""
    known = _KNOWN_METHODS.get(method)
    if (known is None and _METHOD.fullmatch(method) is None) or (
        version != b"SIP/2.0" and _VERSION.fullmatch(version) is None
    ):
        # Not a SIP request line at all: nothing to answer.
        raise ParseError("Malformed Request-Line", None)
    uri = b" ".join(parts[1:-1])
    request = Request(
        known or method.decode("ascii"),
        decode_text(uri),
        lines,
        keys,
        body,
        raw,
        version.decode("ascii"),
    )
    if error is None:
        if version.upper() != b"SIP/2.0":
            error = ParseError("Version Not Supported", 505)
        elif len(parts) != 3 or not uri or trailing:
            error = ParseError("Malformed Request-Line")
    return request, error


def _frame_body(message: Message, stream: bool, max_body_bytes: int) -> None:
    """Apply Content-Length to the body (RFC 3261 18.3, 20.14)."""
    is_request = isinstance(message, Request)
    try:
        length = message.content_length
    except ParseError as exc:
        raise _fail(message, exc.reason) from None
    body = message.body
    if length is None:
        if stream and body:
            raise _fail(message, "Missing Content-Length on a stream transport")
        length = len(body)
    if length > max_body_bytes:
        raise _fail(message, "Body too large", 413 if is_request else None)
    if length > len(body):
        raise _fail(message, "Content-Length larger than the message")
    if length < len(body):
        message.body = body[:length]
    message._length_ok = message.content_length == length


def _fail(message: Message, reason: str, status: int | None = 400) -> ParseError:
    if isinstance(message, Request):
        return ParseError(reason, status, request=message)
    return ParseError(reason, None)


def _check_present(message: Message) -> None:
    if not message.count_of_key("via"):
        # Nowhere to send an answer (18.2.2).
        raise ParseError("Missing Via header", None)
    for key in _MANDATORY:
        if not message.count_of_key(key):
            raise ParseError(f"Missing {_NAMES[key]} header")
    if message.has_repeated():
        for key in _SINGLE_VALUED:
            if message.count_of_key(key) > 1:
                raise ParseError(f"More than one {_NAMES[key]} header")


def _check_common(message: Message) -> None:
    _check_present(message)
    message.vias  # noqa: B018 - parses and validates every Via
    if not message.call_id:
        raise ParseError("Empty Call-ID header")
    message.from_addr  # noqa: B018
    message.to_addr  # noqa: B018
    message.max_forwards  # noqa: B018
    message.expires  # noqa: B018


_NAMES = {
    "call-id": "Call-ID",
    "cseq": "CSeq",
    "from": "From",
    "to": "To",
    "max-forwards": "Max-Forwards",
    "content-length": "Content-Length",
    "expires": "Expires",
}


def validate_request(request: Request) -> None:
    """Check what every service relies on; raise ParseError(400) naming the culprit."""
    try:
        _check_common(request)
        cseq = request.cseq
        if cseq.method != request.method:
            raise ParseError("CSeq method does not match the Request-Line")
        try:
            request.request_uri  # noqa: B018
        except ParseError as exc:
            raise ParseError(f"Bad Request-URI: {exc.reason}") from None
        request.contacts  # noqa: B018
    except ParseError as exc:
        if exc.status is not None:
            exc.request = request
        raise


def check_response(response: Response) -> None:
    """The check of a response that the server forwards or consumes (18.1.2:
    any fault, dropped): the mandatory headers, once each where single-valued;
    the top Via (where it goes on to) and the CSeq (which transaction it
    answers) parse; the Call-ID is not empty.

    Unlike ``validate_response`` it leaves the other Vias, From and To alone:
    a proxy passes them on as they came, and a later read still parses them
    (and raises ParseError if they are malformed).
    """
    try:
        _check_present(response)
        response.top_via  # noqa: B018
        if not response.call_id:
            raise ParseError("Empty Call-ID header")
        response.cseq  # noqa: B018
    except ParseError as exc:
        raise ParseError(exc.reason, None) from None


def validate_response(response: Response) -> None:
    """Check a response; any fault means it is dropped (RFC 3261 18.1.2)."""
    try:
        _check_common(response)
        response.cseq  # noqa: B018
    except ParseError as exc:
        raise ParseError(exc.reason, None) from None
