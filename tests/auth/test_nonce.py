"""Stateless nonces and the nonce-count tracker."""

from __future__ import annotations

import base64

import pytest

from centrex.auth.nonce import NonceCodec, NonceCounter, parse_nc

from .helpers import SECRET, T0


def codec(lifetime_s: float = 300) -> NonceCodec:
    return NonceCodec(SECRET, lifetime_s, epoch=b"run1")


def test_fresh_nonce_is_valid_within_its_lifetime() -> None:
    c = codec()
    nonce = c.new(T0, "example.com")
    assert c.check(nonce, T0, "example.com") == "valid"
    assert c.check(nonce, T0 + 299.9, "example.com") == "valid"


def test_nonce_older_than_the_lifetime_is_stale() -> None:
    c = codec()
    nonce = c.new(T0, "example.com")
    assert c.check(nonce, T0 + 301, "example.com") == "stale"


def test_nonces_are_unique_and_safe_in_a_quoted_string() -> None:
    c = codec()
    nonces = {c.new(T0, "r") for _ in range(1000)}
    assert len(nonces) == 1000
    assert all(n.isascii() and n.isprintable() and '"' not in n for n in nonces)


def test_nonce_verifies_with_the_issue_time() -> None:
    c = codec()
    check = c.verify(c.new(T0 + 0.25, "r"), T0 + 1, "r")
    assert check.state == "valid"
    assert check.issued_at == pytest.approx(T0 + 0.25)


def test_altered_nonce_is_invalid() -> None:
    c = codec()
    nonce = c.new(T0, "r")
    flipped = nonce[:10] + ("A" if nonce[10] != "A" else "B") + nonce[11:]
    assert c.check(flipped, T0, "r") == "invalid"


def test_nonce_with_a_forged_timestamp_is_invalid() -> None:
    c = codec()
    raw = bytearray(base64.urlsafe_b64decode(c.new(T0, "r") + "="))
    raw[7] ^= 0x01  # one millisecond later, same MAC
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    assert c.check(forged, T0, "r") == "invalid"


def test_nonce_of_another_secret_or_realm_is_invalid() -> None:
    nonce = codec().new(T0, "example.com")
    assert NonceCodec(b"another-secret-of-16+", 300).check(nonce, T0, "example.com") == "invalid"
    assert codec().check(nonce, T0, "example.org") == "invalid"


@pytest.mark.parametrize("garbage", ["", "abc", "x" * 43, "é" * 43, "!" * 43, "A" * 1000])
def test_garbage_nonce_is_invalid(garbage: str) -> None:
    assert codec().check(garbage, T0, "r") == "invalid"


def test_nonce_from_a_clock_that_stepped_back_is_tolerated_for_one_lifetime() -> None:
    c = codec()
    nonce = c.new(T0 + 100, "r")
    assert c.check(nonce, T0, "r") == "valid"
    assert c.check(nonce, T0 - 1000, "r") == "stale"


def test_a_nonce_of_an_earlier_run_is_known_as_such_and_not_counted_again() -> None:
    # The secret outlives a restart, the counts do not: a nonce the earlier
    # run issued (another epoch) is ours, but its count cannot be checked.
    before, after = codec(), NonceCodec(SECRET, 300, epoch=b"run2")
    old = before.new(T0, "example.com")
    check = after.verify(old, T0 + 10, "example.com")
    assert (check.state, check.current) == ("valid", False)
    assert NonceCounter().use(old, check.issued_at, 1, current=check.current) == "forgotten"
    # A nonce of this run is counted, even one stamped before the start by a
    # clock that has since stepped back.
    new = after.new(T0 - 60, "example.com")
    check = after.verify(new, T0 + 10, "example.com")
    assert (check.state, check.current) == ("valid", True)
    assert NonceCounter().use(new, check.issued_at, 1, current=check.current) == "ok"


def test_codec_refuses_a_short_secret_or_no_lifetime() -> None:
    with pytest.raises(ValueError):
        NonceCodec(b"short", 300)
    with pytest.raises(ValueError):
        NonceCodec(SECRET, 0)


@pytest.mark.parametrize(
    ("text", "value"),
    [("00000001", 1), ("0000000a", 10), ("0000000A", 10), ("ffffffff", 2**32 - 1)],
)
def test_nonce_count_is_eight_hex_digits(text: str, value: int) -> None:
    assert parse_nc(text) == value


@pytest.mark.parametrize("text", ["", "1", "00000000", "000000001", "0000000g", " 0000001"])
def test_malformed_or_zero_nonce_count_is_refused(text: str) -> None:
    assert parse_nc(text) is None


def test_nonce_count_must_increase_per_nonce() -> None:
    counter = NonceCounter(10)
    assert counter.use("n1", T0, 1) == "ok"
    assert counter.use("n1", T0, 1) == "replay"
    assert counter.use("n1", T0, 3) == "ok"
    assert counter.use("n1", T0, 2) == "replay"
    assert counter.use("n2", T0, 1) == "ok"


def test_evicted_nonce_counts_as_forgotten_and_is_never_accepted_again() -> None:
    counter = NonceCounter(2)
    assert counter.use("old", T0, 1) == "ok"
    assert counter.use("mid", T0 + 1, 1) == "ok"
    assert counter.use("new", T0 + 2, 1) == "ok"  # evicts "old"
    assert "old" not in counter
    assert counter.use("old", T0, 1) == "forgotten"
    assert counter.use("old", T0, 2) == "forgotten"
    # A nonce issued after the forgotten one is still welcome.
    assert counter.use("newer", T0 + 3, 1) == "ok"


def test_nonce_counter_memory_is_bounded() -> None:
    counter = NonceCounter(100)
    for i in range(10_000):
        counter.use(f"n{i}", T0 + i, 1)
    assert len(counter) == 100


def test_recently_used_nonce_is_kept_over_idle_ones() -> None:
    counter = NonceCounter(2)
    counter.use("busy", T0, 1)
    counter.use("idle", T0 + 1, 1)
    counter.use("busy", T0, 2)
    counter.use("third", T0 + 2, 1)  # evicts "idle", the least recently used
    assert "busy" in counter
    assert "idle" not in counter
