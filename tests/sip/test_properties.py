"""Properties of parse_message, checked with hypothesis.

* Generated messages (random methods, known and unknown header names, values
  with quotes, commas and semicolons where they are legal, random bodies) parse
  to exactly the values they were built from, render back to the same bytes,
  and survive the forwarding edits (push / pop Via).
* Any input at all, random bytes or a mangled valid message, gives a message or
  a ParseError: never another exception, also when every typed view is read
  afterwards from a message parsed with ``validate=False``.
* Parsing time grows linearly with the size of pathological inputs.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from centrex.sip.errors import ParseError
from centrex.sip.headers import LIST_HEADERS, header_key
from centrex.sip.message import Message, Request, Response
from centrex.sip.parser import parse_message
from centrex.sip.uri import SipURI

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
# Visible ASCII and a few multi-byte characters: what a free-text value may hold.
TEXT_CHARS = "".join(chr(c) for c in range(0x21, 0x7F)) + "  \téß中☃"
# Inside a quoted-string: anything but '"' and '\' (those are escaped when used).
QUOTED_CHARS = "".join(c for c in TEXT_CHARS if c not in '"\\') + ",;<>"
# Inside <...> of a list element: no quotes or angle brackets (they would nest).
ANGLED_CHARS = ALNUM + ":@;=,.-_+/?&"
# Outside quotes and angles in a list element: no comma, quote, angle, whitespace.
BARE_CHARS = TOKEN_CHARS + ";=/:@?"

# Headers the generator writes itself (validated, so their values must be right).
RESERVED = frozenset(
    {"via", "from", "to", "call-id", "cseq", "content-length", "max-forwards", "expires", "contact"}
)
FREE_TEXT_HEADERS = (
    "Subject",
    "User-Agent",
    "Server",
    "Organization",
    "Date",
    "Content-Type",
    "Priority",
    "Timestamp",
    "Reply-To",
    "X-Note",
)
LIST_VALUED_HEADERS = (
    "Allow",
    "Supported",
    "Accept",
    "Accept-Language",
    "Route",
    "Record-Route",
    "Warning",
    "Require",
    "Proxy-Require",
    "Unsupported",
    "In-Reply-To",
    "Alert-Info",
    "Call-Info",
)
METHODS = ("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "MESSAGE", "NOTIFY", "INFO")

tokens = st.text(TOKEN_CHARS, min_size=1, max_size=12)
alnums = st.text(ALNUM, min_size=1, max_size=10)
hosts = st.builds(lambda a, b: f"{a}.{b}.example", alnums, alnums.map(lambda s: "h" + s))


def _random_case(draw: st.DrawFn, name: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    return "".join(c.swapcase() if flip else c for c, flip in zip(name, flips, strict=True))


def _fold(draw: st.DrawFn, value: str) -> str:
    """Maybe replace one lone space of ``value`` by a line fold (reads back as one space)."""
    spots = [
        i
        for i in range(1, len(value) - 1)
        if value[i] == " " and value[i - 1] not in " \t" and value[i + 1] not in " \t"
    ]
    if not spots or not draw(st.booleans()):
        return value
    i = draw(st.sampled_from(spots))
    return value[:i] + draw(st.sampled_from(["\r\n ", "\r\n\t", "\r\n   "])) + value[i + 1 :]


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@st.composite
def free_text(draw: st.DrawFn) -> str:
    return draw(st.text(TEXT_CHARS, max_size=40)).strip(" \t")


@st.composite
def list_element(draw: st.DrawFn) -> str:
    """One element of a list header: bare text, quoted strings and <...> parts."""
    parts = []
    for kind in draw(
        st.lists(st.sampled_from(["bare", "quoted", "angled"]), min_size=1, max_size=3)
    ):
        if kind == "bare":
            parts.append(draw(st.text(BARE_CHARS, min_size=1, max_size=12)))
        elif kind == "quoted":
            inner = draw(st.text(QUOTED_CHARS + '"\\', max_size=12))
            parts.append(_quote(inner))
        else:
            parts.append("<" + draw(st.text(ANGLED_CHARS, min_size=1, max_size=16)) + ">")
    joiner = draw(st.sampled_from(["", " ", ";"]))
    return joiner.join(parts)


@dataclass
class Generated:
    """A generated message and what reading it must give."""

    data: bytes
    body: bytes
    is_request: bool
    call_id: str
    cseq: tuple[int, str]
    from_tag: str
    branches: list[str]
    # Header key -> every value (list headers split into elements), in order.
    values: dict[str, list[str]] = field(default_factory=dict)


@st.composite
def header_name(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["free", "list", "unknown"]))
    if kind == "free":
        name = draw(st.sampled_from(FREE_TEXT_HEADERS))
    elif kind == "list":
        name = draw(st.sampled_from(LIST_VALUED_HEADERS))
    else:
        name = draw(
            tokens.filter(lambda n: header_key(n) not in RESERVED and header_key(n) == n.lower())
        )
    return _random_case(draw, name)


@st.composite
def messages(draw: st.DrawFn) -> Generated:
    """A valid request or response with random headers and body."""
    is_request = draw(st.booleans())
    method = draw(st.one_of(st.sampled_from(METHODS), tokens))
    lines: list[tuple[str, str, list[str]]] = []  # (name, value as written, expected values)

    # Via: one to four values on one to four lines.
    vias = [
        f"SIP/2.0/{draw(st.sampled_from(['UDP', 'TCP', 'TLS', 'WS']))} {draw(hosts)}"
        f"{draw(st.sampled_from(['', ':5060', ':65535']))}"
        f"{draw(st.sampled_from(['', ';rport', ' ; received=192.0.2.1']))};branch=z9hG4bK{b}"
        for b in draw(st.lists(tokens, min_size=1, max_size=4))
    ]
    start = 0
    while start < len(vias):
        end = draw(st.integers(start + 1, len(vias)))
        group = vias[start:end]
        sep = draw(st.sampled_from([", ", ",", " , ", ",\t"]))
        lines.append((draw(st.sampled_from(["Via", "v", "VIA"])), sep.join(group), group))
        start = end

    from_tag = draw(tokens)
    display = draw(st.text(QUOTED_CHARS + '"\\', max_size=15))
    from_value = f"{_quote(display)} <sip:{draw(alnums)}@{draw(hosts)}>;tag={from_tag}"
    to_value = f"<sip:{draw(alnums)}@{draw(hosts)}>" + draw(
        st.sampled_from(["", ";tag=" + draw(tokens)])
    )
    call_id = draw(tokens) + draw(st.sampled_from(["", "@" + draw(tokens)]))
    number = draw(st.integers(0, 2**31 - 1))
    cseq_method = method if is_request else draw(st.sampled_from(METHODS))
    cseq_value = f"{number} {cseq_method}"
    lines += [
        (draw(st.sampled_from(["From", "f", "fRoM"])), from_value, [from_value]),
        (draw(st.sampled_from(["To", "t"])), to_value, [to_value]),
        (draw(st.sampled_from(["Call-ID", "i", "call-id"])), call_id, [call_id]),
        (draw(st.sampled_from(["CSeq", "cseq"])), cseq_value, [cseq_value]),
    ]
    if draw(st.booleans()):
        max_forwards = str(draw(st.integers(0, 255)))
        lines.append(("Max-Forwards", max_forwards, [max_forwards]))

    for _ in range(draw(st.integers(0, 8))):
        name = draw(header_name())
        if header_key(name) in LIST_HEADERS:
            elements = draw(st.lists(list_element(), min_size=1, max_size=4))
            seps = [draw(st.sampled_from([", ", ",", " ,  ", ",,", ", ,"])) for _ in elements[1:]]
            value = elements[0] + "".join(s + e for s, e in zip(seps, elements[1:], strict=True))
            lines.append((name, value, elements))
        else:
            value = draw(free_text())
            lines.append((name, value, [value]))

    body = draw(st.binary(max_size=200))
    lines.append(
        (
            draw(st.sampled_from(["Content-Length", "l", "content-length"])),
            str(len(body)),
            [str(len(body))],
        )
    )
    order = draw(st.permutations(range(len(lines))))

    if is_request:
        first = f"{method} sip:{draw(alnums)}@{draw(hosts)} SIP/2.0"
    else:
        first = f"SIP/2.0 {draw(st.integers(100, 699))} {draw(free_text())}".rstrip(" ")
    wire = [first]
    values: dict[str, list[str]] = {}
    for i in order:
        name, value, expected = lines[i]
        before = draw(st.sampled_from(["", " ", "\t"]))
        after = draw(st.sampled_from(["", " ", "  ", "\t"]))
        wire.append(f"{name}{before}:{after}{_fold(draw, value)}")
        values.setdefault(header_key(name), []).extend(expected)
    data = ("\r\n".join(wire) + "\r\n\r\n").encode() + body
    return Generated(
        data=data,
        body=body,
        is_request=is_request,
        call_id=call_id,
        cseq=(number, cseq_method),
        from_tag=from_tag,
        # In wire order: the Via lines were shuffled with the others.
        branches=[v.rsplit(";branch=z9hG4bK", 1)[1] for v in values["via"]],
        values=values,
    )


def _assert_values(message: Message, values: dict[str, list[str]], body: bytes) -> None:
    for key, expected in values.items():
        assert message.get_all(key) == expected, key
    assert message.body == body


@SETTINGS
@given(messages())
def test_generated_messages_parse_to_what_they_were_built_from(gen: Generated) -> None:
    message = parse_message(gen.data)
    assert isinstance(message, Request if gen.is_request else Response)
    _assert_values(message, gen.values, gen.body)
    assert message.call_id == gen.call_id
    assert (message.cseq.number, message.cseq.method) == gen.cseq
    assert message.from_tag == gen.from_tag == message.from_addr.tag
    assert [v.branch for v in message.vias] == [f"z9hG4bK{b}" for b in gen.branches]
    assert message.branch == f"z9hG4bK{gen.branches[0]}"
    assert message.content_length == len(gen.body)
    # Unedited, the message renders as the very bytes it came from.
    assert message.to_bytes() == gen.data
    again = parse_message(message.to_bytes())
    _assert_values(again, gen.values, gen.body)


@SETTINGS
@given(messages(), tokens, hosts)
def test_push_and_pop_via_round_trip_through_the_wire(
    gen: Generated, branch: str, host: str
) -> None:
    message = parse_message(gen.data)
    added = f"SIP/2.0/UDP {host};branch=z9hG4bK{branch};rport"
    message.push_via(added)
    assert message.get_all("Via") == [added, *gen.values["via"]]
    assert message.branch == f"z9hG4bK{branch}"
    assert message.top_via.has_rport

    pushed = parse_message(message.to_bytes())
    _assert_values(pushed, {**gen.values, "via": [added, *gen.values["via"]]}, gen.body)
    assert pushed.branch == f"z9hG4bK{branch}"

    assert pushed.pop_via() == added
    assert pushed.get_all("Via") == gen.values["via"]
    popped = parse_message(pushed.to_bytes())
    _assert_values(popped, gen.values, gen.body)
    assert popped.branch == f"z9hG4bK{gen.branches[0]}"

    # Popping the original topmost Via exposes the next one (a response going back).
    if len(gen.values["via"]) > 1:
        assert popped.pop_via() == gen.values["via"][0]
        rest = parse_message(popped.to_bytes())
        assert rest.get_all("Via") == gen.values["via"][1:]
        assert rest.branch == f"z9hG4bK{gen.branches[1]}"


# ---------------------------------------------------------------------------
# Robustness: nothing but ParseError, whatever comes in
# ---------------------------------------------------------------------------


def _read(view: Callable[[], object]) -> None:
    try:
        view()
    except ParseError as exc:
        assert exc.status in (None, 400, 413, 420, 505, 513), exc.status


def _read_every_view(message: Message) -> None:
    reads: list[Callable[[], object]] = [
        lambda: message.vias,
        lambda: message.top_via,
        lambda: message.call_id,
        lambda: message.cseq,
        lambda: message.from_addr,
        lambda: message.to_addr,
        lambda: message.from_tag,
        lambda: message.to_tag,
        lambda: message.contacts,
        lambda: message.max_forwards,
        lambda: message.expires,
        lambda: message.content_length,
        lambda: message.body,
        lambda: message.header_items(),
        lambda: [message.get_all(name) for name, _ in message.header_items()],
        lambda: message.addresses("Route"),
        lambda: message.addresses("Record-Route"),
        lambda: [
            (str(v), v.rport, v.ttl, v.received, v.maddr, v.reliable, v.is_rfc3261_branch)
            for v in message.vias
        ],
        lambda: [(str(a), a.expires, a.q, a.tag, a.wildcard) for a in message.contacts],
        lambda: (str(message.from_addr), str(message.to_addr)),
        lambda: str(message.cseq),
        lambda: message.to_bytes(),
    ]
    reads.append(lambda: message.branch)
    if isinstance(message, Request):
        reads.append(lambda: str(message.request_uri))
        reads.append(lambda: _uri_details(message))
    for read in reads:
        _read(read)


def _uri_details(message: Request) -> object:
    uri = message.request_uri
    if isinstance(uri, SipURI):
        return (
            uri.aor(),
            hash(uri),
            uri.transport,
            uri.maddr,
            uri.unescaped_user,
            uri.default_port,
        )
    return uri


def _edit_and_reparse(message: Request | Response) -> None:
    copy = message.copy()
    copy.push_via("SIP/2.0/UDP edge.lemuria.example;branch=z9hG4bK.edit")
    copy.pop_via()
    copy.pop_via()
    copy.decrement_max_forwards()
    parse_message(copy.to_bytes(), validate=False)


def _check_robust(data: bytes) -> None:
    for validate in (True, False):
        try:
            message = parse_message(data, validate=validate)
        except ParseError as exc:
            event(f"validate={validate}: ParseError {exc.status}")
            assert exc.drop == (exc.status is None)
            assert exc.request is None or isinstance(exc.request, Request)
            if exc.request is not None:
                assert exc.status is not None
            continue
        event(f"validate={validate}: parsed")
        assert isinstance(message, Request | Response)
        _read_every_view(message)
        _read(functools.partial(_edit_and_reparse, message))


@SETTINGS
@given(st.binary(max_size=1500))
def test_arbitrary_bytes_give_a_message_or_a_parse_error(data: bytes) -> None:
    _check_robust(data)


@SETTINGS
@given(
    st.builds(
        lambda head, tail: head + tail,
        st.sampled_from([b"INVITE sip:a@b.example SIP/2.0\r\n", b"SIP/2.0 200 OK\r\n", b""]),
        st.lists(
            st.sampled_from(
                [
                    b"Via: SIP/2.0/UDP h.example;branch=z9hG4bK1\r\n",
                    b"From: <sip:a@b.example>;tag=1\r\n",
                    b"To: <sip:c@d.example>\r\n",
                    b"Call-ID: x\r\n",
                    b"CSeq: 1 INVITE\r\n",
                    b"Content-Length: 3\r\n",
                    b"Contact: *\r\n",
                    b"\r\n",
                    b" folded\r\n",
                    b"abc",
                ]
            )
            | st.binary(max_size=30),
            max_size=12,
        ).map(b"".join),
    )
)
def test_random_assemblies_of_header_lines_give_a_message_or_a_parse_error(data: bytes) -> None:
    _check_robust(data)


# Separators, quotes, odd octets, and snippets that look like the start of a header.
INSERTS = [
    *(bytes([c]) for c in b'\r\n:;,"<>\\ \t%=@[]*'),
    b"\r\n",
    b"\x00",
    b"\xff",
    b"\xc2\xb2",  # a superscript two: a digit to str.isdigit(), not to RFC 3261
    b", ,",
    b";tag=",
    b";branch=",
    b'="',
    b"\r\n ",
    b"\nSubject: x",
    b"\nContent-Length: 0",
    b"\r\nContent-Length: 0",
    b"\r\nVia: ,",
]
# Values that a header line may be given instead of its own.
ODD_VALUES = [
    b"",
    b",",
    b" , ,",
    b'"',
    b"<",
    b"<sip:",
    b";tag=",
    b"*",
    b"-1",
    b"99999999999999999999999",
    b"1\xc2\xb2",
    b"\xd9\xa3",
    b"\x00",
    b"SIP/2.0/UDP",
    b"sip:[::1",
]
MUTATIONS = (
    ["flip"] * 2
    + ["insert"] * 3
    + ["delete"] * 2
    + ["dup-line"] * 2
    + ["odd-value"] * 3
    + ["drop-line", "no-colon", "truncate"]
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid generated message, then flips, inserts, cuts, duplicated or broken lines."""
    data = bytearray(draw(messages()).data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(MUTATIONS))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.sampled_from(INSERTS) | st.binary(min_size=1, max_size=4))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        elif op == "truncate":
            del data[at:]
        else:
            lines = bytes(data).split(b"\r\n")
            j = draw(st.integers(0, len(lines) - 1))
            if op == "dup-line":
                lines.insert(j, lines[j])
            elif op == "no-colon":
                lines[j] = lines[j].replace(b":", b" ", 1)
            elif op == "odd-value":
                name, colon, _ = lines[j].partition(b":")
                lines[j] = name + colon + b" " + draw(st.sampled_from(ODD_VALUES))
            else:
                del lines[j]
            data = bytearray(b"\r\n".join(lines))
    return bytes(data)


