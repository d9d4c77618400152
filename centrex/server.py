"""The Centrex server: transports, transactions, proxy and registrar wired together.

This is the one place that knows all the services. The transport layer hands
parsed messages in; they go to the transaction layer (sans-IO), whose outputs
are drained after every input: ``Send`` to the transport, events to the proxy.
All transaction timers share one ``loop.call_at`` handle, re-armed to the
layer's next deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import marshal
import os
import socket
import ssl
import sys
import time
import types
from collections import deque
from collections.abc import Awaitable, Coroutine, Generator
from pathlib import Path
from typing import Any, Final

from centrex.auth.abuse import FailureTracker, RateLimiter
from centrex.auth.bans_file import lift_bans, read_bans, take_clear_requests, write_bans
from centrex.auth.gate import AuthGate
from centrex.config import Settings
from centrex.directory import Directory
from centrex.heap import HeapTrimmer
from centrex.logs import open_sip_trace
from centrex.presence import RECOVERY_FILE_NAME as PRESENCE_FILE_NAME
from centrex.presence import PresenceSettings
from centrex.presence.dialog import Subscription
from centrex.presence.notify import registrar_uri
from centrex.presence.service import PresenceService
from centrex.proxy.core import Inbound, Proxy, ProxyConfig
from centrex.proxy.local import LocalIdentity
from centrex.proxy.owner import OwnerRouting
from centrex.proxy.resolve import resolve_uri
from centrex.registrar.binding import Binding, Source
from centrex.registrar.memory import MemoryLocationStore
from centrex.registrar.packed import from_row, row
from centrex.registrar.registrar import Registrar
from centrex.registrar.store import Changes, LocationStore
from centrex.sip.build import make_response
from centrex.sip.errors import ParseError
from centrex.sip.message import Request, Response
from centrex.sip.uri import SipURI, parse_uri
from centrex.transaction.events import (
    RequestEvent,
    Resend,
    ResponseEvent,
    Send,
    Terminated,
    TimeoutEvent,
    TimerCEvent,
    TransportErrorEvent,
)
from centrex.transaction.layer import TransactionLayer
from centrex.transaction.timers import TimerConfig
from centrex.transaction.transaction import ClientTransaction, ServerTransaction, Transaction
from centrex.transport import ListenAddress, LocalSocket, Peer, TransportLayer, TransportLimits
from centrex.transport.rules import response_destination
from centrex.transport.tls import server_context
from centrex.workers.frames import (
    CHANGE,
    CLEAR_BANS,
    CLOSED,
    CONNECTION,
    MESSAGE,
    OPENED,
    SEND,
    WorkerInfo,
    branch_tag,
    owner_of_branch,
    owner_of_connection,
    worker_path,
)
from centrex.workers.links import WorkerLinks

logger: Final = logging.getLogger("centrex.server")

# Bound once: compiled, a module's attribute is looked up by name at every use.
_wall_clock: Final = time.time
_CancelledError: Final = asyncio.CancelledError

#: How long worker 0, stopping, waits for the other workers to stop (they
#: got the same signal) before it writes the recovery file without them.
STOP_WAIT_S: Final = 5.0

#: Answers to NOTIFYs handed to the transaction layer per turn of the event
#: loop, after the requests that arrived with them (``Server._take_responses``).
RESPONSES_PER_TURN: Final = 64


class _RegistrarService:
    """What the proxy asks of the registrar, in the proxy's terms."""

    def __init__(self, registrar: Registrar) -> None:
        self.registrar = registrar

    async def handle(
        self, request: Request, inbound: Inbound, now: float, *, identity: str | None = None
    ) -> Response:
        peer, local = inbound.peer, inbound.local
        source = Source(peer.transport, peer.host, peer.port, str(local), peer.connection_id)
        return await self.registrar.handle(request, source, now, identity=identity)

    async def lookup(self, aor: str, now: float) -> list[Binding]:
        bindings: list[Binding] = await self.registrar.lookup(aor, now)
        return bindings


SECRET_FILE: Final = "secret.key"


def load_or_create_secret(data_dir: Path) -> bytes:
    """The server's secret (dialog tokens, nonces), kept in the data folder so
    that it survives restarts; created readable by the owner only."""
    path = data_dir / SECRET_FILE
    try:
        secret = path.read_bytes()
        if len(secret) >= 32:
            return secret
    except FileNotFoundError:
        pass
    secret = os.urandom(32)
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(secret)
    return secret


#: What a retired transaction keeps to answer a retransmission: the final
#: response's bytes, where they went, and the socket they left from.
_Resend = tuple[bytes, Peer, LocalSocket | None]


def pack_resend(data: bytes, destination: Peer, local: LocalSocket | None) -> bytes:
    """``_Resend`` as the bytes ``TransactionLayer.retire`` keeps (compressed
    with others, so no object of its own per retired transaction)."""
    where = (destination.transport, destination.host, destination.port, destination.connection_id)
    here = None if local is None else (local.transport, local.host, local.port)
    return marshal.dumps((data, where, here))


