"""Messages and output filters shared by the transaction tests (a fake clock is a float)."""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

from centrex.sip.build import make_response
from centrex.sip.message import Message, Request, Response
from centrex.transaction.events import Output, Send
from centrex.transaction.layer import TransactionLayer
from centrex.transaction.transaction import Transaction

T = TypeVar("T")

PEER = ("192.0.2.10", 5060)


def request(
    method: str = "INVITE",
    *,
    branch: str | None = "z9hG4bK-client-1",
    sent_by: str = "client.example.com:5060",
    transport: str = "UDP",
    uri: str = "sip:bob@example.com",
    call_id: str = "call-1@client.example.com",
    cseq: int = 1,
    cseq_method: str | None = None,
    from_tag: str = "from-1",
    to_tag: str | None = None,
) -> Request:
    """A minimal well-formed request (RFC 3261 8.1.1)."""
    via = f"SIP/2.0/{transport} {sent_by}" + (f";branch={branch}" if branch else "")
    to = "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")
    return Request.new(
        method,
        uri,
        [
            ("Via", via),
            ("Max-Forwards", "70"),
            ("From", f"<sip:alice@example.com>;tag={from_tag}"),
            ("To", to),
            ("Call-ID", call_id),
            ("CSeq", f"{cseq} {cseq_method or method}"),
        ],
    )


def response(req: Request, status: int, *, to_tag: str | None = "to-1") -> Response:
    """The response ``status`` to ``req``, with a To tag unless it is a 100."""
    return make_response(req, status, to_tag=None if status == 100 else to_tag)


def state_of(tx: Transaction) -> Enum:
    """``tx.state`` read through a call, so a type checker does not keep an earlier narrowing."""
    return tx.state


def of_type(outputs: list[Output], kind: type[T]) -> list[T]:
    return [out for out in outputs if isinstance(out, kind)]


def sent(outputs: list[Output]) -> list[Message]:
    """The messages the layer asked the transport to send, in order."""
    return [out.message for out in outputs if isinstance(out, Send)]


def sent_statuses(outputs: list[Output]) -> list[int]:
    return [m.status for m in sent(outputs) if isinstance(m, Response)]


def run_clock(layer: TransactionLayer, until: float) -> list[tuple[float, Output]]:
    """Advance a fake clock from deadline to deadline up to ``until``.

    Returns every output with the time it was produced at.
    """
    log: list[tuple[float, Output]] = []
    while (deadline := layer.next_deadline()) is not None and deadline <= until:
        layer.handle_timer(deadline)
        log.extend((deadline, out) for out in layer.take_outputs())
    return log


def send_times(log: list[tuple[float, Output]]) -> list[float]:
    return [at for at, out in log if isinstance(out, Send)]
