"""Transaction matching keys (RFC 3261 17.1.3, 17.2.3, 9.2).

Client side (17.1.3): a response matches the client transaction whose request
had the same top Via branch and whose method is the CSeq method of the
response (so the responses to a CANCEL, which shares the INVITE's branch, go to
the CANCEL transaction).

Server side (17.2.3), when the top Via branch starts with the magic cookie
``z9hG4bK``: the branch, the sent-by of the top Via and the method, where an
ACK counts as the INVITE it acknowledges. Otherwise the RFC 2543 rules apply:
Request-URI, From tag, Call-ID, CSeq number and method (ACK again as INVITE),
top Via, and the To tag, which for an ACK is compared with the To tag of the
response the server transaction sent. The To tag is checked against the
candidates found under the other fields (``to_tag_matches``).

Host names compare case-insensitively (19.1.4); branches, Call-IDs, tags and
the Request-URI text compare exactly, as a retransmission repeats them byte for
byte.
"""

from __future__ import annotations

from centrex.sip.message import Request, Response
from centrex.sip.via import Via, is_rfc3261_branch
from centrex.transaction.transaction import ServerTransaction

ClientKey = tuple[str, str]
ServerKey = tuple[object, ...]


def client_key_of_request(request: Request) -> ClientKey | None:
    """The key a client transaction for ``request`` is filed under (17.1.3)."""
    branch = request.branch
    if branch is None:
        return None
    return (branch, request.method)


def client_key_of_response(response: Response) -> ClientKey | None:
    """The key of the client transaction ``response`` belongs to (17.1.3)."""
    branch = response.branch
    if branch is None:
        return None
    return (branch, response.cseq.method)


def _server_method(method: str) -> str:
    # 17.2.3: "the method of the request matches the one that created the
    # transaction, except for ACK, where the method of the request that created
    # the transaction is INVITE".
    return "INVITE" if method == "ACK" else method


def _via_identity(via: Via) -> tuple[object, ...]:
    return (
        via.protocol_name,
        via.version,
        via.transport,
        via.host.lower(),
        via.port,
        frozenset(via.params.items()),
    )


def server_key(request: Request, *, method: str | None = None) -> ServerKey:
    """The key of the server transaction ``request`` belongs to (17.2.3).

    ``method`` overrides the request's method (9.2: a CANCEL looks for the
    transaction it cancels as if it were the INVITE). Raises ParseError when a
    header it needs is malformed.
    """
    wanted = _server_method(method or request.method)
    branch = request.branch
    if is_rfc3261_branch(branch):
        host, port = request.top_via.sent_by
        return ("3261", branch, host.lower(), port, wanted)
    return (
        "2543",
        request.uri,
        request.from_tag,
        request.call_id,
        request.cseq.number,
        wanted,
        _via_identity(request.top_via),
    )


def is_rfc2543_key(key: ServerKey) -> bool:
    return key[0] == "2543"


def to_tag_matches(tx: ServerTransaction, request: Request) -> bool:
    """The To tag rule of the RFC 2543 matching (17.2.3).

    An ACK's To tag is compared with that of the response the transaction sent;
    any other request's with that of the request that created the transaction.
    """
    if request.method == "ACK":
        sent = tx.last_response
        return sent is not None and sent.to_tag == request.to_tag
    return tx.request.to_tag == request.to_tag