def unpack_resend(packed: bytes) -> _Resend:
    data, where, here = marshal.loads(packed)
    return data, Peer(*where), None if here is None else LocalSocket(*here)


class NotSupportedError(Exception):
    """A setting asks for something this version of Centrex does not do yet."""


class StartError(Exception):
    """What a setting names cannot be used (a folder, a file, an address):
    the text names the key, what went wrong and the fix."""


def os_reason(exc: OSError) -> str:
    """An OSError's own words, without the ``[Errno N]`` Python puts first."""
    text = exc.strerror or str(exc)
    return f"{text}: {exc.filename}" if exc.filename and str(exc.filename) not in text else text


def listen_fix(exc: OSError) -> str:
    """What to do when a listen address cannot be bound (``exc``)."""
    if exc.errno == errno.EADDRINUSE:
        return "another program (or another Centrex) listens there: stop it or choose another port"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "the address is not one of this host's: use one of them, or 0.0.0.0 / [::] for all"
    if exc.errno == errno.EACCES:
        return (
            "ports below 1024 need root or the CAP_NET_BIND_SERVICE capability "
            "(see docs/deployment.md), or use a port above 1023"
        )
    if isinstance(exc, socket.gaierror):
        return "the host name does not resolve: use an IP address of this host"
    return "check the address and port"


def data_dir_error(path: Path, exc: OSError) -> StartError:
    return StartError(
        f"server.data_dir: cannot use {path} as the data folder ({os_reason(exc)}). "
        "Fix: point server.data_dir at a folder the server may create and write."
    )


def refuse_what_is_not_built(settings: Settings) -> None:
    """Fail at start, naming the key, rather than serve something else than asked."""
    for address in settings.network.listen_addresses():
        if address.transport in ("ws", "wss"):
            raise NotSupportedError(
                f"network.listen: {address}: WebSocket transports are not available yet; "
                "use udp, tcp or tls"
            )
    if settings.registrar.store == "database":
        url = settings.registrar.database.url
        if not url:
            raise NotSupportedError(
                'registrar.store = "database" needs registrar.database.url, e.g. '
                '"postgresql+asyncpg://centrex@db.example.net/centrex"'
            )
        from centrex.registrar.sql import DatabaseUrlError
        from centrex.registrar.sql.engine import parse_url

        try:
            parse_url(url)
        except DatabaseUrlError as exc:
            raise NotSupportedError(f"registrar.database.url: {exc}") from None
    workers = settings.server.workers
    if workers > 1:
        if settings.registrar.store == "database":
            raise NotSupportedError(
                f'server.workers = {workers} with registrar.store = "database" is not '
                "available yet: set server.workers = 1, or run one instance per CPU "
                "sharing the database (each with its own server.instance_id and ports)"
            )
        for address in settings.network.listen_addresses():
            if address.port == 0:
                raise NotSupportedError(
                    f"network.listen: {address}: with server.workers = {workers} every "
                    "worker binds the same port, so it must be a fixed one (e.g. 5060)"
                )


