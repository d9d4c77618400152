"""Building blocks of the auth tests: real requests, and a digest client written
independently of ``centrex.auth.digest`` (straight from RFC 7616 3.4.1 with hashlib)."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable

from centrex.auth.challenge import Authenticator, Challenge
from centrex.auth.credentials import Credentials
from centrex.auth.nonce import NonceCodec, NonceCounter
from centrex.sip.fields import AuthParams
from centrex.sip.message import Request
from centrex.sip.parser import parse_message

T0 = 1_700_000_000.0
SECRET = b"0123456789abcdef-test-secret"
#: The nonce epoch of "this run" of the server in these tests.
EPOCH = b"run1"
DOMAIN = "example.com"
PHONE_IP = "192.0.2.10"
_branches = itertools.count(1)
_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def h(algorithm: str, text: str) -> str:
    return _HASHES[algorithm](text.encode()).hexdigest()


def client_response(
    algorithm: str,
    user: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    nc: str,
    cnonce: str,
) -> str:
    """What a phone computes for qop=auth (RFC 7616 3.4.1)."""
    ha1 = h(algorithm, f"{user}:{realm}:{password}")
    ha2 = h(algorithm, f"{method}:{uri}")
    return h(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")


def request(
    method: str = "REGISTER",
    *,
    ruri: str | None = None,
    from_user: str = "alice",
    from_domain: str = DOMAIN,
    to: str | None = None,
    to_tag: str | None = None,
    extra: Iterable[str] = (),
    user_agent: str = "TestPhone/1.0",
) -> Request:
    """A request as a phone sends it, parsed from bytes."""
    if ruri is None:
        ruri = f"sip:{DOMAIN}" if method == "REGISTER" else f"sip:bob@{DOMAIN}"
    if to is None:
        to = f"sip:{from_user}@{from_domain}" if method == "REGISTER" else f"sip:bob@{DOMAIN}"
    to_value = f"<{to}>" + (f";tag={to_tag}" if to_tag else "")
    lines = [
        f"{method} {ruri} SIP/2.0",
        f"Via: SIP/2.0/UDP {PHONE_IP}:5060;branch=z9hG4bK{next(_branches)};rport",
        "Max-Forwards: 70",
        f"From: <sip:{from_user}@{from_domain}>;tag=ft1",
        f"To: {to_value}",
        "Call-ID: call-1@192.0.2.10",
        f"CSeq: 1 {method}",
        f"Contact: <sip:{from_user}@{PHONE_IP}:5060>",
        *extra,
        f"User-Agent: {user_agent}",
        "Content-Length: 0",
    ]
    message = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(message, Request)
    return message


def credentials(**users: str) -> Credentials:
    store = Credentials()
    for name, password in users.items():
        store.add_password(name, DOMAIN, password)
    return store


def authenticator(
    store: Credentials | None = None,
    *,
    lifetime_s: float = 300,
    trusted: Iterable[str] = (),
    relax_from_match: bool = False,
    max_nonces: int = 1000,
) -> Authenticator:
    return Authenticator(
        lambda domain: domain if domain == DOMAIN else None,
        store if store is not None else credentials(alice="secret-a", bob="secret-b"),
        # (one run of the server: its epoch, whichever authenticator issues)
        NonceCodec(SECRET, lifetime_s, epoch=EPOCH),
        trusted=trusted,
        relax_from_match=relax_from_match,
        nonce_counter=NonceCounter(max_nonces),
    )


def challenge_params(challenge: Challenge, algorithm: str = "SHA-256") -> dict[str, str]:
    """The parameters of the challenge header offering ``algorithm``."""
    for _, value in challenge.headers:
        parsed = AuthParams.parse(value)
        if parsed.get("algorithm") == algorithm:
            return parsed.params
    raise AssertionError(f"no {algorithm} challenge in {challenge.headers}")


def answer(
    method: str,
    params: dict[str, str],
    *,
    user: str = "alice",
    password: str = "secret-a",
    algorithm: str = "SHA-256",
    nc: str = "00000001",
    cnonce: str = "0a4f113b",
    ruri: str | None = None,
    digest_uri: str | None = None,
    from_user: str | None = None,
    to: str | None = None,
    header: str | None = None,
) -> Request:
    """The request again, with credentials computed for the challenge ``params``."""
    if ruri is None:
        ruri = f"sip:{DOMAIN}" if method == "REGISTER" else f"sip:bob@{DOMAIN}"
    uri = digest_uri if digest_uri is not None else ruri
    realm, nonce = params["realm"], params["nonce"]
    value = client_response(algorithm, user, realm, password, method, uri, nonce, nc, cnonce)
    name = header or ("Authorization" if method == "REGISTER" else "Proxy-Authorization")
    creds = (
        f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
        f'response="{value}", algorithm={algorithm}, qop=auth, nc={nc}, cnonce="{cnonce}"'
    )
    return request(
        method,
        ruri=ruri,
        from_user=from_user or user,
        to=to,
        extra=[f"{name}: {creds}"],
    )
