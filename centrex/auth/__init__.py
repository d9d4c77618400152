"""Digest authentication, nonces, asserted identity and abuse protection.

Pure logic (no sockets, no asyncio, the time passed in): the server wires it
into the request pipeline. See ``challenge`` for who is challenged and why,
``credentials`` for how passwords are stored, ``abuse`` for bans and limits.
"""

from centrex.auth.abuse import SCANNER_USER_AGENTS, Ban, FailureTracker, RateLimiter, is_scanner
from centrex.auth.challenge import (
    Authenticated,
    Authenticator,
    Challenge,
    Decision,
    Exempt,
    Forbidden,
    RealmForDomain,
    Trusted,
)
from centrex.auth.credentials import (
    CredentialRecord,
    Credentials,
    UserFileError,
    add_user,
    hash_password,
    set_password,
)
from centrex.auth.identity import TrustedPeers, assert_identity, strip_untrusted_identity
from centrex.auth.nonce import NonceCodec, NonceCounter

__all__ = [
    "SCANNER_USER_AGENTS",
    "Authenticated",
    "Authenticator",
    "Ban",
    "Challenge",
    "CredentialRecord",
    "Credentials",
    "Decision",
    "Exempt",
    "FailureTracker",
    "Forbidden",
    "NonceCodec",
    "NonceCounter",
    "RateLimiter",
    "RealmForDomain",
    "Trusted",
    "TrustedPeers",
    "UserFileError",
    "add_user",
    "assert_identity",
    "hash_password",
    "is_scanner",
    "set_password",
    "strip_untrusted_identity",
]
