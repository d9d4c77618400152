"""Messages per second for parse + read + splice-forward, on one core.

For a REGISTER and for an INVITE with SDP, three kinds of work are timed:

- ``parse (lazy)``: split and index the header block, frame the body;
- ``proxy round``: what a proxy does with every request: the lazy parse, then
  read the top Via branch, From tag, To (parsed as an address), Call-ID and
  CSeq, splice the forward (push a Via, add Record-Route, decrement
  Max-Forwards) and render the bytes;
- ``proxy round, validated``: the same after a full validation of every
  mandatory header (each Via, From, To, Contact, Request-URI parsed whole), as
  ``parse_message(data)`` does by default.

    .venv/bin/python bench/parse.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from centrex.sip.parser import parse_message

SDP = (
    b"v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\ns=-\r\n"
    b"c=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
)

REGISTER = (
    b"REGISTER sip:example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'From: "Ted McGraw" <sip:1235@example.com>;tag=1928301774\r\n'
    b"To: <sip:1235@example.com>\r\n"
    b"Call-ID: a84b4c76e66710@pc33.example.com\r\n"
    b"CSeq: 314159 REGISTER\r\n"
    b"Contact: <sip:1235@192.0.2.10:5060;transport=udp>;expires=3600\r\n"
    b"User-Agent: Test Phone 1.0\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, NOTIFY, REFER\r\n"
    b"Expires: 3600\r\n"
    b"Content-Length: 0\r\n\r\n"
)

INVITE = (
    b"INVITE sip:1234@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKnashds8;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'From: "Alice" <sip:1235@example.com>;tag=1928301774\r\n'
    b"To: <sip:1234@example.com>\r\n"
    b"Call-ID: a84b4c76e66710@pc33.example.com\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:1235@192.0.2.10:5060>\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, NOTIFY, REFER\r\n"
    b"Supported: replaces, timer\r\n"
    b"User-Agent: Test Phone 1.0\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n\r\n" + SDP
)

VIA = "SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKcentrex0"
RR = "<sip:203.0.113.1;lr>"


def proxy_round(data: bytes, validate: bool = False) -> bytes:
    message = parse_message(data, validate=validate)
    message.branch  # noqa: B018
    message.from_tag  # noqa: B018
    message.to_addr  # noqa: B018
    message.call_id  # noqa: B018
    message.cseq  # noqa: B018
    message.push_via(VIA)
    message.add_record_route(RR)
    message.decrement_max_forwards()
    return message.to_bytes()


def proxy_round_validated(data: bytes) -> bytes:
    return proxy_round(data, validate=True)


def parse_only(data: bytes) -> bytes:
    parse_message(data, validate=False)
    return data


def rate(work: Callable[[bytes], bytes], data: bytes, seconds: float) -> float:
    """Best of five slices of ``seconds / 5`` each: messages per second."""
    best = 0.0
    for _ in range(5):
        count = 0
        deadline = time.perf_counter() + seconds / 5
        start = time.perf_counter()
        while True:
            for _ in range(1000):
                work(data)
            count += 1000
            now = time.perf_counter()
            if now >= deadline:
                break
        best = max(best, count / (now - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per figure")
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cpus")
    print(f"{'message':<10} {'work':<34} {'msgs/s':>10} {'us/msg':>8}")
    for name, data in (("REGISTER", REGISTER), ("INVITE", INVITE)):
        for label, work in (
            ("parse (lazy)", parse_only),
            ("proxy round", proxy_round),
            ("proxy round, validated", proxy_round_validated),
        ):
            per_second = rate(work, data, args.seconds)
            print(f"{name:<10} {label:<34} {per_second:>10,.0f} {1e6 / per_second:>8.2f}")


if __name__ == "__main__":
    main()
