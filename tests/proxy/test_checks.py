"""The proxy's hashing helpers (centrex.proxy.checks)."""

from __future__ import annotations

import hmac

import pytest

from centrex.proxy.checks import Sha256Mac


@pytest.mark.parametrize("key_length", [0, 1, 32, 63, 64, 65, 200])
def test_sha256_mac_is_hmac_sha256_for_any_key_length(key_length: int) -> None:
    # Keys longer than the 64-byte block are hashed first (RFC 2104 2).
    key = bytes(range(256))[:key_length]
    mac = Sha256Mac(key)
    for data in (b"", b"a84b4c76e66710@pc33.atlanta.com", bytes(range(256)) * 3):
        assert mac.digest(data) == hmac.digest(key, data, "sha256")


def test_sha256_mac_gives_the_same_digest_again_and_differs_by_key() -> None:
    mac = Sha256Mac(b"k" * 32)
    first = mac.digest(b"call-id")
    assert mac.digest(b"other") != first
    assert mac.digest(b"call-id") == first  # the kept states are copied, never changed
    assert Sha256Mac(b"j" * 32).digest(b"call-id") != first
