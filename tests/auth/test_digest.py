"""Digest arithmetic against published vectors (RFC 7616 3.9.1, RFC 2069, SIP examples)."""

from __future__ import annotations

import hashlib

import pytest

from centrex.auth.digest import (
    ALGORITHMS,
    MD5,
    SHA256,
    ha1,
    is_hash,
    normalize_algorithm,
    response,
    responses_equal,
)

# RFC 7616 3.9.1: the same request answered with MD5 and with SHA-256.
MUFASA = {
    "user": "Mufasa",
    "password": "Circle of Life",
    "realm": "http-auth@example.org",
    "method": "GET",
    "uri": "/dir/index.html",
    "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
    "cnonce": "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    "nc": "00000001",
}


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        (MD5, "8ca523f5e9506fed4657c9700eebdbec"),
        (SHA256, "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_mufasa_example_gives_the_published_response(algorithm: str, expected: str) -> None:
    v = MUFASA
    a1 = ha1(algorithm, v["user"], v["realm"], v["password"])
    got = response(
        algorithm, a1, v["nonce"], v["method"], v["uri"], qop="auth", nc=v["nc"], cnonce=v["cnonce"]
    )
    assert got == expected


def test_sip_invite_example_for_bob_at_biloxi() -> None:
    # draft-smith-sipping-auth-examples: bob / zanzibar in realm biloxi.com.
    a1 = ha1(MD5, "bob", "biloxi.com", "zanzibar")
    assert a1 == "12af60467a33e8518da5c68bbff12b11"
    got = response(
        MD5,
        a1,
        "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        "INVITE",
        "sip:bob@biloxi.com",
        qop="auth",
        nc="00000001",
        cnonce="0a4f113b",
    )
    assert got == "89eb0059246c02b2f6ee02c7961d5ea3"


def test_rfc2069_form_without_qop_is_computed_as_published() -> None:
    a1 = ha1(MD5, "Mufasa", "testrealm@host.com", "CircleOfLife")
    got = response(MD5, a1, "dcd98b7102dd2f0e8b11d0f600bfb0c093", "GET", "/dir/index.html")
    assert got == "1949323746fe6a43ef61f9606e7febea"


def test_ha1_is_the_hash_of_user_realm_password() -> None:
    expected = hashlib.sha256(b"1001:example.com:pw").hexdigest()
    assert ha1(SHA256, "1001", "example.com", "pw") == expected
    assert is_hash(SHA256, expected)
    assert not is_hash(MD5, expected)


def test_qop_without_nc_and_cnonce_is_an_error() -> None:
    with pytest.raises(ValueError):
        response(MD5, "0" * 32, "n", "REGISTER", "sip:x", qop="auth")


def test_sha256_is_offered_before_md5() -> None:
    assert ALGORITHMS == (SHA256, MD5)


@pytest.mark.parametrize(
    ("written", "expected"),
    [(None, MD5), ("md5", MD5), ("MD5", MD5), ("sha-256", SHA256), ("SHA-256", SHA256)],
)
def test_algorithm_names_are_case_insensitive_and_default_to_md5(
    written: str | None, expected: str
) -> None:
    assert normalize_algorithm(written) == expected


@pytest.mark.parametrize("written", ["MD5-sess", "SHA-256-sess", "SHA-512-256", "AKAv1-MD5", ""])
def test_algorithms_not_offered_are_unsupported(written: str) -> None:
    assert normalize_algorithm(written) is None


def test_response_comparison_ignores_hex_case_and_rejects_anything_else() -> None:
    value = "8ca523f5e9506fed4657c9700eebdbec"
    assert responses_equal(value, value.upper())
    assert not responses_equal(value, value[:-1] + "d")
    assert not responses_equal(value, "")
    assert not responses_equal(value, "é" * 32)
