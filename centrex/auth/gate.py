"""The authentication gate: what the server asks of ``centrex.auth`` per request.

It puts the pieces together in the order they must run: a banned or flooding
address is dropped before its bytes are even parsed (``admit``), a known
scanner is dropped silently (``is_scanner``), then every request is decided
by the ``Authenticator`` (``check``), failures are counted per address and a
ban is logged once when it starts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Final

from centrex.auth.abuse import FailureTracker, RateLimiter, is_scanner
from centrex.auth.challenge import (
    Authenticated,
    Authenticator,
    Challenge,
    Decision,
    RealmForDomain,
)
from centrex.auth.credentials import Credentials, UserEntry
from centrex.auth.nonce import NonceCodec
from centrex.sip.message import Request

logger: Final = logging.getLogger("centrex.auth")


class AuthGate:
    """Digest authentication plus bans and rate limits, for one server."""

    def __init__(
        self,
        *,
        enabled: bool,
        realm_for_domain: RealmForDomain,
        users: Iterable[UserEntry],
        realms: Sequence[str],
        secret: bytes,
        nonce_lifetime_s: float,
        trusted: Sequence[str],
        relax_from_match: bool,
        case_sensitive: bool,
        failures: FailureTracker,
        limiter: RateLimiter,
        drop_scanners: bool,
        algorithms: Sequence[str] = ("SHA-256", "MD5"),
        nonce_epoch: bytes | None = None,
    ) -> None:
        """``nonce_epoch``: this run's (nonce.py; the workers of one start share it)."""
        self.enabled = enabled
        credentials, warnings = Credentials.from_users(users, realms, case_sensitive=case_sensitive)
        for warning in warnings:
            logger.warning(warning)
        self.authenticator = Authenticator(
            realm_for_domain,
            credentials,
            NonceCodec(secret, nonce_lifetime_s, epoch=nonce_epoch),
            trusted=trusted,
            relax_from_match=relax_from_match,
            algorithms=algorithms,
        )
        self.failures = failures
        self.limiter = limiter
        self.drop_scanners = drop_scanners

    def reload_users(
        self, users: Iterable[UserEntry], realms: Sequence[str], case_sensitive: bool
    ) -> None:
        """New credentials after the settings file changed (SIGHUP)."""
        self.authenticator.credentials = _credentials(users, realms, case_sensitive)

    def admit(self, source_ip: str, now: float) -> bool:
        """Whether to read a message from ``source_ip`` at all: not banned, not flooding.

        Trusted peers are never limited.
        """
        if self.authenticator.is_trusted(source_ip):
            return True
        if self.failures.is_banned(source_ip, now):
            return False
        return self.limiter.allow(source_ip, now)

    def is_scanner(self, request: Request) -> bool:
        """A request from a known scanning tool, to be dropped without an answer."""
        return self.drop_scanners and is_scanner(request.get("User-Agent") or "")

    def check(
        self,
        request: Request,
        source_ip: str,
        now: float,
        *,
        in_dialog: bool = False,
        uas: bool = False,
        as_user: str | None = None,
    ) -> Decision | None:
        """The authentication decision for ``request``; None when authentication
        is off. ``in_dialog``, ``uas``, ``as_user``: see ``Authenticator.check``."""
        if not self.enabled:
            return None
        decision = self.authenticator.check(
            request, source_ip, now, in_dialog=in_dialog, uas=uas, as_user=as_user
        )
        if isinstance(decision, Challenge) and decision.failed:
            if self.failures.record_failure(source_ip, now):
                logger.warning(
                    "banned %s for %d s after repeated authentication failures",
                    source_ip,
                    self.failures.ban_s,
                )
        elif isinstance(decision, Authenticated):
            self.failures.record_success(source_ip)
        return decision

    def is_trusted(self, source_ip: str) -> bool:
        return self.authenticator.is_trusted(source_ip)


def _credentials(
    users: Iterable[UserEntry], realms: Sequence[str], case_sensitive: bool
) -> Credentials:
    credentials, warnings = Credentials.from_users(users, realms, case_sensitive=case_sensitive)
    for warning in warnings:
        logger.warning(warning)
    return credentials
