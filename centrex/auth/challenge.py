"""Who must authenticate, and whether they did (RFC 3261 22, RFC 7616, RFC 8760).

:class:`Authenticator` decides per request, without I/O, one of:

``Trusted``        the source is a trusted peer (gateway, trunk): no challenge.
``Exempt``         the request is not challenged; its sender is *anonymous*. ACK
                   and CANCEL cannot be challenged, for they cannot be resent
                   with credentials (RFC 3261 22.1); an in-dialog request
                   belongs to a dialog set up by an authenticated request
                   (RFC 3261 12.2) - the caller says so (``in_dialog``) only
                   when the request's Route carried the dialog token of our
                   Record-Route, or the dialog is the server's own (a
                   subscription to the registrar): a To tag alone is anyone's
                   to write, and a REGISTER with one is challenged; a request whose
                   domain is not served (a call *to* our users from elsewhere)
                   has no realm to be challenged in. Routing must never send an
                   Exempt request to a trunk or another domain.
``Authenticated``  the digest was right: ``user`` is who sent it.
``Challenge``      answer 401 (REGISTER, WWW-Authenticate, RFC 3261 22.2) or 407
                   (everything else, Proxy-Authenticate, 22.3) with one challenge
                   per algorithm, SHA-256 first (RFC 8760 2), ``qop="auth"``
                   and ``stale=true`` when only the nonce was out of date (RFC
                   7616 3.3).
``Forbidden``      403: right password, but the From user (and for REGISTER the
                   To user) is someone else (RFC 3261 10.3 step 6, 22.3). An
                   anonymous From (``anonymous.invalid``, RFC 3261 8.1.1.3,
                   RFC 3323) is not compared: the caller hides on purpose.

When routing finds that an Exempt request would leave the served domains (a
trunk, another domain), it can insist: ``check(..., realm=...)`` challenges in
that realm whatever the From says.

What a wrong guess learns: nothing. An unknown user, a disabled one, a wrong
password, a forged nonce, an algorithm the user has no hash for, malformed
credentials: all get the same status and the same challenge headers, built the
same way, after the same amount of hashing, so extensions cannot be
enumerated. ``Challenge.failed`` tells the abuse tracker a guess was made;
``Challenge.reason`` is for the event log only and never goes on the wire.

A response without ``qop`` (the RFC 2069 form) is refused: ``qop="auth"`` is
always offered, so a client must use it (RFC 7616 3.4), and ``nc`` is what makes
replays detectable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from centrex.auth.credentials import Credentials
from centrex.auth.digest import (
    ALGORITHMS,
    SHA256,
    hex_length,
    normalize_algorithm,
    response,
    responses_equal,
)
from centrex.auth.identity import IPNetwork, TrustedPeers
from centrex.auth.nonce import NonceCodec, NonceCounter, parse_nc
from centrex.sip.build import make_response
from centrex.sip.errors import ParseError
from centrex.sip.fields import AuthParams
from centrex.sip.message import Request, Response
from centrex.sip.uri import SipURI, parse_uri

#: Maps a served domain (lower-case host) to its realm; None for a domain not served.
RealmForDomain = Callable[[str], str | None]

_ANONYMOUS: Final = "anonymous.invalid"  # RFC 3261 8.1.1.3, RFC 3323
_NOT_CHALLENGED: Final = frozenset({"ACK", "CANCEL"})
_REQUIRED: Final = ("username", "realm", "nonce", "uri", "response")
# The stand-in HA1 for a user without one, so that failing costs the same work.
_NO_HA1: Final = "0" * hex_length(SHA256)


@dataclass(frozen=True, slots=True)
class Trusted:
    """The source is in a trusted network: no challenge (and its PAI is kept)."""

    network: str

    # Written out: a compiled build compiles it (the dataclass's own runs
    # interpreted, ~15x slower); object.__setattr__ as the class is frozen.
    def __init__(self, network: str) -> None:
        object.__setattr__(self, "network", network)


@dataclass(frozen=True, slots=True)
class Exempt:
    """Not challenged, for ``reason``; the sender remains anonymous."""

    reason: str

    # Written out: a compiled build compiles it (the dataclass's own runs
    # interpreted, ~15x slower); object.__setattr__ as the class is frozen.
    def __init__(self, reason: str) -> None:
        object.__setattr__(self, "reason", reason)


@dataclass(frozen=True, slots=True)
class Authenticated:
    """The digest was right: the request comes from ``user`` of ``realm``."""

    user: str
    realm: str
    algorithm: str

    # Written out: a compiled build compiles it (the dataclass's own runs
    # interpreted, ~15x slower); object.__setattr__ as the class is frozen.
    def __init__(self, user: str, realm: str, algorithm: str) -> None:
        object.__setattr__(self, "user", user)
        object.__setattr__(self, "realm", realm)
        object.__setattr__(self, "algorithm", algorithm)


@dataclass(frozen=True, slots=True)
class Challenge:
    """Answer ``status`` (401 or 407) with ``headers``: a fresh challenge.

    ``failed`` is True when credentials were presented for this realm and were
    wrong (count it against the source); ``stale`` when only the nonce was old.
    ``reason`` is for the event log, never for the wire.
    """

    status: int
    headers: list[tuple[str, str]]
    stale: bool = False
    failed: bool = False
    reason: str = "no credentials"

    # Written out: a compiled build compiles it (the dataclass's own runs
    # interpreted, ~15x slower); object.__setattr__ as the class is frozen.
    def __init__(
        self,
        status: int,
        headers: list[tuple[str, str]],
        stale: bool = False,
        failed: bool = False,
        reason: str = "no credentials",
    ) -> None:
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "headers", headers)
        object.__setattr__(self, "stale", stale)
        object.__setattr__(self, "failed", failed)
        object.__setattr__(self, "reason", reason)

    def to_response(self, request: Request, *, to_tag: str | None = None) -> Response:
        """The 401/407 response to ``request`` (RFC 3261 22.2, 22.3)."""
        return make_response(request, self.status, to_tag=to_tag, headers=list(self.headers))


@dataclass(frozen=True, slots=True)
class Forbidden:
    """Answer 403: ``user`` authenticated but may not act as the request says."""

    reason: str
    user: str
    status: int = field(default=403)

    # Written out: a compiled build compiles it (the dataclass's own runs
    # interpreted, ~15x slower); object.__setattr__ as the class is frozen.
    def __init__(self, reason: str, user: str, status: int = 403) -> None:
        object.__setattr__(self, "reason", reason)
        object.__setattr__(self, "user", user)
        object.__setattr__(self, "status", status)

    def to_response(self, request: Request, *, to_tag: str | None = None) -> Response:
        """The 403 response to ``request``; the reason phrase stays generic."""
        return make_response(request, self.status, to_tag=to_tag)


Decision = Trusted | Exempt | Authenticated | Challenge | Forbidden


@dataclass(frozen=True, slots=True)
class _Kind:
    status: int
    challenge_header: str
    credentials_header: str


_REGISTRAR: Final = _Kind(401, "WWW-Authenticate", "Authorization")
_PROXY: Final = _Kind(407, "Proxy-Authenticate", "Proxy-Authorization")


class _Failure(Exception):
    """Credentials that do not authenticate; ``reason`` for the log."""

    def __init__(self, reason: str, *, stale: bool = False, failed: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.stale = stale
        self.failed = failed


class Authenticator:
    """Digest authentication of requests (RFC 3261 22; RFC 7616; RFC 8760).

    ``realm_for_domain`` maps a domain (the Request-URI host of a REGISTER, the
    From host otherwise) to its realm, None when the domain is not served; it
    should also know the server's own addresses, which phones often use as
    their domain. ``trusted`` lists addresses or CIDR blocks that are never
    challenged. ``relax_from_match`` lets an authenticated user send any From
    (trusted devices); a REGISTER's To is the user's own whatever it says.
    """

    def __init__(
        self,
        realm_for_domain: RealmForDomain,
        credentials: Credentials,
        codec: NonceCodec,
        *,
        trusted: Iterable[str] = (),
        relax_from_match: bool = False,
        nonce_counter: NonceCounter | None = None,
        algorithms: Sequence[str] = ALGORITHMS,
    ) -> None:
        unknown = [a for a in algorithms if a not in ALGORITHMS]
        if unknown or not algorithms:
            raise ValueError(f"algorithms must be some of {list(ALGORITHMS)}, not {unknown}")
        self.algorithms = tuple(algorithms)
        self.realm_for_domain = realm_for_domain
        self.credentials = credentials
        self.codec = codec
        self.trusted = TrustedPeers(trusted)
        self.relax_from_match = relax_from_match
        self.nonce_counter = nonce_counter if nonce_counter is not None else NonceCounter()

    def trusted_network(self, source_ip: str) -> IPNetwork | None:
        """The trusted network ``source_ip`` is in, or None."""
        return self.trusted.match(source_ip)

    def is_trusted(self, source_ip: str) -> bool:
        """True for a source that is neither challenged nor stripped of its PAI."""
        return self.trusted.match(source_ip) is not None

    # -- the decision ------------------------------------------------------------

    def check(
        self,
        request: Request,
        source_ip: str,
        now: float,
        *,
        realm: str | None = None,
        in_dialog: bool = False,
        uas: bool = False,
        as_user: str | None = None,
    ) -> Decision:
        """Decide what to do with ``request`` received from ``source_ip`` at ``now``.

        ``now`` is wall-clock seconds. ``realm`` demands authentication in that
        realm when the domain would not (see the module docstring).
        ``in_dialog``: the caller verified that the request belongs to a dialog
        set up through this server (its Route carried the dialog's token, or
        the server itself is the other end); a To tag alone proves nothing,
        anyone can write one, and a REGISTER is never in a dialog. ``uas``:
        the server answers the request itself (a SUBSCRIBE to the registrar),
        so it challenges as a user agent does, 401 with WWW-Authenticate (22.2),
        as for a REGISTER, where a proxy's is 407 (22.3). ``as_user``: the
        request's From is not its sender's to choose (the callee's side of a
        dialog the server verified, whose From the caller wrote, 12.1.1): the
        credentials must be that user's instead of the From user's. A malformed
        Request-URI, From or To raises ParseError (400), as anywhere else in the
        pipeline; malformed credentials only get a new challenge.
        """
        network = self.trusted.match(source_ip)
        if network is not None:
            return Trusted(str(network))
        method = request.method
        if method in _NOT_CHALLENGED:
            return Exempt(f"{method} is never challenged")
        if in_dialog and method != "REGISTER":
            return Exempt("in-dialog request")
        kind = _REGISTRAR if method == "REGISTER" or uas else _PROXY
        if realm is None:
            uri = request.request_uri if kind is _REGISTRAR else request.from_addr.uri
            if not isinstance(uri, SipURI):
                return Exempt("not a SIP domain")
            realm = self.realm_for_domain(uri.host.lower())
            if realm is None:
                return Exempt("domain not served")
        credentials = _credentials_for(request, kind, realm)
        if credentials is None:
            return self.challenge(request, realm, now, uas=uas)
        try:
            user, algorithm = self._verify(request, credentials, realm, now)
        except _Failure as failure:
            return self.challenge(
                request,
                realm,
                now,
                uas=uas,
                stale=failure.stale,
                failed=failure.failed,
                reason=failure.reason,
            )
        if as_user is not None and method != "REGISTER":  # (a REGISTER is in no dialog)
            mismatch = (
                None
                if self._same_user(user, as_user)
                else f"the authenticated user {user} is not {as_user}, the callee of this dialog"
            )
        else:
            mismatch = self._identity_mismatch(request, user)
        if mismatch is not None:
            return Forbidden(mismatch, user)
        return Authenticated(user, realm, algorithm)

    def challenge(
        self,
        request: Request,
        realm: str,
        now: float,
        *,
        stale: bool = False,
        failed: bool = False,
        reason: str = "no credentials",
        uas: bool = False,
    ) -> Challenge:
        """A fresh challenge for ``realm``: one header per algorithm, SHA-256 first
        (RFC 8760 2), sharing one new nonce (RFC 7616 3.3); 401 for a REGISTER
        or a request the server answers itself (``uas``), 407 otherwise."""
        kind = _REGISTRAR if request.method == "REGISTER" or uas else _PROXY
        nonce = self.codec.new(now, realm)
        headers = []
        for algorithm in self.algorithms:
            params = {"realm": realm, "nonce": nonce, "algorithm": algorithm, "qop": "auth"}
            if stale:
                params["stale"] = "true"
            headers.append((kind.challenge_header, str(AuthParams.challenge("Digest", params))))
        return Challenge(kind.status, headers, stale=stale, failed=failed, reason=reason)

    # -- verification ------------------------------------------------------------

    def _verify(
        self, request: Request, credentials: AuthParams, realm: str, now: float
    ) -> tuple[str, str]:
        """(user as configured, algorithm), or _Failure saying why not."""
        params = credentials.params
        if any(not params.get(name) for name in _REQUIRED):
            raise _Failure("incomplete credentials")
        algorithm = normalize_algorithm(params.get("algorithm"))
        if algorithm is None or algorithm not in self.algorithms:
            raise _Failure("algorithm not offered")
        qop = params.get("qop")
        if qop is None:
            raise _Failure("no qop (RFC 2069 digest refused)")
        if qop.lower() != "auth":
            raise _Failure("qop not offered")
        nc_text, cnonce = params.get("nc") or "", params.get("cnonce") or ""
        nc = parse_nc(nc_text)
        if nc is None or not cnonce:
            raise _Failure("bad nc or cnonce")
        digest_uri = params["uri"]
        if not _same_uri(digest_uri, request.uri):
            raise _Failure("uri does not match the Request-URI")
        nonce = params["nonce"]
        nonce_check = self.codec.verify(nonce, now, realm)
        if nonce_check.state == "invalid":
            raise _Failure("invalid nonce")
        username = params["username"]
        record = self.credentials.find(username, realm)
        stored = record.ha1(algorithm) if record is not None else None
        expected = response(
            algorithm,
            stored if stored is not None else _NO_HA1[: hex_length(algorithm)],
            nonce,
            request.method,
            digest_uri,
            qop=qop,
            nc=nc_text,
            cnonce=cnonce,
        )
        matches = responses_equal(expected, params["response"])
        if record is None or stored is None:
            raise _Failure("unknown user" if record is None else "no hash for the algorithm")
        if not matches:
            raise _Failure("wrong password")
        # From here on the client knows the password: an old or reused nonce is
        # answered with stale=true, so it retries without asking its user.
        if nonce_check.state == "stale":
            raise _Failure("stale nonce", stale=True, failed=False)
        counted = self.nonce_counter.use(
            nonce, nonce_check.issued_at, nc, current=nonce_check.current
        )
        if counted == "replay":
            raise _Failure("nonce count reused", stale=True, failed=False)
        if counted == "forgotten":
            raise _Failure("nonce no longer tracked", stale=True, failed=False)
        return record.user, algorithm

    def _identity_mismatch(self, request: Request, user: str) -> str | None:
        """Why ``user`` may not send ``request`` as it is, or None (RFC 3261 22.3).

        A REGISTER changes the bindings of its To (10.3 steps 4-5): that must
        be the user's own AOR, whoever its From names (10.2: a third-party
        registration). Any other request's From must be the user, unless
        ``relax_from_match``.
        """
        if request.method == "REGISTER":
            checks = [("To", request.to_addr.uri)]
        elif self.relax_from_match:
            return None
        else:
            checks = [("From", request.from_addr.uri)]
        for name, uri in checks:
            if name == "From" and isinstance(uri, SipURI) and uri.host.lower() == _ANONYMOUS:
                continue
            claimed = uri.unescaped_user if isinstance(uri, SipURI) else None
            if claimed is None or not self._same_user(claimed, user):
                return f"{name} user is not the authenticated user {user}"
        return None

    def _same_user(self, a: str, b: str) -> bool:
        if self.credentials.case_sensitive:
            return a == b
        return a.lower() == b.lower()


def _credentials_for(request: Request, kind: _Kind, realm: str) -> AuthParams | None:
    """The Digest credentials of ``request`` for ``realm`` (RFC 3261 22.3: a proxy
    looks through every Proxy-Authorization for its own realm).

    A header that does not parse counts as Digest credentials for this realm
    with nothing in them, so it fails like any other wrong answer.
    """
    broken = None
    for value in request.get_all(kind.credentials_header):
        try:
            parsed = AuthParams.parse(value)
        except ParseError:
            broken = AuthParams("Digest", {"realm": realm})
            continue
        if parsed.is_digest and parsed.get("realm") == realm:
            return parsed
    return broken


def consume_credentials(request: Request, realm: str) -> int:
    """Remove the Proxy-Authorization values of ``realm`` once this proxy has
    checked them; returns how many went.

    The hops after it have no use for them, and a callee would otherwise
    collect its callers' digest responses to guess their passwords offline.
    Values of other realms stay, for the proxies they are meant for (RFC
    3261 22.3), and so does anything that does not parse.
    """
    values = request.get_all("Proxy-Authorization")
    kept = []
    for value in values:
        try:
            parsed = AuthParams.parse(value)
        except ParseError:
            kept.append(value)
            continue
        if not (parsed.is_digest and parsed.get("realm") == realm):
            kept.append(value)
    if len(kept) == len(values):
        return 0
    request.remove("Proxy-Authorization")
    for value in kept:
        request.add("Proxy-Authorization", value)
    return len(values) - len(kept)


def _same_uri(digest_uri: str, request_uri: str) -> bool:
    """The ``uri`` parameter names the Request-URI (RFC 7616 3.4.6, RFC 3261 22.4):
    identical text, or equal SIP URIs (RFC 3261 19.1.4)."""
    if digest_uri == request_uri:
        return True
    try:
        return parse_uri(digest_uri) == parse_uri(request_uri)
    except ParseError:
        return False


__all__ = [
    "Authenticated",
    "Authenticator",
    "Challenge",
    "Decision",
    "Exempt",
    "Forbidden",
    "RealmForDomain",
    "Trusted",
    "consume_credentials",
]
