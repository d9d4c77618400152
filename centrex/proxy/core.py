"""The stateful proxy: the transaction user that routes requests (RFC 3261 section 16).

``Proxy`` gets the transaction layer's events from the server and answers them
with transaction-layer calls: it never touches a socket. For each new request:

1. 16.3 validation: Max-Forwards (483), loop detection (482), Proxy-Require (420);
2. 16.4 route information: a strict router's Request-URI is restored, our own
   Route values are removed;
3. requests for the server itself: REGISTER goes to the registrar, OPTIONS is
   answered with the capabilities (11.2);
4. 16.5 targets: a Route left names the next hop (loose routing); a
   Request-URI in a served domain is looked up in the location service (404
   for a user in no directory and not registered, 480 for a directory user
   with no registration); a foreign domain is relayed only when allowed (403);
5. 16.6 forwarding, with a ``ResponseContext`` deciding the fork and the best
   response (16.7), CANCEL (16.10) and Timer C (16.8).

A 2xx ACK and responses that match no transaction are forwarded statelessly.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from centrex.auth.challenge import (
    Authenticated,
    Challenge,
    Forbidden,
    Trusted,
    consume_credentials,
)
from centrex.auth.gate import AuthGate
from centrex.auth.identity import assert_identity, strip_untrusted_identity
from centrex.proxy.checks import (
    SUPPORTED,
    Sha256Mac,
    branch_prefix,
    is_loop,
    unsupported_proxy_require,
)
from centrex.proxy.context import (
    DEFAULT_MAX_BREADTH,
    Action,
    Branch,
    Cancel,
    Final,
    Forward,
    ResponseContext,
    Start,
)
from centrex.proxy.local import LocalIdentity
from centrex.proxy.owner import Flow, OwnerRouting
from centrex.registrar.aor import aor_of, aor_user
from centrex.registrar.binding import Binding, lookup_order
from centrex.sip.address import parse_address_list
from centrex.sip.build import make_response
from centrex.sip.errors import ParseError
from centrex.sip.ids import token_hex
from centrex.sip.message import Request, Response, encode_text
from centrex.sip.uri import URI, SipURI
from centrex.transaction.layer import TransactionLayer
from centrex.transaction.transaction import ClientTransaction, ServerTransaction, Transaction
from centrex.transport.address import LocalSocket, Peer

logger = logging.getLogger(__name__)

_METHODS = "INVITE ACK CANCEL BYE OPTIONS REGISTER SUBSCRIBE NOTIFY REFER MESSAGE INFO UPDATE PRACK"
ALLOW = ", ".join(_METHODS.split())
_METHOD_SET = frozenset(_METHODS.split())
#: What ``_authenticate`` returns once it has answered the request itself.
_REFUSED = "\x00refused"
#: The Record-Route URI parameter carrying the dialog token (see _dialog_token).
_TOKEN_PARAM = "cxd"
#: The hex digits of a dialog token's parts (``_dialog_token``): the dialog's,
#: then the caller's side's and the callee's side's; then, after ``-``, the
#: user the callee's side must prove to be, when there is one.
_DIALOG_MAC = 16
_SIDE_MAC = 8
#: What a dialog token proves (``_dialog_standing``): nothing; the request is
#: in a dialog we record-routed (it follows its route set wherever it leads);
#: and besides, it comes from where that side of the dialog was reached, so
#: its sender may go unchallenged.
_NO_DIALOG = 0
_OUR_DIALOG = 1
_UNCHALLENGED = 2
ACCEPT = "application/sdp"
#: The Reason of a CANCEL sent because another branch answered (RFC 3326 example).
COMPLETED_ELSEWHERE = 'SIP;cause=200;text="Call completed elsewhere"'
#: Methods whose initial request may create a dialog the proxy stays in (16.6 step 4).
DIALOG_METHODS = frozenset({"INVITE", "SUBSCRIBE", "REFER", "NOTIFY"})


@dataclass(frozen=True, slots=True)
class Inbound:
    """Where a request came from and the socket it arrived on."""

    peer: Peer
    local: LocalSocket

    # Written out: a compiled build compiles it (the dataclass's own runs
    # interpreted, ~15x slower); object.__setattr__ as the class is frozen.
    def __init__(self, peer: Peer, local: LocalSocket) -> None:
        object.__setattr__(self, "peer", peer)
        object.__setattr__(self, "local", local)


class Registrar(Protocol):
    async def handle(
        self, request: Request, inbound: Inbound, now: float, *, identity: str | None = None
    ) -> Response: ...

    async def lookup(self, aor: str, now: float) -> list[Binding]: ...


class Presence(Protocol):
    def is_for_registrar(self, request: Request) -> bool: ...

    def allow_events(self) -> list[str]: ...

    def is_registrar_uri(self, uri: SipURI) -> bool: ...

    async def answer_subscribe(
        self,
        tx: ServerTransaction,
        request: Request,
        inbound_peer: Peer,
        *,
        registered: Callable[[str], Awaitable[bool]],
        identity: str | None = None,
        local: str = "",
    ) -> Response: ...


class Directory(Protocol):
    def find(self, name: str, *, include_disabled: bool = False) -> object | None: ...


@dataclass
class ProxyConfig:
    record_route: bool = True
    allow_relay: bool = False
    case_sensitive: bool = False
    #: Domains sharing one set of users (``registrar.related_domains``).
    related_domains: tuple[str, ...] = ()


@dataclass(eq=False)
class _Call:
    """One proxied request: its server transaction and response context."""

    server_tx: ServerTransaction
    request: Request
    inbound: Inbound
    context: ResponseContext[_Target]
    prefix: str
    to_tag: str
    #: The Reason values of the caller's CANCEL, copied into ours (RFC 3326 2).
    reasons: list[str]
    #: The address-of-record of ours the request was routed to, if any.
    callee: str | None

    # Written out: a compiled build compiles it (the dataclass's own runs
    # interpreted, ~15x slower). The To tag of a response made here.
    def __init__(
        self,
        server_tx: ServerTransaction,
        request: Request,
        inbound: Inbound,
        context: ResponseContext[_Target],
        prefix: str,
        callee: str | None = None,
    ) -> None:
        self.server_tx = server_tx
        self.request = request
        self.inbound = inbound
        self.context = context
        self.prefix = prefix
        self.to_tag = token_hex(6)
        self.reasons = []
        self.callee = callee


@dataclass(frozen=True, slots=True)
class _Target:
    """Where one branch goes: the Request-URI to write and the next hop."""

    uri: str
    hop: Peer
    path: tuple[str, ...] = ()

    # Written out: a compiled build compiles it (the dataclass's own runs
    # interpreted, ~15x slower); object.__setattr__ as the class is frozen.
    def __init__(self, uri: str, hop: Peer, path: tuple[str, ...] = ()) -> None:
        object.__setattr__(self, "uri", uri)
        object.__setattr__(self, "hop", hop)
        object.__setattr__(self, "path", path)


class Proxy:
    """The routing logic of Centrex (RFC 3261 16)."""

    def __init__(
        self,
        *,
        transactions: TransactionLayer,
        local: LocalIdentity,
        registrar: Registrar,
        directory: Directory,
        config: ProxyConfig,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        flush: Callable[[], None],
        send_stateless: Callable[[Request | Response, Peer | None, Inbound | None], None],
        resolve: Callable[[SipURI], Awaitable[Peer | None]],
        secret: bytes,
        auth: AuthGate | None = None,
        presence: Presence | None = None,
        owners: OwnerRouting | None = None,
        branch_tag: str = "",
    ) -> None:
        self._token_mac = Sha256Mac(secret)
        self.owners = owners
        self.auth = auth
        self.presence = presence
        self.transactions = transactions
        self.local = local
        self.registrar = registrar
        self.directory = directory
        self.config = config
        self._related = frozenset(config.related_domains)
        self._clock = clock
        self._wall = wall_clock
        self._flush = flush
        self._send_stateless = send_stateless
        self._resolve = resolve
        self._calls: dict[ServerTransaction, _Call] = {}
        self._branches: dict[ClientTransaction, tuple[_Call, Branch[_Target]]] = {}
        # INVITEs cancelled while being routed, with the To tag of the 200 to the CANCEL.
        self._pending_cancel: dict[ServerTransaction, str] = {}
        self._counter = 0
        # Ends every branch made here: the worker that holds its transaction
        # (``centrex.workers.frames.branch_tag``; empty with one process).
        self._branch_tag = branch_tag

    # -- events from the transaction layer --------------------------------------------

    async def on_request(
        self, tx: ServerTransaction | None, request: Request, inbound: Inbound
    ) -> None:
        """A new request, or an ACK of a 2xx (with or without a transaction:
        RFC 6026's Accepted state hands it over too), which goes end to end."""
        try:
            if request.method == "ACK":
                await self._forward_ack(request)
            elif tx is not None:
                await self._route(tx, request, inbound)
        except ParseError as exc:
            if tx is not None and request.method != "ACK":
                self._reply(tx, request, exc.status or 400, exc.reason)
        except Exception:
            logger.exception("failed to route %r", request)
            if tx is not None and request.method != "ACK":
                self._reply(tx, request, 500)
        finally:
            self._flush()

    def on_response(self, tx: ClientTransaction | None, response: Response) -> None:
        """A response from downstream (16.7), or one matching no transaction."""
        if tx is None:
            self._forward_stray_response(response)
            self._flush()
            return
        if tx.cancels is not None:
            return  # the answer to our own CANCEL: nothing to pass on (16.10)
        found = self._branches.get(tx)
        if found is None:
            return
        call, branch = found
        response = response.copy()
        response.pop_via()  # 16.7 step 3: our own Via
        if "via" not in response:
            return
        try:
            _ = response.top_via  # where it goes back to, read before it is acted on
        except ParseError as exc:
            # Malformed: discarded (18.1.2); the caller gets no answer from it.
            logger.debug("dropped a %d with a bad next Via: %s", response.status, exc.reason)
            return
        if response.status < 200:
            actions = call.context.provisional(branch, response)
        else:
            actions = call.context.final(branch, response)
        self._apply(call, actions)
        self._flush()

    def on_timeout(self, tx: Transaction) -> None:
        """Timer B/F: the branch ends without an answer (408, 16.7 step 2)."""
        if isinstance(tx, ClientTransaction) and tx.cancels is None:
            found = self._branches.get(tx)
            if found is not None:
                call, branch = found
                self._apply(call, call.context.timeout(branch))
        self._flush()

    def on_transport_error(self, tx: Transaction) -> None:
        """The branch could not be sent: as if it answered 503 (16.9)."""
        if isinstance(tx, ClientTransaction) and tx.cancels is None:
            found = self._branches.get(tx)
            if found is not None:
                call, branch = found
                # With the tag of our answers: should it be the best response,
                # the caller gets a final response that has one (8.2.6.2).
                unavailable = make_response(
                    tx.request, 503, "Next Hop Unreachable", to_tag=call.to_tag
                )
                unavailable.pop_via()
                self._apply(call, call.context.final(branch, unavailable))
        self._flush()

    def on_timer_c(self, tx: ClientTransaction) -> None:
        """Timer C: the callee rang too long (16.8)."""
        found = self._branches.get(tx)
        if found is not None:
            call, branch = found
            self._apply(call, call.context.ringing_timeout(branch))
        self._flush()

    def on_terminated(self, tx: Transaction) -> None:
        if isinstance(tx, ClientTransaction):
            self._branches.pop(tx, None)
        elif isinstance(tx, ServerTransaction):
            self._calls.pop(tx, None)
            self._pending_cancel.pop(tx, None)

    def forwards(self, tx: ServerTransaction) -> bool:
        """True while ``tx`` is a request this proxy forwards (not one it answered)."""
        return tx in self._calls

    @property
    def active_calls(self) -> int:
        return len(self._calls)

    # -- routing (16.3 - 16.5) -----------------------------------------------------------

    def _myself(self, host: str, port: int | None) -> bool:
        return self.local.is_local_host(host) and (
            port is None or port in {p for _, _, p in self.local.listening}
        )

    async def _route(self, tx: ServerTransaction, request: Request, inbound: Inbound) -> None:
        method = request.method
        if method == "CANCEL":
            self._cancel(tx, request)
            return
        ruri = request.request_uri
        to_server = isinstance(ruri, SipURI) and ruri.user is None and self.local.is_myself(ruri)
        # 16.3 step 3: a proxy forwards nothing at zero. Where the server is
        # the endpoint it answers as one would (RFC 4475, "zeromf"):
        # OPTIONS to the server itself, a REGISTER to its registrar.
        if request.max_forwards == 0 and not (
            (to_server and method == "OPTIONS") or self._registers_here(request)
        ):
            self._reply(tx, request, 483)
            return
        # The loop hash (16.6 step 8) of the request as it came, before 16.4
        # takes our Route values off (or undoes a strict router's rewrite);
        # a request with no Route is not changed by 16.4, so its hash waits
        # until it is needed (a Via of ours, a branch), if ever.
        prefix = branch_prefix(request) if "route" in request else None
        if is_loop(request, self._myself, prefix):
            self._reply(tx, request, 482)
            return
        unsupported = unsupported_proxy_require(request)
        if unsupported:
            self._reply(tx, request, 420, headers=[("Unsupported", ", ".join(unsupported))])
            return
        flow = self._flow(request) if self.owners is not None and "route" in request else None
        route_token = self._preprocess_routes(request)
        if flow is not None:
            # Another instance of ours asks for a flow we hold: it authenticated
            # the caller. Its P-Asserted-Identity is kept only from a trusted source.
            if self.auth is not None and not self.auth.is_trusted(inbound.peer.host):
                strip_untrusted_identity(request)
            await self._proxy_to_flow(tx, request, inbound, flow, prefix)
            return
        ruri = request.request_uri
        routes = request.get_all("route")
        if not routes and not isinstance(ruri, SipURI):
            # 16.3 step 2: a scheme we do not route on, with no Route to take
            # it elsewhere (answered before the relay policy, 16.5 comes later).
            self._reply(tx, request, 416)
            return
        # A request in a dialog we record-routed (our Route carried this
        # dialog's token) follows its route set wherever it leads; anything
        # else going to a foreign host needs the relay policy.
        standing, as_user = (
            (_NO_DIALOG, None)
            if request.to_tag is None
            else self._dialog_standing(route_token, request, _where(inbound.peer))
        )
        in_our_dialog = standing != _NO_DIALOG

        domain: str | None = None
        # A domain of registrar.related_domains this instance does not serve:
        # its users are ours all the same (registered through another instance).
        related: str | None = None
        ours = False
        if not routes and isinstance(ruri, SipURI):
            domain = self.local.canonical_domain(ruri.host, ruri.port)
            ours = domain is not None or self.local.is_myself(ruri)
            if domain is None and ruri.user is not None and method != "REGISTER":
                related = self.local.related_domain(ruri.host)
            if ruri.user is None and ours and method != "REGISTER":
                # OPTIONS pings and the like for the server itself: no challenge.
                self._answer_server_request(tx, request)
                return
            if (
                method == "OPTIONS"
                and domain is not None
                and self.presence is not None
                and self.presence.is_registrar_uri(ruri)
            ):
                # The registrar's own URI (the presence events' notifier) is
                # the server too: its capabilities, not a 404 for no phone.
                self._answer_server_request(tx, request)
                return
        # A SUBSCRIBE the registrar answers itself: the server is its user
        # agent, and challenges it as one (401, RFC 3261 22.1).
        to_registrar = (
            not routes
            and domain is not None
            and self.presence is not None
            and self.presence.is_for_registrar(request)
        )
        # Requests in a dialog go unchallenged only when the dialog is
        # verified: ours by the token (and going, as a dialog's requests do,
        # to the other side's Contact, not to a served user's AOR: a token of
        # one's own call must not carry a request to a third party), or the
        # registrar's own subscription (its table answers 481 to a dialog it
        # does not hold). A request of one of our dialogs from elsewhere than
        # its side of the dialog was reached at answers a challenge; from the
        # side of a callee called with another user of ours in the To (a
        # forwarded call), always, as the user it was routed to.
        to_user = (
            (domain is not None or related is not None)
            and isinstance(ruri, SipURI)
            and ruri.user is not None
        )
        in_dialog = (standing == _UNCHALLENGED and not to_user) or (
            to_registrar and request.to_tag is not None
        )
        identity = self._authenticate(
            tx,
            request,
            inbound,
            in_dialog,
            uas=to_registrar,
            as_user=None if to_user else as_user,
        )
        if identity is _REFUSED:
            return
        if not routes and isinstance(ruri, SipURI):
            if method == "REGISTER" and ours:
                response = await self.registrar.handle(
                    request, inbound, self._wall(), identity=identity
                )
                self._respond(tx, response)
                return
            if to_registrar and self.presence is not None:
                # 8.2.2.3: the server is the user agent here, and its
                # subscriptions support no extension a Require can name.
                if self._refused_require(tx, request, ()):
                    return
                await self.presence.answer_subscribe(
                    tx,
                    request,
                    inbound.peer,
                    registered=self._has_bindings,
                    identity=identity,
                    local=str(inbound.local),
                )
                return
            if (
                request.to_tag is not None
                and domain is not None
                and self.presence is not None
                and self.presence.is_registrar_uri(ruri)
            ):
                # In a dialog with the registrar itself, which holds none but
                # its subscriptions (RFC 3261 12.2.2).
                self._reply(tx, request, 481)
                return
            if domain is not None and ruri.user is not None:
                await self._proxy_to_user(tx, request, inbound, ruri, domain, prefix)
                return
            if related is not None:
                await self._proxy_to_user(tx, request, inbound, ruri, related, prefix)
                return
        if not in_our_dialog and not self.config.allow_relay:
            self._reply(tx, request, 403, "Relaying Not Allowed")
            return
        await self._proxy_to_uri(tx, request, inbound, prefix)

    def _authenticate(
        self,
        tx: ServerTransaction,
        request: Request,
        inbound: Inbound,
        in_dialog: bool,
        *,
        uas: bool = False,
        as_user: str | None = None,
    ) -> str | None:
        """Digest authentication (RFC 3261 22) of a request from one of our users.

        Answers the challenge or the 403 itself and returns ``_REFUSED``;
        otherwise returns the authenticated user (None when not authenticated:
        a trusted peer, a request that is never challenged, or auth off). A
        P-Asserted-Identity from an untrusted source is removed, and an
        authenticated caller's identity is asserted (RFC 3325). ``as_user``:
        the credentials of that user are the ones asked for, whatever the From.
        """
        gate = self.auth
        if gate is None:
            return None
        source = inbound.peer.host
        decision = gate.check(
            request, source, self._wall(), in_dialog=in_dialog, uas=uas, as_user=as_user
        )
        if isinstance(decision, Challenge | Forbidden):
            self._respond(tx, decision.to_response(request, to_tag=token_hex(6)))
            return _REFUSED
        if not isinstance(decision, Trusted) and not gate.is_trusted(source):
            strip_untrusted_identity(request)
        if not isinstance(decision, Authenticated):
            return None
        if request.method != "REGISTER":
            consume_credentials(request, decision.realm)
            from_uri = request.from_addr.uri
            host = from_uri.host if isinstance(from_uri, SipURI) else ""
            domain = self.local.canonical_domain(host) or host
            assert_identity(request, decision.user, domain)
        return decision.user

    async def _has_bindings(self, aor: str) -> bool:
        return bool(await self.registrar.lookup(aor, self._wall()))

    def _dialog_token(self, request: Request, caller: str, callee: str, user: str) -> str:
        """What our Record-Route carries to prove a later Route came from it,
        three HMACs of the dialog as the request that sets it up names it
        (its Call-ID, From tag, From and To URIs): of the dialog (and
        ``user``), so nobody can mint a Route that makes us relay, nor reuse
        the token of a call of their own in a request between other parties;
        and of it with the address each side is reached at (``caller``: where
        the request came from; ``callee``: the branch's next hop; ``_where``),
        so that either end, which both see the token, cannot speak for the
        other unchallenged, nor can another phone behind the same NAT
        address. ``user`` (``_callee_user``): the user of ours the callee's
        side must prove to be, when its From (this request's To) names
        another; it follows the HMACs in hex."""
        dialog = self._dialog_text(request)
        token = (
            self._dialog_mac(dialog, user)
            + self._side_mac(dialog, "caller", caller)
            + self._side_mac(dialog, "callee", callee)
        )
        return f"{token}-{encode_text(user).hex()}" if user else token

    def _dialog_mac(self, dialog: str, user: str) -> str:
        """The part of a dialog token that proves the dialog (and ``user``)."""
        bound = f"{dialog}\nuser\n{user}" if user else dialog
        return self._token_mac.digest(encode_text(bound)).hex()[:_DIALOG_MAC]

    def _side_mac(self, dialog: str, side: str, where: str) -> str:
        """The part of a dialog token that binds ``side`` to ``where``."""
        text = f"{dialog}\n{side}\n{where}"
        return self._token_mac.digest(encode_text(text)).hex()[:_SIDE_MAC]

    def _callee_user(self, request: Request, callee: str | None) -> str:
        """The user the callee's side of the dialog ``request`` sets up must
        prove to be, or "" for none: it sends From this request's To (RFC
        3261 12.1.1), which the caller wrote; when that To names a user of
        ours other than the one the request was routed to (``callee``, an
        address-of-record), that other user's name, or anyone could call
        themselves "To" someone and speak as them."""
        to_uri = request.to_addr.uri
        if callee is None or not isinstance(to_uri, SipURI) or to_uri.user is None:
            return ""
        domain = self.local.canonical_domain(to_uri.host) or self.local.related_domain(to_uri.host)
        if domain is None:
            return ""
        wanted = aor_user(callee) or ""
        # (users compared, not AORs: the same user in a related domain is him)
        return "" if aor_user(_aor_in(to_uri, domain, self.config)) == wanted else wanted

    @staticmethod
    def _dialog_text(request: Request, *, reverse: bool = False) -> str:
        """The dialog as its first request named it; ``reverse``: ``request``
        goes the other way (from the callee: its To is the caller's From,
        with the caller's tag)."""
        first, second = request.from_addr, request.to_addr
        tag = request.from_tag
        if reverse:
            first, second, tag = second, first, request.to_tag
        return "\n".join((request.call_id, tag or "", _uri_key(first.uri), _uri_key(second.uri)))

    def _registers_here(self, request: Request) -> bool:
        """A REGISTER for this server's registrar (a served domain, or one of
        our addresses, and no Route but ours, an outbound proxy's, to take it
        elsewhere)."""
        if request.method != "REGISTER":
            return False
        if "route" in request and not all(
            self.local.is_myself(route.uri) for route in request.addresses("route")
        ):
            return False
        uri = request.request_uri
        return isinstance(uri, SipURI) and (
            self.local.canonical_domain(uri.host, uri.port) is not None or self.local.is_myself(uri)
        )

    def _dialog_standing(
        self, token: str | None, request: Request, source: str
    ) -> tuple[int, str | None]:
        """What ``token``, read off a Route that names us, proves of
        ``request`` received from ``source`` (``_where``; "" for none):
        ``_NO_DIALOG`` unless it is the one our Record-Route gave its dialog;
        ``_UNCHALLENGED`` when it comes from the address its side of the
        dialog was reached at; else ``_OUR_DIALOG``, with the user it must
        prove to be when the token names one for the callee's side. Compared
        in constant time, so how long the answer takes tells nothing about
        how close a guess was."""
        if token is None:
            return _NO_DIALOG, None
        macs, _, named = token.partition("-")
        # (A token of the dialog alone was all a Record-Route of the previous
        # version carried: its dialogs still follow their route sets.)
        if len(macs) not in (_DIALOG_MAC, _DIALOG_MAC + 2 * _SIDE_MAC):
            return _NO_DIALOG, None
        try:
            user = bytes.fromhex(named).decode("utf-8") if named else ""
        except ValueError:
            return _NO_DIALOG, None
        given = encode_text(macs)
        for side, reverse in (("caller", False), ("callee", True)):
            dialog = self._dialog_text(request, reverse=reverse)
            ours = self._dialog_mac(dialog, user).encode("ascii")
            if not hmac.compare_digest(given[:_DIALOG_MAC], ours):
                continue
            if reverse and user:
                return _OUR_DIALOG, user
            if len(given) == _DIALOG_MAC or not source:
                return _OUR_DIALOG, None
            at = _DIALOG_MAC if side == "caller" else _DIALOG_MAC + _SIDE_MAC
            where = self._side_mac(dialog, side, source).encode("ascii")
            if hmac.compare_digest(given[at : at + _SIDE_MAC], where):
                return _UNCHALLENGED, None
            return _OUR_DIALOG, None
        return _NO_DIALOG, None

    def _preprocess_routes(self, request: Request) -> str | None:
        """16.4: undo a strict router's rewrite; remove the Route values that name us.

        Returns the dialog token of the last Route of ours removed (None when
        none was, or it carried none). The Route list is read once and written
        once, so a request full of our own Routes costs one pass.
        """
        token: str | None = None
        ruri = request.request_uri
        if (
            isinstance(ruri, SipURI)
            and (ruri.lr or ruri.param(_TOKEN_PARAM) is not None)
            and ruri.user is None
            and self.local.is_myself(ruri)
            and "route" in request
        ):
            # A strict router put our Record-Route URI in the Request-URI: the
            # real target is the last Route value.
            token = ruri.param(_TOKEN_PARAM)
            routes = request.addresses("route")
            request.set_uri(str(routes[-1].uri))
            request.remove("route")
            for address in routes[:-1]:
                request.add("Route", str(address))
        values = request.get_all("route")
        if not values:
            return token
        addresses = request.addresses("route")
        ours = 0
        for address in addresses:
            if not self.local.is_myself(address.uri):
                break
            uri = address.uri
            if isinstance(uri, SipURI):
                token = uri.param(_TOKEN_PARAM) or token
            ours += 1
        if ours:
            request.remove("route")
            for value in values[ours:]:
                request.add("Route", value)
        return token

    def _refused_require(
        self, tx: ServerTransaction, request: Request, supported: tuple[str, ...]
    ) -> bool:
        """8.2.2.3: as a UAS, answer 420 with Unsupported when the Require
        names an option tag not in ``supported``; True when answered."""
        # (get_all splits a list header such as Require into its items)
        unsupported = [t for t in request.get_all("require") if t and t.lower() not in supported]
        if not unsupported:
            return False
        self._reply(tx, request, 420, headers=[("Unsupported", ", ".join(unsupported))])
        return True

    def _answer_server_request(self, tx: ServerTransaction, request: Request) -> None:
        """A request addressed to the server itself (no user part)."""
        if self._refused_require(tx, request, SUPPORTED):
            return
        if request.method not in _METHOD_SET:
            self._reply(tx, request, 501, headers=[("Allow", "OPTIONS, REGISTER")])
            return
        if request.method == "OPTIONS":
            headers = [
                ("Allow", ALLOW),
                ("Accept", ACCEPT),
                # 11.2: SHOULD be present (20.2: "identity", no encoding).
                ("Accept-Encoding", "identity"),
                ("Accept-Language", "en"),
                ("Supported", ", ".join(SUPPORTED)),
            ]
            events = self.presence.allow_events() if self.presence is not None else []
            if events:
                # RFC 6665 4.4.4: the event packages the server answers itself.
                headers.append(("Allow-Events", ", ".join(events)))
            self._reply(tx, request, 200, headers=headers)
        else:
            self._reply(tx, request, 405, headers=[("Allow", "OPTIONS, REGISTER")])

    async def _proxy_to_user(
        self,
        tx: ServerTransaction,
        request: Request,
        inbound: Inbound,
        ruri: SipURI,
        domain: str,
        prefix: str | None,
    ) -> None:
        """16.5: the Request-URI is in a served domain: its registered contacts."""
        aor = _aor_in(ruri, domain, self.config)
        user = ruri.unescaped_user or ""
        if self.directory.find(user, include_disabled=True) is not None and (
            self.directory.find(user) is None
        ):
            self._reply(tx, request, 404)  # a disabled user is no one (directory.py)
            return
        bindings = await self._bindings_of(aor, domain)
        if not bindings:
            self._reply(tx, request, 480 if self.directory.find(user) is not None else 404)
            return
        if ruri.secure:
            # RFC 5630: a SIPS Request-URI is reached over TLS to the last
            # hop, so only the phones registered over TLS are targets.
            bindings = [b for b in bindings if b.source.transport == "tls"]
            if not bindings:
                warning = f'380 {domain} "SIPS Not Allowed"'
                self._reply(tx, request, 480, headers=[("Warning", warning)])
                return
        targets = await self._targets(bindings, request)
        if not targets:
            self._reply(tx, request, 480)  # every instance holding its flows is down
            return
        self._start(tx, request, inbound, targets, prefix, aor)

    async def _bindings_of(self, aor: str, domain: str) -> list[Binding]:
        """The bindings of ``aor`` (in served ``domain``), with those of the same
        user in the related domains (``registrar.related_domains``)."""
        bindings = await self.registrar.lookup(aor, self._wall())
        related = self._related
        if domain in related:
            user_part = aor[: aor.rfind("@") + 1]
            for other in related:
                if other != domain:
                    bindings += await self.registrar.lookup(user_part + other, self._wall())
            bindings = lookup_order(bindings)
        return bindings

    async def _targets(
        self, bindings: list[Binding], request: Request
    ) -> list[tuple[_Target, float | None]]:
        """Where each of ``bindings`` is reached, with its q (those whose
        instance is down left out)."""
        targets = []
        for binding in bindings:
            target = await self._target(binding, request)
            if target is not None:
                targets.append((target, binding.q))
        return targets

    async def _target(self, binding: Binding, request: Request) -> _Target | None:
        """Where ``binding`` is reached: directly, or through the instance of
        ours that holds its flow (None when that instance is down)."""
        owners = self.owners
        if owners is None or not owners.held_elsewhere(binding):
            return await self._reached(binding)
        owner = owners.owner_route(binding, request)
        if owner is None:
            return None
        hop = await self._resolve(owner[0])
        return None if hop is None else _Target(_request_uri(binding.contact), hop, (owner[1],))

    def _flow(self, request: Request) -> Flow | None:
        """The flow a signed token in our top Route names (see owner.py)."""
        assert self.owners is not None
        top = request.addresses("route")[0].uri
        if not isinstance(top, SipURI) or not self.local.is_myself(top):
            return None
        return self.owners.verify(top, request)

    async def _proxy_to_flow(
        self,
        tx: ServerTransaction,
        request: Request,
        inbound: Inbound,
        flow: Flow,
        prefix: str | None,
    ) -> None:
        """Forward over the flow of binding ``flow``, which this instance holds."""
        target = await self._flow_target(flow)
        if target is None:
            self._reply(tx, request, 480)
            return
        self._start(tx, request, inbound, [(target, None)], prefix, flow.aor)

    async def _flow_target(self, flow: Flow) -> _Target | None:
        """Where the binding of ``flow`` is reached, if this instance holds it."""
        assert self.owners is not None
        for binding in await self.registrar.lookup(flow.aor, self._wall()):
            if binding.id == flow.binding_id and not self.owners.held_elsewhere(binding):
                return await self._reached(binding)
        return None

    async def _reached(self, binding: Binding) -> _Target | None:
        """Where this instance reaches ``binding`` (``_binding_target``). When
        it registered through a Path whose first hop is another host than
        the one its REGISTER came from, that hop (RFC 3327 5.3: the Path is
        the Route set), if that REGISTER came from a trusted address (an
        edge proxy of ours, ``[auth] trusted``): anyone else could point a
        Path at any host and have the proxy send its users' calls there."""
        target = _binding_target(binding)
        if not binding.path or self.auth is None or not self.auth.is_trusted(target.hop.host):
            return target
        try:
            first = parse_address_list(binding.path[0])[0].uri
        except (ParseError, IndexError):
            return target
        if not isinstance(first, SipURI) or _host_key(first.host) == _host_key(target.hop.host):
            return target  # (the first hop sent the REGISTER: over its flow)
        hop = await self._resolve(first)
        return target if hop is None else _Target(target.uri, hop, target.path)

    async def _proxy_to_uri(
        self, tx: ServerTransaction, request: Request, inbound: Inbound, prefix: str | None
    ) -> None:
        """Forward to the top Route, or to the Request-URI itself (16.5, 16.6 steps 6-7)."""
        routes = request.addresses("route")
        uri = routes[0].uri if routes else request.request_uri
        if not isinstance(uri, SipURI):
            self._reply(tx, request, 416)
            return
        if routes and not uri.lr:
            # 16.6 step 6: the next hop is a strict router: it wants its own
            # URI as the Request-URI and ours at the end of the Route set.
            rest = request.get_all("route")[1:]
            request.remove("route")
            for value in [*rest, f"<{request.uri}>"]:
                request.add("Route", value)
            request.set_uri(str(uri))
        hop = await self._resolve(uri)
        if hop is None:
            self._reply(tx, request, 503, "Next Hop Unresolvable")
            return
        self._start(tx, request, inbound, [(_Target(request.uri, hop), None)], prefix)

    # -- forwarding (16.6) -----------------------------------------------------------------

    def _start(
        self,
        tx: ServerTransaction,
        request: Request,
        inbound: Inbound,
        targets: list[tuple[_Target, float | None]],
        prefix: str | None,
        callee: str | None = None,
    ) -> None:
        """Forward ``request`` to ``targets``; ``callee``: the address-of-record
        of ours they are the phones of (for the dialog token)."""
        cancelled = self._pending_cancel.get(tx)
        if cancelled is not None:
            # Cancelled while its targets were being looked up: fork nothing
            # (the 487 with the tag of the 200 to the CANCEL, 9.2).
            self._respond(tx, make_response(request, 487, to_tag=cancelled))
            return
        breadth = _max_breadth(request)
        if breadth == 0:
            # RFC 5393 5.3.3.1: every request forwarded carries at least 1.
            self._reply(tx, request, 440, "Max-Breadth Exceeded")
            return
        context = ResponseContext.fork(targets, breadth)
        call = _Call(tx, request, inbound, context, prefix or branch_prefix(request), callee)
        self._calls[tx] = call
        self._apply(call, context.start())

    def _apply(self, call: _Call, actions: list[Action[_Target]]) -> None:
        for action in actions:
            if isinstance(action, Start):
                for branch in action.branches:
                    self._send_branch(call, branch)
            elif isinstance(action, Forward):
                self._send_upstream(call, action.response)
            elif isinstance(action, Cancel):
                self._cancel_branch(call, action.branch)
            elif isinstance(action, Final):
                self._send_final(call, action)

    def _send_branch(self, call: _Call, branch: Branch[_Target]) -> None:
        request = call.request
        target = branch.target
        forward = request.copy()
        _aim(forward, target)
        forward.decrement_max_forwards()
        # Its share of the request's Max-Breadth (RFC 5393 5.3.3.1).
        if "max-breadth" in forward:
            forward.remove("max-breadth")
        forward.add("Max-Breadth", str(branch.breadth))
        hop = target.hop
        if self.config.record_route and request.method in DIALOG_METHODS and request.to_tag is None:
            for value in self._record_routes(request, call, hop):
                forward.add_record_route(value)
        self._counter += 1
        forward.push_via(self._via(hop, f"{call.prefix}.{self._counter:x}{self._branch_tag}"))
        try:
            client = self.transactions.start_client(
                forward,
                self._clock(),
                reliable=hop.reliable,
                peer=hop,
                timer_c=request.method == "INVITE",
            )
        except ValueError as exc:
            logger.warning("cannot start branch to %s: %s", hop, exc)
            self._apply(call, call.context.timeout(branch))
            return
        branch.transaction = client
        self._branches[client] = (call, branch)

    def _via(self, hop: Peer, branch: str) -> str:
        """Our Via value toward ``hop`` (16.6 step 8)."""
        return f"SIP/2.0/{hop.transport.upper()} {self._sent_by(hop)};branch={branch};rport"

    def _sent_by(self, hop: Peer) -> str:
        found = self.local.socket_for(hop.transport, hop.host)
        if found is None:
            return "127.0.0.1"
        host, port = found
        return f"{self.local.address_toward(host, hop.host)}:{port}"

    def _record_routes(self, request: Request, call: _Call, hop: Peer) -> list[str]:
        """Our Record-Route values, bottom first: the side facing the caller, then,
        when the callee is reached over another socket, the side facing the callee."""
        inbound = call.inbound
        local = inbound.local
        user = self._callee_user(request, call.callee)
        token = self._dialog_token(request, _where(inbound.peer), _where(hop), user)
        # 16.6 step 4: for a SIPS Request-URI, a SIPS Record-Route (on TLS).
        ruri = request.request_uri
        secure = isinstance(ruri, SipURI) and ruri.secure
        upstream = self._rr_value(
            local.transport, local.host, local.port, inbound.peer.host, token, secure
        )
        out = self.local.socket_for(hop.transport, hop.host)
        if out is None:
            return [upstream]
        downstream = self._rr_value(hop.transport, out[0], out[1], hop.host, token, secure)
        return [upstream] if downstream == upstream else [upstream, downstream]

    def _rr_value(
        self, transport: str, host: str, port: int, peer_host: str, token: str, secure: bool
    ) -> str:
        address = self.local.address_toward(host, peer_host)
        if secure and transport == "tls":
            return f"<sips:{address}:{port};lr;{_TOKEN_PARAM}={token}>"
        param = "" if transport == "udp" else f";transport={transport}"
        return f"<sip:{address}:{port}{param};lr;{_TOKEN_PARAM}={token}>"

    def _cancel_branch(self, call: _Call, branch: Branch[_Target]) -> None:
        tx = branch.transaction
        if not isinstance(tx, ClientTransaction) or not tx.is_invite:
            return
        # RFC 3326: the caller's Reason is passed on; a branch cancelled
        # because another answered says so, and the phone does not show a
        # missed call.
        reasons = call.reasons
        if not reasons and call.context.answered_2xx:
            reasons = [COMPLETED_ELSEWHERE]
        with contextlib.suppress(ValueError):  # already final: nothing to cancel
            self.transactions.start_cancel(tx, self._clock(), reasons)

    def _send_upstream(self, call: _Call, response: Response) -> None:
        sent = self.transactions.respond(call.server_tx, response, self._clock())
        if not sent and 200 <= response.status < 300 and call.request.method == "INVITE":
            # The server transaction is gone or final: a 2xx to an INVITE
            # still goes (16.7 steps 5 and 10); any other request gets one
            # final response, the first.
            self._send_stateless(response, None, call.inbound)

    def _send_final(self, call: _Call, final: Final) -> None:
        response = final.response
        if final.status == 408 and call.request.method != "INVITE":
            # RFC 4320 4.2: no 408 to a non-INVITE request; its client timed
            # out as our branches did (Timer F), and the answer would come
            # too late to be of use.
            self.transactions.abandon(call.server_tx)
            return
        if response is None:
            response = make_response(call.request, final.status, to_tag=call.to_tag)
        elif response.status == 503:
            # 16.7 step 6: a 503 would make the caller think *we* are
            # overloaded; the proxy generates a 500 of its own instead (its
            # tag, none of the callee's headers).
            response = make_response(call.request, 500, to_tag=call.to_tag)
        if response.status in (401, 407):
            response = response.copy()
            response.remove("www-authenticate")
            response.remove("proxy-authenticate")
            for name, value in call.context.challenges():
                response.add(name, value)
        self._send_upstream(call, response)

    # -- CANCEL (16.10), ACK, strays --------------------------------------------------------

    def _cancel(self, tx: ServerTransaction, cancel: Request) -> None:
        invite_tx = self.transactions.find_invite_for_cancel(cancel)
        if invite_tx is None:
            self._reply(tx, cancel, 481)
            return
        call = self._calls.get(invite_tx)
        # 9.2: the 200 to the CANCEL SHOULD carry the To tag of our own
        # answer to the INVITE (the 487 we may make).
        tag = token_hex(6) if call is None else call.to_tag
        self._respond(tx, make_response(cancel, 200, to_tag=tag))
        if call is None:
            # The INVITE is still being routed (a lookup is under way).
            self._pending_cancel[invite_tx] = tag
            return
        call.reasons = cancel.get_all("reason")
        self._apply(call, call.context.cancel_all())

    async def _forward_ack(self, ack: Request) -> None:
        """A 2xx ACK: statelessly along its Route, or to its Request-URI (16.11).

        It goes where any request would: over a flow of ours that another
        instance's signed Route names (owner.py), elsewhere only in a dialog
        we record-routed (the Route of ours it came with carried the dialog's
        token) or with relaying allowed, and to a user of a served domain (a
        callee whose Contact is its address of record) through that user's
        registered contacts. Anything else is dropped: no open relay for ACKs.
        An ACK without a To tag acknowledges no final response (every one
        carries a tag) and is dropped too.
        """
        if ack.to_tag is None:
            return
        flow = self._flow(ack) if self.owners is not None and "route" in ack else None
        token = self._preprocess_routes(ack)
        if ack.max_forwards == 0:
            return
        targets: list[_Target] = []
        if flow is not None:
            held = await self._flow_target(flow)
            if held is None:
                return
            targets = [held]
        else:
            routes = ack.addresses("route")
            uri = routes[0].uri if routes else ack.request_uri
            if not isinstance(uri, SipURI):
                return
            if not routes:
                domain = self.local.canonical_domain(uri.host, uri.port)
                if domain is not None and uri.user is not None:
                    aor = _aor_in(uri, domain, self.config)
                    found = await self._targets(await self._bindings_of(aor, domain), ack)
                    targets = [target for target, _ in found]
                    if not targets:
                        return  # (no phone of that user: never back to ourselves)
                elif self.local.is_myself(uri):
                    return  # for the server itself: nothing to pass on
            if not targets:
                if not self.config.allow_relay and not self._dialog_standing(token, ack, "")[0]:
                    return
                hop = await self._resolve(uri)
                if hop is None:
                    return
                targets = [_Target(ack.uri, hop)]
        ack.decrement_max_forwards()
        # A stateless branch: the same ACK always gets the same one (16.11).
        branch = branch_prefix(ack) + "a"
        for target in targets:
            out = ack.copy() if len(targets) > 1 else ack
            _aim(out, target)
            out.push_via(self._via(target.hop, branch))
            self._send_stateless(out, target.hop, None)

    def _forward_stray_response(self, response: Response) -> None:
        """A response matching no transaction: pass it on if the top Via is ours."""
        try:
            vias = response.vias
        except ParseError as exc:
            logger.debug("dropped a stray %d with a bad Via: %s", response.status, exc.reason)
            return
        if len(vias) < 2 or not self._myself(vias[0].host, vias[0].port):
            return
        response = response.copy()
        response.pop_via()
        self._send_stateless(response, None, None)

    # -- answering ------------------------------------------------------------------------

    def _reply(
        self,
        tx: ServerTransaction,
        request: Request,
        status: int,
        reason: str | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        to_tag = token_hex(6) if status > 100 else None
        response = make_response(request, status, reason, to_tag=to_tag, headers=headers)
        self._respond(tx, response)

    def _respond(self, tx: ServerTransaction, response: Response) -> None:
        self.transactions.respond(tx, response, self._clock())


def _aim(request: Request, target: _Target) -> None:
    """Point ``request`` at ``target``: its Request-URI, its Path (RFC 3327)."""
    if target.uri != request.uri:
        request.set_uri(target.uri)
    for value in reversed(target.path):
        request.add("Route", value, first=True)


def _aor_in(uri: SipURI, domain: str, config: ProxyConfig) -> str:
    """The address-of-record ``uri`` names in served ``domain`` (its canonical name)."""
    key = aor_of(uri, case_sensitive=config.case_sensitive) or ""
    return f"{key[: key.rfind('@') + 1]}{domain}"


def _max_breadth(request: Request) -> int:
    """The request's Max-Breadth (RFC 5393), the default where it has none or
    one that is not a number."""
    value = request.get("max-breadth")
    if value is not None:
        value = value.strip()
        if value.isascii() and value.isdigit() and len(value) < 10:
            return int(value)
    return DEFAULT_MAX_BREADTH


def _binding_target(binding: Binding) -> _Target:
    """Reach a registered contact where its REGISTER came from (NAT-safe), over the
    connection it came on; with its Path as Route when it registered with one
    (RFC 3327; ``Proxy._reached`` picks the Path's first hop when that is not
    where the REGISTER came from)."""
    source = binding.source
    hop = Peer(source.transport, source.host, source.port, source.connection_id)
    return _Target(_request_uri(binding.contact), hop, binding.path)


def _host_key(host: str) -> str:
    """A host (a name, an IP address, an IPv6 one in brackets or not) in one
    spelling, so that two spellings of it compare equal without a DNS lookup."""
    if ":" not in host:  # (a name or an IPv4 address: one spelling, but for case)
        return host.lower()
    host = host.strip("[]").lower()
    with contextlib.suppress(ValueError):
        host = str(ipaddress.ip_address(host))
    return host


def _where(peer: Peer) -> str:
    """A side of a dialog as its token binds it: the transport, address and
    port its requests come from (a phone's, behind NAT its mapping's; an
    edge proxy's; another instance's). Over TCP/TLS a request from a new
    connection (a new port) answers a challenge, as from anywhere else."""
    return f"{peer.transport}:{_host_key(peer.host)}:{peer.port}"


def _uri_key(uri: URI) -> str:
    """A From or To URI as the dialog token reads it: a SIP URI's user and
    host (in lower case), which a UA repeats in every request of the dialog
    (RFC 3261 12.2.1.1) whatever it does with parameters; other URIs whole."""
    if isinstance(uri, SipURI):
        return f"{uri.user or ''}@{uri.host.lower()}"
    return str(uri)


def _request_uri(contact: str) -> str:
    """A registered contact as a Request-URI: without the headers (``?...``) a
    Contact may carry and a Request-URI may not (RFC 3261 19.1.1; 16.6 step
    2 removes what is not allowed there). An escaped ``?`` is ``%3F``."""
    cut = contact.find("?")
    return contact if cut < 0 else contact[:cut]