class Server:
    """One Centrex instance: ``await start()``, serve, ``await stop()``."""

    def __init__(
        self,
        settings: Settings,
        config_path: Path | None = None,
        worker: WorkerInfo | None = None,
    ) -> None:
        refuse_what_is_not_built(settings)
        self.settings = settings
        self.paths = settings.resolve_paths(config_path)
        #: Which worker this is of how many (``centrex.workers``); (0, 1) alone.
        self.worker = (0, 1) if worker is None else (worker.index, worker.count)
        self._nonce_epoch = None if worker is None else worker.nonce_epoch
        index, count = self.worker
        #: The links to the other workers; None with one process.
        self.links: WorkerLinks | None = None
        if worker is not None and count > 1:
            self.links = WorkerLinks(worker, self._on_frame)
        # How many workers a CANCEL being handled was handed through (``_on_frame``).
        self._cancel_hops = 0
        # Changes of the other workers read before the store was open: (kind, fields).
        self._early_changes: list[tuple[int, tuple[Any, ...]]] | None = []
        self._opened = {0}
        timers = TimerConfig(**settings.timeouts.timer_config())
        self.transactions = TransactionLayer(timers)
        network = settings.network
        trace_path = worker_path(self.paths.sip_trace_file, index)
        try:
            self.trace = open_sip_trace(settings.logging, trace_path)
        except OSError as exc:
            raise StartError(
                f"logging.sip_trace_file: cannot write the SIP trace {trace_path} "
                f"({os_reason(exc)}). Fix: point it at a file in a folder the server may "
                "write, or turn logging.sip_trace off."
            ) from exc
        auth = settings.auth
        self.failures = FailureTracker(
            auth.ban_after_failures,
            auth.failure_window_s,
            auth.ban_time_s,
            auth.max_tracked_sources,
        )
        self.limiter = RateLimiter(
            auth.rate_limit_per_s, auth.rate_limit_burst, auth.max_tracked_sources
        )
        self.auth: AuthGate | None = None
        self.transport = TransportLayer(
            self._on_message,
            admit=self._admit,
            on_connection_closed=self._on_connection_closed,
            on_connection_opened=self._announce_connection if self.links is not None else None,
            limits=TransportLimits(
                max_connections_per_address=network.max_connections_per_address,
                max_header_bytes=min(network.max_message_bytes, 16384),
                max_body_bytes=network.max_message_bytes,
                idle_timeout=float(network.tcp_idle_timeout_s),
            ),
            trace=self.trace,
            worker=self.worker,
            relay=self._relay if self.links is not None else None,
        )
        self.directory = Directory(settings.users, case_sensitive=settings.registrar.case_sensitive)
        self.store: LocationStore
        if settings.registrar.store == "database":
            from centrex.registrar.sql import SqlLocationStore  # SQLAlchemy: only when used

            database = settings.registrar.database
            self.store = SqlLocationStore(
                database.url,
                server_id=settings.server.effective_instance_id(),
                migrate=database.migrate_on_start,
                staleness_s=database.staleness_s,
            )
        else:
            memory = MemoryLocationStore.from_settings(
                settings.registrar, self.paths.data_dir, writes_file=index == 0
            )
            if self.links is not None:
                memory.on_change = self._share_change
                # Written once every worker has read it (``_on_frame``).
                memory.hold_writes = index == 0
            self.store = memory
        # Requests run at once, without a task of their own (``_start``), only
        # where nothing on their way needs to run inside a task: the database
        # drivers' timeouts (asyncio.timeout, asyncpg) refuse to run outside one.
        # From 3.12 asyncio.wait_for (a host name looked up on the way) needs
        # one too.
        self._eager = isinstance(self.store, MemoryLocationStore) and sys.version_info < (3, 12)
        self.domains = settings.server.effective_domains()
        self.registrar: Registrar | None = None
        self.presence: PresenceService | None = None
        self.proxy: Proxy | None = None
        self.local: LocalIdentity | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._draining = False
        self._responses: deque[Response] = deque()
        self._responses_due = False
        # The running tasks, by the coroutine each runs (``_spawn``).
        self._tasks: dict[Coroutine[Any, Any, Any], asyncio.Task[Any]] = {}
        #: Gives the memory that ended transactions freed back to the system.
        self.heap = HeapTrimmer()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = asyncio.Event()

    # -- life cycle -----------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        settings = self.settings
        if self.links is not None:
            await self.links.start()
        try:
            self.paths.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise data_dir_error(self.paths.data_dir, exc) from exc
        # The bans in force when the server last ran: a restart (or a crash
        # an attacker provoked) does not lift them.
        now = time.time()
        restored = self.failures.restore(read_bans(self.paths.data_dir, now), now)
        if restored:
            logger.info("%d ban(s) in force from before the restart", restored)
        listen = [
            ListenAddress(a.transport, a.host, a.port) for a in settings.network.listen_addresses()
        ]
        tls: ssl.SSLContext | None = None
        if any(a.transport == "tls" for a in listen):
            try:
                tls = server_context(
                    str(self.paths.tls_certificate), str(self.paths.tls_private_key)
                )
            except OSError as exc:  # (ssl.SSLError is one)
                raise StartError(
                    f"network.tls_certificate / network.tls_private_key: {os_reason(exc)}. "
                    "Fix: name a PEM certificate and its own key (`centrex tls selfsigned` "
                    "makes a pair for tests)."
                ) from exc
        try:
            await self.transport.start(listen, tls)
        except OSError as exc:
            raise StartError(f"network.listen: {os_reason(exc)}. Fix: {listen_fix(exc)}.") from exc
        bound = [(s.transport, s.host, s.port) for s in self.transport.bound]
        self.local = LocalIdentity(
            self.domains,
            bound,
            settings.network.advertised_address,
            related=frozenset(self._other_related_domains()),
        )
        secret = load_or_create_secret(self.paths.data_dir)
        auth = settings.auth
        local = self.local

        # A related domain's users are ours too (registrar.related_domains),
        # served here or not: a From in one of them is challenged.
        def realm_for_domain(host: str) -> str | None:
            domain = local.canonical_domain(host) or local.related_domain(host)
            return None if domain is None else (auth.realm or domain)

        self.auth = AuthGate(
            enabled=auth.enabled,
            realm_for_domain=realm_for_domain,
            users=settings.users,
            realms=self._credential_realms(),
            secret=secret,
            nonce_lifetime_s=auth.nonce_lifetime_s,
            trusted=auth.trusted,
            relax_from_match=auth.relax_from_match,
            case_sensitive=settings.registrar.case_sensitive,
            failures=self.failures,
            limiter=self.limiter,
            drop_scanners=auth.drop_scanners,
            algorithms=auth.algorithms,
            # (one process: a random one; workers: the supervisor's, made before the fork)
            nonce_epoch=self._nonce_epoch,
        )
        self.registrar = Registrar(
            settings.registrar,
            self.store,
            domains=self.domains,
            directory=self.directory,
            server_id=settings.server.effective_instance_id(),
            alias=self.local.canonical_domain,
        )
        self.registrar.retry_after_s = settings.registrar.database.retry_after_s
        owners: OwnerRouting | None = None
        if self.settings.registrar.store == "database":
            from centrex.registrar.sql import SqlLocationStore

            store = self.store
            assert isinstance(store, SqlLocationStore)
            store.address = self._instance_address()
            published = parse_uri(store.address)
            if isinstance(published, SipURI):
                # The others' Routes name us by this address, even if it is a DNS name.
                self.local.names.add(published.host.lower().strip("[]"))
            owners = OwnerRouting(
                store.server_id,
                key=lambda: store.routing_key,
                instance=store.instance,
                down_after_s=settings.registrar.database.instance_down_after_s,
                wall_clock=time.time,
                heartbeats_current=lambda: store.available,
                heartbeats_read_at=lambda: store.instances_read_at,
            )
        if settings.registrar.presence_events:
            self.presence = PresenceService(
                PresenceSettings.from_registrar(
                    settings.registrar, user_agent=settings.server.user_agent
                ),
                self.directory,
                transactions=self.transactions,
                data_dir=self.paths.data_dir,
                clock=self._loop.time,
                wall_clock=time.time,
                flush=self._drain,
                sent_by=self._sent_by,
                resolve=self._resolve,
                domain_of=self.local.canonical_domain,
                path=worker_path(self.paths.data_dir / PRESENCE_FILE_NAME, self.worker[0]),
                branch_tag=branch_tag(*self.worker),
                bindings_of=self.store.live,
                local_contact=self._presence_contact,
            )
            self.registrar.listeners.add(self.presence.on_aor_event)
            # The AORs with reg watchers, whose every contact change presence needs.
            self.registrar.listeners.watched = self.presence.table.reg_watched
        # The events of the store's first read wait for presence to be ready.
        self.registrar.listeners.pause()
        await self.registrar.start(time.time())
        self._store_opened()
        if self.presence is not None:
            await self.presence.start(await self.store.bindings(), time.time())
        self.registrar.listeners.resume()
        self.proxy = Proxy(
            transactions=self.transactions,
            local=self.local,
            registrar=_RegistrarService(self.registrar),
            directory=self.directory,
            config=ProxyConfig(
                record_route=settings.server.record_route,
                allow_relay=settings.server.allow_relay,
                case_sensitive=settings.registrar.case_sensitive,
                related_domains=tuple(settings.registrar.related_domains),
            ),
            clock=self._loop.time,
            wall_clock=time.time,
            flush=self._drain,
            send_stateless=self._send_stateless,
            resolve=self._resolve,
            secret=secret,
            auth=self.auth,
            presence=self.presence,
            owners=owners,
            branch_tag=branch_tag(*self.worker),
        )
        self._spawn(self._housekeeping())
        if self.links is not None:
            logger.info("worker %d of %d", self.worker[0], self.worker[1])
        logger.info(
            "serving %s on %s",
            ", ".join(self.domains),
            ", ".join(str(s) for s in self.transport.bound),
        )

    async def stop(self) -> None:
        """Stop listening, flush the recovery file, close the logs.

        With several workers, worker 0 writes the file last: after every
        other worker has stopped reading and closed its link, so the changes
        they made up to then are in it (``STOP_WAIT_S`` at most).
        """
        links = self.links
        if links is not None:
            links.stopping = True
        self._responses.clear()  # read but not handled yet: as if lost on the way
        # Requests still read meanwhile may spawn more: a few rounds.
        for _ in range(5):
            running = list(self._tasks.items())
            if not running:
                break
            for _, task in running:
                task.cancel()
            for _, task in running:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            for coroutine, _ in running:  # done; closes one cancelled before it started
                coroutine.close()
                self._tasks.pop(coroutine, None)
        if self._timer is not None:
            self._timer.cancel()
        if self.presence is not None:
            if self.registrar is not None:
                self.registrar.listeners.remove(self.presence.on_aor_event)
                self.registrar.listeners.watched = set()
            await self.presence.stop(time.time())
        await self.transport.stop()
        if links is not None:
            if links.index != 0:
                links.close()  # after all this worker sent: worker 0 may write now
            elif not await links.closed(STOP_WAIT_S):
                logger.warning("not every worker stopped within %.0f s", STOP_WAIT_S)
        if self.registrar is not None:
            await self.registrar.stop(time.time())
        if links is not None:
            links.close()
        self.trace.close()
        self._stopped.set()
        logger.info("stopped")

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    def _instance_address(self) -> str:
        """The SIP URI the other instances sharing the database reach this one at."""
        configured = self.settings.registrar.database.instance_address
        if configured:
            return configured
        assert self.local is not None
        # TCP when there is a listener for it: a stopped instance then refuses
        # at once, where a datagram to it would wait out Timer B.
        bound = self.transport.bound
        first = next((s for s in bound if s.transport == "tcp"), bound[0])
        host = self.local.address_toward(first.host, "192.0.2.1")
        param = "" if first.transport == "udp" else f";transport={first.transport}"
        return f"sip:{host}:{first.port}{param}"

    async def _housekeeping(self) -> None:
        """Purge expired bindings and flush the recovery file on their intervals;
        publish the bans and carry out `centrex bans clear` requests."""
        published: list[tuple[str, float]] | None = None
        while True:
            await asyncio.sleep(1.0)
            now = time.time()
            try:
                if self.registrar is not None:
                    await self.registrar.maintain(now)
                if self.presence is not None:
                    await self.presence.tick(now)
                self.trace.flush()
                if self.heap.due(time.monotonic(), len(self.transactions)):
                    await asyncio.to_thread(self.heap.trim)
                index = self.worker[0]
                if index == 0:
                    wanted = take_clear_requests(self.paths.data_dir)
                    if wanted:
                        if self.links is not None:
                            self.links.broadcast(CLEAR_BANS, (wanted,))
                        if lift_bans(self.failures, wanted):
                            logger.info("bans lifted on request")
                bans = self.failures.bans(now)
                current = [(b.ip, b.until) for b in bans]
                if current != published:
                    write_bans(self.paths.data_dir, bans, index)
                    published = current
            except Exception:
                logger.exception("housekeeping failed")

    def reload_directory(self, config_path: Path | None) -> None:
        """SIGHUP: read the users again from the settings file."""
        from centrex.config import ConfigError, load_settings

        try:
            users = load_settings(config_path).users
            directory = Directory(users, case_sensitive=self.settings.registrar.case_sensitive)
        except (ConfigError, ValueError) as exc:
            logger.error("directory not reloaded: %s", exc)
            return
        self.directory.replace(directory)
        if self.auth is not None:
            self.auth.reload_users(
                users, self._credential_realms(), self.settings.registrar.case_sensitive
            )
        logger.info("directory reloaded: %d users", len(directory))

    def _other_related_domains(self) -> list[str]:
        """``registrar.related_domains`` not served here (their users are ours)."""
        return [d for d in self.settings.registrar.related_domains if d not in self.domains]

    def _credential_realms(self) -> list[str]:
        """The realms users' digest hashes are made for: ``auth.realm``, else
        each served and related domain (a domain is its own realm)."""
        realm = self.settings.auth.realm
        return [realm] if realm else [*self.domains, *self._other_related_domains()]

    # -- input ------------------------------------------------------------------------

    def _admit(self, peer: Peer) -> bool:
        """Before parsing: drop banned and flooding addresses (issue 5)."""
        auth = self.auth
        return auth is None or auth.admit(peer.host, _wall_clock())

    def _on_message(self, message: Request | Response, peer: Peer, local: LocalSocket) -> None:
        assert self._loop is not None
        if (
            self.links is not None
            and isinstance(message, Response)
            and self._elsewhere(message, peer, local)
        ):
            return  # (also while starting: the other worker may be serving)
        if self.proxy is None:
            self._while_starting(message, peer, local)
            return
        now = self._loop.time()
        if isinstance(message, Request) and self.auth is not None and self.auth.is_scanner(message):
            logger.debug("dropped a scanner's %s from %s", message.method, peer)
            return
        if isinstance(message, Request):
            if (
                self.links is not None
                and message.method == "CANCEL"
                and self._cancel_elsewhere(message, peer, local)
            ):
                return
            self.transactions.receive_request(
                message, now, reliable=peer.reliable, peer=Inbound(peer, local)
            )
            self._drain()
            return
        if message.cseq.method != "NOTIFY":
            # Only the subscribers' answers come in bursts; a call's
            # responses go through at once.
            self.transactions.receive_response(message, now)
            self._drain()
            return
        self._responses.append(message)
        if not self._responses_due:
            self._responses_due = True
            self._loop.call_soon(self._loop.call_soon, self._take_responses)

    # -- the other workers ----------------------------------------------------------

    def _elsewhere(self, response: Response, peer: Peer, local: LocalSocket) -> bool:
        """Hand ``response`` to the worker whose branch it carries, if another
        one: that worker holds the client transaction. True when handed on."""
        links = self.links
        assert links is not None
        try:
            branch = response.top_via.branch
        except ParseError:
            return False
        owner = owner_of_branch(branch, links.count)
        if owner is None or owner == links.index:
            return False
        return self._hand_on(owner, response, peer, local, 0)

    def _cancel_elsewhere(self, cancel: Request, peer: Peer, local: LocalSocket) -> bool:
        """Hand a CANCEL that matches no INVITE here to the next worker (the
        INVITE's worker may be another when the CANCEL came from another
        port); the last worker to try answers 481. True when handed on."""
        links = self.links
        assert links is not None
        if self.transactions.find_invite_for_cancel(cancel) is not None:
            return False
        hops = self._cancel_hops + 1
        if hops >= links.count:
            return False
        return self._hand_on((links.index + 1) % links.count, cancel, peer, local, hops)

    def _hand_on(
        self, worker: int, message: Request | Response, peer: Peer, local: LocalSocket, hops: int
    ) -> bool:
        fields = (
            peer.transport,
            peer.host,
            peer.port,
            peer.connection_id,
            local.transport,
            local.host,
            local.port,
            peer.reliable,
            message.to_bytes(),
            hops,
        )
        assert self.links is not None
        return self.links.send(worker, MESSAGE, fields)

    def _relay(self, data: bytes, peer: Peer) -> bool:
        """Bytes for a connection another worker holds: that worker writes them."""
        links = self.links
        assert links is not None and peer.connection_id is not None
        owner = owner_of_connection(peer.connection_id, links.count)
        fields = (peer.transport, peer.host, peer.port, peer.connection_id, data)
        return links.send(owner, SEND, fields)

    def _share_change(self, aor: str, changes: Changes, now: float) -> None:
        """A change of the location table made here, for the other workers."""
        links = self.links
        assert links is not None
        links.broadcast(CHANGE, (aor, [row(b) for b in changes.put], changes.remove))

    def _store_opened(self) -> None:
        """The store has read the recovery file: apply the other workers'
        changes read meanwhile, and tell worker 0, which may write it now."""
        early, self._early_changes = self._early_changes, None
        for kind, fields in early or ():
            self._apply_change(kind, fields)
        links = self.links
        if links is not None and links.index != 0:
            links.send(0, OPENED, (links.index,))

    def _apply_change(self, kind: int, fields: tuple[Any, ...]) -> None:
        """A change of the location table another worker made (CHANGE, CLOSED)."""
        if kind == CLOSED:
            if self.registrar is not None:
                self._spawn(self.registrar.connection_closed(fields[0], time.time()))
            return
        aor, put, remove = fields
        store = self.store
        assert isinstance(store, MemoryLocationStore)
        bindings = tuple(from_row(r) for r in put)
        store.apply_remote(aor, Changes(bindings, tuple(remove)), time.time())

    def _on_frame(self, sender: int, kind: int, fields: tuple[Any, ...]) -> None:
        """A frame from another worker (``centrex.workers.frames``)."""
        if kind == MESSAGE:
            transport, host, port, connection_id, ltransport, lhost, lport, stream, data, hops = (
                fields
            )
            peer = Peer(transport, host, port, connection_id)
            self._cancel_hops = hops
            try:
                self.transport.forwarded(
                    data, peer, LocalSocket(ltransport, lhost, lport), stream=stream
                )
            finally:
                self._cancel_hops = 0
        elif kind == SEND:
            transport, host, port, connection_id, data = fields
            peer = Peer(transport, host, port, connection_id)
            if not self.transport.send(data, peer):
                self._spawn(self.transport.send_to(data, peer))
        elif kind == CONNECTION:
            transport, host, port, connection_id, opened = fields
            self.transport.remote_connection(Peer(transport, host, port, connection_id), opened)
        elif kind in (CHANGE, CLOSED):
            if self._early_changes is not None:
                self._early_changes.append((kind, fields))
            else:
                self._apply_change(kind, fields)
        elif kind == OPENED:
            self._opened.add(fields[0])
            store = self.store
            if len(self._opened) == self.worker[1] and isinstance(store, MemoryLocationStore):
                store.hold_writes = False
        elif kind == CLEAR_BANS and lift_bans(self.failures, list(fields[0])):
            logger.info("bans lifted on request")

    def _while_starting(self, message: Request | Response, peer: Peer, local: LocalSocket) -> None:
        """A message read before the proxy is made: the sockets listen first
        (their ports are needed), then the location store loads (a recovery
        file of 100,000 registrations: 0.7 s; or the database). Nothing is
        kept: a datagram's sender retransmits (RFC 3261 17.1.2.2, from 500 ms)
        and is served then; a request over a stream, which is not
        retransmitted, gets 503 with Retry-After (21.5.4)."""
        if isinstance(message, Request) and peer.reliable and message.method != "ACK":
            answer = make_response(message, 503, headers=[("Retry-After", "1")])
            self.transport.send_response(answer, peer, local)

    def _take_responses(self) -> None:
        """Hand the transaction layer the answers to NOTIFYs received, up to
        ``RESPONSES_PER_TURN``, then wait for the loop's next turns again.

        Responses wait for the requests that came in with them: under a NOTIFY
        fan-out the subscribers' 200s arrive by the hundred, each costing
        about as much as a REGISTER (and, in a dialog, the next NOTIFY), and a
        REGISTER read in the same turn would otherwise be answered after all
        of them. The request, handled while reading (or its task, scheduled
        then), comes first; the responses follow, in order of arrival.
        """
        assert self._loop is not None
        responses = self._responses
        now = self._loop.time()
        for _ in range(min(RESPONSES_PER_TURN, len(responses))):
            self.transactions.receive_response(responses.popleft(), now)
        self._drain()
        if responses:
            self._loop.call_soon(self._loop.call_soon, self._take_responses)
        else:
            self._responses_due = False

    def _announce_connection(self, peer: Peer, opened: bool = True) -> None:
        """Tell the other workers of a connection this one holds (CONNECTION)."""
        assert self.links is not None and peer.connection_id is not None
        fields = (peer.transport, peer.host, peer.port, peer.connection_id, opened)
        self.links.broadcast(CONNECTION, fields)

    def _on_connection_closed(self, peer: Peer) -> None:
        if self.links is not None and peer.connection_id is not None:
            self._announce_connection(peer, opened=False)
        if self.registrar is None or peer.connection_id is None:
            return
        if self.settings.registrar.remove_on_connection_close:
            self._spawn(self.registrar.connection_closed(peer.connection_id, time.time()))
            if self.links is not None:
                self.links.broadcast(CLOSED, (peer.connection_id,))

    # -- the transaction layer's outputs ---------------------------------------------

    def _drain(self) -> None:
        """Hand every output of the transaction layer on, until there are none.

        The proxy calls this after its work; a call made while an outer drain
        runs returns at once, and the outer loop picks the new outputs up in
        order.
        """
        if self._draining:
            return
        self._draining = True
        try:
            self._drain_outputs()
        finally:
            self._draining = False
        self._arm_timer()

    def _drain_outputs(self) -> None:
        proxy = self.proxy
        assert proxy is not None
        presence = self.presence
        while True:
            outputs = self.transactions.take_outputs()
            if not outputs:
                break
            for out in outputs:
                if isinstance(out, Send):
                    self._send(out.transaction, out.message, out.peer)
                elif isinstance(out, Resend):
                    data, destination, local = unpack_resend(out.data)
                    if not self.transport.send(data, destination, local):
                        # A host name: looked up again.
                        self._spawn(self.transport.send_to(data, destination, local=local))
                elif isinstance(out, RequestEvent):
                    inbound = out.peer
                    assert isinstance(inbound, Inbound)
                    if out.request.method == "SUBSCRIBE" and self.registrar is not None:
                        # Its first NOTIFY must list every REGISTER answered before it.
                        self.registrar.listeners.flush()
                    handling = proxy.on_request(out.transaction, out.request, inbound)
                    if self._eager:
                        self._start(handling)
                    else:
                        self._spawn(handling)
                elif presence is not None and presence.route_output(out):
                    continue
                elif isinstance(out, ResponseEvent):
                    proxy.on_response(out.transaction, out.response)
                elif isinstance(out, TimeoutEvent):
                    proxy.on_timeout(out.transaction)
                elif isinstance(out, TransportErrorEvent):
                    proxy.on_transport_error(out.transaction)
                elif isinstance(out, TimerCEvent):
                    proxy.on_timer_c(out.transaction)
                elif isinstance(out, Terminated):
                    proxy.on_terminated(out.transaction)

    def _send(self, tx: Transaction, message: Request | Response | Any, peer: object) -> None:
        if isinstance(tx, ServerTransaction):
            assert isinstance(peer, Inbound) and isinstance(message, Response)
            destination = self.transport.deliver_response(message, peer.peer, peer.local)
            if message.status >= 200 and not tx.is_invite:
                # The transaction only answers retransmissions from now on
                # (Timer J), with the bytes already rendered: over UDP, for a
                # request answered here, it keeps those bytes alone.
                proxy = self.proxy
                if (
                    destination is not None
                    and destination.transport == "udp"
                    and proxy is not None
                    and not proxy.forwards(tx)
                    and self.transactions.retire(
                        tx, pack_resend(message.to_bytes(), destination, peer.local)
                    )
                ):
                    return
                message.forget_views()
                tx.request.forget_views()
            return
        assert isinstance(tx, ClientTransaction) and isinstance(peer, Peer)
        data = message.to_bytes()
        if not self.transport.send(data, peer):
            self._spawn(self._send_slowly(tx, data, peer))

    async def _send_slowly(self, tx: Transaction, data: bytes, peer: Peer) -> None:
        """Open a connection (or resolve a name) first; a failure is a transport error."""
        if not await self.transport.send_to(data, peer):
            assert self._loop is not None
            self.transactions.transport_error(tx, self._loop.time())
            self._drain()

    def _send_stateless(
        self, message: Request | Response, hop: Peer | None, inbound: Inbound | None
    ) -> None:
        if isinstance(message, Response):
            if inbound is None:
                destination = response_destination(message.top_via)
                if destination is None:
                    return
                received_over = Peer(destination.transport, destination.host, destination.port)
                self.transport.send_response(message, received_over)
            else:
                self.transport.send_response(message, inbound.peer, inbound.local)
            return
        if hop is None:
            return
        data = message.to_bytes()
        if not self.transport.send(data, hop):
            self._spawn(self.transport.send_to(data, hop))

    def _presence_contact(self, sub: Subscription) -> str:
        """Our Contact in a subscription's dialog (RFC 3261 12.1.1): the
        registrar's name at the address of the socket its SUBSCRIBE arrived
        on, so that the phone's refreshes, sent there, reach this server
        whatever its domain resolves to. SIPS when the SUBSCRIBE came over TLS
        and named a SIPS URI where 12.1.1 looks: its Request-URI (as its To,
        which the subscription keeps), its top Record-Route, or with none its
        Contact."""
        assert self.presence is not None
        name = self.presence.settings.registrar_name
        local = LocalSocket.parse(sub.source.local)
        if local is None or self.local is None:
            # A subscription of a file written before the socket was kept.
            return registrar_uri(name, sub.domain)
        address = self.local.address_toward(local.host, sub.source.host)
        uri = registrar_uri(name, f"{address}:{local.port}")
        if local.transport == "tls" and _sips_dialog(sub):
            return "sips" + uri[3:]
        return uri if local.transport == "udp" else f"{uri};transport={local.transport}"

    def _sent_by(self, peer: Peer) -> str:
        """Our Via sent-by (host:port) toward ``peer``."""
        assert self.local is not None
        found = self.local.socket_for(peer.transport, peer.host)
        if found is None:
            return "127.0.0.1"
        host, port = found
        return f"{self.local.address_toward(host, peer.host)}:{port}"

    async def _resolve(self, uri: SipURI) -> Peer | None:
        return await resolve_uri(uri)

    # -- the one timer ----------------------------------------------------------------

    def _arm_timer(self) -> None:
        deadline = self.transactions.next_deadline()
        if deadline is None:
            return
        if self._timer is not None and self._timer_at is not None and self._timer_at <= deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
        assert self._loop is not None
        self._timer_at = deadline
        self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        assert self._loop is not None
        self._timer = None
        self._timer_at = None
        self.transactions.handle_timer(self._loop.time())
        self._drain()

    # -- tasks --------------------------------------------------------------------------

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        # (A request goes to _start, and usually needs no task at all.)
        # The loop's own create_task (asyncio.ensure_future asks for the
        # running loop, a getpid() system call on 3.11), and the task
        # forgotten by its own coroutine when it ends rather than by a done
        # callback (one more callback through the loop for every request).
        assert self._loop is not None
        task = self._loop.create_task(self._guarded(coroutine, coroutine))
        if not task.done():  # (an eager task factory may have run it through)
            self._tasks[coroutine] = task

    def _start(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        """Run a request's coroutine now, up to its first wait; a task carries
        it on from there (``_carry_on``), tracked as ``_spawn``'s are.

        Most requests never wait (a REGISTER to the memory store, a proxied
        request to an address already known): they are handled here, with no
        task made, scheduled and stepped. Outputs they make wait in the
        transaction layer for the drain that called this (``_drain``). Until
        its first wait the coroutine runs outside any task, so
        ``asyncio.current_task()`` and ``asyncio.timeout`` are not for it
        (only used with the memory store, on 3.11: ``_eager``), and it runs in
        the context of the socket's callback (no request sets a ContextVar).
        """
        try:
            waiting_on = coroutine.send(None)
        except (StopIteration, _CancelledError):
            return
        except Exception:
            logger.exception("task failed")
            return
        assert self._loop is not None
        task = self._loop.create_task(self._guarded(_carry_on(coroutine, waiting_on), coroutine))
        if not task.done():
            self._tasks[coroutine] = task

    async def _guarded(self, work: Awaitable[Any], key: Coroutine[Any, Any, Any]) -> None:
        """Run ``work``, log its failure, and forget the task kept under ``key``."""
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("task failed")
        finally:
            self._tasks.pop(key, None)


@types.coroutine
def _carry_on(coroutine: Coroutine[Any, Any, Any], waiting_on: Any) -> Generator[Any, Any, Any]:
    """Go on with a coroutine already run up to its first wait (``waiting_on``,
    what it yielded), as ``await coroutine`` would have from the start: what
    the task sends or throws in is passed on (PEP 380's ``yield from``)."""
    while True:
        try:
            sent = yield waiting_on
        except GeneratorExit:
            coroutine.close()
            raise
        except BaseException as exc:
            try:
                waiting_on = coroutine.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                waiting_on = coroutine.send(sent)
            except StopIteration as stop:
                return stop.value


def _is_sips(address: str) -> bool:
    """True when ``address`` (a name-addr or an addr-spec) is a SIPS URI."""
    text = address.strip()
    at = text.find("<")
    return text[at + 1 if at >= 0 else 0 :][:5].lower() == "sips:"


def _sips_dialog(sub: Subscription) -> bool:
    """RFC 3261 12.1.1: the SUBSCRIBE named a SIPS URI in its Request-URI (its
    To, as the subscription keeps it), in its top Record-Route, or, with no
    Record-Route, in its Contact."""
    if _is_sips(sub.local_uri):
        return True
    return _is_sips(sub.route_set[0] if sub.route_set else sub.remote_target)