@SETTINGS
@given(mutated())
def test_mutated_messages_give_a_message_or_a_parse_error(data: bytes) -> None:
    _check_robust(data)


# ---------------------------------------------------------------------------
# No super-linear time
# ---------------------------------------------------------------------------

LIMITS = {"max_header_bytes": 10**7, "max_body_bytes": 10**7, "max_lines": 10**6}
SIZES = (1_000, 10_000, 100_000)
MAX_GROWTH = 30  # for 10x the input; linear is ~10, quadratic ~100

START = b"OPTIONS sip:lee@lemuria.example SIP/2.0\r\n"
HEAD = (
    b"Via: SIP/2.0/UDP pc7.atlantis.example;branch=z9hG4bK.t\r\n"
    b"From: <sip:kim@atlantis.example>;tag=1\r\nTo: <sip:lee@lemuria.example>\r\n"
    b"Call-ID: timing@atlantis.example\r\nCSeq: 1 OPTIONS\r\n"
)


def _fill(unit: bytes, size: int) -> bytes:
    return unit * max(1, size // len(unit))


def _with_header(line: bytes) -> Callable[[int], bytes]:
    """A generator appending one pathological header line to a valid request."""
    prefix, _, unit = line.partition(b"|")
    return lambda size: START + HEAD + prefix + _fill(unit, size) + b"\r\n\r\n"


def _replacing(old: bytes, new: bytes) -> Callable[[int], bytes]:
    """A generator replacing ``old`` with ``new`` + filler (``new`` is 'prefix|unit|suffix')."""
    prefix, unit, suffix = new.split(b"|")
    return lambda size: (START + HEAD).replace(old, prefix + _fill(unit, size) + suffix) + b"\r\n"


_LINEAR: list[tuple[str, Callable[[int], bytes]]] = [
    ("commas-in-via", _replacing(b"Via: ", b"Via: |,|")),
    ("commas-in-route", _with_header(b"Route: |<sip:p.example;lr>,")),
    ("bare-commas-in-contact", _with_header(b"Contact: |,")),
    ("quotes-in-subject", _with_header(b'Subject: |"')),
    ("quotes-in-from", _replacing(b"From: ", b'From: |"a| ')),
    ("escaped-quotes-in-contact", _with_header(b'Contact: "|\\"|')),
    ("quoted-commas-in-contact", _with_header(b'Contact: |"\\",')),
    ("angles-in-contact", _with_header(b"Contact: |<")),
    ("angles-in-to", _replacing(b"To: ", b"To: |<|")),
    ("many-header-lines", _with_header(b"X-A: b\r\n|X-A: b\r\n")),
    ("many-via-lines", _with_header(b"|Via: SIP/2.0/UDP h.example;branch=z9hG4bKx\r\n")),
    ("many-via-values", _replacing(b"Via: ", b"Via: |SIP/2.0/UDP a.example;branch=z9hG4bKx, |")),
    ("many-contacts", _with_header(b"Contact: |<sip:a@b.example>;q=0.1, |")),
    ("many-via-params", _replacing(b";branch=z9hG4bK.t", b";branch=z9hG4bK.t|;p=1|")),
    ("semicolons-in-from", _replacing(b";tag=1", b"|; |")),
    ("request-uri-params", _replacing(b"example SIP/2.0", b"example|;p| SIP/2.0")),
    ("request-uri-escapes", _replacing(b"sip:lee@", b"sip:|%41|@")),
    ("request-uri-host-labels", _replacing(b"@lemuria.example", b"@|a-|b")),
    ("request-uri-host-digits", _replacing(b"@lemuria.example", b"@|1.|x")),
    ("long-call-id", _replacing(b"Call-ID: timing", b"Call-ID: |c|")),
    ("display-name-tokens", _replacing(b"From: ", b"From: |a |")),
    ("cseq-whitespace", _replacing(b"CSeq: 1 OPTIONS", b"CSeq: 1| |x")),
    ("lone-crs-in-value", _with_header(b"Subject: |\r")),
    ("bare-lfs-in-value", _with_header(b"Subject: |\n:")),
    ("digest-params", _with_header(b'Authorization: Digest |a="b",')),
    ("blank-lines-in-body", lambda size: START + HEAD + b"\r\n" + _fill(b"\r\n\r\n", size)),
    (
        "bare-lf-line-ends",
        lambda size: (START + HEAD + _fill(b"X-A: b\r\n", size) + b"\r\n").replace(b"\r\n", b"\n"),
    ),
    ("folded-lines", _with_header(b"Subject: x|\r\n y")),
    ("folded-tabs", _with_header(b"Subject: x|\r\n\t")),
    ("global-tel-number", _replacing(b"sip:lee@lemuria.example", b"tel:+|1|x")),
    ("global-tel-separators", _replacing(b"sip:lee@lemuria.example", b"tel:+|-|x")),
    ("local-tel-number", _replacing(b"sip:lee@lemuria.example", b"tel:|1|x")),
    ("tel-in-to", _replacing(b"To: <sip:lee@lemuria.example>", b"To: <tel:|1-|x>")),
]

PATHOLOGICAL = [pytest.param(make, id=name) for name, make in _LINEAR]


def _parse_time(data: bytes) -> float:
    """CPU seconds of one parse.

    CPU time of the process rather than perf_counter's wall time: on a busy
    shared machine the long runs get preempted and the short ones do not, which
    alone can triple a wall-clock ratio.
    """
    started = time.process_time()
    with contextlib.suppress(ParseError):
        parse_message(data, **LIMITS)  # type: ignore[arg-type]
    return time.process_time() - started


def _best_time(data: bytes, runs: int) -> float:
    return min(_parse_time(data) for _ in range(runs))


@pytest.mark.parametrize("make", PATHOLOGICAL)
def test_parse_time_grows_linearly_with_pathological_input(make: Callable[[int], bytes]) -> None:
    baseline: float | None = None
    for size in SIZES:
        data = make(size)
        assert size // 2 <= len(data) <= size * 3, len(data)
        if baseline is None:
            baseline = _best_time(data, 7)
            continue
        # One run first (a quadratic case at 100k can take seconds); measure
        # again only when it looks too slow, as the machine may be busy.
        elapsed = _parse_time(data)
        if elapsed / baseline >= MAX_GROWTH:
            elapsed = min(elapsed, _best_time(data, 4))
        assert elapsed / baseline < MAX_GROWTH, (
            f"{size} bytes took {elapsed / baseline:.0f}x as long as {size // 10} bytes"
        )
        baseline = _best_time(data, 5) if size != SIZES[-1] else elapsed
