"""List header values: split on the commas outside quotes and angle brackets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from centrex.sip.headers import first_value, split_values


def _reference_split(value: str) -> list[str]:
    """RFC 3261 7.3.1 read char by char: a comma splits outside quotes and <>."""
    out: list[str] = []
    start, quoted, angle, i = 0, False, False, 0
    while i < len(value):
        ch = value[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            angle = True
        elif ch == ">":
            angle = False
        elif ch == "," and not angle:
            out.append(value[start:i].strip())
            start = i + 1
        i += 1
    out.append(value[start:].strip())
    return [part for part in out if part]


_LISTISH = st.text(alphabet='ab ,\t<>"\\;=:\xa0\x0b\u2028', max_size=40)


@given(_LISTISH)
def test_split_values_splits_as_the_rfc_reads_whatever_the_shape(value: str) -> None:
    assert split_values(value) == _reference_split(value)


@given(_LISTISH)
def test_first_value_is_the_first_element_and_the_rest_holds_the_others(value: str) -> None:
    first, rest = first_value(value)
    assert ([first] if first else []) + split_values(rest) == split_values(value)
    assert bool(rest) == (len(split_values(value)) > 1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "SIP/2.0/UDP a;branch=1, SIP/2.0/UDP b;branch=2",
            ("SIP/2.0/UDP a;branch=1", "SIP/2.0/UDP b;branch=2"),
        ),
        ("a ,, b ,c", ("a", "b ,c")),  # the rest as written, less the empty elements before it
        (" , a", ("a", "")),
        ('"x, y" <sip:a>, <sip:b>', ('"x, y" <sip:a>', "<sip:b>")),
        ("<sip:a;x=1,2>", ("<sip:a;x=1,2>", "")),
        ("", ("", "")),
    ],
)
def test_first_value_examples(value: str, expected: tuple[str, str]) -> None:
    assert first_value(value) == expected


def test_a_rest_after_unusual_whitespace_is_rejoined_clean() -> None:
    # A no-break space is whitespace to split_values: it never starts the rest.
    value = "SIP/2.0/UDP us;branch=z9hG4bK1,\xa0SIP/2.0/UDP g;branch=z9hG4bK2\x0b"
    assert first_value(value) == ("SIP/2.0/UDP us;branch=z9hG4bK1", "SIP/2.0/UDP g;branch=z9hG4bK2")
    assert first_value("a,\x0b") == ("a", "")
