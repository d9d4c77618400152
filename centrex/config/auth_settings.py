"""The ``[auth]`` table: digest authentication and abuse protection (issue 5)."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _network(value: str) -> str:
    try:
        ipaddress.ip_network(value.strip("[]"), strict=False)
    except ValueError:
        raise ValueError(
            f"{value!r} is not an IP address or CIDR block, e.g. '192.0.2.10' or '10.0.0.0/8'"
        ) from None
    return value


Network = Annotated[str, AfterValidator(_network)]
Algorithm = Literal["SHA-256", "MD5"]


def _both_algorithms() -> list[Algorithm]:
    return ["SHA-256", "MD5"]


class AuthSettings(BaseModel):
    """Digest authentication (RFC 3261 22, RFC 7616) and protection against scanning,
    password guessing and floods."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True)

    enabled: bool = Field(
        default=True,
        description="challenge REGISTER (401) and calls from our users (407); off = trust everyone",
    )
    realm: str = Field(
        default="",
        description=(
            "digest realm; empty = the domain itself (with several domains, each is its "
            "own realm, and hashes made for one fail in the others: set one)"
        ),
    )
    algorithms: list[Algorithm] = Field(
        default_factory=_both_algorithms,
        min_length=1,
        description=(
            "digest algorithms offered, in order; put MD5 first for phones that only "
            "read the first challenge"
        ),
    )
    nonce_lifetime_s: int = Field(
        default=300, ge=10, description="a nonce older than this is answered with stale=true"
    )
    trusted: list[Network] = Field(
        default_factory=list,
        description="addresses or CIDR blocks never challenged (gateways, trunks; "
        "edge proxies, whose Path is followed)",
    )
    relax_from_match: bool = Field(
        default=False, description="let an authenticated user send a From of another user"
    )
    ban_after_failures: int = Field(
        default=10, ge=1, description="failed authentications from one address before a ban"
    )
    failure_window_s: int = Field(
        default=300, ge=1, description="window in which those failures are counted"
    )
    ban_time_s: int = Field(default=900, ge=1, description="how long a banned address is ignored")
    rate_limit_per_s: int = Field(
        default=50, ge=1, description="requests per second one address may send (pike-like)"
    )
    rate_limit_burst: int = Field(
        default=200, ge=1, description="requests one address may send in a burst above the rate"
    )
    max_tracked_sources: int = Field(
        default=100_000, ge=100, description="addresses remembered for bans and rate limits"
    )
    drop_scanners: bool = Field(
        default=True, description="silently drop known scanners (friendly-scanner, sipvicious...)"
    )
